"""Super-resolution degradation: antialiased bicubic downsampling (MATLAB imresize style)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sirestore.degrade.base import Degradation, register
from sirestore.degrade.boundary import pcg
from sirestore.degrade.kernels import bicubic_kernel
from sirestore.degrade.operators import DownsampleOperator, LinearOperator, single


def bicubic_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (B, C, H, W) to `size` with torch's antialiased bicubic (Keys a = -0.5, like MATLAB imresize
    and Pillow; border weights are truncated and renormalised where MATLAB mirrors). Not clipped."""
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)


@register
@dataclass
class SR(Degradation):
    """`sr`: bicubic downsampling by `scale` (2, 3 or 4) to (H // scale, W // scale), not clipped.

    Uses `F.interpolate(mode="bicubic", antialias=True)`, which equals MATLAB's imresize away from the
    borders. With `upsample` (default) the low-resolution image is resized back to (H, W) with the same
    bicubic, so shapes match; the LR image is then also returned in params. Params: scale (int), lr
    (B, C, H // scale, W // scale) when upsample.
    """

    scale: int = 4  # downsampling factor: 2, 3 or 4
    upsample: bool = True  # return the LR image bicubic-upsampled to the input size (else the small image)
    name = "sr"

    def __post_init__(self) -> None:
        if self.scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {self.scale}")

    def apply(self, x: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, dict]:
        h, w = x.shape[-2:]
        if h < self.scale or w < self.scale:
            raise ValueError(f"image {h}x{w} is smaller than the scale {self.scale}")
        lr = bicubic_resize(x, (h // self.scale, w // self.scale))
        if not self.upsample:
            return lr, {"scale": self.scale}
        return bicubic_resize(lr, (h, w)), {"scale": self.scale, "lr": lr}

    def operator(self, params: dict | list[dict]) -> DownsampleOperator:
        """DownsampleOperator(scale, bicubic kernel) mapping x to the LR image (params "lr" when upsample).

        It is circular, so it matches the applied downsampling exactly except within about 2 * scale pixels
        of the borders (where torch renormalises truncated weights); H and W must be divisible by scale.
        """
        scale = int(single(params)["scale"])
        return DownsampleOperator(scale, bicubic_kernel(scale))


class ResizeOperator(LinearOperator):
    """y = bicubic_resize(x, (H / scale, W / scale)): exactly the `sr` degradation, border handling included.

    The resize is linear, so its adjoint is its vector-Jacobian product (autograd, at any point). A A^T has no
    closed form because of the borders: `gram_inv` runs PCG preconditioned with the circular bicubic
    operator's closed-form solve, which equals it away from the borders. A^+ = A^T (A A^T + eps I)^-1.
    """

    def __init__(self, scale: int, eps: float = 1e-9, iters: int = 100) -> None:
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        self.scale, self.eps, self.iters = scale, eps, iters
        self.circular = DownsampleOperator(scale, bicubic_kernel(scale), eps)

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        s = self.scale
        if x.shape[-2] % s or x.shape[-1] % s:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not divisible by scale {s}")
        return bicubic_resize(x, (x.shape[-2] // s, x.shape[-1] // s))

    def A_T(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        s = self.scale
        with torch.enable_grad():
            x = y.new_zeros(*y.shape[:-2], y.shape[-2] * s, y.shape[-1] * s, requires_grad=True)
            (grad,) = torch.autograd.grad(self.A(x), x, y)
        return grad

    def A_pinv(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self.tikhonov(y, self.eps)

    def gram_inv(self, r: torch.Tensor, lam: float) -> torch.Tensor:
        return pcg(lambda u: self.A(self.A_T(u)) + lam * u, r, lambda u: self.circular.gram_inv(u, lam), self.iters)
