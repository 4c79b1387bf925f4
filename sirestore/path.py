"""Stochastic interpolants x_t = alpha(t) x_0 + beta(t) x_1 + gamma(t) z.

`x_0` is the source (the degraded image y for a bridge, Gaussian noise for noise -> clean),
`x_1` the clean image, `z` standard Gaussian noise, t in [0, 1] from source to clean.
Schedules are small frozen dataclasses exposing the coefficients and their time
derivatives, so the velocity target is dx_t = alpha' x_0 + beta' x_1 + gamma' z.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PathSample:
    """One draw of the interpolant: all tensors (B, C, H, W) except t (B,)."""

    x_0: torch.Tensor
    x_1: torch.Tensor
    t: torch.Tensor
    x_t: torch.Tensor
    dx_t: torch.Tensor


@dataclass(frozen=True)
class Interpolant:
    """alpha(t) = 1 - t, beta(t) = t, gamma(t) = noise * sqrt(t (1 - t)).

    noise = 0 is the straight bridge (an ODE path); noise > 0 the stochastic bridge of
    Albergo & Vanden-Eijnden. With x_0 = Gaussian noise the same schedule is the
    rectified-flow noise -> clean path (`source_is_noise`: the condition y then carries
    the observation and x_0 is drawn, not given).
    """

    noise: float = 0.0  # s in gamma(t) = s sqrt(t (1 - t)), image units (1 = full range)
    source_is_noise: bool = False  # x_0 ~ N(0, I) instead of x_0 = y

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return 1 - t

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def gamma(self, t: torch.Tensor) -> torch.Tensor:
        return self.noise * torch.sqrt((t * (1 - t)).clamp_min(0))

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.ones_like(t)

    def d_beta(self, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(t)

    def d_gamma(self, t: torch.Tensor) -> torch.Tensor:
        """Derivative of gamma; finite at the endpoints by clamping t to [1e-4, 1 - 1e-4]."""
        tc = t.clamp(1e-4, 1 - 1e-4)
        return self.noise * (1 - 2 * tc) / (2 * torch.sqrt(tc * (1 - tc)))

    def source(self, y: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """The source x_0 for an observation y: y itself, or noise of its shape."""
        if self.source_is_noise:
            return torch.randn(y.shape, generator=gen, device=y.device, dtype=y.dtype)
        return y

    def sample(
        self, x_0: torch.Tensor, x_1: torch.Tensor, t: torch.Tensor, gen: torch.Generator | None = None
    ) -> PathSample:
        """Draw x_t and the velocity target dx_t at times t (B,)."""
        z = torch.randn(x_1.shape, generator=gen, device=x_1.device, dtype=x_1.dtype) if self.noise else None
        tb = _expand(t, x_1)
        x_t = self.alpha(tb) * x_0 + self.beta(tb) * x_1
        dx_t = self.d_alpha(tb) * x_0 + self.d_beta(tb) * x_1
        if z is not None:
            x_t = x_t + self.gamma(tb) * z
            dx_t = dx_t + self.d_gamma(tb) * z
        return PathSample(x_0=x_0, x_1=x_1, t=t, x_t=x_t, dx_t=dx_t)

    def x0_from_x1(self, x_t: torch.Tensor, x_1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Source estimate from x_t and an x_1 estimate, taking the noise term as zero."""
        tb = _expand(t, x_t)
        return (x_t - self.beta(tb) * x_1) / self.alpha(tb).clamp_min(1e-6)

    def velocity_from_x1(
        self, x_t: torch.Tensor, x1_hat: torch.Tensor, t: torch.Tensor, x_0: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Velocity from an x_1 prediction.

        With the source known (a bridge, x_0 = y) the noise is estimated as
        z = (x_t - alpha x_0 - beta x1_hat) / gamma; without it, x_0 is solved from x_t.
        For the straight bridge this is v = (x1_hat - x_t) / (1 - t).
        """
        tb = _expand(t, x_t)
        if x_0 is None or not self.noise:
            x0_hat = self.x0_from_x1(x_t, x1_hat, t)
            return self.d_alpha(tb) * x0_hat + self.d_beta(tb) * x1_hat
        gamma = self.gamma(tb)
        z_hat = torch.where(gamma > 0, (x_t - self.alpha(tb) * x_0 - self.beta(tb) * x1_hat) / gamma.clamp_min(1e-8), 0)
        return self.d_alpha(tb) * x_0 + self.d_beta(tb) * x1_hat + self.d_gamma(tb) * z_hat

    def x1_from_velocity(self, x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Invert velocity_from_x1 for gamma = 0: x1_hat = x_t + (1 - t) v."""
        return x_t + _expand(1 - t, x_t) * v


def _expand(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) or () -> broadcastable to a (B, C, H, W) tensor."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(-1, *([1] * (like.dim() - 1)))


def sample_times(
    batch: int, t0_prob: float, gen: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Training times: t = 0 (the one-step case) with probability t0_prob, else U[0, 1)."""
    t = torch.rand(batch, generator=gen, device=device)
    at_zero = torch.rand(batch, generator=gen, device=device) < t0_prob
    return torch.where(at_zero, torch.zeros_like(t), t)


@dataclass(frozen=True)
class VPPath:
    """The variance-preserving diffusion path of DDPM, for the diffusion baselines (noise -> clean).

    x_t = alpha(t) x_0 + beta(t) x_1 with x_0 ~ N(0, I), alpha^2 + beta^2 = 1, beta(t)^2 = abar(1 - t) the
    signal fraction of the continuous-time linear schedule: abar(s) = exp(-(b0 s + (b1 - b0) s^2 / 2)),
    b0 = 0.1, b1 = 20 (the limit of DDPM's 1000 betas from 1e-4 to 0.02; Song et al., 2021). t = 0 is
    (almost) pure noise (abar = 4.3e-5), t = 1 the clean image. The network predicts the noise x_0 (DDPM's
    epsilon); `x1_from_x0` turns it into an x_1 estimate. Same interface as `Interpolant` (gamma = 0).
    """

    b0: float = 0.1
    b1: float = 20.0
    noise: float = 0.0  # no extra path noise (the interface of Interpolant)
    source_is_noise: bool = True

    def _log_abar(self, t: torch.Tensor) -> torch.Tensor:
        s = 1 - t
        return -(self.b0 * s + 0.5 * (self.b1 - self.b0) * s * s)

    def _d_log_abar(self, t: torch.Tensor) -> torch.Tensor:
        return self.b0 + (self.b1 - self.b0) * (1 - t)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((-torch.expm1(self._log_abar(t))).clamp_min(0))

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(0.5 * self._log_abar(t))

    def gamma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(t)

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """-abar (log abar)' / (2 alpha); finite at t = 1 by clamping alpha at 1e-4."""
        abar = torch.exp(self._log_abar(t))
        return -0.5 * abar * self._d_log_abar(t) / self.alpha(t).clamp_min(1e-4)

    def d_beta(self, t: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.beta(t) * self._d_log_abar(t)

    def d_gamma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(t)

    def source(self, y: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """Noise of y's shape."""
        return torch.randn(y.shape, generator=gen, device=y.device, dtype=y.dtype)

    def sample(
        self, x_0: torch.Tensor, x_1: torch.Tensor, t: torch.Tensor, gen: torch.Generator | None = None
    ) -> PathSample:
        """x_t and its velocity at times t (B,); x_0 is the noise."""
        tb = _expand(t, x_1)
        x_t = self.alpha(tb) * x_0 + self.beta(tb) * x_1
        dx_t = self.d_alpha(tb) * x_0 + self.d_beta(tb) * x_1
        return PathSample(x_0=x_0, x_1=x_1, t=t, x_t=x_t, dx_t=dx_t)

    def x0_from_x1(self, x_t: torch.Tensor, x_1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise implied by x_t and an x_1 estimate."""
        tb = _expand(t, x_t)
        return (x_t - self.beta(tb) * x_1) / self.alpha(tb).clamp_min(1e-6)

    def x1_from_x0(self, x_t: torch.Tensor, x_0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The x_1 estimate implied by x_t and a noise estimate (DDPM's x_0 from epsilon)."""
        tb = _expand(t, x_t)
        return (x_t - self.alpha(tb) * x_0) / self.beta(tb)

    def velocity_from_x1(
        self, x_t: torch.Tensor, x1_hat: torch.Tensor, t: torch.Tensor, x_0: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Velocity of the path through x_t with clean end x1_hat (x_0 solved from x_t)."""
        tb = _expand(t, x_t)
        return self.d_alpha(tb) * self.x0_from_x1(x_t, x1_hat, t) + self.d_beta(tb) * x1_hat

    def x1_from_velocity(self, x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Invert velocity_from_x1: solve x_t = a x_0 + b x_1, v = a' x_0 + b' x_1 for x_1."""
        tb = _expand(t, x_t)
        a, b, da, db = self.alpha(tb), self.beta(tb), self.d_alpha(tb), self.d_beta(tb)
        return (a * v - da * x_t) / (a * db - da * b)
