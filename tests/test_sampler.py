"""Samplers: number of evaluations, exact solutions, convergence order, seeds."""

import math

import pytest
import torch

from sirestore.model import ModelConfig
from sirestore.path import Interpolant
from sirestore.sampler import StepContext, euler_step, heun_step, sample, stochastic_step

from .conftest import randomize, tiny_config


class Oracle(torch.nn.Module):
    """A stand-in model: x1_hat = fn(x_t, t), counting evaluations."""

    def __init__(self, fn, noise=0.0, source_is_noise=False):
        super().__init__()
        self.fn, self.calls = fn, 0
        self.cfg = ModelConfig(noise=noise, source_is_noise=source_is_noise)
        self.path = Interpolant(noise=noise, source_is_noise=source_is_noise)

    def forward(self, x_t, t, y):
        self.calls += 1
        return self.fn(x_t, t)


def _y():
    return torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize(
    "step,steps,calls",
    [
        (euler_step, 1, 1),
        (heun_step, 1, 1),
        (stochastic_step, 1, 1),
        (euler_step, 4, 4),
        (heun_step, 4, 7),
        (stochastic_step, 3, 3),
    ],
)
def test_number_of_evaluations(step, steps, calls):
    target = torch.full((2, 3, 8, 8), 0.5, dtype=torch.float64)
    model = Oracle(lambda x, t: target)
    sample(model, _y(), steps=steps, step=step)
    assert model.calls == calls


def test_one_step_returns_the_prediction():
    y = _y()
    model = Oracle(lambda x, t: x * 0.5 + 0.1)
    out = sample(model, y, steps=1)
    assert torch.allclose(out, y * 0.5 + 0.1)


@pytest.mark.parametrize("source_is_noise", [False, True])
@pytest.mark.parametrize("step", [euler_step, heun_step, stochastic_step])
def test_true_x1_is_reached_exactly(step, source_is_noise):
    """With a perfect x_1 predictor the straight path is integrated exactly at any step count."""
    x_1 = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    model = Oracle(lambda x, t: x_1, source_is_noise=source_is_noise)
    out = sample(model, _y(), steps=5, step=step, gen=torch.Generator().manual_seed(0))
    assert torch.allclose(out, x_1, atol=1e-12)


def _integrate(step, n, k, x0, t_end=0.5):
    """Integrate dx/dt = (k x - x) / (1 - t) (x1_hat = k x) from 0 to t_end."""
    model = Oracle(lambda x, t: k * x)
    ctx = StepContext(x_0=None)
    x = x0
    grid = torch.linspace(0, t_end, n + 1, dtype=torch.float64).tolist()
    for t, t_next in zip(grid[:-1], grid[1:]):
        x = step(model, x, t, t_next, x0, ctx)
    return x


def test_known_field_exact_solution_and_order():
    """x(t) = x0 (1 - t)^(1 - k) solves the field; Euler is first and Heun second order."""
    k, x0 = 0.3, torch.ones(1, 1, 1, 1, dtype=torch.float64)
    exact = x0 * 0.5 ** (1 - k)
    err = {
        (s.__name__, n): (_integrate(s, n, k, x0) - exact).abs().item()
        for s in (euler_step, heun_step)
        for n in (16, 32)
    }
    assert math.log2(err["euler_step", 16] / err["euler_step", 32]) == pytest.approx(1, abs=0.15)
    assert math.log2(err["heun_step", 16] / err["heun_step", 32]) == pytest.approx(2, abs=0.15)
    assert err["heun_step", 32] < 3e-5


def test_data_consistency_hook_applies():
    mask = torch.zeros(2, 3, 8, 8, dtype=torch.float64)
    mask[..., :4] = 1
    y = _y()
    model = Oracle(lambda x, t: torch.zeros_like(x))
    out = sample(model, y, steps=3, dc=lambda x1: mask * y + (1 - mask) * x1)
    assert torch.allclose(out * mask, y * mask)


def test_seed_determinism_of_stochastic_sampler():
    torch.manual_seed(0)
    from sirestore.model import FlowModel

    model = randomize(FlowModel(tiny_config(noise=0.5)))
    y = torch.rand(1, 3, 16, 16)
    a = sample(model, y, steps=4, step=stochastic_step, gen=torch.Generator().manual_seed(7))
    b = sample(model, y, steps=4, step=stochastic_step, gen=torch.Generator().manual_seed(7))
    c = sample(model, y, steps=4, step=stochastic_step, gen=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_steps_must_be_positive():
    with pytest.raises(ValueError):
        sample(Oracle(lambda x, t: x), _y(), steps=0)
