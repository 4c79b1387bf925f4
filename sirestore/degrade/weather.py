"""Synthetic rain streaks, haze (atmospheric scattering) and low light.

These three draw their main level per image by default: a level field set to None means "random in
[level_min, level_max]"; setting it (for example `haze:beta=1`) fixes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sirestore.degrade.base import Degradation, randn_like, register, uniform
from sirestore.degrade.kernels import conv, gaussian_kernel, line_kernel


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

    S follows the Photoshop rain recipe that synthetic rain sets use (Rain12, Rain100L): sparse seeds (a pixel
    is a seed with probability `density`, brightness U[0.5, 1]), blurred by a Gaussian of `width` pixels (wider =
    fainter), motion-blurred by a `length`-pixel line at `angle` degrees from vertical, rescaled so a thin
    streak keeps its seed's brightness, clipped to [0, 1]; shared by the channels. Density, length, width and intensity
    are fixed, or, when their `_max` is set, drawn per image in [`_min`, `_max`] (as awgn's sigma);
    the angle is random per image in [angle_min, angle_max] when None. intensity = 0 is the identity.
    Params: angle, density, length, width, intensity (B,) and streaks (B, 1, H, W).
    """

    density: float = 0.004  # fraction of pixels seeding a streak
    density_min: float = 0.001  # lower bound of a random density (with density_max)
    density_max: float | None = None  # upper bound of a random density; None = fixed density
    length: int = 15  # streak length in pixels (>= 1)
    length_min: int = 8  # lower bound of a random length (with length_max)
    length_max: int | None = None  # upper bound of a random length; None = fixed length
    width: float = 0.0  # Gaussian softening of the streaks (standard deviation, pixels; 0 = 1-pixel lines)
    width_min: float = 0.0  # lower bound of a random width (with width_max)
    width_max: float | None = None  # upper bound of a random width; None = fixed width
    angle: float | None = None  # degrees from vertical (positive leans right); None = random per image
    angle_min: float = -30.0  # lower bound of the random angle
    angle_max: float = 30.0  # upper bound of the random angle
    intensity: float = 0.8  # streak opacity in [0, 1]
    intensity_min: float = 0.3  # lower bound of a random intensity (with intensity_max)
    intensity_max: float | None = None  # upper bound of a random intensity; None = fixed intensity
    name = "rain"

    def __post_init__(self) -> None:
        _check_range("angle", self.angle, self.angle_min, self.angle_max, -90.0, 90.0)
        _check_range("density", self.density, self.density_min, _hi(self.density_max, self.density_min), 0, 1)
        _check_range("intensity", self.intensity, self.intensity_min, _hi(self.intensity_max, 1.0), 0, 1)
        _check_range("width", self.width, self.width_min, _hi(self.width_max, self.width_min), 0, 10)
        if (
            self.length < 1
            or self.length_min < 1
            or (self.length_max is not None and self.length_max < self.length_min)
        ):
            raise ValueError("length and length_min must be >= 1 and length_min <= length_max")

    def _levels(self, b: int, gen: torch.Generator | None) -> dict[str, torch.Tensor]:
        """(B,) float64 levels: density, length (whole pixels, each equally likely), width, intensity, angle."""
        lv = {}
        for k in _RANDOM:
            hi = getattr(self, f"{k}_max")
            if k == "length" and hi is not None:
                hi += 1  # U[min, max + 1), floored below: whole lengths, each equally likely
            lv[k] = _setting(getattr(self, k), getattr(self, f"{k}_min"), hi, b, gen)
        if self.length_max is not None:
            lv["length"] = lv["length"].floor().clamp_max(self.length_max)
        lv["angle"] = _level(self.angle, self.angle_min, self.angle_max, b, gen)
        return lv

    def apply(self, x: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, dict]:
        b, _, h, w = x.shape
        lv = self._levels(b, gen)
        u = torch.rand(2, b, 1, h, w, generator=gen, dtype=torch.float64)
        seeds = (u[0] < lv["density"].view(-1, 1, 1, 1)) * (0.5 + 0.5 * u[1])
        streaks = torch.cat(
            [
                _streak_layer(s[None], *(lv[k][i].item() for k in ("length", "width", "angle")))
                for i, s in enumerate(seeds)
            ]
        )
        streaks = streaks.to(x.device, x.dtype)
        y = x + lv["intensity"].view(-1, 1, 1, 1).to(x.device, x.dtype) * streaks * (1 - x)
        return y, {**{k: v.float().to(x.device) for k, v in lv.items()}, "streaks": streaks}


_RANDOM = ("density", "length", "width", "intensity")  # the rain settings with a _min / _max


