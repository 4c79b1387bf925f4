"""Data consistency for a known observation y = A x (+ noise): hooks `dc(x1_hat) -> x1_hat` for the sampler.

- `projection(op, y)`: noiseless. The range-null-space decomposition of DDNM (Wang et al., ICLR 2023),
  x = A^+ y + (I - A^+ A) x1_hat = x1_hat + A^+ (y - A x1_hat): the range part comes from y, the null-space
  part from the network. Exact for masks (observed pixels equal y) and downsampling; for blur A^+ is
  Tikhonov-regularised (see `LinearOperator.A_pinv`).
- `proximal(op, y, sigma, rho)`: Gaussian noise of known sigma. The proximal step
  argmin_x ||A x - y||^2 / (2 sigma^2) + ||x - x1_hat||^2 / (2 rho^2)
  = x1_hat + A^T (A A^T + (sigma / rho)^2 I)^-1 (y - A x1_hat), rho = the error expected of the estimate.
  Closed form for masks, circular blur and downsampling; PCG for the boundary-aware operators.
- `speckle_guidance(y, looks, rho)`: multiplicative gamma speckle y = x n, n ~ Gamma(L, 1/L). A DPS-style
  likelihood step on the x_1 estimate: x + min(rho^2, x^2 / L) * d/dx log p(y | x), i.e. a gradient step of
  size rho^2 capped at the natural-gradient step (the Fisher information is L / x^2), which never passes
  y: every pixel's log-likelihood increases (or stays at its maximum).

- `LogSpeckle(looks)`: the homomorphic transform that makes speckle additive (log y = log x + log n), with
  the mean of log n removed and the range scaled so the log-noise level lies within what our Gaussian
  denoiser was trained on; the speckle mode denoises there and applies the guidance to each decoded estimate.

All act on (B, C, H, W) tensors; y broadcasts over channels (a gray y with a color estimate).
"""

from __future__ import annotations

import math

import torch

from sirestore.degrade.operators import LinearOperator
from sirestore.sampler import Projection

__all__ = [
    "LogSpeckle",
    "Projection",
    "projection",
    "proximal",
    "speckle_guidance",
    "speckle_log_likelihood",
    "speckle_score",
]


def projection(op: LinearOperator, y: torch.Tensor) -> Projection:
    """Noiseless consistency: x -> x + A^+ (y - A x) (DDNM range-null-space projection)."""

    def dc(x: torch.Tensor) -> torch.Tensor:
        return x + op.A_pinv(y.to(x.device, x.dtype) - op.A(x))

    return dc


def proximal(op: LinearOperator, y: torch.Tensor, sigma: float, rho: float) -> Projection:
    """Noisy consistency (sigma, rho > 0 in [0, 1] image units): x -> argmin ||A u - y||^2 / (2 sigma^2)
    + ||u - x||^2 / (2 rho^2). sigma = 0 is `projection`."""
    if sigma < 0 or rho <= 0:
        raise ValueError(f"need sigma >= 0 and rho > 0, got sigma={sigma}, rho={rho}")
    if sigma == 0:
        return projection(op, y)
    lam = (sigma / rho) ** 2

    def dc(x: torch.Tensor) -> torch.Tensor:
        return x + op.tikhonov(y.to(x.device, x.dtype) - op.A(x), lam)

    return dc


def speckle_log_likelihood(y: torch.Tensor, x: torch.Tensor, looks: float, floor: float = 1e-3) -> torch.Tensor:
    """Per-image log p(y | x) (B,) of y = x n, n ~ Gamma(L, 1/L): sum of L log(L y / x) - L y / x - log y
    - lgamma(L); x and y are floored at `floor` (> 0)."""
    x, y = x.clamp_min(floor), y.clamp_min(floor)
    ratio = looks * y / x
    per_pixel = looks * torch.log(ratio) - ratio - torch.log(y) - math.lgamma(looks)
    return per_pixel.flatten(1).sum(1)


def speckle_score(y: torch.Tensor, x: torch.Tensor, looks: float) -> torch.Tensor:
    """d/dx log p(y | x) = L (y - x) / x^2 for x > 0: shaped like x."""
    return looks * (y - x) / x**2


def speckle_guidance(y: torch.Tensor, looks: float, rho: float, floor: float = 1e-3) -> Projection:
    """x -> x + min(rho^2, x^2 / L) * score(y, x) (x floored at `floor` first): a likelihood step of size
    rho^2, capped at the natural-gradient step, which lands exactly on y; so no pixel passes y."""
    if looks <= 0 or rho <= 0:
        raise ValueError(f"need looks > 0 and rho > 0, got looks={looks}, rho={rho}")

    def dc(x: torch.Tensor) -> torch.Tensor:
        xf = x.clamp_min(floor)
        step = (xf**2 / looks).clamp(max=rho**2)
        return xf + step * speckle_score(y.to(x.device, x.dtype), xf, looks)

    return dc


class LogSpeckle:
    """Log domain for speckle of L looks: v = (log x - log floor) / R maps [floor, 1] onto [0, 1].

    log n, n ~ Gamma(L, 1/L), has mean digamma(L) - log L and variance trigamma(L); `observe` removes that
    mean from log y, and R = max(-log floor, sqrt(trigamma(L)) / max_sigma) keeps the log-noise standard
    deviation at or below max_sigma (the top of the denoiser's training range): e.g. R = 6.5 for L = 1.
    """

    def __init__(self, looks: float, floor: float = 1 / 255, max_sigma: float = 50 / 255) -> None:
        if looks <= 0 or not 0 < floor < 1 or max_sigma <= 0:
            raise ValueError(f"need looks > 0, 0 < floor < 1, max_sigma > 0; got {looks}, {floor}, {max_sigma}")
        lk = torch.tensor(float(looks), dtype=torch.float64)
        self.bias = float(torch.special.digamma(lk)) - math.log(looks)  # E[log n]
        self.noise_std = math.sqrt(float(torch.special.polygamma(1, lk)))  # std of log n
        self.floor, self.range = floor, max(-math.log(floor), self.noise_std / max_sigma)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Intensities (floored) -> log domain."""
        return (torch.log(x.clamp_min(self.floor)) - math.log(self.floor)) / self.range

    def observe(self, y: torch.Tensor) -> torch.Tensor:
        """A speckled observation -> log domain with the mean of log n removed (noise of std noise_std / range)."""
        return (torch.log(y.clamp_min(self.floor * 1e-2)) - self.bias - math.log(self.floor)) / self.range

    def decode(self, v: torch.Tensor) -> torch.Tensor:
        """Log domain -> intensities (the inverse of encode above the floor)."""
        return torch.exp(v * self.range + math.log(self.floor))
