"""Clean training images held in memory, random crops, and degraded pairs made on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def list_images(folder: str | Path) -> list[Path]:
    """Image files of a folder (not recursive), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_uint8(path: Path, gray: bool) -> torch.Tensor:
    """Read an image as a uint8 (C, H, W) tensor, C = 1 for gray and 3 for color."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert("L" if gray else "RGB"))
    arr = arr[None] if gray else arr.transpose(2, 0, 1)
    return torch.from_numpy(np.array(arr, copy=True))


class CropSampler:
    """Random crops of clean images: a batch is all color or all gray (C = 3 or 1).

    `color` and `gray` are lists of uint8 (C, H, W) tensors; images smaller than the crop
    are skipped. Every draw uses the given generator, so the stream is reproducible.
    """

    def __init__(self, color: list[torch.Tensor], gray: list[torch.Tensor], patch: int, gray_prob: float) -> None:
        self.color = [im for im in color if min(im.shape[1:]) >= patch]
        self.gray = [im for im in gray if min(im.shape[1:]) >= patch]
        if not self.color and not self.gray:
            raise ValueError(f"no training image is at least {patch}x{patch}")
        self.patch = patch
        self.gray_prob = gray_prob if self.gray else 0.0
        if not self.color:
            self.gray_prob = 1.0

    def sample(self, batch: int, gen: torch.Generator) -> torch.Tensor:
        """(batch, C, patch, patch) float in [0, 1], randomly flipped and rotated."""
        pool = self.gray if torch.rand((), generator=gen).item() < self.gray_prob else self.color
        idx = torch.randint(len(pool), (batch,), generator=gen)
        crops = []
        for i in idx.tolist():
            im = pool[i]
            top = int(torch.randint(im.shape[1] - self.patch + 1, (), generator=gen))
            left = int(torch.randint(im.shape[2] - self.patch + 1, (), generator=gen))
            crop = im[:, top : top + self.patch, left : left + self.patch]
            k, flip = torch.randint(4, (2,), generator=gen).tolist()
            crop = torch.rot90(crop, k, (1, 2))
            crops.append(crop.flip(2) if flip % 2 else crop)
        return torch.stack(crops).float() / 255


def load_folder(folder: str | Path, gray: bool, skip: set[str] | None = None) -> list[torch.Tensor]:
    """All images of a folder as uint8 tensors, minus the file stems in `skip`."""
    skip = skip or set()
    return [load_uint8(p, gray) for p in list_images(folder) if p.stem not in skip]


def read_exclude_list(path: str | Path) -> set[str]:
    """Image ids of an exclusion list: first column of its non-comment lines."""
    path = Path(path)
    if not path.is_file():
        return set()
    ids = set()
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            ids.add(line.split()[0])
    return ids