def _hi(value: float | None, default: float) -> float:
    return default if value is None else value


def _setting(value: float, lo: float, hi: float | None, b: int, gen: torch.Generator | None) -> torch.Tensor:
    """(B,) float64: `value` everywhere, or U[lo, hi] per image when hi is set."""
    return _level(value if hi is None else None, lo, lo if hi is None else hi, b, gen)


def _streak_layer(seeds: torch.Tensor, length: float, width: float, angle: float) -> torch.Tensor:
    """Seeds (1, 1, H, W) float64 -> streaks (1, 1, H, W) in [0, 1]: blurred by a Gaussian of std `width` (wider
    streaks are fainter: out-of-focus drops), smeared along a `length`-pixel line at `angle` (its sum rescaled
    to length, so a thin streak keeps its seed's brightness)."""
    if width > 0:
        seeds = conv(seeds, gaussian_kernel(width).double(), "circular")
    return (conv(seeds, line_kernel(int(length), angle).double(), "circular") * length).clamp(0, 1)


@register
@dataclass
class Haze(Degradation):
    """`haze`: atmospheric scattering y = x * t + airlight * (1 - t), t = exp(-beta * d).

    d in [0, 1] is a smooth depth proxy per image: a vertical gradient (far at the top) mixed with bicubic-
    upsampled 4x4 random noise, normalised to [0, 1]. beta (random in [beta_min, beta_max] when None) sets
    the haze density, airlight (random in [airlight_min, airlight_max] when None) its brightness; beta = 0 is
    the identity. `zoom` > 1 draws d on a canvas `zoom` times the image's size and keeps a random window of it,
    as a crop of a photo sees part of the scene's depth (training crops; `zoom_max` draws zoom per image in
    [zoom, zoom_max]). Params: beta, airlight, zoom (B,), transmission t (B, 1, H, W).
    """

    beta: float | None = None  # scattering coefficient (>= 0); None = random per image
    beta_min: float = 0.6  # lower bound of the random beta
    beta_max: float = 1.8  # upper bound of the random beta
    airlight: float | None = None  # atmospheric light in [0, 1]; None = random per image
    airlight_min: float = 0.7  # lower bound of the random airlight
    airlight_max: float = 1.0  # upper bound of the random airlight
    zoom: float = 1.0  # the depth map spans zoom times the image (>= 1; 1 = the whole image)
    zoom_max: float | None = None  # upper bound of a random zoom in [zoom, zoom_max]; None = fixed zoom
    name = "haze"

    def __post_init__(self) -> None:
        _check_range("beta", self.beta, self.beta_min, self.beta_max, 0.0, float("inf"))
        _check_range("airlight", self.airlight, self.airlight_min, self.airlight_max, 0.0, 1.0)
        _check_range("zoom", self.zoom, self.zoom, _hi(self.zoom_max, self.zoom), 1.0, 64.0)

    def apply(self, x: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, dict]:
        b, _, h, w = x.shape
        beta = _level(self.beta, self.beta_min, self.beta_max, b, gen)
        airlight = _level(self.airlight, self.airlight_min, self.airlight_max, b, gen)
        zoom = _setting(self.zoom, self.zoom, self.zoom_max, b, gen)
        d = torch.cat([_depth(h, w, z, gen) for z in zoom.tolist()])
        t = torch.exp(-beta.view(-1, 1, 1, 1) * d).to(x.device, x.dtype)
        y = x * t + airlight.view(-1, 1, 1, 1).to(x.device, x.dtype) * (1 - t)
        levels = {"beta": beta, "airlight": airlight, "zoom": zoom}
        return y, {**{k: v.float().to(x.device) for k, v in levels.items()}, "transmission": t}


def _depth(h: int, w: int, zoom: float, gen: torch.Generator | None) -> torch.Tensor:
    """A depth proxy (1, 1, h, w) float64: a window of the [0, 1]-normalised map (vertical gradient + smooth
    noise) of a canvas `zoom` times the size, at a random offset (the whole map when zoom = 1)."""
    ch, cw = math.ceil(zoom * h), math.ceil(zoom * w)
    field = F.interpolate(torch.rand(1, 1, 4, 4, generator=gen, dtype=torch.float64), size=(ch, cw), mode="bicubic")
    d = 0.6 * torch.linspace(1, 0, ch, dtype=torch.float64).view(1, 1, ch, 1) + 0.4 * field
    d = (d - d.min()) / (d.max() - d.min()).clamp_min(1e-12)
    if (ch, cw) == (h, w):
        return d
    top, left = (int(torch.randint(n + 1, (1,), generator=gen)) for n in (ch - h, cw - w))
    return d[..., top : top + h, left : left + w]
