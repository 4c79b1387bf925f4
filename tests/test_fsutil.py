"""Temporary-file names, stale temporary files, printable paths."""

from __future__ import annotations

import os
import subprocess
import sys

from sirestore.fsutil import clean_stale_temps, file_problem, shown, stale_temps, temp_path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_path_is_hidden_short_and_ours(tmp_path):
    long = tmp_path / ("x" * 250 + ".png")
    tmp = temp_path(long)
    assert tmp.parent == tmp_path and tmp.name.startswith(".x") and tmp.name.endswith(".tmp")
    assert len(tmp.name) < 160 and f".{os.getpid()}." in tmp.name and temp_path(long) != tmp


def test_only_temps_of_dead_writers_are_stale(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    stale = tmp_path / f".a.png.{dead}.0123456789ab.tmp"
    keep = [tmp_path / f".b.png.{alive}.0123456789ab.tmp", tmp_path / ".c.png.tmp", tmp_path / f"d.{dead}.png"]
    for path in [stale, *keep]:
        path.write_bytes(b"x")
    (tmp_path / f".e.png.{dead}.0123456789ab.tmp").mkdir()  # not a file: left alone
    assert stale_temps(tmp_path) == [stale]
    assert clean_stale_temps(tmp_path) == [stale] and not stale.exists() and all(p.exists() for p in keep)
    assert stale_temps(tmp_path / "missing") == []


def test_shown_is_one_printable_line():
    assert shown("a b/ü✓.png") == "a b/ü✓.png"
    assert shown("a\nb\tc.png") == "a\\nb\\tc.png"
    assert shown(os.fsdecode(b"x\xff.png")) == "x\\udcff.png" == shown(b"x\xff.png")


def test_file_problem(tmp_path):
    (tmp_path / "ok").write_bytes(b"1")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "dangling").symlink_to("nowhere")
    os.mkfifo(tmp_path / "fifo")
    assert file_problem(tmp_path / "ok") is None
    assert "empty" in file_problem(tmp_path / "empty")
    assert "loop" in file_problem(tmp_path / "loop")
    assert "broken symbolic link" in file_problem(tmp_path / "dangling")
    assert "not a regular file" in file_problem(tmp_path / "fifo")
    assert "directory" in file_problem(tmp_path)
    assert "not found" in file_problem(tmp_path / "missing")
    assert "not found" in file_problem(tmp_path / "ok" / "below")
