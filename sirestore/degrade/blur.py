"""Blur degradations: isotropic Gaussian and motion (random camera shake, Levin et al. 2009, or a file)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from sirestore.degrade.base import Degradation, register, uniform
from sirestore.degrade.kernels import (
    conv,
    gaussian_kernel,
    levin_kernel,
    load_kernel,
    random_motion_kernel,
    stack_kernels,
)
from sirestore.degrade.operators import BlurOperator, single

BOUNDARIES = ("reflect", "circular")


def _check_boundary(boundary: str) -> None:
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {', '.join(BOUNDARIES)}, got {boundary!r}")


class _Blur(Degradation):
    """Shared `operator`: the applied per-image kernels as a circular `BlurOperator`."""

    boundary: str

    def operator(self, params: dict | list[dict], eps: float = 1e-3) -> BlurOperator:
        """BlurOperator with the applied kernels (B, k, k). Exact when boundary=circular; with reflect it
        differs within kernel_size // 2 pixels of the borders."""
        return BlurOperator(single(params)["kernel"], eps)


@register
@dataclass
class GaussianBlur(_Blur):
    """`gaussian_blur`: y = k_sigma * x, isotropic Gaussian kernel of size 2 ceil(3 sigma) + 1, not clipped.

    A fixed `sigma` (pixels; 0 = identity), or, when `sigma_max` is set, a per-image sigma ~ U[sigma_min,
    sigma_max] (kernels share the size of the largest). Params: sigma (B,), kernel (B, k, k).
    """

    sigma: float = 1.6  # Gaussian standard deviation in pixels
    sigma_min: float = 0.0  # lower bound of a random sigma (with sigma_max)
    sigma_max: float | None = None  # upper bound of a random sigma; None = fixed sigma
    boundary: str = "reflect"  # "reflect" or "circular" (matches operator() exactly)
    name = "gaussian_blur"

    def __post_init__(self) -> None:
        if self.sigma < 0 or self.sigma_min < 0 or (self.sigma_max is not None and self.sigma_max < self.sigma_min):
            raise ValueError("sigma must be >= 0 and sigma_min <= sigma_max")
        _check_boundary(self.boundary)

    def apply(self, x: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, dict]:
        if self.sigma_max is None:
            sigma = torch.full((x.shape[0],), float(self.sigma))
        else:
            sigma = uniform(self.sigma_min, self.sigma_max, x.shape[0], gen, torch.device("cpu"))
        size = 2 * math.ceil(3 * sigma.max().item()) + 1
        kernel = torch.stack([gaussian_kernel(s, size) for s in sigma.tolist()]).to(x.device, x.dtype)
        return conv(x, kernel, self.boundary), {"sigma": sigma.to(x.device), "kernel": kernel}


@register
@dataclass
class MotionBlur(_Blur):
    """`motion_blur`: y = k * x with a motion kernel, not clipped.

    `kernel` = "random" (a new camera-shake trajectory per image on a `size` x `size` canvas), "levin1" ..
    "levin8" (Levin et al. CVPR 2009 kernels), or a .npy/.png file (normalised to sum 1, even sizes padded
    to odd). Params: kernel (B, k, k).
    """

    kernel: str = "random"  # "random", "levin1".."levin8", or a path to a .npy / image kernel
    size: int = 25  # canvas of random kernels (odd, >= 3); ignored for fixed kernels
    boundary: str = "reflect"  # "reflect" or "circular" (matches operator() exactly)
    name = "motion_blur"

    def __post_init__(self) -> None:
        _check_boundary(self.boundary)
        if self.size < 3 or self.size % 2 == 0:
            raise ValueError(f"size must be an odd int >= 3, got {self.size}")
        self._fixed: torch.Tensor | None = None
        if self.kernel == "random":
            return
        match = re.fullmatch(r"levin(\d+)", self.kernel)
        if match:
            self._fixed = levin_kernel(int(match.group(1)))
        elif Path(self.kernel).is_file():
            self._fixed = load_kernel(self.kernel)
        else:
            raise ValueError(f"kernel must be 'random', 'levin1'..'levin8' or a kernel file, got {self.kernel!r}")

    def apply(self, x: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, dict]:
        if self._fixed is None:
            kernel = stack_kernels([random_motion_kernel(self.size, gen) for _ in range(x.shape[0])])
        else:
            kernel = self._fixed.expand(x.shape[0], *self._fixed.shape)
        kernel = kernel.to(x.device, x.dtype)
        return conv(x, kernel, self.boundary), {"kernel": kernel}
