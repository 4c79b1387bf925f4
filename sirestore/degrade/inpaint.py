"""Inpainting: holes from random free-form brush strokes, random boxes, or a mask image."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from sirestore.degrade.base import Degradation, register, uniform
from sirestore.degrade.operators import MaskOperator, single

MAX_DRAWS = 5000  # safety cap on strokes segments / boxes per mask


class _Rng:
    """Scalar uniforms drawn from a torch.Generator in blocks (so numpy/OpenCV drawing stays seeded)."""

    def __init__(self, gen: torch.Generator | None) -> None:
        self.gen, self.buf, self.i = gen, [], 0

    def __call__(self, lo: float = 0.0, hi: float = 1.0) -> float:
        if self.i == len(self.buf):
            self.buf, self.i = torch.rand(256, generator=self.gen, dtype=torch.float64).tolist(), 0
        self.i += 1
        return lo + (hi - lo) * self.buf[self.i - 1]


def freeform_mask(h: int, w: int, ratio: float, rng: _Rng) -> np.ndarray:
    """Holes (1) from random thick polylines (DeepFill v2 / LaMa style) until the hole fraction reaches
    `ratio`: (h, w) uint8. Brush widths are 5-15 % and segment lengths 10-30 % of min(h, w)."""
    holes = np.zeros((h, w), np.uint8)
    s, target, draws = min(h, w), ratio * h * w, 0
    while np.count_nonzero(holes) < target and draws < MAX_DRAWS:
        r, c = rng(0, h - 1), rng(0, w - 1)
        angle, width = rng(0, 2 * math.pi), max(1, round(rng(0.05, 0.15) * s))
        for _ in range(int(rng(4, 13))):
            angle += rng(-math.pi / 3, math.pi / 3)
            length = rng(0.1, 0.3) * s
            r2 = min(max(r + length * math.sin(angle), 0), h - 1)
            c2 = min(max(c + length * math.cos(angle), 0), w - 1)
            cv2.line(holes, (round(c), round(r)), (round(c2), round(r2)), 1, width)
            cv2.circle(holes, (round(c2), round(r2)), width // 2, 1, -1)
            r, c, draws = r2, c2, draws + 1
            if np.count_nonzero(holes) >= target:
                break
    return holes


def box_mask(h: int, w: int, ratio: float, rng: _Rng) -> np.ndarray:
    """Holes (1) from random rectangles (sides 10-40 % of the image, shrunk to the remaining hole area)
    until the hole fraction reaches `ratio`: (h, w) uint8."""
    holes = np.zeros((h, w), np.uint8)
    target, draws = ratio * h * w, 0
    while (count := np.count_nonzero(holes)) < target and draws < MAX_DRAWS:
        bh, bw = rng(0.1, 0.4) * h, rng(0.1, 0.4) * w
        shrink = min(1.0, math.sqrt(max(target - count, 1) / (bh * bw)))
        bh, bw = max(1, round(bh * shrink)), max(1, round(bw * shrink))
        top, left = int(rng(0, h - bh + 1 - 1e-9)), int(rng(0, w - bw + 1 - 1e-9))
        holes[top : top + bh, left : left + bw] = 1
        draws += 1
    return holes


def file_mask(path: str | Path, h: int, w: int) -> np.ndarray:
    """Holes (1) where a mask image is bright (>= 128, the LaMa convention), resized (nearest) to (h, w)."""
    im = Image.open(path).convert("L").resize((w, h), Image.Resampling.NEAREST)
    return (np.asarray(im) >= 128).astype(np.uint8)


def fill_holes(y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fill the holes (mask 0) of y (B, C, H, W) smoothly from the observed pixels by push-pull: a pyramid of
    mask-weighted means, each level filling the gaps of the finer one. Observed pixels are kept exactly."""
    w = mask.to(y.device, y.dtype).expand(y.shape[0], 1, *y.shape[-2:])
    if bool((w > 0).all()):
        return y
    if min(y.shape[-2:]) <= 1 or not bool((w > 0).any()):
        return torch.where(w > 0, y, y.new_tensor(0.5))
    coarse_w = F.avg_pool2d(w, 2, ceil_mode=True)
    coarse = F.avg_pool2d(y * w, 2, ceil_mode=True) / coarse_w.clamp_min(1e-12)
    up = F.interpolate(
        fill_holes(coarse, (coarse_w > 0).to(y.dtype)), size=y.shape[-2:], mode="bilinear", align_corners=False
    )
    return torch.where(w > 0, y, up)


