"""Training: it learns, resume continues exactly, config parsing, 2-process DDP on gloo."""

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sirestore.checkpoint import load_weights, save_weights
from sirestore.config import TrainConfig
from sirestore.model import FlowModel
from sirestore.nn.unet import UNetConfig
from sirestore.train import _init_from, lr_at, train

from .conftest import randomize, tiny_config

ROOT = Path(__file__).resolve().parents[1]


def _folders(tmp_path):
    rng = np.random.default_rng(0)
    color, gray = tmp_path / "color", tmp_path / "gray"
    color.mkdir(exist_ok=True)
    gray.mkdir(exist_ok=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(color / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (36, 36), dtype=np.uint8)).save(gray / f"{i}.png")
    return color, gray


def _cfg(tmp_path, out="run", **kw) -> TrainConfig:
    color, gray = _folders(tmp_path)
    base = dict(
        model=tiny_config(),
        color_dirs=[str(color)],
        gray_dirs=[str(gray)],
        exclude_list="",
        val_count=1,
        patch=32,
        batch=2,
        steps=6,
        warmup=2,
        val_every=3,
        ckpt_every=3,
        out_dir=str(tmp_path / out),
        gray_prob=0.5,
    )
    base.update(kw)
    return TrainConfig(**base)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resume_is_exact(tmp_path):
    full = train(_cfg(tmp_path, "full"), progress=False)
    cfg = _cfg(tmp_path, "split")
    train(cfg, progress=False, stop_at=3)
    resumed = train(cfg, resume=True, progress=False)
    a, b = _state(full), _state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    saved = load_weights(Path(cfg.out_dir) / "ema.safetensors")
    assert all(torch.equal(saved.state_dict()[k], b[k]) for k in b)


