"""Image in -> pad / tile -> sampler -> image out: the `Restorer` of the Python API."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sirestore.checkpoint import load_weights
from sirestore.model import FlowModel
from sirestore.sampler import STEPS, Projection, sample


def default_weights() -> Path:
    """Path of the shipped weights."""
    return Path(str(resources.files("sirestore") / "weights" / "default.safetensors"))


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length `tile` covering [0, size) with at least `overlap` shared."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _ramp(n: int, overlap: int, rise: bool, fall: bool) -> torch.Tensor:
    """1-D blending weights: zero over a margin of overlap/4 pixels at a side shared with a
    neighbouring tile (where the tile's own border effects live), then a raised cosine up to
    one at `overlap`; flat at the image border."""
    r = torch.ones(n)
    margin = overlap // 4
    k = min(overlap, n // 2) - margin
    if k <= 0:
        return r
    edge = torch.cat([torch.zeros(margin), 0.5 - 0.5 * torch.cos(torch.pi * (torch.arange(k) + 0.5) / k)])
    if rise:
        r[: edge.numel()] = edge
    if fall:
        r[n - edge.numel() :] = edge.flip(0)
    return r


def blend_window(h: int, w: int, overlap: int, sides: tuple[bool, bool, bool, bool] = (True,) * 4) -> torch.Tensor:
    """(1, 1, h, w) tile weights; `sides` (top, bottom, left, right) tells which sides have a neighbour."""
    top, bottom, left, right = sides
    return (_ramp(h, overlap, top, bottom)[:, None] * _ramp(w, overlap, left, right)[None, :])[None, None]


def check_tile(tile: int | None, overlap: int) -> None:
    """Raise ValueError unless a tile size leaves room for the blending margins."""
    if tile is not None and tile < 2 * overlap + 16:
        raise ValueError(f"tile must be at least {2 * overlap + 16} pixels (twice the overlap plus 16)")


class Restorer:
    """Restore images with a trained model.

    Accepts numpy arrays (H x W [x C], uint8 / uint16 / float in [0, 1]), PIL images and
    torch tensors ((C, H, W) or (B, C, H, W) float in [0, 1]) and returns the same kind.
    Gray images run as three equal channels; an alpha channel is passed through unchanged.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        steps: int = 1,
        sampler: str = "euler",
        seed: int = 0,
        tile: int | None = None,
        overlap: int = 32,
        device: str | torch.device = "cpu",
        model: FlowModel | None = None,
    ) -> None:
        if steps < 1:
            raise ValueError("steps must be >= 1")
        if sampler not in STEPS:
            raise ValueError(f"unknown sampler {sampler!r}; choose from {', '.join(STEPS)}")
        check_tile(tile, overlap)
        self.device = torch.device(device)
        self.weights = None if model is not None else Path(weights) if weights else default_weights()
        self.model = (model if model is not None else load_weights(self.weights)).to(self.device).eval()
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.steps, self.sampler, self.seed = steps, sampler, seed
        self.tile, self.overlap = tile, overlap

    @torch.no_grad()
    def restore_tensor(self, y: torch.Tensor, dc: Projection | None = None) -> torch.Tensor:
        """Restore a batch y (B, C, H, W), C = 1 or 3, float (not necessarily in [0, 1])."""
        if y.dim() != 4 or y.shape[1] not in (1, 3):
            raise ValueError(f"expected (B, 1 or 3, H, W), got {tuple(y.shape)}")
        gray = y.shape[1] == 1
        y3 = y.expand(-1, 3, -1, -1) if gray else y
        y3 = y3.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last)
        if self.tile and max(y3.shape[-2:]) > self.tile:
            out = self._tiled(y3, dc)
        else:
            out = self._run(y3, dc)
        out = out.mean(1, keepdim=True) if gray else out
        return out.to(y.device).contiguous()

    def _run(self, y: torch.Tensor, dc: Projection | None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed)
        return sample(self.model, y, steps=self.steps, step=STEPS[self.sampler], gen=gen, dc=dc)

    def _tiled(self, y: torch.Tensor, dc: Projection | None) -> torch.Tensor:
        """Overlapping tiles blended with a raised-cosine window (memory ~ one tile)."""
        _, _, h, w = y.shape
        th, tw = min(self.tile, h), min(self.tile, w)
        out = torch.zeros_like(y)
        weight = torch.zeros_like(y[:, :1])
        for top in tile_starts(h, th, self.overlap):
            for left in tile_starts(w, tw, self.overlap):
                sides = (top > 0, top + th < h, left > 0, left + tw < w)
                win = blend_window(th, tw, self.overlap, sides).to(y)
                patch = self._run(y[..., top : top + th, left : left + tw], dc)
                out[..., top : top + th, left : left + tw] += patch * win
                weight[..., top : top + th, left : left + tw] += win
        return out / weight

    def __call__(self, image: np.ndarray | Image.Image | torch.Tensor):
        """Restore one image given as numpy, PIL or torch; returns the same type and layout."""
        if isinstance(image, torch.Tensor):
            x = image if image.dim() == 4 else image[None]
            out = self.restore_tensor(x.float()).clamp(0, 1)
            return out if image.dim() == 4 else out[0]
        if isinstance(image, Image.Image):
            return _restore_pil(self, image)
        if isinstance(image, np.ndarray):
            return _restore_numpy(self, image)
        raise TypeError(f"cannot restore an object of type {type(image).__name__}")


def _restore_numpy(restorer: Restorer, image: np.ndarray) -> np.ndarray:
    """H x W or H x W x C (C in 1, 2, 3, 4: alpha kept) numpy image, any of uint8/uint16/float."""
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4)):
        raise ValueError(f"expected an H x W or H x W x C image with C <= 4, got shape {image.shape}")
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(image.dtype, 1.0)
    arr = image.astype(np.float32) / scale
    planes = arr[..., None] if arr.ndim == 2 else arr
    color = planes[..., :3] if planes.shape[2] >= 3 else planes[..., :1]
    alpha = planes[..., 3:] if planes.shape[2] == 4 else planes[..., 1:] if planes.shape[2] == 2 else None
    x = torch.from_numpy(np.ascontiguousarray(color.transpose(2, 0, 1)))[None]
    out = restorer.restore_tensor(x).clamp(0, 1)[0].numpy().transpose(1, 2, 0)
    dtype = image.dtype if image.dtype.kind == "f" or scale != 1.0 else np.dtype(np.float32)
    out = out.astype(dtype) if scale == 1.0 else np.floor(out * scale + 0.5).astype(dtype)
    if alpha is not None:  # the input's own values, bit for bit, when the dtype is kept
        src = image.reshape(planes.shape)[..., color.shape[2] :] if dtype == image.dtype else alpha
        out = np.concatenate([out, src.astype(dtype, copy=False)], axis=2)
    return out.reshape(image.shape)


def _restore_pil(restorer: Restorer, image: Image.Image) -> Image.Image:
    """PIL image in modes L, LA, RGB, RGBA (others converted to RGB/RGBA first)."""
    mode = image.mode
    if mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in mode or "transparency" in image.info else "RGB")
    out = _restore_numpy(restorer, np.asarray(image))
    return Image.fromarray(out, mode=image.mode)
