"""Interpolant math: endpoints, velocity as the time derivative, conversions."""

import pytest
import torch

from sirestore.path import Interpolant, sample_times

SHAPE = (3, 2, 5, 4)


def _pair(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(SHAPE, generator=g, dtype=torch.float64), torch.rand(SHAPE, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_endpoints(noise):
    x_0, x_1 = _pair()
    path = Interpolant(noise=noise)
    ones = torch.ones(SHAPE[0], dtype=torch.float64)
    assert torch.equal(path.sample(x_0, x_1, 0 * ones, torch.Generator().manual_seed(1)).x_t, x_0)
    assert torch.equal(path.sample(x_0, x_1, ones, torch.Generator().manual_seed(1)).x_t, x_1)


@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_velocity_is_finite_difference(noise):
    x_0, x_1 = _pair()
    path = Interpolant(noise=noise)
    t = torch.tensor([0.2, 0.5, 0.7], dtype=torch.float64)
    h = 1e-6
    s = path.sample(x_0, x_1, t, torch.Generator().manual_seed(3))
    s_plus = path.sample(x_0, x_1, t + h, torch.Generator().manual_seed(3))
    s_minus = path.sample(x_0, x_1, t - h, torch.Generator().manual_seed(3))
    fd = (s_plus.x_t - s_minus.x_t) / (2 * h)
    assert torch.allclose(s.dx_t, fd, atol=1e-6)


def test_straight_bridge_velocity_is_difference():
    x_0, x_1 = _pair()
    s = Interpolant().sample(x_0, x_1, torch.tensor([0.0, 0.3, 0.9], dtype=torch.float64))
    assert torch.allclose(s.dx_t, x_1 - x_0)


@pytest.mark.parametrize("noise", [0.0, 0.4])
def test_velocity_from_true_x1_is_true_velocity(noise):
    x_0, x_1 = _pair()
    path = Interpolant(noise=noise)
    t = torch.tensor([0.1, 0.5, 0.8], dtype=torch.float64)
    s = path.sample(x_0, x_1, t, torch.Generator().manual_seed(2))
    v = path.velocity_from_x1(s.x_t, x_1, t, x_0)
    assert torch.allclose(v, s.dx_t, atol=1e-9)


def test_x1_velocity_round_trip():
    x_0, x_1 = _pair()
    path = Interpolant()
    t = torch.tensor([0.0, 0.4, 0.95], dtype=torch.float64)
    x_t = path.sample(x_0, x_1, t).x_t
    v = path.velocity_from_x1(x_t, x_1, t)
    assert torch.allclose(path.x1_from_velocity(x_t, v, t), x_1)


def test_noise_source_draws_noise():
    y = torch.zeros(SHAPE)
    x_0 = Interpolant(source_is_noise=True).source(y, torch.Generator().manual_seed(0))
    assert x_0.shape == y.shape and x_0.std() > 0.5
    assert Interpolant().source(y) is y


def test_sample_times():
    t = sample_times(10000, 0.3, torch.Generator().manual_seed(0))
    assert t.min() >= 0 and t.max() < 1
    assert abs((t == 0).float().mean().item() - 0.3) < 0.02
    assert torch.equal(t, sample_times(10000, 0.3, torch.Generator().manual_seed(0)))
