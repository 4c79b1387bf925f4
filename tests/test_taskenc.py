"""The degradation detector and the network's conditioning on it."""

import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch

from sirestore.degrade.mixture import TASKS
from sirestore.model import FlowModel, ModelConfig
from sirestore.nn.taskenc import (
    DETECTORS,
    SIGMA_SCALE,
    DarkStageEncoder,
    StageEncoder,
    TaskEncoder,
    condition,
    forced,
)
from sirestore.nn.unet import UNetConfig

from .conftest import randomize, tiny_config

T = len(TASKS)
ROOT = Path(__file__).resolve().parents[1]


def _detecting(**kw) -> FlowModel:
    cfg = tiny_config(detector=True)
    return FlowModel(dataclasses.replace(cfg, net=UNetConfig(**{**cfg.net.to_dict(), "task_dim": T + 1}), **kw))


@pytest.mark.parametrize("encoder", [TaskEncoder, StageEncoder, DarkStageEncoder])
@pytest.mark.parametrize("hw", [(16, 16), (37, 53), (1, 1)])
def test_encoder_shapes_and_positive_sigma(encoder, hw):
    logits, sigma = encoder(T)(torch.rand(2, 3, *hw))
    assert logits.shape == (2, T) and sigma.shape == (2,) and (sigma >= 0).all()
    assert torch.isfinite(logits).all() and torch.isfinite(sigma).all()


def test_stage_encoder_sees_noise_on_a_flat_image():
    """Version 2 pools its full-resolution stage, and its input includes the high-pass residual: on a flat
    image, noise changes what it pools even when its weights are random."""
    torch.manual_seed(0)
    enc = StageEncoder(T).eval()
    flat = torch.full((1, 3, 32, 32), 0.5)
    noisy = flat + 0.1 * torch.randn(flat.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (enc(flat)[0] - enc(noisy)[0]).abs().max() > 1e-3


@pytest.mark.parametrize("version", [2, 3])
def test_detector_gradients_stay_finite_on_a_black_image(version):
    """A black tile (low light, clipping) makes every stage constant: its spread must not give nan gradients."""
    enc = DETECTORS[version](T)
    logits, sigma = enc(torch.zeros(2, 3, 32, 32))
    (logits.sum() + sigma.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)


def test_detector_versions_in_the_config():
    assert ModelConfig(detector=True).detector == 1  # configs and weights written before version 2
    assert ModelConfig.from_dict({"detector": 2}).detector == 2 and ModelConfig().detector == 0
    with pytest.raises(ValueError, match="detector version"):
        ModelConfig(detector=4)
    for version, cls in DETECTORS.items():
        assert isinstance(_detecting(detector=version).detector, cls)


def test_condition_and_forced():
    probs, sigma = torch.rand(3, T), torch.tensor([0.0, 25.0, 50.0])
    vec = condition(probs, sigma)
    assert vec.shape == (3, T + 1) and torch.equal(vec[:, :T], probs)
    assert torch.allclose(vec[:, T], sigma / SIGMA_SCALE)
    one = forced(TASKS.index("jpeg"), T, sigma)
    assert torch.equal(one[:, :T].sum(1), torch.ones(3)) and (one[:, TASKS.index("jpeg")] == 1).all()


def test_detector_conditions_the_network():
    model = randomize(_detecting())
    y = torch.rand(2, 3, 16, 24)
    t = torch.zeros(2)
    with torch.no_grad():
        detected = model(y, t, y)
        assert torch.allclose(detected, model(y, t, y, task=model.detect_condition(y)), atol=1e-6)
        jpeg = model(y, t, y, task=forced(TASKS.index("jpeg"), T, torch.zeros(2)))
        rain = model(y, t, y, task=forced(TASKS.index("rain"), T, torch.zeros(2)))
    assert (jpeg - rain).abs().max() > 1e-6  # the task changes the restoration
    probs, sigma = model.detect(y)
    assert probs.shape == (2, T) and ((probs >= 0) & (probs <= 1)).all() and sigma.shape == (2,)


def test_zero_initialised_conditioning_has_no_effect():
    model = _detecting().eval()  # fresh: the task map is zero, every block the identity
    y = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        a = model(y, torch.zeros(1), y, task=forced(0, T, torch.zeros(1)))
        b = model(y, torch.zeros(1), y, task=forced(1, T, torch.full((1,), 30.0)))
    assert torch.equal(a, b)


def test_config_mismatches_are_refused():
    with pytest.raises(ValueError, match="task_dim"):
        FlowModel(tiny_config(detector=True))
    with pytest.raises(ValueError, match="emb_dim"):
        cfg = tiny_config()
        FlowModel(dataclasses.replace(cfg, net=UNetConfig(**{**cfg.net.to_dict(), "task_dim": 4, "emb_dim": 0})))
    with pytest.raises(ValueError, match="no degradation detector"):
        FlowModel(tiny_config()).detect(torch.rand(1, 3, 8, 8))


def test_detector_tiles_cover_the_image_on_a_grid():
    from sirestore.nn.taskenc import DETECT_TILE, detector_tiles

    y = torch.rand(2, 3, 300, 500)
    tiles, n = detector_tiles(y)
    assert n == 3 * 4 and tiles.shape == (2 * n, 3, DETECT_TILE, DETECT_TILE)
    assert torch.equal(tiles[0], y[0, :, :DETECT_TILE, :DETECT_TILE])  # image by image, corners included
    assert torch.equal(tiles[n - 1], y[0, :, -DETECT_TILE:, -DETECT_TILE:])
    assert torch.equal(tiles[n], y[1, :, :DETECT_TILE, :DETECT_TILE])
    small = torch.rand(1, 1, 40, 200)
    tiles, n = detector_tiles(small)
    assert n == 2 and tiles.shape == (2, 1, 40, DETECT_TILE)


def test_pool_detection_means_probabilities_and_takes_the_median_level():
    from sirestore.nn.taskenc import pool_detection

    probs = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.5, 0.0], [0.5, 0.0], [0.5, 0.0], [0.5, 0.0]])
    sigma = torch.tensor([1.0, 50.0, 2.0, 7.0, 3.0, 30.0])
    p, s = pool_detection(probs, sigma, 3)
    assert torch.allclose(p, torch.tensor([[0.5, 2 / 3], [0.5, 0.0]]))
    assert s.tolist() == [2.0, 7.0]


