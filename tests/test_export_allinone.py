"""ONNX export of all-in-one models: the task vector as a graph input, the detector as a second graph in
the metadata; onnxruntime matches torch per image, with tiles and with a forced task."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from sirestore.checkpoint import save_weights
from sirestore.cli import main
from sirestore.export import export_onnx
from sirestore.model import FlowModel
from sirestore.nn.unet import UNetConfig
from sirestore.restore import Restorer
from sirestore.tasks import TASKS

from .conftest import randomize, tiny_config

pytest.importorskip("onnxruntime")
from sirestore.ort import OrtRestorer  # noqa: E402


def _detecting(seed: int = 0, version: int = 2) -> FlowModel:
    cfg = tiny_config(detector=version)
    cfg = dataclasses.replace(cfg, net=UNetConfig(**{**cfg.net.to_dict(), "task_dim": len(TASKS) + 1}))
    model = randomize(FlowModel(cfg), seed)
    with torch.no_grad():  # a strong task map, so that a wrong conditioning vector shows in the output
        model.net.task.weight.mul_(20)
    return model


@pytest.mark.parametrize(("steps", "version"), [(1, 1), (1, 2), (2, 2), (1, 3)])
def test_allinone_onnx_matches_torch_per_image(tmp_path, steps, version):
    model = _detecting(version=version)
    meta = export_onnx(model, tmp_path / "m.onnx", steps=steps)
    assert meta["tasks"].split(",") == list(TASKS) and meta["detector"]
    ort = OrtRestorer(tmp_path / "m.onnx", threads=1)
    gen = torch.Generator().manual_seed(0)
    y = torch.cat([torch.rand(1, 3, 21, 30, generator=gen), 0.2 * torch.rand(1, 3, 21, 30, generator=gen)])
    torch_out = Restorer(model=model, steps=steps, precision="fp32").restore_tensor(y)
    assert (ort.restore_tensor(y) - torch_out).abs().max() < 1e-4  # two images, two conditioning vectors
    vec_a, vec_b = (Restorer(model=model).condition(y[i : i + 1]) for i in range(2))
    assert (vec_a - vec_b).abs().max() > 1e-3  # they do differ
    assert ort.explain(y[:1]) == pytest.approx(Restorer(model=model).explain(y[:1]), abs=1e-5)


def test_allinone_onnx_tiles_and_forced_task(tmp_path):
    model = _detecting(1)
    export_onnx(model, tmp_path / "m.onnx")
    y = torch.rand(1, 3, 56, 70, generator=torch.Generator().manual_seed(1))
    for kwargs in ({"tile": 32, "overlap": 8}, {"task": "rain"}):
        ref = Restorer(model=model, precision="fp32", **kwargs).restore_tensor(y)
        out = OrtRestorer(tmp_path / "m.onnx", threads=1, **kwargs).restore_tensor(y)
        assert (out - ref).abs().max() < 1e-4, kwargs
    with pytest.raises(ValueError, match="unknown task"):
        OrtRestorer(tmp_path / "m.onnx", task="magic")


def test_cli_allinone_export_explain_and_task_with_ort(tmp_path, capsys):
    weights, onnx = tmp_path / "aio.safetensors", tmp_path / "aio.onnx"
    save_weights(_detecting(), weights)
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(src)
    assert main(["export", "--format", "onnx", "--weights", str(weights), "-o", str(onnx)]) == 0
    ort = ["--backend", "ort", "--onnx", str(onnx)]
    assert main(["restore", str(src), "-o", str(tmp_path / "a.png"), "--explain", *ort]) == 0
    assert "noise level" in capsys.readouterr().out
    assert main(["restore", str(src), "-o", str(tmp_path / "b.png"), "--task", "rain", *ort]) == 0
    assert (
        main(
            [
                "restore",
                str(src),
                "-o",
                str(tmp_path / "c.png"),
                "--task",
                "rain",
                "--weights",
                str(weights),
                "--precision",
                "fp32",
            ]
        )
        == 0
    )
    a = np.asarray(Image.open(tmp_path / "b.png"), dtype=int)
    b = np.asarray(Image.open(tmp_path / "c.png"), dtype=int)
    assert np.abs(a - b).max() <= 1  # onnxruntime and torch agree to rounding
