"""JPEG compression artefacts with a real codec (Pillow / libjpeg)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from sirestore.degrade.base import Degradation, register


def jpeg_roundtrip(image: np.ndarray, quality: int, subsampling: int = 0) -> np.ndarray:
    """Encode and decode one uint8 image (H, W) or (H, W, 3) at `quality`; same shape back."""
    pil = Image.fromarray(np.ascontiguousarray(image))  # uint8 (H, W) -> L, (H, W, 3) -> RGB
    buf = io.BytesIO()
    kwargs = {} if image.ndim == 2 else {"subsampling": subsampling}
    pil.save(buf, format="JPEG", quality=int(quality), **kwargs)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert(pil.mode))


@register
@dataclass
class JPEG(Degradation):
    """`jpeg`: encode/decode each image with Pillow's JPEG at `quality` (1..100) after quantising to uint8.

    C = 1 is encoded as grayscale (L), C = 3 as RGB (YCbCr inside the codec) with chroma `subsampling`
    0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0 (OpenCV's and Pillow's usual default). A fixed `quality`, or, when
    `quality_max` is set, a per-image integer quality ~ U{quality_min..quality_max}. Params: quality (B,).
    """

    quality: int = 30  # JPEG quality factor, 1 (worst) .. 100
    quality_min: int = 10  # lower bound of a random quality (with quality_max)
    quality_max: int | None = None  # upper bound of a random quality; None = fixed quality
    subsampling: int = 2  # colour images: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0
    name = "jpeg"

    def __post_init__(self) -> None:
        hi = self.quality_min if self.quality_max is None else self.quality_max
        if not (1 <= self.quality <= 100 and 1 <= self.quality_min <= hi <= 100):
            raise ValueError("quality, quality_min and quality_max must lie in 1..100 with quality_min <= quality_max")
        if self.subsampling not in (0, 1, 2):
            raise ValueError(f"subsampling must be 0, 1 or 2, got {self.subsampling}")

    def apply(self, x: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, dict]:
        b, c = x.shape[:2]
        if c not in (1, 3):
            raise ValueError(f"jpeg needs 1 or 3 channels, got {c}")
        if self.quality_max is None:
            quality = torch.full((b,), self.quality, dtype=torch.long)
        else:
            quality = torch.randint(self.quality_min, self.quality_max + 1, (b,), generator=gen)
        images = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        images = images[..., 0] if c == 1 else images
        out = [jpeg_roundtrip(im, q, self.subsampling) for im, q in zip(images, quality.tolist(), strict=True)]
        y = torch.from_numpy(np.stack(out)).reshape(b, *x.shape[2:], c).permute(0, 3, 1, 2)
        return y.to(x.device, x.dtype) / 255, {"quality": quality.to(x.device)}
