"""Blur kernels (Gaussian, line, random camera shake, Levin 2009, bicubic) and per-image convolution.

Kernels are 2-D float tensors (k, k) that sum to 1; `conv` applies one kernel per image as a true
convolution (flipped correlation) centred on index k // 2, with reflect or circular boundaries.
Levin et al. kernels: A. Levin, Y. Weiss, F. Durand, W. T. Freeman, CVPR 2009, via cszn/KAIR (MIT).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

LEVIN_PATH = Path(__file__).resolve().parent.parent / "assets" / "levin09.npz"
LEVIN_SIZES = (19, 17, 15, 27, 13, 21, 23, 23)
FFT_TAPS = {torch.float64: 25}  # `conv` uses FFTs above this many kernel taps (CPU timings; default 625)


@lru_cache(maxsize=1)
def _levin_all() -> dict[str, np.ndarray]:
    with np.load(LEVIN_PATH) as data:
        return {key: data[key] for key in data.files}


def levin_kernel(index: int) -> torch.Tensor:
    """Levin et al. motion kernel `index` in 1..8: (k, k) float32 summing to 1."""
    if not 1 <= index <= 8:
        raise ValueError(f"Levin kernels are numbered 1..8, got {index}")
    return torch.from_numpy(_levin_all()[f"levin{index}"].copy())


def load_kernel(path: str | Path, index: int | None = None) -> torch.Tensor:
    """A user kernel from a .npy (2-D array), a MATLAB .mat file (v5 with scipy, v7.3 with h5py; kernel `index`,
    1-based, of those it holds, in cells or variables) or an image file (gray): (k, k') normalised to sum 1,
    odd sizes."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".mat":
            k = _pick(mat_kernels(path), index, path)
        elif index not in (None, 1):
            raise ValueError(f"{path}: holds one kernel, there is no kernel {index}")
        elif path.suffix.lower() == ".npy":
            k = np.asarray(np.load(path), dtype=np.float64)
        else:
            with Image.open(path) as im:
                k = np.asarray(im.convert("L"), dtype=np.float64)
    except (OSError, ValueError, EOFError, SyntaxError, KeyError, TypeError, Image.DecompressionBombError) as err:
        msg = str(err)
        raise ValueError(msg if msg.startswith(str(path)) else f"{path}: cannot read a kernel ({err})") from None
    if k.ndim != 2 or not np.isfinite(k).all() or k.min() < 0 or k.sum() <= 0:
        raise ValueError(f"{path}: a kernel must be a 2-D non-negative array with a positive sum")
    return pad_odd(torch.from_numpy(k / k.sum()).float())


def _pick(kernels: list[np.ndarray], index: int | None, path: Path) -> np.ndarray:
    if not kernels:
        raise ValueError(f"{path}: no 2-D numeric arrays in this file")
    if index is None and len(kernels) > 1:
        raise ValueError(
            f"{path}: holds {len(kernels)} kernels; choose one with an index 1..{len(kernels)} (--kernel-index)"
        )
    i = 1 if index is None else index
    if not 1 <= i <= len(kernels):
        raise ValueError(f"{path}: holds {len(kernels)} kernels, there is no kernel {i}")
    return kernels[i - 1]


def _arrays(value: object) -> list[np.ndarray]:
    """2-D numeric arrays in a MATLAB value: cells flattened in MATLAB order, 3-D arrays split on the last axis."""
    a = np.asarray(value)
    if a.dtype == object:
        return [k for item in a.ravel(order="F") for k in _arrays(item)]
    if a.dtype.kind not in "fiu":
        return []
    if a.ndim == 3:
        return [np.asarray(a[..., i], dtype=np.float64) for i in range(a.shape[2])]
    return [np.asarray(a, dtype=np.float64)] if a.ndim == 2 and a.size > 1 else []


def mat_kernels(path: Path) -> list[np.ndarray]:
    """Every 2-D numeric array of a .mat file, variables in file order (v5 via scipy, v7.3 / HDF5 via h5py)."""
    try:
        from scipy.io import loadmat

        try:
            data = loadmat(path)
            return [k for key, v in data.items() if not key.startswith("__") for k in _arrays(v)]
        except NotImplementedError:  # MATLAB v7.3: HDF5
            pass
    except ImportError:
        pass
    try:
        import h5py
    except ImportError:
        raise ValueError(f"{path}: reading .mat kernels needs scipy (MATLAB v5) or h5py (v7.3)") from None
    out: list[np.ndarray] = []
    with h5py.File(path, "r") as f:

        def visit(obj: object) -> None:
            if isinstance(obj, h5py.Group):
                for key in obj:
                    if not key.startswith("#"):  # "#refs#" holds the targets of cell references
                        visit(obj[key])
            elif obj.dtype == h5py.ref_dtype:
                for ref in np.asarray(obj[()]).ravel(order="F"):
                    visit(f[ref])
            else:  # MATLAB stores column-major: h5py gives the transpose
                out.extend(k.T for k in _arrays(obj[()]))

        visit(f)
    return out


def pad_odd(k: torch.Tensor) -> torch.Tensor:
    """Append a zero row/column to even-sized kernels (..., h, w) so both sizes are odd."""
    return F.pad(k, (0, 1 - k.shape[-1] % 2, 0, 1 - k.shape[-2] % 2))


def gaussian_kernel(sigma: float, size: int | None = None) -> torch.Tensor:
    """Isotropic Gaussian (size, size), size defaults to 2 * ceil(3 sigma) + 1; sigma = 0 gives a delta."""
    size = 2 * math.ceil(3 * sigma) + 1 if size is None else size
    if sigma <= 0:
        k = torch.zeros(size, size)
        k[size // 2, size // 2] = 1
        return k
    t = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-0.5 * (t / sigma) ** 2)  # not t^2 / sigma^2: a subnormal sigma's square is 0, and 0 / 0 nan
    k = g[:, None] * g[None, :]
    return (k / k.sum()).float()


def rasterise(points: torch.Tensor, size: int) -> torch.Tensor:
    """Splat (n, 2) (row, col) points bilinearly onto a (size, size) grid; normalised to sum 1."""
    k = torch.zeros(size, size, dtype=torch.float64)
    p = points.double().clamp(0, size - 1 - 1e-6)
    base = p.floor().long()
    frac = p - base
    for dr in (0, 1):
        for dc in (0, 1):
            w = (frac[:, 0] if dr else 1 - frac[:, 0]) * (frac[:, 1] if dc else 1 - frac[:, 1])
            k.index_put_((base[:, 0] + dr, base[:, 1] + dc), w, accumulate=True)
    return (k / k.sum()).float()


def line_kernel(length: int, angle: float) -> torch.Tensor:
    """Linear motion of `length` pixels at `angle` degrees from vertical: (k, k), k = odd >= length."""
    size = length + 1 - length % 2
    a = math.radians(angle)
    t = torch.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length, dtype=torch.float64)
    pts = torch.stack([size // 2 + t * math.cos(a), size // 2 + t * math.sin(a)], dim=1)
    return rasterise(pts, size)


def random_motion_kernel(size: int, gen: torch.Generator | None) -> torch.Tensor:
    """Camera-shake kernel (size, size): a random walk with inertia and occasional jerks, rasterised.

    A simplified Boracchi & Foi (2012) trajectory: 64 steps of random speed whose direction takes Gaussian
    kicks, is weakly pulled back towards the start and sometimes reverses; scaled to a random extent in
    [0.3, 1] of the canvas.
    """
    steps = 64
    rand = torch.rand(2 * steps + 2, generator=gen, dtype=torch.float64)
    kicks = torch.randn(steps, 2, generator=gen, dtype=torch.float64)
    angle = 2 * math.pi * rand[0].item()
    v = torch.tensor([math.cos(angle), math.sin(angle)], dtype=torch.float64)
    pos = torch.zeros(2, dtype=torch.float64)
    pts = [pos.clone()]
    for i in range(steps):
        v = v + 0.4 * kicks[i] - 0.005 * pos
        if rand[i + 2] < 0.03:  # an impulsive jerk
            v = -v
        v = v / v.norm().clamp_min(1e-8)
        pos = pos + v * (0.2 + 0.8 * rand[steps + 2 + i])
        pts.append(pos.clone())
    p = torch.stack(pts)
    p = p - (p.amax(0) + p.amin(0)) / 2
    extent = (p.amax(0) - p.amin(0)).max().clamp_min(1e-8)
    p = p * ((0.3 + 0.7 * rand[1].item()) * (size - 2) / extent)
    return rasterise(p + size // 2, size)


def cubic(t: torch.Tensor) -> torch.Tensor:
    """Keys cubic with a = -0.5 (MATLAB imresize, PIL, torch antialias=True)."""
    t = t.abs()
    return torch.where(
        t <= 1, 1.5 * t**3 - 2.5 * t**2 + 1, torch.where(t < 2, -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2, 0 * t)
    )


def bicubic_kernel(scale: int) -> torch.Tensor:
    """Antialiased bicubic downscaling kernel (k, k) for `conv` then x[::scale, ::scale].

    It includes the (scale - 1) / 2 pixel offset of imresize's sample centres, so sampling at 0, s, 2s, ...
    reproduces `F.interpolate(mode="bicubic", antialias=True)` away from the borders.
    """
    r = math.ceil(2 * scale + (scale - 1) / 2)
    d = torch.arange(-r, r + 1, dtype=torch.float64)
    w = cubic((d + (scale - 1) / 2) / scale)
    k = w[:, None] * w[None, :]
    return (k / k.sum()).float()


def stack_kernels(kernels: list[torch.Tensor]) -> torch.Tensor:
    """Centre-pad odd kernels to a common odd size: (B, k, k)."""
    size = max(max(k.shape[-2:]) for k in kernels)
    out = []
    for k in kernels:
        ph, pw = (size - k.shape[-2]) // 2, (size - k.shape[-1]) // 2
        out.append(F.pad(k, (pw, size - k.shape[-1] - pw, ph, size - k.shape[-2] - ph)))
    return torch.stack(out)


def _pad_index(n: int, before: int, after: int, boundary: str) -> torch.Tensor:
    idx = torch.arange(-before, n + after)
    if boundary == "circular":
        return idx % n
    if n == 1:
        return torch.zeros_like(idx)
    idx = idx % (2 * n - 2)  # reflect without repeating the edge, for any pad size
    return torch.where(idx >= n, 2 * n - 2 - idx, idx)


def conv(x: torch.Tensor, kernel: torch.Tensor, boundary: str = "reflect") -> torch.Tensor:
    """Convolve x (B, C, H, W) with a kernel (kh, kw) or one per image (B, kh, kw); same-size output.

    `boundary` is "reflect" (mirror without edge repeat, any kernel size) or "circular" (periodic, which
    `BlurOperator` reproduces exactly by FFT). The kernel centre is index (kh // 2, kw // 2).
    """
    if boundary not in ("reflect", "circular"):
        raise ValueError(f"boundary must be 'reflect' or 'circular', got {boundary!r}")
    b, c, h, w = x.shape
    k = kernel.to(x.device, x.dtype)
    k = k.expand(b, *k.shape[-2:]) if k.dim() == 2 else k
    kh, kw = k.shape[-2:]
    rows = _pad_index(h, kh - 1 - kh // 2, kh // 2, boundary).to(x.device)
    cols = _pad_index(w, kw - 1 - kw // 2, kw // 2, boundary).to(x.device)
    xp = x[:, :, rows][:, :, :, cols]
    if kh * kw > FFT_TAPS.get(x.dtype, 625):  # valid linear convolution = the tail of a circular one on the padded grid
        spec = torch.fft.rfft2(xp) * torch.fft.rfft2(k, s=xp.shape[-2:]).unsqueeze(1)
        return torch.fft.irfft2(spec, s=xp.shape[-2:])[..., kh - 1 :, kw - 1 :].to(x.dtype).contiguous()
    weight = k.flip(-2, -1).repeat_interleave(c, dim=0).unsqueeze(1)  # (B*C, 1, kh, kw)
    y = F.conv2d(xp.reshape(1, b * c, *xp.shape[-2:]), weight, groups=b * c)
    return y.view(b, c, h, w)
