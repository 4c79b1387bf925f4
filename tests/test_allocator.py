"""The allocator setting: freed feature maps are reused instead of page-faulted fresh (glibc only)."""

from __future__ import annotations

import platform
import resource
import subprocess
import sys

import pytest
import torch

from sirestore import allocator

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
BLOCK = 48 * 2**20  # bytes: above glibc's largest automatic mapping threshold (32 MiB)


def _faults_of_one_block() -> int:
    """Minor page faults while a fresh BLOCK-byte tensor is written once."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(BLOCK // 4)
    x.fill_(1.0)
    del x
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_default_allocator_faults_on_every_large_block() -> None:
    # the problem, in a fresh process: without the setting each block is a fresh mapping
    code = (
        "import resource, torch\n"
        "def f():\n"
        "    b = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        f"    x = torch.empty({BLOCK // 4}); x.fill_(1.0); del x\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - b\n"
        "f(); print(f())\n"
    )
    faults = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert faults > BLOCK // 4096 // 2


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_kept_memory_is_reused_without_page_faults() -> None:
    assert allocator.keep_freed_memory()
    assert allocator.keep_freed_memory() and allocator.kept()  # idempotent
    _faults_of_one_block()  # the heap grows once
    assert _faults_of_one_block() < BLOCK // 4096 // 20  # then the block is reused: < 5 % of its pages fault


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_release_returns_kept_memory() -> None:
    allocator.keep_freed_memory()
    _faults_of_one_block()
    assert allocator.release_freed_memory()  # the block's pages went back to the system
    assert _faults_of_one_block() > BLOCK // 4096 // 2  # so writing a new block faults again


def test_no_op_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_libc", lambda: None)
    monkeypatch.setitem(allocator._state, "kept", False)
    assert not allocator.keep_freed_memory()
    assert not allocator.release_freed_memory()
    assert not allocator.kept()


def test_command_line_keeps_freed_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from sirestore import cli

    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(1) or True)
    with pytest.raises(SystemExit):
        cli.main(["restore", "--help"])
    assert not calls  # --help exits while parsing
    assert cli.main(["restore", "/nonexistent/photo.png", "-o", "/nonexistent/out.png"]) != 0
    assert calls == [1]