def telea_fill(y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Holes (mask 0) of y (B, C, H, W), C = 1 or 3, filled by OpenCV's Telea inpainting (8-bit), observed
    pixels kept exactly."""
    from sirestore import baselines

    m = mask.to(y.device, y.dtype).expand(y.shape[0], 1, *y.shape[-2:])
    filled = []
    for image, known in zip(y.detach().cpu(), m.cpu()):
        out = baselines.inpaint(image.permute(1, 2, 0).numpy(), known[0].numpy() > 0.5, "telea")
        filled.append(torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1))
    return torch.where(m > 0.5, y, torch.stack(filled).to(y.device, y.dtype))


@register
@dataclass
class Inpaint(Degradation):
    """`inpaint`: y = mask * x + (1 - mask) * fill, mask 1 = known pixel, 0 = hole, shared by the channels.

    `mask` = "freeform" (random brush strokes), "box" (random rectangles), each drawn per image until the
    hole fraction reaches `ratio` (or a per-image ratio ~ U[ratio_min, ratio_max] when ratio_max is set),
    or a mask image path (white = hole, resized to the input; ratio ignored).
    Params: mask (B, 1, H, W) float, ratio (B,) the achieved hole fraction.
    """

    mask: str = "freeform"  # "freeform", "box", or a path to a mask image (white = hole)
    ratio: float = 0.3  # target hole fraction in [0, 0.9]
    ratio_min: float = 0.1  # lower bound of a random ratio (with ratio_max)
    ratio_max: float | None = None  # upper bound of a random ratio; None = fixed ratio
    fill: float = 0.0  # value written into the holes
    smooth: bool = False  # fill the holes from the known pixels by push-pull instead
    telea: bool = False  # fill the holes by OpenCV's Telea inpainting instead, on 8-bit levels (what
    # `restore --mask` gives the network)
    name = "inpaint"

    def __post_init__(self) -> None:
        hi = self.ratio_min if self.ratio_max is None else self.ratio_max
        if not (0 <= self.ratio <= 0.9 and 0 <= self.ratio_min <= hi <= 0.9):
            raise ValueError("ratio, ratio_min and ratio_max must lie in [0, 0.9] with ratio_min <= ratio_max")
        if self.smooth and self.telea:
            raise ValueError("choose one fill: smooth or telea")
        if self.mask not in ("freeform", "box") and not Path(self.mask).is_file():
            raise ValueError(f"mask must be 'freeform', 'box' or a mask image file, got {self.mask!r}")

    def apply(self, x: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, dict]:
        b, _, h, w = x.shape
        if self.mask in ("freeform", "box"):
            if self.ratio_max is None:
                ratios = [self.ratio] * b
            else:
                ratios = uniform(self.ratio_min, self.ratio_max, b, gen, torch.device("cpu")).tolist()
            rng, draw = _Rng(gen), freeform_mask if self.mask == "freeform" else box_mask
            holes = np.stack([draw(h, w, r, rng) for r in ratios])
        else:
            holes = np.repeat(file_mask(self.mask, h, w)[None], b, axis=0)
        mask = (1 - torch.from_numpy(holes)).to(x.device, x.dtype).unsqueeze(1)
        if self.telea:
            y = telea_fill(x * mask, mask)
        else:
            y = fill_holes(x * mask, mask) if self.smooth else x * mask + self.fill * (1 - mask)
        return y, {"mask": mask, "ratio": 1 - mask.mean(dim=(1, 2, 3))}

    def operator(self, params: dict | list[dict]) -> MaskOperator:
        """MaskOperator with the applied mask (exact when fill = 0 and not smooth; otherwise A x = mask * y)."""
        return MaskOperator(single(params)["mask"])
