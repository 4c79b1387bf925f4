"""Classical restoration baselines, run beside the network in the benchmarks.

Every function maps an H x W x C float32 image in [0, 1] (C = 1 or 3; the degraded
observation) to its restoration, same shape, clipped to [0, 1]. They use numpy, OpenCV and
torch only (core dependencies); BM3D is used when the optional `bm3d` package is installed.

- noise: OpenCV non-local means (`nlm`), BM3D (`bm3d_denoise`)
- blur with the true kernel: Wiener filter with a 1/f^2 image prior (`wiener`), Richardson-Lucy (`richardson_lucy`)
- inpainting with the mask: OpenCV Telea and Navier-Stokes (`inpaint`)
- low light: CLAHE on the L channel of Lab (`clahe`)
- haze: dark channel prior with a guided-filter refined transmission (`dark_channel_prior`)
- speckle: Lee filter (`lee`)
- low resolution: bicubic upsampling (`bicubic_up`)
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from sirestore.degrade.resize import bicubic_resize


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _f32(x: np.ndarray, channels: int) -> np.ndarray:
    out = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return out.reshape(out.shape[0], out.shape[1], channels)


def _channels(x: np.ndarray) -> int:
    if x.ndim != 3 or x.shape[2] not in (1, 3):
        raise ValueError(f"expected an H x W x C image with C = 1 or 3, got shape {x.shape}")
    return x.shape[2]


def nlm(y: np.ndarray, sigma: float) -> np.ndarray:
    """OpenCV fast non-local means with filter strength h = 0.8 sigma (sigma in 0..255 units),
    templates 7x7 and searches 21x21; the colour variant on Lab for C = 3."""
    c = _channels(y)
    h = max(1.0, 0.8 * float(sigma))
    if c == 3:
        out = cv2.fastNlMeansDenoisingColored(_u8(y), None, h, h, 7, 21)
    else:
        out = cv2.fastNlMeansDenoising(_u8(y[..., 0]), None, h, 7, 21)
    return _f32(out, c)


def bm3d_denoise(y: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D (CBM3D for colour) from the optional, non-commercial `bm3d` package; ImportError when absent."""
    import bm3d  # noqa: PLC0415 - optional baseline

    c = _channels(y)
    s = float(sigma) / 255.0
    out = bm3d.bm3d_rgb(y, s) if c == 3 else bm3d.bm3d(y[..., 0], s)
    return np.clip(np.asarray(out, np.float32).reshape(y.shape), 0, 1)