def test_seed_changes_result(tmp_path):
    a = _state(train(_cfg(tmp_path, "a", steps=2), progress=False))
    b = _state(train(_cfg(tmp_path, "b", steps=2, seed=1), progress=False))
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_loss_decreases(tmp_path):
    cfg = _cfg(
        tmp_path, "learn", steps=60, lr=3e-3, val_every=1000, ckpt_every=1000, log_every=10, degradation="awgn:sigma=30"
    )
    train(cfg, progress=False)
    import json

    losses = [json.loads(line)["loss"] for line in (Path(cfg.out_dir) / "log.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("flags", [dict(noise=0.5), dict(predict_velocity=True), dict(source_is_noise=True)])
def test_other_paths_train(tmp_path, flags):
    cfg = _cfg(tmp_path, "p", steps=2, model=tiny_config(**flags))
    model = train(cfg, progress=False)
    assert dataclasses.asdict(model.cfg)["noise"] == flags.get("noise", 0.0)


def test_init_weights_starts_from_them(tmp_path):
    first = _cfg(tmp_path, "first", steps=3)
    train(first, progress=False)
    start = Path(first.out_dir) / "ema.safetensors"
    cfg = _cfg(tmp_path, "tune", steps=1, lr=1e-12, warmup=0, init_weights=str(start), loss="mse")
    tuned = train(cfg, progress=False)
    a, b = _state(load_weights(start)), _state(tuned)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    fresh = _state(train(_cfg(tmp_path, "fresh", steps=1, lr=1e-12, warmup=0), progress=False))
    assert any(not torch.allclose(a[k], fresh[k], atol=1e-6) for k in a)


def test_init_weights_must_match_the_model(tmp_path):
    first = _cfg(tmp_path, "first", steps=1)
    train(first, progress=False)
    start = str(Path(first.out_dir) / "ema.safetensors")
    other = _cfg(tmp_path, "o", steps=1, model=tiny_config(predict_velocity=True), init_weights=start)
    with pytest.raises(ValueError, match="different model config"):
        train(other, progress=False)
    # the path noise is not part of the network: a straight bridge may grow into a stochastic one
    train(_cfg(tmp_path, "s", steps=1, model=tiny_config(noise=0.5), init_weights=start), progress=False)


def test_init_weights_can_grow_the_network(tmp_path):
    def shaped(**net) -> FlowModel:
        return FlowModel(dataclasses.replace(tiny_config(), net=UNetConfig(**{**tiny_config().net.to_dict(), **net})))

    small = randomize(FlowModel(tiny_config()))
    path = tmp_path / "small.safetensors"
    save_weights(small, path)
    grown = shaped(dec_blocks=[2], mid_blocks=2)
    _init_from(grown, str(path))  # new blocks: identity (beta = 0), so the same function
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        assert torch.allclose(grown.eval()(x, torch.zeros(1), x), small(x, torch.zeros(1), x), atol=1e-6)
    for other in (shaped(dec_blocks=[0]), shaped(widths=[8, 24])):
        with pytest.raises(ValueError, match="different model config"):
            _init_from(other, str(path))


def test_unknown_loss_is_refused(tmp_path):
    with pytest.raises(ValueError, match="loss 'l3'"):
        train(_cfg(tmp_path, "l", steps=1, loss="l3"), progress=False)


def test_lr_schedule():
    cfg = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr=1e-5)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(100, cfg) == pytest.approx(1e-5)


def test_yaml_config_rejects_unknown_fields(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 3\nbogus: 1\n")
    with pytest.raises(ValueError, match="bogus"):
        TrainConfig.from_yaml(path)


def test_shipped_configs_parse():
    for path in (ROOT / "configs").glob("*.yaml"):
        cfg = TrainConfig.from_yaml(path)
        assert cfg.steps > 0


def test_torchrun_two_processes_gloo(tmp_path):
    cfg = _cfg(tmp_path, "ddp", steps=3, ckpt_every=3, val_every=3)
    import yaml

    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29531",
        "-m",
        "sirestore.cli",
        "train",
        "--config",
        str(path),
        "--no-progress",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (Path(cfg.out_dir) / "ema.safetensors").is_file()


def _detector_config():
    cfg = tiny_config(detector=True)
    return dataclasses.replace(cfg, net=UNetConfig(**{**cfg.net.to_dict(), "task_dim": 10}))


def test_all_in_one_training_with_a_mixture_and_a_detector(tmp_path):
    mixture = {"awgn:sigma_max=50": 2.0, "jpeg:quality_min=10,quality_max=60": 1.0, "inpaint:ratio=0.3": 1.0}
    cfg = _cfg(tmp_path, "aio", steps=4, model=_detector_config(), mixture=mixture, val_specs=["jpeg:quality=20"])
    ema = train(cfg, progress=False)
    assert ema.detector is not None
    log = [json.loads(line) for line in (Path(cfg.out_dir) / "log.jsonl").read_text().splitlines()]
    assert any("val/jpeg:quality=20" in r for r in log)
    before = {k: v.clone() for k, v in FlowModel(_detector_config()).detector.state_dict().items()}
    assert any(not torch.equal(before[k], v) for k, v in ema.detector.state_dict().items())  # it learned


def test_a_denoiser_grows_into_a_detector_model(tmp_path):
    small = randomize(FlowModel(tiny_config()))
    path = tmp_path / "small.safetensors"
    save_weights(small, path)
    grown = FlowModel(_detector_config())
    _init_from(grown, str(path))
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        assert torch.allclose(grown.eval()(x, torch.zeros(1), x), small(x, torch.zeros(1), x), atol=1e-6)


def test_cpu_amp_trains_under_bfloat16_autocast(tmp_path, monkeypatch):
    monkeypatch.setattr("sirestore.train.native_bf16", lambda: True)  # emulated where the CPU lacks it
    fp32 = _state(train(_cfg(tmp_path, "fp32", steps=2), progress=False))
    bf16 = _state(train(_cfg(tmp_path, "bf16", steps=2, cpu_amp=True), progress=False))
    assert all(v.dtype == torch.float32 for v in bf16.values())  # float32 weights, bfloat16 arithmetic
    assert any(not torch.equal(fp32[k], bf16[k]) for k in fp32)
    monkeypatch.setattr("sirestore.train.native_bf16", lambda: False)  # other CPUs keep float32
    again = _state(train(_cfg(tmp_path, "other", steps=2, cpu_amp=True), progress=False))
    assert all(torch.equal(fp32[k], again[k]) for k in fp32)


def test_a_new_detector_version_trains_alone_on_a_frozen_network(tmp_path):
    old = randomize(FlowModel(_detector_config()))  # version 1
    path = tmp_path / "v1.safetensors"
    save_weights(old, path)
    mixture = {"awgn:sigma_max=50": 2.0, "jpeg:quality_min=10,quality_max=60": 1.0}
    v2 = dataclasses.replace(_detector_config(), detector=2)
    cfg = _cfg(tmp_path, "det", steps=3, model=v2, mixture=mixture, init_weights=str(path), detector_only=True)
    new = train(cfg, progress=False)
    assert type(new.detector).__name__ == "StageEncoder"
    a, b = old.state_dict(), new.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("detector."))  # the network is frozen
    torch.manual_seed(cfg.seed)  # the detector's initial weights in train (the network's are then loaded)
    fresh = FlowModel(v2).detector.state_dict()
    assert any(not torch.equal(fresh[k], v) for k, v in new.detector.state_dict().items())  # it learned
    with pytest.raises(ValueError, match="detector_only needs"):
        train(_cfg(tmp_path, "none", steps=1, detector_only=True), progress=False)


def test_swap_detector_script(tmp_path):
    spec = importlib.util.spec_from_file_location("swap_detector", ROOT / "scripts" / "swap_detector.py")
    swap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(swap)
    target = randomize(FlowModel(_detector_config()), seed=1)
    donor = randomize(FlowModel(dataclasses.replace(_detector_config(), detector=2)), seed=2)
    both = swap.with_detector(target, donor)
    assert both.cfg.detector == 2 and both.cfg.net == target.cfg.net
    mine, t, d = both.state_dict(), target.state_dict(), donor.state_dict()
    assert all(torch.equal(mine[k], d[k] if k.startswith("detector.") else t[k]) for k in mine)
    with pytest.raises(ValueError, match="same network config"):
        swap.with_detector(FlowModel(tiny_config()), donor)


def _mask_config(**kw):
    net = dataclasses.replace(tiny_config().net, mask_channels=1, **kw)
    return dataclasses.replace(tiny_config(), net=net)


def test_a_network_grows_a_mask_input_that_starts_unused(tmp_path):
    small = randomize(FlowModel(tiny_config()))
    path = tmp_path / "small.safetensors"
    save_weights(small, path)
    grown = FlowModel(_mask_config())
    _init_from(grown, str(path))
    x = torch.rand(1, 3, 16, 24)
    mask = (torch.rand(1, 1, 16, 24) > 0.5).float()
    with torch.no_grad():
        ref = small(x, torch.zeros(1), x)
        assert torch.equal(grown.eval()(x, torch.zeros(1), x, mask=mask), ref)
    save_weights(grown, tmp_path / "grown.safetensors")
    with pytest.raises(ValueError, match="different model config"):  # a mask input cannot be taken away
        _init_from(FlowModel(tiny_config()), str(tmp_path / "grown.safetensors"))


def test_masks_reach_the_network_with_mask_prob(tmp_path, monkeypatch):
    """Training gives inpainted images' masks (1 = known) to a network with a mask input with probability
    mask_prob, and all ones otherwise and for other degradations; a network without one gets None."""
    seen = []
    forward = FlowModel.forward

    def spy(self, *args, mask=None, **kw):
        seen.append(None if mask is None else mask.detach().clone())
        return forward(self, *args, mask=mask, **kw)

    monkeypatch.setattr(FlowModel, "forward", spy)
    mixture = {"inpaint:ratio=0.4": 1.0}
    train(_cfg(tmp_path, "given", steps=2, model=_mask_config(), mixture=mixture, mask_prob=1.0), progress=False)
    assert len(seen) >= 2 and all(m is not None and m.shape[1] == 1 for m in seen[:2])
    assert all(0.4 < 1 - float(m.mean()) < 0.7 for m in seen[:2])  # holes of about the drawn ratio
    seen.clear()
    train(_cfg(tmp_path, "blind", steps=2, model=_mask_config(), mixture=mixture, mask_prob=0.0), progress=False)
    assert all(torch.equal(m, torch.ones_like(m)) for m in seen[:2])
    seen.clear()
    train(_cfg(tmp_path, "none", steps=2, mixture=mixture), progress=False)
    assert seen[:2] == [None, None]


def test_freeze_detector_trains_the_network_only(tmp_path):
    start = randomize(FlowModel(_detector_config()))
    path = tmp_path / "start.safetensors"
    save_weights(start, path)
    mixture = {"awgn:sigma_max=50": 2.0, "jpeg:quality_min=10,quality_max=60": 1.0}
    cfg = _cfg(tmp_path, "frz", steps=3, model=_detector_config(), mixture=mixture, init_weights=str(path))
    new = train(dataclasses.replace(cfg, freeze_detector=True), progress=False)
    a, b = start.state_dict(), new.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("detector."))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("net."))
    with pytest.raises(ValueError, match="freeze_detector needs"):
        train(_cfg(tmp_path, "none2", steps=1, freeze_detector=True), progress=False)
