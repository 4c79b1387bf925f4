"""Samplers: integrate the learned velocity from t = 0 (source) to t = 1 (clean).

Each step is a small pure function `step(model, x_t, t, t_next, y, ctx) -> x_next`.
`sample` runs N steps on a time grid; N = 1 is exactly one network evaluation and returns
x1_hat = E[x_1 | y]. A data-consistency hook `dc(x1_hat) -> x1_hat` (for a known operator)
is applied to every x_1 estimate before it is used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from sirestore.model import FlowModel
from sirestore.path import VPPath

Projection = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class StepContext:
    """What steps share: the source x_0 (None when it is drawn noise), the generator, the hook."""

    x_0: torch.Tensor | None
    gen: torch.Generator | None = None
    dc: Projection | None = None
    noise_scale: float = 1.0  # multiplies the interpolant's gamma in the stochastic step


def time_grid(steps: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Uniform grid 0 = t_0 < ... < t_N = 1: (N + 1,)."""
    if steps < 1:
        raise ValueError("steps must be >= 1")
    return torch.linspace(0, 1, steps + 1, device=device)


def predict_x1(model: FlowModel, x_t: torch.Tensor, t: float, y: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    """One network evaluation: x1_hat at time t, data consistency applied."""
    tt = torch.full((x_t.shape[0],), float(t), device=x_t.device, dtype=x_t.dtype)
    x1_hat = model(x_t, tt, y)
    return ctx.dc(x1_hat) if ctx.dc is not None else x1_hat


def _velocity(model: FlowModel, x_t: torch.Tensor, t: float, y: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    x1_hat = predict_x1(model, x_t, t, y, ctx)
    tt = torch.full((x_t.shape[0],), float(t), device=x_t.device, dtype=x_t.dtype)
    return model.path.velocity_from_x1(x_t, x1_hat, tt, ctx.x_0)


def euler_step(
    model: FlowModel, x_t: torch.Tensor, t: float, t_next: float, y: torch.Tensor, ctx: StepContext
) -> torch.Tensor:
    """ODE Euler: x_next = x_t + (t_next - t) v(x_t, t). One evaluation."""
    return x_t + (t_next - t) * _velocity(model, x_t, t, y, ctx)


def heun_step(
    model: FlowModel, x_t: torch.Tensor, t: float, t_next: float, y: torch.Tensor, ctx: StepContext
) -> torch.Tensor:
    """ODE Heun (trapezoidal predictor-corrector); a plain Euler step into t = 1,
    where the velocity is undefined. Two evaluations, one for the last step."""
    v = _velocity(model, x_t, t, y, ctx)
    x_euler = x_t + (t_next - t) * v
    if t_next >= 1:
        return x_euler
    v_next = _velocity(model, x_euler, t_next, y, ctx)
    return x_t + (t_next - t) * 0.5 * (v + v_next)


def stochastic_step(
    model: FlowModel, x_t: torch.Tensor, t: float, t_next: float, y: torch.Tensor, ctx: StepContext
) -> torch.Tensor:
    """SDE-style step: draw x_next from the interpolant's marginal between the source and
    x1_hat, with fresh noise: alpha(t') x_0 + beta(t') x1_hat + noise_scale gamma(t') z.
    For a noise source, x_0 is re-estimated from x_t. One evaluation."""
    x1_hat = predict_x1(model, x_t, t, y, ctx)
    path = model.path
    tn = torch.tensor(float(t_next), dtype=x_t.dtype, device=x_t.device)
    if ctx.x_0 is None:
        x_0 = path.x0_from_x1(x_t, x1_hat, torch.tensor(float(t), dtype=x_t.dtype, device=x_t.device))
    else:
        x_0 = ctx.x_0
    x_next = path.alpha(tn) * x_0 + path.beta(tn) * x1_hat
    gamma = ctx.noise_scale * path.gamma(tn)
    if float(gamma) > 0:
        z = torch.randn(x_t.shape, generator=ctx.gen, dtype=x_t.dtype).to(x_t.device)
        x_next = x_next + gamma * z
    return x_next


def _x1_and_source(model: FlowModel, x_t: torch.Tensor, t: float, y: torch.Tensor, ctx: StepContext):
    """x1_hat clamped to the data range [0, 1] (DDPM's clipped prediction), and the source implied by x_t."""
    x1_hat = predict_x1(model, x_t, t, y, ctx).clamp(0, 1)
    if ctx.x_0 is not None:
        return x1_hat, ctx.x_0
    return x1_hat, model.path.x0_from_x1(x_t, x1_hat, torch.tensor(float(t), dtype=x_t.dtype, device=x_t.device))


def ddim_step(
    model: FlowModel, x_t: torch.Tensor, t: float, t_next: float, y: torch.Tensor, ctx: StepContext
) -> torch.Tensor:
    """DDIM (eta = 0; Song et al., 2021): x_next = alpha(t') x0_hat + beta(t') x1_hat, with x1_hat clipped to
    [0, 1] and x0_hat the source implied by x_t. Deterministic; lands on x1_hat at t' = 1. One evaluation."""
    x1_hat, x0_hat = _x1_and_source(model, x_t, t, y, ctx)
    tn = torch.tensor(float(t_next), dtype=x_t.dtype, device=x_t.device)
    return model.path.alpha(tn) * x0_hat + model.path.beta(tn) * x1_hat


def ddpm_step(
    model: FlowModel, x_t: torch.Tensor, t: float, t_next: float, y: torch.Tensor, ctx: StepContext
) -> torch.Tensor:
    """DDPM ancestral step (Ho et al., 2020) on a variance-preserving path (alpha^2 + beta^2 = 1): a draw from
    q(x_t' | x_t, x1_hat), i.e. DDIM with eta = 1. With 1000 steps it is DDPM's sampler. One evaluation."""
    path = model.path
    if not isinstance(path, VPPath):
        raise ValueError("the ddpm sampler needs a diffusion model (a variance-preserving path)")
    x1_hat, x0_hat = _x1_and_source(model, x_t, t, y, ctx)
    tt, tn = (torch.tensor(float(v), dtype=torch.float64) for v in (t, t_next))
    abar, abar_next = float(path.beta(tt) ** 2), float(path.beta(tn) ** 2)
    var = (1 - abar_next) / max(1 - abar, 1e-12) * (1 - abar / abar_next)  # the posterior variance
    x_next = float(path.beta(tn)) * x1_hat + max(1 - abar_next - var, 0.0) ** 0.5 * x0_hat
    if var > 0:
        x_next = x_next + var**0.5 * torch.randn(x_t.shape, generator=ctx.gen, dtype=x_t.dtype).to(x_t.device)
    return x_next


Step = Callable[[FlowModel, torch.Tensor, float, float, torch.Tensor, StepContext], torch.Tensor]

# the step functions offered on the command line (ddim and ddpm are for diffusion models)
STEPS: dict[str, Step] = {
    "euler": euler_step,
    "heun": heun_step,
    "sde": stochastic_step,
    "ddim": ddim_step,
    "ddpm": ddpm_step,
}


@torch.no_grad()
def sample(
    model: FlowModel,
    y: torch.Tensor,
    steps: int = 1,
    step: Step = euler_step,
    gen: torch.Generator | None = None,
    dc: Projection | None = None,
    noise_scale: float = 1.0,
    x_start: torch.Tensor | None = None,
) -> torch.Tensor:
    """Restore y (B, C, H, W): integrate from the source at t = 0 to t = 1 in `steps` steps.

    For a noise source, `x_start` (B, C, H, W) is the starting noise (drawn from `gen` when None)."""
    if model.cfg.source_is_noise:
        x_t = _noise(y, gen) if x_start is None else x_start.to(y.device, y.dtype)
    else:
        x_t = y
    ctx = StepContext(x_0=None if model.cfg.source_is_noise else y, gen=gen, dc=dc, noise_scale=noise_scale)
    grid = time_grid(steps).tolist()
    for t, t_next in zip(grid[:-1], grid[1:]):
        x_t = step(model, x_t, t, t_next, y, ctx)
    return x_t


def _noise(y: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    return torch.randn(y.shape, generator=gen, dtype=y.dtype).to(y.device)