def _otf(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Transfer function of a centred kernel (kh, kw) for a circular convolution on `shape`."""
    kh, kw = kernel.shape
    pad = np.zeros(shape, np.float64)
    pad[:kh, :kw] = kernel
    pad = np.roll(pad, (-(kh // 2), -(kw // 2)), axis=(0, 1))
    return np.fft.rfft2(pad)


def _edge_pad(y: np.ndarray, kernel: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Pad by reflection so the circular model of the blur does not ring at the borders."""
    ph, pw = kernel.shape[0], kernel.shape[1]
    return np.pad(y, ((ph, ph), (pw, pw), (0, 0)), mode="symmetric"), ph, pw


def wiener(y: np.ndarray, kernel: np.ndarray, sigma: float) -> np.ndarray:
    """Wiener deconvolution with the true kernel (kh, kw) and a natural-image prior whose power
    spectrum falls as 1 / |f|^2: X = conj(K) Y / (|K|^2 + s^2 |D|^2 / g^2), with s = sigma / 255,
    |D|^2 the spectrum of the finite-difference gradient and g^2 the mean squared gradient of y."""
    c = _channels(y)
    padded, ph, pw = _edge_pad(y.astype(np.float64), kernel)
    shape = padded.shape[:2]
    k = _otf(kernel / kernel.sum(), shape)
    d = np.abs(_otf(np.array([[0, 0, 0], [0, -1, 1], [0, 0, 0]]), shape)) ** 2
    d = d + np.abs(_otf(np.array([[0, 0, 0], [0, -1, 0], [0, 1, 0]]), shape)) ** 2
    g2 = max(float((np.diff(y, axis=0) ** 2).mean() + (np.diff(y, axis=1) ** 2).mean()), 1e-6)
    reg = max(float(sigma) / 255.0, 1e-3) ** 2 * d / g2
    out = np.empty_like(padded)
    for i in range(c):
        out[..., i] = np.fft.irfft2(np.conj(k) * np.fft.rfft2(padded[..., i]) / (np.abs(k) ** 2 + reg), shape)
    return np.clip(out[ph:-ph, pw:-pw], 0, 1).astype(np.float32)


def richardson_lucy(y: np.ndarray, kernel: np.ndarray, iters: int = 10) -> np.ndarray:
    """Richardson-Lucy deconvolution with the true kernel, `iters` multiplicative updates."""
    _channels(y)
    padded, ph, pw = _edge_pad(np.clip(y, 1e-4, 1).astype(np.float64), kernel)
    k = _otf(kernel / kernel.sum(), padded.shape[:2])[..., None]
    shape = padded.shape[:2]

    def blur(x: np.ndarray, otf: np.ndarray) -> np.ndarray:
        return np.fft.irfft2(np.fft.rfft2(x, axes=(0, 1)) * otf, shape, axes=(0, 1))

    x = padded.copy()
    for _ in range(iters):
        x = x * blur(padded / np.maximum(blur(x, k), 1e-6), np.conj(k))
    return np.clip(x[ph:-ph, pw:-pw], 0, 1).astype(np.float32)


def inpaint(y: np.ndarray, known: np.ndarray, method: str = "telea", radius: int = 3) -> np.ndarray:
    """OpenCV inpainting of the pixels where `known` (H x W, bool or 0/1) is false; method
    "telea" (Telea 2004) or "ns" (Navier-Stokes, Bertalmio et al. 2001)."""
    flags = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
    if method not in flags:
        raise ValueError(f"method must be one of {sorted(flags)}, got {method!r}")
    c = _channels(y)
    holes = (~known.astype(bool)).astype(np.uint8)
    out = cv2.inpaint(_u8(y if c == 3 else y[..., 0]), holes, radius, flags[method])
    return _f32(out, c)


def clahe(y: np.ndarray, clip: float = 2.0, grid: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of the lightness (L of Lab for colour)."""
    c = _channels(y)
    op = cv2.createCLAHE(clipLimit=clip, tileGridSize=(grid, grid))
    if c == 1:
        return _f32(op.apply(_u8(y[..., 0])), 1)
    lab = cv2.cvtColor(_u8(y), cv2.COLOR_RGB2LAB)
    lab[..., 0] = op.apply(lab[..., 0])
    return _f32(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), 3)


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with a gray guide (H, W) on src (H, W), both float."""
    mean_i, mean_p = _box(guide, r), _box(src, r)
    cov = _box(guide * src, r) - mean_i * mean_p
    var = _box(guide * guide, r) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    return _box(a, r) * guide + _box(b, r)


def dark_channel_prior(y: np.ndarray, patch: int = 15, omega: float = 0.95, t_min: float = 0.1) -> np.ndarray:
    """He et al. (2009) dehazing: dark channel, airlight from its brightest 0.1 %, transmission
    1 - omega * dark(I / A), refined with a guided filter (r = 60, eps = 1e-3), then I = (y - A) / t + A."""
    c = _channels(y)
    img = y.astype(np.float32)
    erode = cv2.getStructuringElement(cv2.MORPH_RECT, (patch, patch))
    dark = cv2.erode(img.min(axis=2), erode)
    n = max(1, dark.size // 1000)
    idx = np.argpartition(dark.ravel(), -n)[-n:]
    airlight = np.maximum(img.reshape(-1, c)[idx].max(axis=0), 1e-3)
    t = 1.0 - omega * cv2.erode((img / airlight).min(axis=2), erode)
    gray = img.mean(axis=2)
    t = np.clip(guided_filter(gray, t.astype(np.float32), 60, 1e-3), t_min, 1.0)
    return np.clip((img - airlight) / t[..., None] + airlight, 0, 1).astype(np.float32)


def lee(y: np.ndarray, looks: float, size: int = 7) -> np.ndarray:
    """Lee filter for multiplicative speckle with `looks` looks (noise variance 1 / looks):
    x = m + w (y - m), w = max(0, var - m^2 / L) / var, from local means over size x size windows."""
    _channels(y)
    img = y.astype(np.float64)
    k = (size, size)
    mean = cv2.blur(img, k, borderType=cv2.BORDER_REFLECT).reshape(img.shape)
    var = cv2.blur(img * img, k, borderType=cv2.BORDER_REFLECT).reshape(img.shape) - mean**2
    noise = mean**2 / float(looks)
    w = np.clip(var - noise, 0, None) / np.maximum(var, 1e-12)
    return np.clip(mean + w * (img - mean), 0, 1).astype(np.float32)


def bicubic_up(lr: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upsampling of the low-resolution image by `scale`, with the bicubic of the `sr`
    degradation (Keys a = -0.5, as MATLAB imresize)."""
    _channels(lr)
    x = torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float32)).permute(2, 0, 1)[None]
    out = bicubic_resize(x, (lr.shape[0] * scale, lr.shape[1] * scale))[0].permute(1, 2, 0)
    return out.clamp(0, 1).numpy()
