"""Uncertainty maps: K stochastic restorations, their mean as the output and their per-pixel
standard deviation as a heat map (`sirestore restore --samples K --uncertainty map.png`)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from sirestore.batch import ImageFn
from sirestore.imageio import ImageInfo, write_image
from sirestore.restore import Restorer


def heat_map(std: np.ndarray, top: float | None = None) -> np.ndarray:
    """Per-pixel standard deviation (H, W) in [0, 1] units -> an H x W x 3 float32 RGB heat map
    (OpenCV's inferno colormap), 0 black and `top` (default: the largest value) bright yellow."""
    top = float(std.max()) if top is None else top
    levels = np.zeros(std.shape, np.uint8) if top <= 0 else np.clip(std / top * 255 + 0.5, 0, 255).astype(np.uint8)
    bgr = cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO)
    return bgr[..., ::-1].astype(np.float32) / 255


def sampling_image_fn(restorer: Restorer, samples: int, map_path: Path | None) -> ImageFn:
    """For `batch.restore_files`: the mean of `samples` restorations as the output; with `map_path`, the
    heat map of their spread written there (8-bit RGB, the image's size, format from the suffix)."""

    def fn(image: np.ndarray, info: ImageInfo) -> tuple[np.ndarray, ImageInfo]:
        y = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
        mean, std = restorer.restore_samples(y, samples)
        if map_path is not None:
            heat = heat_map(std[0, 0].numpy())
            write_image(map_path, heat, ImageInfo(mode="RGB"))
        return mean[0].clamp_(0, 1).permute(1, 2, 0).contiguous().numpy(), info

    return fn


def ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of the flattened a (ties get the mean of their ranks), float64 (n,)."""
    _, inverse, counts = np.unique(np.ravel(a), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + ends - 1) / 2)[inverse.ravel()]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two same-sized arrays (flattened); nan when either is constant."""
    if np.size(a) != np.size(b):
        raise ValueError(f"sizes differ: {np.size(a)} and {np.size(b)}")
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")
