"""Noise degradations: additive Gaussian, Poisson-Gaussian, multiplicative gamma speckle."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sirestore.degrade.base import Degradation, randn_like, register, uniform
from sirestore.degrade.operators import Identity


@register
@dataclass
class AWGN(Degradation):
    """y = x + sigma/255 * n, n ~ N(0, I), not clipped (the DnCNN/FFDNet protocol).

    A fixed `sigma`, or, when `sigma_max` is set, a per-image sigma ~ U[sigma_min, sigma_max].
    """

    sigma: float = 25.0  # noise standard deviation on the 0..255 scale
    sigma_min: float = 0.0  # lower bound of a random sigma (with sigma_max)
    sigma_max: float | None = None  # upper bound of a random sigma; None = fixed sigma
    clip: bool = False  # clamp y to [0, 1] (real sensors; not the benchmark protocol)
    name = "awgn"

    def __post_init__(self) -> None:
        if self.sigma < 0 or self.sigma_min < 0 or (self.sigma_max is not None and self.sigma_max < self.sigma_min):
            raise ValueError("sigma must be >= 0 and sigma_min <= sigma_max")

    def apply(self, x: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, dict]:
        if self.sigma_max is None:
            sigma = torch.full((x.shape[0],), float(self.sigma), device=x.device)
        else:
            sigma = uniform(self.sigma_min, self.sigma_max, x.shape[0], gen, x.device)
        y = x + (sigma / 255).view(-1, 1, 1, 1).to(x.dtype) * randn_like(x, gen)
        if self.clip:
            y = y.clamp(0, 1)
        return y, {"sigma": sigma}

    def operator(self, params: dict | list[dict]) -> Identity:
        """Denoising observes x itself: A = I."""
        return Identity()


def standard_gamma(shape: tuple[int, ...], alpha: float, gen: torch.Generator | None) -> torch.Tensor:
    """Gamma(alpha, 1) samples of `shape` (float64, CPU) drawn from gen (Marsaglia & Tsang 2000).

    torch's own gamma sampler takes no generator, so this rejection sampler draws normals and uniforms
    from gen in rounds over the not-yet-accepted entries; alpha < 1 uses the U^(1/alpha) boost.
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    a = alpha + 1 if alpha < 1 else alpha
    d = a - 1 / 3
    c = 1 / math.sqrt(9 * d)
    n = math.prod(shape)
    out = torch.empty(n, dtype=torch.float64)
    todo = torch.arange(n)
    while todo.numel():
        z = torch.randn(todo.numel(), generator=gen, dtype=torch.float64)
        u = torch.rand(todo.numel(), generator=gen, dtype=torch.float64)
        v = (1 + c * z) ** 3
        ok = (v > 0) & (u.log() < 0.5 * z**2 + d - d * v + d * v.clamp_min(1e-300).log())
        out[todo[ok]] = d * v[ok]
        todo = todo[~ok]
    if alpha < 1:
        out = out * torch.rand(n, generator=gen, dtype=torch.float64) ** (1 / alpha)
    return out.view(shape)


@register
@dataclass
class PoissonGaussian(Degradation):
    """`poisson_gaussian`: y = Poisson(peak * x) / peak + sigma/255 * n (shot + read noise), not clipped.

    `peak` is the photon count of a white pixel (lower = noisier). A fixed `peak`, or, when `peak_max` is
    set, a per-image peak ~ U[peak_min, peak_max]. Params: peak (B,), sigma (B,).
    """

    peak: float = 30.0  # photons at intensity 1 (Poisson part)
    sigma: float = 0.0  # Gaussian read noise standard deviation on the 0..255 scale
    peak_min: float = 1.0  # lower bound of a random peak (with peak_max)
    peak_max: float | None = None  # upper bound of a random peak; None = fixed peak
    clip: bool = False  # clamp y to [0, 1]
    name = "poisson_gaussian"

    def __post_init__(self) -> None:
        if self.peak <= 0 or self.peak_min <= 0 or (self.peak_max is not None and self.peak_max < self.peak_min):
            raise ValueError("peak must be > 0 and peak_min <= peak_max")
        if self.sigma < 0:
            raise ValueError("sigma must be >= 0")

    def apply(self, x: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, dict]:
        b = x.shape[0]
        if self.peak_max is None:
            peak = torch.full((b,), float(self.peak), dtype=torch.float64)
        else:
            peak = uniform(self.peak_min, self.peak_max, b, gen, torch.device("cpu")).double()
        rate = x.detach().cpu().double().clamp_min(0) * peak.view(-1, 1, 1, 1)
        y = (torch.poisson(rate, generator=gen) / peak.view(-1, 1, 1, 1)).to(x.device, x.dtype)
        y = y + self.sigma / 255 * randn_like(x, gen)
        if self.clip:
            y = y.clamp(0, 1)
        return y, {"peak": peak.float().to(x.device), "sigma": torch.full((b,), float(self.sigma), device=x.device)}

    def operator(self, params: dict | list[dict]) -> Identity:
        """E[y] = x: A = I."""
        return Identity()


@register
@dataclass
class Speckle(Degradation):
    """`speckle`: multiplicative gamma speckle y = x * G, G ~ Gamma(looks, 1/looks) i.i.d. per pixel
    (mean 1, variance 1/looks; SAR with L looks), not clipped. Params: looks (B,)."""

    looks: float = 4.0  # number of looks L (> 0); larger = weaker speckle
    clip: bool = False  # clamp y to [0, 1]
    name = "speckle"

    def __post_init__(self) -> None:
        if self.looks <= 0:
            raise ValueError(f"looks must be > 0, got {self.looks}")

    def apply(self, x: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, dict]:
        g = standard_gamma(tuple(x.shape), self.looks, gen) / self.looks
        y = x * g.to(x.device, x.dtype)
        if self.clip:
            y = y.clamp(0, 1)
        return y, {"looks": torch.full((x.shape[0],), float(self.looks), device=x.device)}