@pytest.mark.parametrize("version", [1, 2])
def test_calibrate_detector_shifts_one_logit(version):
    spec = importlib.util.spec_from_file_location("calibrate", ROOT / "scripts" / "calibrate_detector.py")
    calibrate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(calibrate)
    model = randomize(_detecting(detector=version)).eval()
    y = torch.rand(2, 3, 24, 24)
    with torch.no_grad():
        before, sigma = model.detector(y)
        after, sigma_after = calibrate.shift_logit(model, "haze", -1.5).detector(y)
    k = TASKS.index("haze")
    assert torch.allclose(after[:, k], before[:, k] - 1.5, atol=1e-5)
    assert torch.equal(after[:, :k], before[:, :k]) and torch.equal(after[:, k + 1 :], before[:, k + 1 :])
    assert torch.equal(sigma, sigma_after)
    with pytest.raises(ValueError, match="unknown task"):
        calibrate.shift_logit(model, "fog", 1.0)


@pytest.mark.parametrize("channels_last", [False, True])
def test_fast_statistics_equal_the_reference_ops(channels_last):
    from torch.nn import functional as F

    from sirestore.nn.taskenc import local_mean3, mean_std

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, 13, generator=gen) * 2 + 1
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    mean, std = mean_std(x)
    assert torch.allclose(mean, x.mean((2, 3)), atol=1e-6)
    assert torch.allclose(std, x.std((2, 3), unbiased=False), atol=1e-6)
    ref = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    assert torch.allclose(local_mean3(x, torch.full((3, 1, 3, 3), 1 / 9)), ref, atol=1e-6)
    black = torch.zeros(1, 3, 5, 5, requires_grad=True)
    mean_std(black * 2)[1].sum().backward()  # a constant channel: zero spread, a finite gradient
    assert torch.isfinite(black.grad).all()
    flat = torch.full((1, 3, 4, 4), 0.3)
    assert torch.allclose(local_mean3(flat, torch.full((3, 1, 3, 3), 1 / 9)), flat, atol=1e-7)  # borders too


def test_dark_channel_is_low_in_a_colourful_photo_and_raised_by_haze():
    """The dark channel prior: a pixel with one dark channel in every 7x7 neighbourhood gives 0; a haze-like
    blend with white lifts it to the blend's share; version 3's head reads its statistics."""
    from sirestore.nn.taskenc import dark_channel

    gen = torch.Generator().manual_seed(0)
    photo = torch.rand(1, 3, 32, 32, generator=gen)
    photo[:, 2, ::3, ::3] = 0  # a black blue channel every 3 px
    assert dark_channel(photo).abs().max() == 0
    hazy = 0.6 * photo + 0.4
    assert torch.allclose(dark_channel(hazy), torch.full((1, 1, 32, 32), 0.4))
    enc = DarkStageEncoder(T)
    assert enc.head[0].normalized_shape[0] == StageEncoder(T).head[0].normalized_shape[0] + 2
    mean, logstd = enc.features(hazy)
    assert torch.allclose(mean, torch.tensor([[0.4]])) and logstd.item() < -6
