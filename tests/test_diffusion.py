"""The DDPM baseline: the variance-preserving path, DDIM / DDPM steps, and its training target."""

import pytest
import torch

from sirestore.loss import flow_loss
from sirestore.model import FlowModel, ModelConfig
from sirestore.path import VPPath
from sirestore.sampler import ddim_step, ddpm_step, sample

from .conftest import randomize, tiny_config

T = torch.linspace(0.0, 1.0, 21, dtype=torch.float64)


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_vp_path_endpoints_and_variance_preserving():
    p = VPPath()
    assert torch.allclose(p.alpha(T) ** 2 + p.beta(T) ** 2, torch.ones_like(T))
    assert p.beta(torch.tensor(1.0)).item() == 1.0 and p.alpha(torch.tensor(1.0)).item() == 0.0
    assert p.beta(torch.tensor(0.0)).item() ** 2 == pytest.approx(4.3e-5, rel=0.05)  # DDPM's last abar
    assert bool((p.beta(T[1:]) > p.beta(T[:-1])).all())  # more signal towards the clean end


def test_vp_velocity_is_the_finite_difference_and_inverts():
    p, h = VPPath(), 1e-6
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    assert torch.allclose(p.d_alpha(t), (p.alpha(t + h) - p.alpha(t - h)) / (2 * h), rtol=1e-5)
    assert torch.allclose(p.d_beta(t), (p.beta(t + h) - p.beta(t - h)) / (2 * h), rtol=1e-5)
    x_0, x_1 = torch.randn(3, 1, 4, 4, dtype=torch.float64), _rand(3, 1, 4, 4)
    s = p.sample(x_0, x_1, t)
    assert torch.allclose(p.x1_from_x0(s.x_t, x_0, t), x_1)
    assert torch.allclose(p.x0_from_x1(s.x_t, x_1, t), x_0)
    assert torch.allclose(p.velocity_from_x1(s.x_t, x_1, t), s.dx_t)
    assert torch.allclose(p.x1_from_velocity(s.x_t, s.dx_t, t), x_1)


class Oracle(torch.nn.Module):
    """x1_hat = the true clean image, whatever the input: every exact sampler must land on it."""

    def __init__(self, x_1):
        super().__init__()
        self.x_1, self.calls = x_1, 0
        self.cfg = ModelConfig(source_is_noise=True, diffusion=True)
        self.path = VPPath()

    def forward(self, x_t, t, y):
        self.calls += 1
        return self.x_1


@pytest.mark.parametrize("step", [ddim_step, ddpm_step])
@pytest.mark.parametrize("steps", [1, 10, 50])
def test_ddim_and_ddpm_reach_the_true_clean_image(step, steps):
    x_1 = _rand(2, 3, 8, 8)
    model = Oracle(x_1)
    out = sample(model, x_1, steps=steps, step=step, gen=torch.Generator().manual_seed(0))
    assert model.calls == steps
    assert torch.allclose(out, x_1, atol=1e-9)


def test_ddpm_is_stochastic_and_seeded_ddim_is_not():
    model = randomize(FlowModel(tiny_config(source_is_noise=True, diffusion=True)))
    y = _rand(1, 3, 16, 16).float()
    run = lambda step, seed: sample(model, y, 4, step, torch.Generator().manual_seed(seed))  # noqa: E731
    assert torch.equal(run(ddpm_step, 1), run(ddpm_step, 1))
    assert not torch.equal(run(ddpm_step, 1), run(ddpm_step, 2))
    noise = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    a = sample(model, y, 4, ddim_step, torch.Generator().manual_seed(1), x_start=noise)
    b = sample(model, y, 4, ddim_step, torch.Generator().manual_seed(2), x_start=noise)
    assert torch.equal(a, b)  # given its starting noise, DDIM is deterministic


def test_diffusion_model_predicts_the_noise_and_rejects_bad_configs():
    cfg = tiny_config(source_is_noise=True, diffusion=True)
    model = randomize(FlowModel(cfg))
    x_1 = _rand(2, 3, 16, 16).float()
    x_0 = torch.randn(2, 3, 16, 16)
    s = model.path.sample(x_0, x_1, torch.tensor([0.3, 0.7]))
    raw = model(s.x_t, s.t, x_1, raw=True)
    assert torch.allclose(flow_loss(model, cfg, s, x_1, "mse"), (raw - x_0).pow(2).mean())
    assert torch.allclose(model(s.x_t, s.t, x_1), model.path.x1_from_x0(s.x_t, raw, s.t))
    for bad in ({}, {"source_is_noise": True, "noise": 0.5}, {"source_is_noise": True, "predict_velocity": True}):
        with pytest.raises(ValueError):
            FlowModel(tiny_config(diffusion=True, **bad))


def test_ddpm_sampler_refuses_a_bridge_model():
    model = FlowModel(tiny_config())
    with pytest.raises(ValueError, match="diffusion model"):
        sample(model, torch.rand(1, 3, 16, 16), 2, ddpm_step)
