"""Linear observation operators y = A x with adjoints and (regularised) pseudo-inverses, for data consistency.

All act on (B, C, H, W) tensors of any float dtype; masks/kernels are broadcast over channels and are either
shared or given per image. `A_pinv` is the exact Moore-Penrose pseudo-inverse for masks and average-pooling
downsampling; for blur (and kernel downsampling) it is the Tikhonov-regularised A^T (A A^T + eps I)^-1,
computed in the Fourier domain, which tends to the pseudo-inverse as eps -> 0.

Every operator also solves with its Gram matrix: `gram_inv(r, lam) = (A A^T + lam I)^-1 r` (closed form
here: A A^T is diagonal in pixels or in the Fourier domain), hence `tikhonov(r, lam) = A^T (A A^T + lam I)^-1 r`,
the step of the proximal operator of ||A x - y||^2 (see `sirestore.consistency`). Boundary-aware ("valid")
versions, which need an iterative solve, are in `sirestore.degrade.boundary`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class LinearOperator:
    """y = A x; subclasses implement A, A_T (adjoint), A_pinv and gram_inv.

    `scale` is how many times larger the x grid is than the y grid (per side; downsampling only).
    """

    scale: int = 1

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802 - the usual notation
        """Forward operator: x (B, C, H, W) -> y."""
        raise NotImplementedError

    def A_T(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """Adjoint: y -> (B, C, H, W), <A x, y> = <x, A_T y>."""
        raise NotImplementedError

    def A_pinv(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """(Regularised) pseudo-inverse: y -> (B, C, H, W)."""
        raise NotImplementedError

    def gram_inv(self, r: torch.Tensor, lam: float) -> torch.Tensor:
        """(A A^T + lam I)^-1 r for r shaped like y."""
        raise NotImplementedError

    def tikhonov(self, r: torch.Tensor, lam: float) -> torch.Tensor:
        """A^T (A A^T + lam I)^-1 r = (A^T A + lam I)^-1 A^T r: y-shaped r -> (B, C, H, W)."""
        return self.A_T(self.gram_inv(r, lam))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)


class Identity(LinearOperator):
    """A = A^T = A^+ = I (denoising)."""

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return x

    def A_T(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return y

    def A_pinv(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return y

    def gram_inv(self, r: torch.Tensor, lam: float) -> torch.Tensor:
        return r / (1 + lam)


class MaskOperator(LinearOperator):
    """A x = mask * x with mask (B or 1, 1 or C, H, W), 1 = observed; A^T = A, A^+ = A for a binary mask."""

    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask

    def _m(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask.to(x.device, x.dtype)

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return x * self._m(x)

    def A_T(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return y * self._m(y)

    def A_pinv(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        m = self._m(y)
        return y * torch.where(m != 0, 1 / torch.where(m != 0, m, torch.ones_like(m)), torch.zeros_like(m))

    def gram_inv(self, r: torch.Tensor, lam: float) -> torch.Tensor:
        """r / (mask^2 + lam); where mask = 0 and lam = 0 (unobserved, no constraint) the result is 0."""
        m2 = self._m(r) ** 2 + lam
        return torch.where(m2 != 0, r / torch.where(m2 != 0, m2, torch.ones_like(m2)), torch.zeros_like(r))


def otf(kernel: torch.Tensor, h: int, w: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """FFT of a kernel (k, k') or (B, k, k') wrapped onto an (h, w) grid, centre (k // 2, k' // 2) at
    the origin: (1 or B, 1, h, w) complex. Kernels larger than the grid alias (circular convolution)."""
    k = kernel.to(device, dtype)
    k = k.unsqueeze(0) if k.dim() == 2 else k
    kh, kw = k.shape[-2:]
    rows = ((torch.arange(kh, device=device) - kh // 2) % h)[:, None].expand(kh, kw)
    cols = ((torch.arange(kw, device=device) - kw // 2) % w)[None, :].expand(kh, kw)
    psf = torch.zeros(k.shape[0], h, w, dtype=dtype, device=device)
    flat = (rows * w + cols).reshape(-1)
    psf.view(k.shape[0], -1).index_add_(1, flat, k.reshape(k.shape[0], -1))
    return torch.fft.fft2(psf).unsqueeze(1)


class BlurOperator(LinearOperator):
    """Circular convolution with a kernel (k, k') or one per image (B, k, k') via FFT.

    A matches `kernels.conv(x, kernel, "circular")`; A^T is the correlation (conjugate spectrum);
    A_pinv(y) = F^-1[conj(K) Y / (|K|^2 + eps)].
    """

    def __init__(self, kernel: torch.Tensor, eps: float = 1e-3) -> None:
        self.kernel = kernel
        self.eps = eps
        self._spectra: dict[tuple, torch.Tensor] = {}  # per grid, dtype and device (iterative solvers reuse them)

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """Kernel spectrum on x's grid: (1 or B, 1, H, W) complex."""
        return self.spectrum_on(x.shape[-2], x.shape[-1], x.dtype, x.device)

    def spectrum_on(self, h: int, w: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Kernel spectrum on an (h, w) grid, the last one cached: (1 or B, 1, h, w) complex."""
        key = (h, w, dtype, device)
        if key not in self._spectra:
            self._spectra = {key: otf(self.kernel, h, w, dtype, device)}
        return self._spectra[key]

    def _filter(self, x: torch.Tensor, symbol: torch.Tensor) -> torch.Tensor:
        return torch.fft.ifft2(torch.fft.fft2(x) * symbol).real.to(x.dtype)

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self._filter(x, self.spectrum(x))

    def A_T(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self._filter(y, self.spectrum(y).conj())

    def A_pinv(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self.tikhonov(y, self.eps)

    def gram_inv(self, r: torch.Tensor, lam: float) -> torch.Tensor:
        """F^-1[R / (|K|^2 + lam)] (lam > 0 unless the kernel spectrum has no zeros)."""
        return self._filter(r, 1 / (self.spectrum(r).abs() ** 2 + lam))

    def tikhonov(self, r: torch.Tensor, lam: float) -> torch.Tensor:
        """F^-1[conj(K) R / (|K|^2 + lam)], one filtering instead of two."""
        k = self.spectrum(r)
        return self._filter(r, k.conj() / (k.abs() ** 2 + lam))


class DownsampleOperator(LinearOperator):
    """Downsampling by an integer `scale`: average pooling over scale x scale blocks (kernel None), or
    circular convolution with `kernel` followed by taking pixels (0, scale, 2 scale, ...).

    A^T is the exact adjoint (zero-filling upsampling, then the blur adjoint). A^+ is exact for average
    pooling (nearest-neighbour upsampling); with a kernel it is A^T (A A^T + eps I)^-1 in closed form, using
    that A A^T is diagonal in the low-resolution Fourier domain with symbol mean over aliases of |K|^2.
    Input sizes must be divisible by `scale`.
    """

    def __init__(self, scale: int, kernel: torch.Tensor | None = None, eps: float = 1e-9) -> None:
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        self.scale = scale
        self.blur = None if kernel is None else BlurOperator(kernel, eps)
        self.eps = eps

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        s = self.scale
        if x.shape[-2] % s or x.shape[-1] % s:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not divisible by scale {s}")
        if self.blur is None:
            return F.avg_pool2d(x, s)
        return self.blur.A(x)[..., ::s, ::s]

    def _zero_fill(self, y: torch.Tensor) -> torch.Tensor:
        s = self.scale
        up = y.new_zeros(*y.shape[:-2], y.shape[-2] * s, y.shape[-1] * s)
        up[..., ::s, ::s] = y
        return up

    def A_T(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        s = self.scale
        if self.blur is None:
            return y.repeat_interleave(s, -2).repeat_interleave(s, -1) / s**2
        return self.blur.A_T(self._zero_fill(y))

    def A_pinv(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        s = self.scale
        if self.blur is None:
            return y.repeat_interleave(s, -2).repeat_interleave(s, -1)
        return self.tikhonov(y, self.eps)

    def gram_inv(self, r: torch.Tensor, lam: float) -> torch.Tensor:
        """(A A^T + lam I)^-1 r: A A^T = I / scale^2 for average pooling; with a kernel it is diagonal in the
        low-resolution Fourier domain with symbol mean over the scale^2 aliases of |K|^2."""
        s = self.scale
        if self.blur is None:
            return r / (1 / s**2 + lam)
        h, w = r.shape[-2:]
        k2 = self.blur.spectrum_on(h * s, w * s, r.dtype, r.device).abs() ** 2
        symbol = k2.reshape(*k2.shape[:2], s, h, s, w).mean(dim=(2, 4))  # (1 or B, 1, h, w)
        return torch.fft.ifft2(torch.fft.fft2(r) / (symbol + lam)).real.to(r.dtype)


def single(params: dict | list[dict]) -> dict:
    """The parameter dict of one degradation, from its dict or a one-element params list."""
    if isinstance(params, dict):
        return params
    if len(params) != 1:
        raise ValueError(f"expected the params of one degradation, got {len(params)}")
    return params[0]
