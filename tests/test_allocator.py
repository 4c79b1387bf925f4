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


# A chain of layers in a fresh one-thread process (deterministic heap): each cycle writes blocks of these sizes
# (MiB), freeing the previous one as a network frees a layer's input; prints the page faults of every cycle.
CHAIN = """
import resource, sys, torch
torch.set_num_threads(1)
if sys.argv[1] == "keep":
    from sirestore.allocator import keep_freed_memory
    assert keep_freed_memory()
faults = []
for cycle in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for mib in (16, 12, 24, 48, 8, 16):
        h = torch.empty(mib * 2**20 // 4)
        h.fill_(1.0)
    del h
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults)
"""


def _chain_faults(setting: str) -> list[int]:
    run = subprocess.run([sys.executable, "-c", CHAIN, setting], capture_output=True, text=True, check=True)
    return [int(f) for f in run.stdout.split()]


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_default_allocator_faults_on_every_large_block() -> None:
    # the problem: glibc maps the 48 MiB block fresh in every cycle, however often the chain runs
    assert all(f > BLOCK // 4096 // 2 for f in _chain_faults("default")[-2:])


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_kept_memory_is_reused_without_page_faults() -> None:
    # with the setting, once the heap has settled (a few cycles) the chain reuses freed memory: < 5 % of the
    # 48 MiB block's pages fault in a whole cycle. A single block freed and allocated again is not enough to
    # test: glibc's aligned allocation may not fit the freed chunk and grow the heap instead.
    assert allocator.keep_freed_memory() and allocator.keep_freed_memory() and allocator.kept()  # idempotent
    assert all(f < BLOCK // 4096 // 20 for f in _chain_faults("keep")[-2:])


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
