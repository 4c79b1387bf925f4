"""Network precision: bfloat16 autocast on the CPU, float32 sampler around it, the --precision flag."""

from __future__ import annotations

import json

import pytest
import torch

from sirestore.cli import main
from sirestore.model import LowPrecision
from sirestore.precision import native_bf16, resolve
from sirestore.restore import Restorer
from sirestore.sampler import sample


def test_resolve_auto_follows_the_cpu():
    cpu, meta = torch.device("cpu"), torch.device("meta")
    assert resolve("auto", cpu) == ("bf16" if native_bf16() else "fp32")
    assert resolve("auto", meta) == "fp32"  # only CPUs get bfloat16 by default
    assert resolve("fp32", cpu) == "fp32" and resolve("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="unknown precision"):
        resolve("fp16", cpu)


def test_low_precision_runs_the_network_in_bfloat16_and_returns_float32(tiny_model):
    seen = []
    tiny_model.net.head.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    y = torch.rand(2, 3, 16, 24)
    low = LowPrecision(tiny_model, "bf16")
    with torch.no_grad():
        out = low(y, torch.zeros(2), y)
        exact = tiny_model(y, torch.zeros(2), y)
    assert seen == [torch.bfloat16, torch.float32]  # the last convolution's output
    assert out.dtype == torch.float32 and out.shape == exact.shape
    assert (out - exact).abs().max() < 0.05 and not torch.equal(out, exact)
    assert low.cfg is tiny_model.cfg and low.path is tiny_model.path


def test_restorer_precisions_agree_to_bfloat16_rounding(tiny_model):
    y = torch.rand(1, 3, 20, 28)
    fp32 = Restorer(model=tiny_model, precision="fp32").restore_tensor(y)
    bf16 = Restorer(model=tiny_model, precision="bf16").restore_tensor(y)
    with torch.no_grad():
        assert torch.allclose(fp32, sample(tiny_model, y), atol=1e-5)  # float32 is the model itself
    assert bf16.dtype == torch.float32 and (bf16 - fp32).abs().max() < 0.05 and not torch.equal(bf16, fp32)
    with pytest.raises(ValueError, match="unknown precision"):
        Restorer(model=tiny_model, precision="half")


def test_eval_records_the_precision_and_ort_refuses_bf16(tmp_path, image_dir, tiny_weights, capsys):
    out = tmp_path / "r.json"
    argv = ["eval", "--data", image_dir, "--degradation", "awgn:sigma=25", "--weights", tiny_weights]
    assert main([str(a) for a in [*argv, "--precision", "bf16", "--json", out]]) == 0
    assert json.loads(out.read_text())["settings"]["precision"] == "bf16"
    assert "network in bf16)" in capsys.readouterr().out
    code = main(
        [
            str(a)
            for a in ["restore", image_dir, "-o", tmp_path / "o", "--onnx", tmp_path / "m.onnx", "--precision", "bf16"]
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--precision bf16 needs the torch backend" in err and "Traceback" not in err
