"""Boundary-aware ("valid") operators: the observation sees only the part of a circular operator that does
not wrap around, so real photos, blurred by what lies outside the frame, are modelled without ringing.

`CroppedOperator(inner, margin)`: x lives on an extended grid, y = crop(inner(x)), where `inner` is a circular
operator (blur or downsampling) and `margin` the y pixels removed on each side. For a blur with a (kh, kw)
kernel the extended x is (H + kh - 1, W + kw - 1) and y is exactly the "valid" convolution; the restored image
is `crop_x(x)`, aligned with y. A^T zero-pads then applies inner^T. No closed-form inverse exists, so
`gram_inv` runs preconditioned conjugate gradients (PCG) on (C G C^T + lam I) u = r, G = inner inner^T, with
the circular solve C (G + lam I)^-1 C^T as preconditioner (exact away from the borders, so a few tens of
iterations reach 1e-6 relative residual).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from sirestore.degrade.operators import BlurOperator, DownsampleOperator, LinearOperator

Margin = tuple[int, int, int, int]  # top, bottom, left, right


def pcg(
    apply: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    precond: Callable[[torch.Tensor], torch.Tensor],
    iters: int = 100,
    tol: float = 1e-6,
) -> torch.Tensor:
    """Solve apply(u) = b for an SPD operator acting on each (H, W) plane of b (B, C, H, W) independently.

    Stops after `iters` iterations or when every plane's residual is below tol times its right-hand side;
    planes that are done stop moving while the others go on."""
    dot = lambda u, v: (u * v).sum(dim=(-2, -1), keepdim=True)  # noqa: E731 - one plane at a time
    x = torch.zeros_like(b)
    r = b.clone()
    z = precond(r)
    p, rz = z, dot(r, z)
    limit = tol * dot(b, b).sqrt()
    for _ in range(iters):
        done = dot(r, r).sqrt() <= limit
        if bool(done.all()):
            break
        ap = apply(p)
        p_ap = dot(p, ap)
        alpha = torch.where(done | (p_ap <= 0), 0, rz / torch.where(p_ap > 0, p_ap, 1))
        x = x + alpha * p
        r = r - alpha * ap
        z = precond(r)
        rz_next = dot(r, z)
        beta = torch.where(done | (rz <= 0), 0, rz_next / torch.where(rz > 0, rz, 1))
        p, rz = z + beta * p, rz_next
    return x


def pad_reflect(x: torch.Tensor, margin: Margin) -> torch.Tensor:
    """Mirror-pad x (..., H, W) by (top, bottom, left, right) pixels, without repeating the edge, any amount."""

    def index(n: int, before: int, after: int) -> torch.Tensor:
        if n == 1:
            return torch.zeros(n + before + after, dtype=torch.long, device=x.device)
        i = torch.arange(-before, n + after, device=x.device) % (2 * n - 2)
        return torch.where(i >= n, 2 * n - 2 - i, i)

    top, bottom, left, right = margin
    return x[..., index(x.shape[-2], top, bottom), :][..., index(x.shape[-1], left, right)]


def _crop(x: torch.Tensor, margin: Margin) -> torch.Tensor:
    top, bottom, left, right = margin
    return x[..., top : x.shape[-2] - bottom, left : x.shape[-1] - right]


class CroppedOperator(LinearOperator):
    """y = crop(inner(x)): the inner circular operator on an extended grid, `margin` y pixels cut off."""

    def __init__(self, inner: LinearOperator, margin: Margin, eps: float = 1e-3, iters: int = 100) -> None:
        if min(margin) < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.inner, self.margin, self.eps, self.iters = inner, margin, eps, iters
        self.scale = inner.scale

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return _crop(self.inner.A(x), self.margin)

    def A_T(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self.inner.A_T(self.embed(y))

    def embed(self, y: torch.Tensor) -> torch.Tensor:
        """The adjoint of the crop: y zero-padded onto the inner operator's output grid."""
        top, bottom, left, right = self.margin
        return F.pad(y, (left, right, top, bottom))

    def A_pinv(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """A^T (A A^T + eps I)^-1 y by PCG: the least-squares fit with the smallest extended image."""
        return self.tikhonov(y, self.eps)

    def gram_inv(self, r: torch.Tensor, lam: float) -> torch.Tensor:
        def precond(u: torch.Tensor) -> torch.Tensor:
            return _crop(self.inner.gram_inv(self.embed(u), lam), self.margin)

        return pcg(lambda u: self.A(self.A_T(u)) + lam * u, r, precond, self.iters)

    def x_margin(self) -> Margin:
        """Pixels of the extended x grid outside the region aligned with y."""
        return tuple(m * self.scale for m in self.margin)  # type: ignore[return-value]

    def crop_x(self, x: torch.Tensor) -> torch.Tensor:
        """The part of an extended x (B, C, H', W') aligned with y: (B, C, scale H, scale W)."""
        return _crop(x, self.x_margin())


def kernel_margin(kernel: torch.Tensor) -> Margin:
    """Valid-convolution margin of a (kh, kw) or (B, kh, kw) kernel centred at (kh // 2, kw // 2)."""
    kh, kw = kernel.shape[-2:]
    return (kh - 1 - kh // 2, kh // 2, kw - 1 - kw // 2, kw // 2)


def valid_blur(kernel: torch.Tensor, eps: float = 1e-3) -> CroppedOperator:
    """The valid convolution: x (H + kh - 1, W + kw - 1) -> y (H, W), no wrap-around."""
    return CroppedOperator(BlurOperator(kernel, eps), kernel_margin(kernel), eps)


def valid_downsample(scale: int, kernel: torch.Tensor | None = None, eps: float = 1e-9) -> CroppedOperator:
    """Downsampling (average pooling, or blur with `kernel` and decimation) without wrap-around: x is extended by
    enough low-resolution pixels on each side, ceil(radius / scale) + 1, that no observed pixel sees the wrap."""
    radius = 0 if kernel is None else max(kernel.shape[-2:]) // 2
    m = -(-radius // scale) + 1 if kernel is not None else 0
    return CroppedOperator(DownsampleOperator(scale, kernel, eps), (m, m, m, m), eps)
