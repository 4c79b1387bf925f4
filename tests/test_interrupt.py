"""Nothing lost: a batch restore interrupted (SIGINT) or killed (SIGKILL) leaves only complete outputs,
unchanged inputs, and finishes with --skip-existing, which restores only the missing ones."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sirestore.fsutil import stale_temps
from sirestore.imageio import read_image

ROOT = Path(__file__).resolve().parents[1]
COUNT, SIZE = 20, 384


def _start(argv: list) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "sirestore.cli", *map(str, argv)]
    # a run started in the background (`cmd &`) inherits SIGINT ignored, and Python keeps it so: give the
    # child Ctrl-C's default behaviour, as in a terminal
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _outputs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if not p.name.startswith(".")) if folder.is_dir() else []


def _wait_for_outputs(proc: subprocess.Popen, folder: Path, n: int, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while len(_outputs(folder)) < n:
        assert proc.poll() is None, f"finished before it could be interrupted: {proc.communicate()}"
        assert time.monotonic() < end, "no output appeared"
        time.sleep(0.01)


def _hashes(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _assert_complete(folder: Path) -> None:
    """Every visible file is a complete image of the input's size; hidden files are only stale temps."""
    for path in _outputs(folder):
        image, _ = read_image(path)
        assert image.shape == (SIZE, SIZE, 3), path
    hidden = sorted(p for p in folder.glob(".*"))
    assert hidden == stale_temps(folder), f"unexpected hidden files {hidden}"


@pytest.fixture
def batch(tmp_path, tiny_weights):
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(COUNT):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(src / f"img{i:02d}.png")
    base = ["restore", src, "-o", tmp_path / "out", "--weights", tiny_weights, "--steps", "6"]
    return src, tmp_path / "out", base


def test_sigint_sigkill_then_skip_existing_finishes(batch):
    src, out, base = batch
    before = _hashes(sorted(src.iterdir()))

    proc = _start(base)
    _wait_for_outputs(proc, out, 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines() == [line for line in err.strip().splitlines() if line.startswith("interrupted")]
    assert len(err.strip().splitlines()) == 1
    _assert_complete(out)
    assert stale_temps(out) == []  # SIGINT cleans up its own temporary file
    after_sigint = len(_outputs(out))
    assert 0 < after_sigint < COUNT

    proc = _start([*base, "--skip-existing"])
    _wait_for_outputs(proc, out, after_sigint + 1)
    time.sleep(random.Random(7).uniform(0, 0.3))
    proc.kill()
    proc.communicate(timeout=60)
    _assert_complete(out)
    done = _hashes(_outputs(out))
    assert len(done) < COUNT, "finished before the kill"
    dead = out / f".img{COUNT - 1:02d}.png.{proc.pid}.{'0' * 12}.tmp"
    dead.write_bytes(b"partial")  # what a kill during a write leaves (the writer's pid is in the name)
    alive = out / f".img{COUNT - 1:02d}.png.{os.getpid()}.{'1' * 12}.tmp"
    alive.write_bytes(b"another process is writing this")

    proc = _start([*base, "--skip-existing"])
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "Traceback" not in err, err
    notes = [line for line in err.splitlines() if line.startswith("note:") and "exists, skipped" in line]
    assert len(notes) == len(done) and "error" not in err
    assert not dead.exists() and alive.exists() and f"removed {dead}" in err
    alive.unlink()
    _assert_complete(out)
    final = _hashes(_outputs(out))
    assert len(final) == COUNT and all(final[name] == digest for name, digest in done.items())
    assert _hashes(sorted(src.iterdir())) == before


def test_sigint_during_start_up_is_one_line(batch):
    _, out, base = batch
    proc = _start(base)
    time.sleep(0.3)  # importing torch takes longer than this
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    _assert_complete(out)
