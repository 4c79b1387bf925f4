"""Command line behaviour: restore files and folders, errors as one line, eval JSON."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sirestore.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_restore_single_file_keeps_size_and_mode(tmp_path, image_dir, tiny_weights, capsys):
    out = tmp_path / "out.png"
    code, _, _ = run(["restore", image_dir / "color.png", "-o", out, "--weights", tiny_weights], capsys)
    assert code == 0
    with Image.open(out) as im, Image.open(image_dir / "color.png") as src:
        assert im.size == src.size and im.mode == src.mode


def test_restore_folder_gray_rgba(tmp_path, image_dir, tiny_weights, capsys):
    out = tmp_path / "out"
    code, _, _ = run(["restore", image_dir, "-o", out, "--weights", tiny_weights, "--steps", "2"], capsys)
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["alpha.png", "color.png", "gray.png"]
    with Image.open(out / "gray.png") as im:
        assert im.mode == "L" and im.size == (33, 30)
    with Image.open(out / "alpha.png") as im, Image.open(image_dir / "alpha.png") as src:
        assert im.mode == "RGBA"
        assert np.array_equal(np.asarray(im)[..., 3], np.asarray(src)[..., 3])


def test_no_overwrite_without_flag(tmp_path, image_dir, tiny_weights, capsys):
    out = tmp_path / "out.png"
    out.write_bytes(b"keep me")
    code, _, err = run(["restore", image_dir / "color.png", "-o", out, "--weights", tiny_weights], capsys)
    assert code != 0 and "exists" in err and out.read_bytes() == b"keep me"
    code, _, _ = run(["restore", image_dir / "color.png", "-o", out, "--weights", tiny_weights, "--overwrite"], capsys)
    assert code == 0 and out.read_bytes() != b"keep me"


def test_bad_files_do_not_stop_the_batch(tmp_path, image_dir, tiny_weights, capsys):
    (image_dir / "empty.png").write_bytes(b"")
    (image_dir / "text.jpg").write_text("not an image")
    good = Image.open(image_dir / "color.png")
    good.save(tmp_path / "trunc.png")
    data = (tmp_path / "trunc.png").read_bytes()
    (image_dir / "trunc.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    code, _, err = run(["restore", image_dir, tmp_path / "missing.png", "-o", out, "--weights", tiny_weights], capsys)
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    for name in ("empty.png", "text.jpg", "trunc.png", "missing.png"):
        assert sum(name in line for line in lines) == 1, err
    assert sorted(p.name for p in out.iterdir()) == ["alpha.png", "color.png", "gray.png"]


def test_input_is_never_replaced(image_dir, tiny_weights, capsys):
    before = (image_dir / "color.png").read_bytes()
    code, _, err = run(
        ["restore", image_dir / "color.png", "-o", image_dir / "color.png", "--weights", tiny_weights, "--overwrite"],
        capsys,
    )
    assert code != 0 and "replace the input" in err
    assert (image_dir / "color.png").read_bytes() == before


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--weights", "nope.safetensors"], "not found"),
        (["--steps", "0"], "steps"),
        (["--tile", "8"], "tile"),
    ],
)
def test_bad_options_one_line(tmp_path, image_dir, tiny_weights, capsys, argv, needle):
    args = ["restore", image_dir / "color.png", "-o", tmp_path / "o.png"]
    if "--weights" not in argv:
        args += ["--weights", tiny_weights]
    code, _, err = run(args + argv, capsys)
    assert code != 0 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_eval_folder_json(tmp_path, image_dir, tiny_weights, capsys):
    data = tmp_path / "clean"
    data.mkdir()
    for name in ("color.png",):
        (data / name).write_bytes((image_dir / name).read_bytes())
    out = tmp_path / "r.json"
    code, text, _ = run(
        ["eval", "--data", data, "--degradation", "awgn:sigma=25", "--weights", tiny_weights, "--json", out], capsys
    )
    assert code == 0 and "mean" in text
    result = json.loads(out.read_text())
    assert {"psnr", "ssim", "images", "megapixels", "seconds", "per_image"} <= set(result)
    assert result["images"] == 1 and result["settings"]["degradation"] == "awgn:sigma=25"


def test_eval_is_seeded(tmp_path, image_dir, tiny_weights, capsys):
    runs = []
    for seed in (0, 0, 1):
        out = tmp_path / f"r{len(runs)}.json"
        run(
            [
                "eval",
                "--data",
                image_dir,
                "--degradation",
                "awgn:sigma=15",
                "--weights",
                tiny_weights,
                "--seed",
                seed,
                "--json",
                out,
            ],
            capsys,
        )
        runs.append(json.loads(out.read_text())["psnr"])
    assert runs[0] == runs[1] != runs[2]


def test_eval_pairs(tmp_path, image_dir, tiny_weights, capsys):
    deg, clean = tmp_path / "deg", tmp_path / "clean"
    deg.mkdir()
    clean.mkdir()
    for i, name in enumerate(("color.png", "gray.png")):
        (clean / f"{i}.png").write_bytes((image_dir / name).read_bytes())
        (deg / f"{i}.png").write_bytes((image_dir / name).read_bytes())
    code, _, err = run(["eval", "--pairs", deg, clean, "--weights", tiny_weights], capsys)
    assert code == 0, err


def test_eval_bad_spec_one_line(image_dir, tiny_weights, capsys):
    code, _, err = run(
        ["eval", "--data", image_dir, "--degradation", "blurr:sigma=2", "--weights", tiny_weights], capsys
    )
    assert code != 0 and "blurr" in err and len(err.strip().splitlines()) == 1


def test_module_entry_point(tmp_path, image_dir, tiny_weights):
    out = tmp_path / "o.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sirestore.cli",
            "restore",
            str(image_dir / "gray.png"),
            "-o",
            str(out),
            "--weights",
            str(tiny_weights),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()


def test_skip_existing_is_a_note_not_an_error(tmp_path, image_dir, tiny_weights, capsys):
    out = tmp_path / "out"
    assert run(["restore", image_dir, "-o", out, "--weights", tiny_weights], capsys)[0] == 0
    (out / "gray.png").unlink()
    kept = (out / "color.png").stat().st_mtime_ns
    code, _, err = run(["restore", image_dir, "-o", out, "--weights", tiny_weights, "--skip-existing"], capsys)
    assert code == 0 and err.count("exists, skipped") == 2 and "error" not in err
    assert (out / "gray.png").is_file() and (out / "color.png").stat().st_mtime_ns == kept
    with pytest.raises(SystemExit):
        main(["restore", str(image_dir), "-o", str(out), "--overwrite", "--skip-existing"])


def test_max_pixels_option(tmp_path, image_dir, tiny_weights, capsys):
    argv = ["restore", image_dir / "color.png", "-o", tmp_path / "o.png", "--weights", tiny_weights]
    code, _, err = run([*argv, "--max-pixels", "100"], capsys)
    assert code == 1 and "limit of 100 pixels" in err and not (tmp_path / "o.png").exists()
    assert run([*argv, "--max-pixels", str(37 * 45)], capsys)[0] == 0


def test_unexpected_error_is_one_line(monkeypatch, capsys):
    import sirestore.cli as cli

    monkeypatch.setitem(cli.COMMANDS, "restore", lambda args: 1 / 0)
    assert main(["restore", "x.png", "-o", "y.png"]) == 3
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "internal error (ZeroDivisionError" in err
    monkeypatch.setenv("SIRESTORE_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["restore", "x.png", "-o", "y.png"])
