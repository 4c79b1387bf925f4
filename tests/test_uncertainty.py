"""Sampling several restorations: mean, spread, heat map, the command line."""

import numpy as np
import pytest
import torch
from PIL import Image

from sirestore.checkpoint import save_weights
from sirestore.cli import main
from sirestore.model import FlowModel
from sirestore.restore import Restorer
from sirestore.uncertainty import heat_map, ranks, spearman

from .conftest import randomize, tiny_config


@pytest.fixture
def stochastic_model():
    return randomize(FlowModel(tiny_config(noise=0.5)))


def test_one_sample_has_zero_spread_and_equals_restore(stochastic_model):
    r = Restorer(model=stochastic_model, steps=3, sampler="sde", seed=5)
    y = torch.rand(1, 3, 16, 24)
    mean, std = r.restore_samples(y, 1)
    assert std.shape == (1, 1, 16, 24) and torch.equal(std, torch.zeros_like(std))
    assert torch.allclose(mean, r.restore_tensor(y), atol=1e-6)


def test_samples_mean_and_spread_match_separate_runs(stochastic_model):
    r = Restorer(model=stochastic_model, steps=3, sampler="sde", seed=2)
    y = torch.rand(1, 3, 16, 24)
    assert r.stochastic
    mean, std = r.restore_samples(y, 4)
    runs = torch.stack(
        [Restorer(model=stochastic_model, steps=3, sampler="sde", seed=s).restore_tensor(y) for s in range(2, 6)]
    )
    assert torch.allclose(mean, runs.mean(0), atol=1e-5)
    assert torch.allclose(std, runs.std(0, unbiased=False).mean(1, keepdim=True), atol=1e-5)
    assert std.max() > 0 and r.seed == 2  # the seed is restored
    assert torch.equal(r.restore_samples(y, 4)[1], std)  # seeded: the same again


def test_noise_scale_zero_is_deterministic(stochastic_model):
    r = Restorer(model=stochastic_model, steps=3, sampler="sde", noise_scale=0.0)
    assert not r.stochastic
    assert torch.equal(r.restore_samples(torch.rand(1, 3, 16, 16), 3)[1], torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="noise_scale"):
        Restorer(model=stochastic_model, noise_scale=-1)


def test_heat_map():
    std = np.linspace(0, 0.2, 20, dtype=np.float32).reshape(4, 5)
    heat = heat_map(std)
    assert heat.shape == (4, 5, 3) and heat.dtype == np.float32
    assert heat[0, 0].sum() < 0.1 and heat[-1, -1].sum() > 1.5  # dark at 0, bright at the top
    assert np.array_equal(heat_map(np.zeros((2, 2), np.float32)), heat_map(np.zeros((2, 2), np.float32)))


def test_cli_samples_and_uncertainty(tmp_path, stochastic_model, tiny_weights, capsys):
    weights = tmp_path / "sto.safetensors"
    save_weights(stochastic_model, weights)
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 28, 3), dtype=np.uint8)).save(src)
    out, heat = tmp_path / "out.png", tmp_path / "map.png"
    argv = ["restore", str(src), "-o", str(out), "--weights", str(weights), "--sampler", "sde", "--steps", "3"]
    assert main([*argv, "--samples", "3", "--uncertainty", str(heat)]) == 0
    assert Image.open(heat).size == (28, 20) and Image.open(heat).mode == "RGB" and out.is_file()
    assert np.asarray(Image.open(heat)).max() > 0
    assert main([*argv, "--samples", "3", "--uncertainty", str(heat), "--overwrite"]) == 0
    assert main([*argv, "--samples", "0", "--overwrite"]) == 2
    second = tmp_path / "in2.png"
    Image.open(src).save(second)
    two = ("restore", src, second, "-o", tmp_path / "dir", "--uncertainty", heat, "--overwrite")
    assert main([str(a) for a in two]) == 2  # one map, one input
    capsys.readouterr()
    det = ["restore", str(src), "-o", str(tmp_path / "d.png"), "--weights", str(tiny_weights), "--samples", "2"]
    assert main(det) == 0
    assert "deterministic" in capsys.readouterr().err


def test_ranks_average_ties():
    assert ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [2.5, 0.0, 2.5, 1.0]


def test_spearman_matches_scipy_and_is_rank_invariant():
    stats = pytest.importorskip("scipy.stats")
    g = np.random.default_rng(0)
    a = g.normal(size=(7, 9))
    b = a + g.normal(size=(7, 9))
    b[0, :3] = b[0, 0]  # ties
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a.ravel(), b.ravel())[0], abs=1e-12)
    assert spearman(a, np.exp(a)) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert np.isnan(spearman(a, np.ones_like(a)))
    with pytest.raises(ValueError):
        spearman(a, b[:3])
