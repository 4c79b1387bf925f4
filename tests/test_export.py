"""ONNX export and the onnxruntime backend: same function as torch, dynamic shapes, CLI, errors."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sirestore.checkpoint import save_weights, sha256
from sirestore.cli import main
from sirestore.model import FlowModel
from sirestore.nn.unet import _pad
from sirestore.restore import Restorer

from .conftest import randomize, tiny_config

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from sirestore.export import export_onnx, pad_to_multiple  # noqa: E402
from sirestore.ort import OrtRestorer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [(2, 3, 37, 53), (1, 3, 5, 7), (1, 3, 2, 5), (1, 3, 32, 16), (1, 1, 21, 40)]  # odd, replicate pad, gray


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def one_line_error(code, err, needle):
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert needle in err, err


@pytest.mark.parametrize("shape", [(1, 6, 37, 53), (2, 6, 5, 7), (1, 6, 16, 32), (1, 6, 3, 40), (1, 6, 20, 4)])
def test_pad_to_multiple_matches_unet(shape):
    x = torch.rand(shape)
    ref = _pad(x, (0, (-shape[3]) % 16, 0, (-shape[2]) % 16))
    assert torch.equal(pad_to_multiple(x, 16), ref)


@pytest.mark.parametrize("sampler,steps", [("euler", 1), ("euler", 2), ("heun", 1), ("heun", 2)])
def test_onnx_matches_torch(tmp_path, tiny_model, sampler, steps):
    path = tmp_path / "m.onnx"
    meta = export_onnx(tiny_model, path, steps, sampler, weights_sha256="ab" * 32)
    assert (
        meta["steps"] == str(steps)
        and meta["sampler"] == sampler
        and meta["pad_multiple"] == str(tiny_model.net.multiple)
    )
    ort_restorer = OrtRestorer(path, threads=1)
    assert (ort_restorer.steps, ort_restorer.sampler) == (steps, sampler)
    assert ort_restorer.meta["weights_sha256"] == "ab" * 32
    restorer = Restorer(model=tiny_model, steps=steps, sampler=sampler, precision="fp32")
    gen = torch.Generator().manual_seed(steps)
    for shape in SHAPES:  # one exported file serves every batch size and image size
        y = torch.rand(shape, generator=gen)
        out = ort_restorer.restore_tensor(y)
        assert out.shape == y.shape
        assert (out - restorer.restore_tensor(y)).abs().max() < 1e-4, shape


@pytest.mark.parametrize("kwargs", [{"predict_velocity": True}, {"groups": 2}])
def test_onnx_matches_torch_other_models(tmp_path, kwargs):
    net_kwargs = {"groups": kwargs.pop("groups")} if "groups" in kwargs else {}
    cfg = tiny_config(**kwargs)
    for k, v in net_kwargs.items():
        setattr(cfg.net, k, v)
    model = randomize(FlowModel(cfg), seed=1)
    export_onnx(model, tmp_path / "m.onnx", steps=2, sampler="heun")
    y = torch.rand(2, 3, 19, 35, generator=torch.Generator().manual_seed(0))
    ref = Restorer(model=model, steps=2, sampler="heun", precision="fp32").restore_tensor(y)
    assert (OrtRestorer(tmp_path / "m.onnx", threads=1).restore_tensor(y) - ref).abs().max() < 1e-4


def test_int8_runs_and_is_close(tmp_path, tiny_model):
    path = tmp_path / "int8.onnx"
    export_onnx(tiny_model, path, int8=True)
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert "ConvInteger" in ops and OrtRestorer(path).meta["int8"] == "1"
    y = torch.rand(2, 3, 37, 53, generator=torch.Generator().manual_seed(0))
    out = OrtRestorer(path, threads=1).restore_tensor(y)
    diff = (out - Restorer(model=tiny_model, precision="fp32").restore_tensor(y)).abs()
    assert torch.isfinite(out).all() and diff.mean() < 0.02 and diff.max() < 0.2


@pytest.fixture
def io_dir(image_dir):
    """image_dir plus a 16-bit gray PNG and an image larger than a tile."""
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 65536, (23, 31), dtype=np.uint16)).save(image_dir / "gray16.png")
    Image.fromarray(rng.integers(0, 256, (100, 91, 3), dtype=np.uint8)).save(image_dir / "big.png")
    return image_dir


def test_cli_export_and_ort_backend_match_torch(tmp_path, io_dir, tiny_weights, capsys):
    model = tmp_path / "m.onnx"
    code, out, _ = run(["export", "--format", "onnx", "--weights", tiny_weights, "-o", model], capsys)
    assert code == 0 and "wrote" in out
    meta = OrtRestorer(model).meta
    assert meta["weights_sha256"] == sha256(tiny_weights) and meta["steps"] == "1" and meta["sampler"] == "euler"
    for extra in ([], ["--tile", "80"]):
        torch_out, ort_out = tmp_path / f"torch{len(extra)}", tmp_path / f"ort{len(extra)}"
        assert (
            run(["restore", io_dir, "-o", torch_out, "--weights", tiny_weights, "--precision", "fp32", *extra], capsys)[
                0
            ]
            == 0
        )
        assert run(["restore", io_dir, "-o", ort_out, "--backend", "ort", "--onnx", model, *extra], capsys)[0] == 0
        for name in ("color.png", "gray.png", "alpha.png", "gray16.png", "big.png"):
            with Image.open(torch_out / name) as a, Image.open(ort_out / name) as b, Image.open(io_dir / name) as src:
                assert a.mode == b.mode == src.mode and a.size == b.size == src.size
                a, b = np.asarray(a).astype(np.int64), np.asarray(b).astype(np.int64)
                one = 257 if name == "gray16.png" else 1  # one 8-bit level
                assert np.abs(a - b).max() <= one, name
                if name == "alpha.png":
                    assert np.array_equal(b[..., 3], np.asarray(Image.open(io_dir / name))[..., 3])


def test_cli_heun_export_and_eval(tmp_path, image_dir, tiny_weights, capsys):
    model = tmp_path / "heun.onnx"
    argv = ["export", "--weights", tiny_weights, "-o", model, "--steps", "2", "--sampler", "heun"]
    assert run(argv, capsys)[0] == 0
    one_line_error(*run(argv, capsys)[::2], "exists")  # no replacing without --overwrite
    assert run([*argv, "--overwrite"], capsys)[0] == 0
    code, out, _ = run(["eval", "--data", image_dir, "--degradation", "awgn:sigma=25", "--onnx", model], capsys)
    assert code == 0 and "PSNR" in out.upper()
    code, _, err = run(["restore", image_dir, "-o", tmp_path / "o", "--onnx", model, "--steps", "1"], capsys)
    one_line_error(code, err, "exported with --steps 2 --sampler heun")


def test_export_errors_are_one_line(tmp_path, tiny_weights, capsys):
    out = tmp_path / "m.onnx"
    code, _, err = run(["export", "--weights", tiny_weights, "-o", out, "--sampler", "sde"], capsys)
    one_line_error(code, err, "euler or heun")
    stochastic = tmp_path / "sde.safetensors"
    save_weights(randomize(FlowModel(tiny_config(noise=0.1))), stochastic)
    one_line_error(*run(["export", "--weights", stochastic, "-o", out], capsys)[::2], "stochastic")
    one_line_error(*run(["export", "--weights", tmp_path / "no.safetensors", "-o", out], capsys)[::2], "not found")
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_ort_errors_are_one_line(tmp_path, image_dir, tiny_weights, capsys, monkeypatch):
    src, dst = image_dir / "color.png", tmp_path / "o.png"
    one_line_error(*run(["restore", src, "-o", dst, "--onnx", tmp_path / "missing.onnx"], capsys)[::2], "not found")
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    one_line_error(*run(["restore", src, "-o", dst, "--onnx", bad], capsys)[::2], "not a readable ONNX model")
    one_line_error(*run(["restore", src, "-o", dst, "--backend", "ort"], capsys)[::2], "needs --onnx")
    model = tmp_path / "m.onnx"
    export_onnx(randomize(FlowModel(tiny_config())), model)
    argv = ["restore", src, "-o", dst, "--onnx", model, "--weights", tiny_weights]
    one_line_error(*run(argv, capsys)[::2], "inside the ONNX file")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    one_line_error(*run(["restore", src, "-o", dst, "--onnx", model], capsys)[::2], 'pip install "sirestore[onnx]"')
    assert not dst.exists()


def test_torch_path_needs_no_onnx(tmp_path, image_dir, tiny_weights):
    code = (
        "import sys; sys.modules['onnx'] = sys.modules['onnxruntime'] = None\n"
        "import sirestore; from sirestore.cli import main\n"
        f"sys.exit(main(['restore', {str(image_dir)!r}, '-o', {str(tmp_path / 'o')!r}, '--weights', "
        f"{str(tiny_weights)!r}]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_a_mask_input_network_exports_as_restored_without_a_mask(tmp_path):
    cfg = tiny_config()
    cfg.net.mask_channels = 1
    model = randomize(FlowModel(cfg))
    path = tmp_path / "mask.onnx"
    export_onnx(model, path)
    x = torch.rand(1, 3, 20, 28, generator=torch.Generator().manual_seed(0))
    ref = Restorer(model=model).restore_tensor(x)
    torch.testing.assert_close(OrtRestorer(path).restore_tensor(x), ref, atol=1e-4, rtol=0)
