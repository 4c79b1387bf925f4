"""Synthetic rain streaks, haze (atmospheric scattering) and low light.

These three draw their main level per image by default: a level field set to None means "random in
[level_min, level_max]"; setting it (for example `haze:beta=1`) fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sirestore.degrade.base import Degradation, randn_like, register, uniform
from sirestore.degrade.kernels import conv, line_kernel


def _level(value: float | None, lo: float, hi: float, batch: int, gen: torch.Generator | None) -> torch.Tensor:
    """(B,) float64 CPU levels: `value` everywhere, or U[lo, hi] per image when value is None."""
    if value is not None:
        return torch.full((batch,), float(value), dtype=torch.float64)
    return uniform(lo, hi, batch, gen, torch.device("cpu")).double()


def _check_range(name: str, value: float | None, lo: float, hi: float, low: float, high: float) -> None:
    ok = low <= lo <= hi <= high and (value is None or low <= value <= high)
    if not ok:
        raise ValueError(f"{name}, {name}_min, {name}_max must lie in [{low}, {high}] with {name}_min <= {name}_max")


@register
@dataclass
class LowLight(Degradation):
    """`low_light`: y = clamp((exposure * x) ** gamma + sigma/255 * n, 0, 1).

    `exposure` scales the light (random per image in [exposure_min, exposure_max] when None), `gamma` >= 1
    darkens the mid-tones further, `sigma` adds Gaussian read noise (0..255 scale). exposure = gamma = 1 and
    sigma = 0 is the identity. Params: exposure (B,), gamma (B,), sigma (B,).
    """

    exposure: float | None = None  # light scale in (0, 1]; None = random per image
    exposure_min: float = 0.1  # lower bound of the random exposure
    exposure_max: float = 0.4  # upper bound of the random exposure
    gamma: float = 1.5  # power applied after scaling (>= 1)
    sigma: float = 0.0  # Gaussian noise standard deviation on the 0..255 scale
    name = "low_light"

    def __post_init__(self) -> None:
        _check_range("exposure", self.exposure, self.exposure_min, self.exposure_max, 1e-6, 1.0)
        if self.gamma < 1 or self.sigma < 0:
            raise ValueError("gamma must be >= 1 and sigma >= 0")

    def apply(self, x: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, dict]:
        b = x.shape[0]
        exposure = _level(self.exposure, self.exposure_min, self.exposure_max, b, gen)
        y = (x.clamp_min(0) * exposure.view(-1, 1, 1, 1).to(x.device, x.dtype)) ** self.gamma
        if self.sigma > 0:
            y = y + self.sigma / 255 * randn_like(x, gen)
        gamma, sigma = torch.full((b,), self.gamma), torch.full((b,), self.sigma)
        levels = {"exposure": exposure.float(), "gamma": gamma, "sigma": sigma}
        return y.clamp(0, 1), {k: v.to(x.device) for k, v in levels.items()}


@register
@dataclass
class Rain(Degradation):
    """`rain`: screen-blend a rain streak layer S, y = x + intensity * S * (1 - x) (stays in [0, 1]).

    S: sparse seeds (a pixel is a seed with probability `density`, brightness U[0.5, 1]) motion-blurred by a
    `length`-pixel line at `angle` degrees from vertical (random per image in [angle_min, angle_max] when
    None), rescaled and clipped to [0, 1]; shared by the channels. intensity = 0 is the identity.
    Params: angle (B,), streaks (B, 1, H, W).
    """

    density: float = 0.004  # fraction of pixels seeding a streak
    length: int = 15  # streak length in pixels (>= 1)
    angle: float | None = None  # degrees from vertical (positive leans right); None = random per image
    angle_min: float = -30.0  # lower bound of the random angle
    angle_max: float = 30.0  # upper bound of the random angle
    intensity: float = 0.8  # streak opacity in [0, 1]
    name = "rain"

    def __post_init__(self) -> None:
        _check_range("angle", self.angle, self.angle_min, self.angle_max, -90.0, 90.0)
        if not (0 <= self.density <= 1 and 0 <= self.intensity <= 1 and self.length >= 1):
            raise ValueError("density and intensity must lie in [0, 1] and length >= 1")

    def apply(self, x: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, dict]:
        b, _, h, w = x.shape
        angle = _level(self.angle, self.angle_min, self.angle_max, b, gen)
        u = torch.rand(2, b, 1, h, w, generator=gen, dtype=torch.float64)
        seeds = (u[0] < self.density) * (0.5 + 0.5 * u[1])
        kernel = torch.stack([line_kernel(self.length, a) for a in angle.tolist()]).double()
        streaks = (conv(seeds, kernel, "circular") * self.length).clamp(0, 1).to(x.device, x.dtype)
        y = x + self.intensity * streaks * (1 - x)
        return y, {"angle": angle.float().to(x.device), "streaks": streaks}


@register
@dataclass
class Haze(Degradation):
    """`haze`: atmospheric scattering y = x * t + airlight * (1 - t), t = exp(-beta * d).

    d in [0, 1] is a smooth depth proxy per image: a vertical gradient (far at the top) mixed with bicubic-
    upsampled 4x4 random noise, normalised to [0, 1]. beta (random in [beta_min, beta_max] when None) sets
    the haze density, airlight (random in [airlight_min, airlight_max] when None) its brightness; beta = 0 is
    the identity. Params: beta (B,), airlight (B,), transmission t (B, 1, H, W).
    """

    beta: float | None = None  # scattering coefficient (>= 0); None = random per image
    beta_min: float = 0.6  # lower bound of the random beta
    beta_max: float = 1.8  # upper bound of the random beta
    airlight: float | None = None  # atmospheric light in [0, 1]; None = random per image
    airlight_min: float = 0.7  # lower bound of the random airlight
    airlight_max: float = 1.0  # upper bound of the random airlight
    name = "haze"

    def __post_init__(self) -> None:
        _check_range("beta", self.beta, self.beta_min, self.beta_max, 0.0, float("inf"))
        _check_range("airlight", self.airlight, self.airlight_min, self.airlight_max, 0.0, 1.0)

    def apply(self, x: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, dict]:
        b, _, h, w = x.shape
        beta = _level(self.beta, self.beta_min, self.beta_max, b, gen)
        airlight = _level(self.airlight, self.airlight_min, self.airlight_max, b, gen)
        field = F.interpolate(torch.rand(b, 1, 4, 4, generator=gen, dtype=torch.float64), size=(h, w), mode="bicubic")
        grad = torch.linspace(1, 0, h, dtype=torch.float64).view(1, 1, h, 1)
        d = 0.6 * grad + 0.4 * field
        lo, hi = d.amin(dim=(2, 3), keepdim=True), d.amax(dim=(2, 3), keepdim=True)
        d = (d - lo) / (hi - lo).clamp_min(1e-12)
        t = torch.exp(-beta.view(-1, 1, 1, 1) * d).to(x.device, x.dtype)
        y = x * t + airlight.view(-1, 1, 1, 1).to(x.device, x.dtype) * (1 - t)
        return y, {"beta": beta.float().to(x.device), "airlight": airlight.float().to(x.device), "transmission": t}
