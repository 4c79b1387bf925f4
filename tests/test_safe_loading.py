"""Safe loading: no pickle from untrusted files, one-line errors for bad weights, sha256 verification."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from sirestore.checkpoint import read_metadata, read_sha256sums, sha256
from sirestore.cli import main

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "sirestore" / "weights"


def _calls(tree: ast.AST, module: str, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == name
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == module
    ]


def _keyword(call: ast.Call, name: str) -> object:
    return next((k.value.value for k in call.keywords if k.arg == name and isinstance(k.value, ast.Constant)), None)


def test_no_unsafe_deserialisation_in_the_code():
    files = sorted((ROOT / "sirestore").rglob("*.py")) + sorted((ROOT / "scripts").glob("*.py"))
    problems, loads = [], 0
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for call in _calls(tree, "torch", "load"):
            loads += 1
            if _keyword(call, "weights_only") is not True:
                problems.append(f"{path}:{call.lineno}: torch.load without weights_only=True")
        for call in _calls(tree, "np", "load") + _calls(tree, "numpy", "load"):
            if _keyword(call, "allow_pickle") is True:
                problems.append(f"{path}:{call.lineno}: np.load with allow_pickle=True")
        for name in ("load", "loads", "Unpickler"):
            problems += [f"{path}:{c.lineno}: pickle.{name}" for c in _calls(tree, "pickle", name)]
    assert loads >= 1 and not problems, problems  # loads >= 1: the scan does see the checkpoint reader


def test_shipped_weights_match_sha256sums():
    shipped = sorted(WEIGHTS.glob("*.safetensors"))
    if not shipped:
        pytest.skip("no weights in sirestore/weights yet")
    sums = read_sha256sums(WEIGHTS / "SHA256SUMS")
    for path in shipped:
        assert sums.get(path.name) == sha256(path), f"{path.name}: run python scripts/update_weights_sha.py"


def test_update_script_writes_and_checks(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("update_weights_sha", ROOT / "scripts" / "update_weights_sha.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    (tmp_path / "a.safetensors").write_bytes(b"abc")
    assert script.main(["--folder", str(tmp_path), "--check"]) == 1
    assert script.main(["--folder", str(tmp_path)]) == 0
    assert read_sha256sums(tmp_path / "SHA256SUMS") == {"a.safetensors": sha256(tmp_path / "a.safetensors")}
    assert script.main(["--folder", str(tmp_path), "--check"]) == 0


def _restore(tmp_path, image_dir, weights, capsys, *extra) -> tuple[int, str]:
    argv = ["restore", str(image_dir / "color.png"), "-o", str(tmp_path / "o.png"), "--weights", str(weights)]
    code = main([*argv, *map(str, extra)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _mismatched(tiny_weights: Path, path: Path) -> Path:
    meta = read_metadata(tiny_weights)
    config = json.loads(meta["config"])
    config["net"]["widths"] = [8, 24]
    save_file(load_file(str(tiny_weights)), str(path), metadata={**meta, "config": json.dumps(config)})
    return path


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("garbage", "not a readable safetensors file"),
        ("truncated", "not a readable safetensors file"),
        ("pickle", "not a readable safetensors file"),
        ("other safetensors", "not sirestore weights"),
        ("mismatched config", "do not match"),
    ],
)
def test_bad_weights_one_line(tmp_path, image_dir, tiny_weights, tiny_model, capsys, kind, needle):
    path = tmp_path / "w.safetensors"
    if kind == "garbage":
        path.write_bytes(b"\x00garbage" * 100)
    elif kind == "truncated":
        path.write_bytes(tiny_weights.read_bytes()[:-100])
    elif kind == "pickle":
        torch.save(tiny_model.state_dict(), path)
    elif kind == "other safetensors":
        save_file({"x": torch.zeros(3)}, str(path))
    else:
        _mismatched(tiny_weights, path)
    code, err = _restore(tmp_path, image_dir, path, capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o.png").exists()


def test_weights_sha256_option(tmp_path, image_dir, tiny_weights, capsys):
    digest = sha256(tiny_weights)
    code, err = _restore(tmp_path, image_dir, tiny_weights, capsys, "--weights-sha256", "0" * 64)
    assert code == 2 and f"sha256 is {digest}" in err and len(err.strip().splitlines()) == 1
    code, err = _restore(tmp_path, image_dir, tiny_weights, capsys, "--weights-sha256", "xyz")
    assert code == 2 and "64 hexadecimal digits" in err and len(err.strip().splitlines()) == 1
    code, err = _restore(tmp_path, image_dir, tiny_weights, capsys, "--weights-sha256", digest.upper())
    assert code == 0, err


def test_sha256sums_beside_the_weights_is_checked(tmp_path, image_dir, tiny_weights, capsys):
    (tiny_weights.parent / "SHA256SUMS").write_text(f"{'f' * 64}  {tiny_weights.name}\n")
    code, err = _restore(tmp_path, image_dir, tiny_weights, capsys)
    assert code == 2 and "sha256" in err and len(err.strip().splitlines()) == 1
    (tiny_weights.parent / "SHA256SUMS").write_text(f"{sha256(tiny_weights)}  {tiny_weights.name}\n")
    assert _restore(tmp_path, image_dir, tiny_weights, capsys)[0] == 0


def test_eval_checks_the_sha256_too(image_dir, tiny_weights, capsys):
    argv = ["eval", "--data", str(image_dir), "--degradation", "awgn:sigma=25", "--weights", str(tiny_weights)]
    assert main([*argv, "--weights-sha256", "1" * 64]) == 2
    err = capsys.readouterr().err
    assert "sha256" in err and len(err.strip().splitlines()) == 1
