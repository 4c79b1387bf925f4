"""Crash-safe training: verified checkpoints with a kept previous one; kill -9 at random moments and
--resume reaches exactly the weights of an uninterrupted run, losing at most one checkpoint interval."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from sirestore import checkpoint
from sirestore.checkpoint import CheckpointError, load_latest_checkpoint, save_checkpoint, sidecar
from sirestore.cli import main
from sirestore.train import train

from .test_train import _cfg

ROOT = Path(__file__).resolve().parents[1]
KILLS = 3


def _state(step: int) -> dict:
    return {"model": {"w": torch.full((3,), float(step))}, "ema": {}, "opt": {}, "gen": [], "step": step}


def test_checkpoint_files_and_sidecar_format(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(_state(step), tmp_path / "last.pt", previous=tmp_path / "prev.pt")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["last.pt", "last.pt.sha256", "prev.pt", "prev.pt.sha256"]
    assert sidecar(tmp_path / "last.pt").read_text() == f"{checkpoint.sha256(tmp_path / 'last.pt')}  last.pt\n"
    state, warnings = load_latest_checkpoint(tmp_path / "last.pt", tmp_path / "prev.pt")
    assert state["step"] == 3 and warnings == []


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_damaged_last_falls_back_to_prev(tmp_path, damage):
    for step in (1, 2):
        save_checkpoint(_state(step), tmp_path / "last.pt", previous=tmp_path / "prev.pt")
    last = tmp_path / "last.pt"
    data = last.read_bytes()
    if damage == "delete":
        last.unlink()
    else:
        flipped = data[:-9] + bytes([data[-9] ^ 1]) + data[-8:]
        last.write_bytes(data[: len(data) // 2] if damage == "truncate" else flipped)
    state, warnings = load_latest_checkpoint(last, tmp_path / "prev.pt")
    assert state["step"] == 1 and len(warnings) == 1 and "last.pt" in warnings[0] and "prev.pt" in warnings[0]


def test_legacy_checkpoint_without_sidecar_loads(tmp_path):
    torch.save(_state(5), tmp_path / "last.pt")
    state, warnings = load_latest_checkpoint(tmp_path / "last.pt", tmp_path / "prev.pt")
    assert state["step"] == 5 and warnings == []
    save_checkpoint(_state(6), tmp_path / "last.pt", previous=tmp_path / "prev.pt")  # rotates the legacy one
    assert load_latest_checkpoint(tmp_path / "prev.pt", tmp_path / "none.pt")[0]["step"] == 5


def test_nothing_usable_is_one_line_error(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"garbage")
    (tmp_path / "prev.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError) as err:
        load_latest_checkpoint(tmp_path / "last.pt", tmp_path / "prev.pt")
    assert "\n" not in str(err.value) and "last.pt" in str(err.value) and "prev.pt" in str(err.value)


def test_a_crash_at_any_rename_leaves_a_good_checkpoint(tmp_path, monkeypatch):
    """Stop `save_checkpoint` at each of its renames (as a kill would): step 2 or 1 always resumes."""
    real = os.replace
    for crash_at in range(4):
        folder = tmp_path / str(crash_at)
        for step in (0, 1):
            save_checkpoint(_state(step), folder / "last.pt", previous=folder / "prev.pt")
        calls = []

        def replace(a, b, crash_at=crash_at, calls=calls):
            calls.append(b)
            if len(calls) > crash_at:
                raise KeyboardInterrupt  # not an Exception: nothing else runs, as with a kill
            real(a, b)

        monkeypatch.setattr(checkpoint.os, "replace", replace)
        try:
            save_checkpoint(_state(2), folder / "last.pt", previous=folder / "prev.pt")
        except KeyboardInterrupt:
            pass
        monkeypatch.setattr(checkpoint.os, "replace", real)
        state, _ = load_latest_checkpoint(folder / "last.pt", folder / "prev.pt")
        assert state["step"] in (1, 2), crash_at


def _config(tmp_path, out: str, **kw):
    cfg = _cfg(tmp_path, out, **{"steps": 60, "ckpt_every": 4, "val_every": 20, "log_every": 1, "threads": 1, **kw})
    path = tmp_path / f"{out}.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    return cfg, path


def _log_steps(path: Path) -> list[int]:
    steps = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            steps.append(json.loads(line)["step"])
        except ValueError:
            pass  # a line cut by the kill
    return steps


def _start(config: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "sirestore.cli", "train", "--config", str(config), "--no-progress", "--resume"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_and_resume_gives_the_uninterrupted_weights(tmp_path):
    cfg, config = _config(tmp_path, "killed")
    out, rng, resumed, lost = Path(cfg.out_dir), random.Random(2024), 0, []
    for _ in range(KILLS):
        proc, target = _start(config), min(cfg.steps - 20, resumed + rng.randint(2, 3 * cfg.ckpt_every))
        while max(_log_steps(out / "log.jsonl"), default=0) < target:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        assert proc.poll() is None, "finished before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        reached = max(_log_steps(out / "log.jsonl"))
        resumed = int(load_latest_checkpoint(out / "last.pt", out / "prev.pt")[0]["step"])
        lost.append(reached - resumed)
    proc = _start(config)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert all(n <= cfg.ckpt_every for n in lost), lost
    print(f"{KILLS} kills; steps lost per kill: {lost} (checkpoint every {cfg.ckpt_every})")
    assert _log_steps(out / "log.jsonl") == list(range(1, cfg.steps + 1))  # lines of lost steps dropped

    reference = train(_config(tmp_path, "reference")[0], progress=False).state_dict()
    killed = checkpoint.load_weights(out / "ema.safetensors").state_dict()
    assert reference.keys() == killed.keys() and all(torch.equal(reference[k], killed[k]) for k in reference)


def _stopped_run(tmp_path, capsys) -> tuple[Path, Path]:
    cfg, config = _config(tmp_path, "run", steps=12)
    assert main(["train", "--config", str(config), "--no-progress", "--stop-at", "8"]) == 0
    capsys.readouterr()
    return Path(cfg.out_dir), config


def test_cli_resume_from_prev_when_last_is_truncated(tmp_path, capsys):
    out, config = _stopped_run(tmp_path, capsys)
    data = (out / "last.pt").read_bytes()
    (out / "last.pt").write_bytes(data[: len(data) // 3])
    assert main(["train", "--config", str(config), "--no-progress", "--resume"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning:") and "resuming from" in err[0] and "(step 4)" in err[0]
    assert _log_steps(out / "log.jsonl") == list(range(1, 13))


def test_cli_resume_with_no_good_checkpoint_is_one_line(tmp_path, capsys):
    out, config = _stopped_run(tmp_path, capsys)
    (out / "last.pt").write_bytes(b"garbage")
    (out / "prev.pt").write_bytes(b"more garbage")
    assert main(["train", "--config", str(config), "--no-progress", "--resume"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot resume") and "Traceback" not in err[0]
