"""Sampling several restorations: mean, spread, heat map, the command line."""

import numpy as np
import pytest
import torch
from PIL import Image

from sirestore.checkpoint import save_weights
from sirestore.cli import main
from sirestore.degrade.kernels import conv
from sirestore.model import FlowModel
from sirestore.restore import Restorer
from sirestore.uncertainty import (
    bootstrap_std,
    estimate_sigma,
    heat_map,
    ranks,
    restorations,
    restore_uncertain,
    spearman,
    tweedie_std,
)

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


def test_estimate_sigma_of_pure_noise():
    g = torch.Generator().manual_seed(0)
    y = 0.5 + torch.randn(2, 3, 64, 80, generator=g) * torch.tensor([10 / 255, 40 / 255]).view(2, 1, 1, 1)
    assert torch.allclose(estimate_sigma(y), torch.tensor([10 / 255, 40 / 255]), rtol=0.06)
    assert estimate_sigma(torch.full((1, 1, 9, 9), 0.3)).item() == 0
    with pytest.raises(ValueError):
        estimate_sigma(torch.rand(1, 3, 1, 8))


def test_tweedie_is_exact_for_the_gaussian_prior():
    # x ~ N(0, tau^2) per pixel: E[x | y] = a y, a = tau^2 / (tau^2 + sigma^2), Var[x | y] = sigma^2 a.
    tau, sigma = 0.3, 0.1
    a = tau**2 / (tau**2 + sigma**2)
    y = torch.randn(2, 3, 12, 10)
    out, std = tweedie_std(lambda v: a * v, y, torch.tensor([sigma, 2 * sigma]), 1, torch.Generator())
    assert torch.allclose(out, a * y)
    assert std.shape == (2, 1, 12, 10)
    assert torch.allclose(std[0], torch.full_like(std[0], (sigma**2 * a) ** 0.5), atol=1e-4)
    assert torch.allclose(std[1], 2 * std[0], atol=1e-4)
    with pytest.raises(ValueError):
        tweedie_std(lambda v: v, y, torch.ones(2), 0, torch.Generator())


def test_tweedie_reads_a_filters_centre_tap():
    k = torch.tensor([[0.0, 0.1, 0.0], [0.1, 0.6, 0.1], [0.0, 0.1, 0.0]])  # J_ii = 0.6
    y = torch.rand(1, 1, 40, 40)
    fn = lambda v: conv(v, k)  # noqa: E731
    std = tweedie_std(fn, y, torch.ones(1), 16, torch.Generator().manual_seed(0))[1]
    assert abs(std[..., 8:-8, 8:-8].pow(2).mean().item() - 0.6) < 0.03
    assert torch.equal(std, tweedie_std(fn, y, torch.ones(1), 16, torch.Generator().manual_seed(0))[1])  # seeded


def test_bootstrap_spread_only_in_holes_and_zero_for_one_sample():
    y = torch.rand(1, 3, 16, 16)
    mask = torch.ones(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 0

    def fill(obs, keep):  # holes get the mean of the observed pixels
        mean = (obs * keep).sum((-2, -1), keepdim=True) / keep.sum((-2, -1), keepdim=True)
        return obs * keep + mean * (1 - keep)

    out, std = bootstrap_std(fill, y * mask, mask, 6, torch.Generator().manual_seed(0))
    assert torch.equal(out, fill(y * mask, mask)) and std.shape == (1, 1, 16, 16)
    assert std[..., 4:12, 4:12].min() > 0 and std[mask.bool()].abs().max() == 0
    assert torch.equal(bootstrap_std(fill, y * mask, mask, 1, torch.Generator())[1], torch.zeros(1, 1, 16, 16))


def test_restore_uncertain_picks_the_method(stochastic_model, tiny_weights):
    from sirestore.known import Known

    y = torch.rand(1, 3, 16, 24)
    det = Restorer(weights=tiny_weights, precision="bf16")
    out, std, method = restore_uncertain(det, y, 2)
    fp32 = Restorer(weights=tiny_weights, precision="fp32").restore_tensor(y)  # tweedie runs in float32
    assert method == "tweedie" and std.shape == (1, 1, 16, 24) and torch.equal(out, fp32)
    assert det.precision == "bf16"  # the caller's restorer is left as it was
    sto = Restorer(model=stochastic_model, steps=2, sampler="sde")
    assert restore_uncertain(sto, y, 2)[2] == "samples"
    mask = torch.ones(16, 24)
    mask[4:10, 5:15] = 0
    out, std, method = restore_uncertain(det, y, 3, known=Known(mask=mask))
    assert method == "bootstrap" and torch.equal(out[..., mask.bool()], y[..., mask.bool()])
    assert std[0, 0][mask.bool()].abs().max() == 0
    assert restore_uncertain(det, y, 2, known=Known(sigma=0.1))[2] == "tweedie"
    with pytest.raises(ValueError, match="mask"):
        restore_uncertain(det, y, 2, known=Known(kernel=torch.ones(3, 3) / 9))


def test_cli_uncertainty_of_a_deterministic_model(tmp_path, tiny_weights):
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 28, 3), dtype=np.uint8)).save(src)
    heat = tmp_path / "map.png"
    argv = ["restore", str(src), "-o", str(tmp_path / "out.png"), "--weights", str(tiny_weights)]
    assert main([*argv, "--uncertainty", str(heat)]) == 0  # 8 probes by default
    assert np.asarray(Image.open(heat)).max() > 0
    mask = np.full((20, 28), 255, np.uint8)
    mask[5:15, 6:20] = 0
    Image.fromarray(mask).save(tmp_path / "mask.png")
    masked = ["--mask", str(tmp_path / "mask.png"), "--uncertainty", str(heat), "--overwrite", "--samples", "3"]
    assert main([*argv, *masked]) == 0
    level = np.asarray(Image.open(heat)).astype(int).sum(-1)
    assert level[mask == 255].max() == level.min() and level[mask == 0].max() > level.min()
    assert main([*argv, "--overwrite", "--scale", "2", "--uncertainty", str(heat)]) == 2  # mask or sigma only


def test_restorations_counts_what_restore_uncertain_runs(stochastic_model, tiny_weights):
    y = torch.rand(1, 3, 16, 24)
    for restorer in (Restorer(weights=tiny_weights), Restorer(model=stochastic_model, steps=2, sampler="sde")):
        calls = []
        original = restorer.restore_tensor
        restorer.restore_tensor = lambda v, *a, f=original, n=calls: n.append(1) or f(v, *a)
        restore_uncertain(restorer, y, 3)
        assert len(calls) == restorations(restorer, 3) == (4 if restorer.model.cfg.noise == 0 else 3)
