"""`sirestore restore` on a corpus of hostile and odd files: a correct output or one error line each.

The model is the tiny network as initialised (its head is zero, so it restores to the input
exactly): outputs can then be checked for size, kind, orientation and content.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sirestore.checkpoint import save_weights
from sirestore.fsutil import shown
from sirestore.imageio import SUPPORTED_SUFFIXES, read_image
from sirestore.model import FlowModel

from .conftest import tiny_config
from .fuzz.corpus import Case, describe, make_corpus, picture, without_file_permission_override

ROOT = Path(__file__).resolve().parents[1]
MAX_PIXELS = "1000000"  # big_valid.png (4 Mpx, a few hundred bytes) is above it


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    """The corpus, identity weights, and one restore of every case listed on one command line."""
    tmp = tmp_path_factory.mktemp("corpus")
    torch.manual_seed(0)
    weights = tmp / "identity.safetensors"
    save_weights(FlowModel(tiny_config()), weights)
    cases = make_corpus(tmp / "in")
    before = {c.name: _digest(c.path) for c in cases}
    preexec = without_file_permission_override()
    if not _permissions_enforced(tmp / "in" / "unreadable.png", preexec):
        next(c for c in cases if c.name == "unreadable.png").expect = "ok"  # root without a way to drop its power
    out = tmp / "out"
    argv = ["restore", *[c.path for c in cases], "-o", out, "--weights", weights, "--max-pixels", MAX_PIXELS]
    proc = cli(argv, preexec)
    return cases, out, weights, proc, before, preexec


def cli(argv: list, preexec=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m sirestore.cli` (a hang fails the test after `timeout` seconds)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUTF8": "1"}
    env.pop("SIRESTORE_DEBUG", None)
    cmd = [sys.executable, "-m", "sirestore.cli", *[os.fsencode(a) if isinstance(a, Path) else a for a in argv]]
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env, preexec_fn=preexec)
    proc.stderr = proc.stderr.decode("utf-8")
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr[-3000:]
    return proc


def _permissions_enforced(path: Path, preexec) -> bool:
    probe = [sys.executable, "-c", f"open({str(path)!r}, 'rb')"]
    return subprocess.run(probe, preexec_fn=preexec, capture_output=True).returncode != 0


def _digest(path: Path) -> str | None:
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    except OSError:
        return None


def errors_naming(stderr: str, path: Path) -> list[str]:
    prefix = f"error: {shown(path)}: "
    return [line for line in stderr.splitlines() if line.startswith(prefix)]


def check_output(case: Case, out: Path) -> list[str]:
    """Problems with the restored output of an "ok" case (empty when it is right)."""
    dst = out / case.output_name
    if not dst.is_file():
        return [f"{case.name!r}: no output {dst.name!r}"]
    (size, kind), problems = describe(dst), []
    if (size, kind) != (case.size, case.kind):
        problems.append(f"{case.name!r}: output is {size} {kind}, expected {case.size} {case.kind}")
    src, src_info = read_image(case.path, max_pixels=10**6)
    got, got_info = read_image(dst, max_pixels=10**6)
    if got_info.exif and b"\x12\x01" in got_info.exif[:64]:
        problems.append(f"{case.name!r}: output keeps an orientation tag")
    if got.shape != src.shape:
        return problems + [f"{case.name!r}: output {got.shape} != upright input {src.shape}"]
    err = np.abs(got - src)
    lossy = dst.suffix.lower() in (".jpg", ".jpeg")
    if err.mean() > (0.03 if lossy else 1e-3) or err.max() > (0.3 if lossy else 2 / 255):
        problems.append(f"{case.name!r}: content differs (mean {err.mean():.4f}, max {err.max():.4f})")
    alphas = (src_info.alpha, got_info.alpha)
    if (alphas[0] is None) != (alphas[1] is None) or (alphas[0] is not None and not np.allclose(*alphas, atol=1e-3)):
        problems.append(f"{case.name!r}: alpha not kept")
    return problems


def test_corpus_is_large_and_varied(corpus_run):
    cases = corpus_run[0]
    assert len(cases) >= 60
    assert sum(c.expect == "ok" for c in cases) >= 30 and sum(c.expect == "error" for c in cases) >= 30


def test_every_case_restores_or_fails_cleanly(corpus_run):
    cases, out, _, proc, before, _ = corpus_run
    problems = []
    for case in cases:
        lines = errors_naming(proc.stderr, case.path)
        if case.expect == "ok":
            problems += [f"{case.name!r}: unexpected {line!r}" for line in lines] or check_output(case, out)
        elif len(lines) != 1:
            problems.append(f"{case.name!r}: {len(lines)} error lines, expected 1")
    assert not problems, "\n".join(problems) + "\n" + proc.stderr[-3000:]
    assert proc.returncode == 1
    named = {line for c in cases for line in errors_naming(proc.stderr, c.path)}
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:") and line not in named] == []
    assert {c.name: _digest(c.path) for c in cases} == before, "an input changed"
    if os.environ.get("SIRESTORE_SHOW_STDERR"):
        print(proc.stderr)


def test_no_partial_or_temporary_outputs(corpus_run):
    cases, out, *_ = corpus_run
    expected = {c.output_name for c in cases if c.expect == "ok"}
    assert {p.name for p in out.iterdir()} == expected  # nothing else: no partial file, no .*.tmp


def test_folder_run_skips_existing_and_refuses_the_rest(corpus_run):
    """The corpus folder as one input, into the same output folder with --skip-existing."""
    cases, out, weights, _, _, preexec = corpus_run
    folder = cases[0].path.parent
    argv = ["restore", folder, "-o", out, "--weights", weights, "--max-pixels", MAX_PIXELS, "--skip-existing"]
    proc = cli(argv, preexec)
    scanned = [c for c in cases if c.path.suffix.lower() in SUPPORTED_SUFFIXES]
    problems = []
    for case in scanned:
        if case.path.is_dir():
            continue  # a folder inside an input folder is not an input
        errors = errors_naming(proc.stderr, case.path)
        skipped = f"note: {shown(out / case.output_name)}: exists, skipped" in proc.stderr.splitlines()
        if (case.expect, len(errors), skipped) not in (("ok", 0, True), ("error", 1, False)):
            problems.append(f"{case.name!r}: {len(errors)} error lines, skipped={skipped}")
    assert not problems, "\n".join(problems) + "\n" + proc.stderr[-3000:]
    assert proc.returncode == 1


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("folder.png", []),  # a folder given as the one input file
        ("loop.png", []),  # a symbolic link loop
        ("bomb.png", []),  # 10^10 pixels claimed, default --max-pixels
        (os.fsdecode(b"bad\xff.png"), []),  # a non-UTF-8 name
    ],
)
def test_single_bad_file(corpus_run, tmp_path, name, extra):
    cases, _, weights, *_ = corpus_run
    src = cases[0].path.parent / name
    dst = tmp_path / "o.png"
    proc = cli(["restore", src, "-o", dst, "--weights", weights, *extra])
    assert proc.returncode != 0 and len(errors_naming(proc.stderr, src)) == 1, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_single_file_with_odd_names(corpus_run, tmp_path):
    cases, _, weights, *_ = corpus_run
    src = cases[0].path.parent / os.fsdecode(b"latin1-\xe9\xff.png")
    dst = tmp_path / os.fsdecode(b"out \xfe\nname.png")
    proc = cli(["restore", src, "-o", dst, "--weights", weights])
    assert proc.returncode == 0, proc.stderr
    assert describe(dst) == ((picture().shape[1], picture().shape[0]), "RGB")


def test_output_path_that_is_a_link_loop(corpus_run, tmp_path):
    cases, _, weights, *_ = corpus_run
    (tmp_path / "loop.png").symlink_to("loop.png")
    proc = cli(["restore", cases[0].path.parent / "rgb.png", "-o", tmp_path / "loop.png", "--weights", weights])
    assert proc.returncode != 0 and proc.stderr.count("error:") == 1, proc.stderr
