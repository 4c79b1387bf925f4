"""Short coverage-guided fuzz runs (atheris) of the image reader and the spec parser, side by side."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris); hypothesis tests still run")

ROOT = Path(__file__).resolve().parents[1]
SECONDS = int(os.environ.get("SIRESTORE_FUZZ_SECONDS", "20"))
TARGETS = ["fuzz_imageio.py", "fuzz_spec.py"]


@pytest.mark.fuzz
def test_fuzz_targets_find_nothing(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = {}
    for name in TARGETS:
        work = tmp_path / name
        work.mkdir()
        args = [f"-max_total_time={SECONDS}", "-seed=1", f"-artifact_prefix={work}/"]
        cmd = [sys.executable, str(ROOT / "tests" / "fuzz" / name), *args]
        run_env = {**env, "TMPDIR": str(work)}  # seeds and inputs go to the test's folder
        procs[name] = subprocess.Popen(cmd, cwd=work, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    logs = {name: proc.communicate(timeout=SECONDS + 120)[0].decode(errors="replace") for name, proc in procs.items()}
    for name, proc in procs.items():
        crashes = sorted(p.name for p in (tmp_path / name).glob("crash-*"))
        assert proc.returncode == 0 and not crashes, f"{name}: {crashes}\n{logs[name][-4000:]}"
        runs = re.findall(r"Done (\d+) runs", logs[name])
        assert runs and int(runs[-1]) > 0, logs[name][-2000:]
        print(f"{name}: {runs[-1]} executions in {SECONDS} s")
