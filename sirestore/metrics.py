"""Image quality metrics on the protocol of ../shared/README.md.

Images are compared as uint8: the restoration is clamped to [0, 1] and rounded, and the
reference is rounded too (it is uint8 already when read from disk).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch


def to_uint8_levels(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] float -> float64 tensor of integer levels 0..255 (clamped, rounded)."""
    return (x.detach().double().clamp(0, 1) * 255).round()


def crop_border(x: torch.Tensor, border: int) -> torch.Tensor:
    """x (..., H, W) without `border` pixels on each side (x itself for 0): the SR scoring convention."""
    return x[..., border:-border, border:-border] if border else x


def psnr(x: torch.Tensor, ref: torch.Tensor, border: int = 0) -> float:
    """PSNR in dB of x against ref, (B, C, H, W) or (C, H, W) in [0, 1], over all channels."""
    a, b = to_uint8_levels(x), to_uint8_levels(ref)
    a, b = crop_border(a, border), crop_border(b, border)
    mse = (a - b).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(255.0**2 / mse)).item()


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The normalised 1-D Gaussian (size,); the 2-D window is its outer product."""
    g = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(g**2) / (2 * sigma**2))
    return g / g.sum()


def _filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Valid 2-D filtering of x (N, 1, H, W) float64 with the separable window g[:, None] * g[None, :]:
    OpenCV's separable filter per plane (torch has no fast float64 convolution), cropped to the
    positions where the window lies inside the image."""
    r = (len(g) - 1) // 2
    k = g.numpy()
    planes = [cv2.sepFilter2D(p, cv2.CV_64F, k, k)[r : p.shape[0] - r, r : p.shape[1] - r] for p in x[:, 0].numpy()]
    return torch.from_numpy(np.stack(planes))[:, None]


def ssim(x: torch.Tensor, ref: torch.Tensor, border: int = 0) -> float:
    """SSIM (Wang et al. 2004: Gaussian 11x11, sigma 1.5, K1 0.01, K2 0.03, range 255),
    computed per channel on uint8 levels over the valid window positions, then averaged."""
    a, b = to_uint8_levels(x), to_uint8_levels(ref)
    if a.dim() == 3:
        a, b = a[None], b[None]
    a, b = crop_border(a, border), crop_border(b, border)
    n, c, h, w = a.shape
    if min(h, w) < 11:
        raise ValueError(f"SSIM needs images of at least 11 x 11 pixels, got {w} x {h}")
    a, b = a.reshape(n * c, 1, h, w), b.reshape(n * c, 1, h, w)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    m = n * c
    stats = _filter(torch.cat([a, b, a * a, b * b, a * b]), _gaussian_window())
    mu_a, mu_b, e_aa, e_bb, e_ab = stats.split(m)
    var_a, var_b, cov = e_aa - mu_a**2, e_bb - mu_b**2, e_ab - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean().item()


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """ITU-R BT.601 luma (the MATLAB rgb2ycbcr Y used by SR/deraining tables): (B,3,H,W) -> (B,1,H,W) in [0,1]."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return (16 + 65.481 * r + 128.553 * g + 24.966 * b) / 255
