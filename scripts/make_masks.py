"""Write the committed free-form inpainting masks of the benchmarks (white = hole, LaMa convention).

    python scripts/make_masks.py [--data ../shared/data/CBSD68] [--out benchmarks/masks]

For each hole-ratio band (10-20 %, 20-40 %, 40-60 %) and each image k of the sorted test set, one
mask of the image's size with a target hole fraction drawn uniformly in the band, from the generator
seeded with 1000 * band + k (`degrade.inpaint.freeform_mask`; redrawn with seed + 100000 while the
last stroke overshoots the band). The masks are committed so that benchmark
rows never change with the drawing code; rerunning this script reproduces them bit for bit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sirestore.degrade.inpaint import _Rng, freeform_mask  # noqa: E402

BANDS = ((0.1, 0.2), (0.2, 0.4), (0.4, 0.6))


def band_dir(out: Path, lo: float, hi: float) -> Path:
    """benchmarks/masks/freeform_10-20 and so on."""
    return out / f"freeform_{round(lo * 100)}-{round(hi * 100)}"


def band_mask(h: int, w: int, lo: float, hi: float, seed: int) -> np.ndarray:
    """(h, w) uint8 holes with a fraction in [lo, hi]: the first draw (seeds seed, seed + 10^5, ...)
    whose last stroke did not overshoot the band."""
    for attempt in range(100):
        rng = _Rng(torch.Generator().manual_seed(seed + 100_000 * attempt))
        holes = freeform_mask(h, w, rng(lo, hi), rng)
        if lo <= holes.mean() <= hi:
            return holes
    raise RuntimeError(f"no mask in the band {lo}-{hi} after 100 draws (seed {seed})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/CBSD68")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/masks")
    args = p.parse_args()
    names = sorted(f for f in args.data.iterdir() if f.suffix.lower() in (".png", ".bmp", ".jpg", ".tif"))
    for b, (lo, hi) in enumerate(BANDS):
        folder = band_dir(args.out, lo, hi)
        folder.mkdir(parents=True, exist_ok=True)
        ratios = []
        for k, f in enumerate(names):
            w, h = Image.open(f).size
            holes = band_mask(h, w, lo, hi, 1000 * b + k)
            ratios.append(holes.mean())
            Image.fromarray(holes * 255).convert("1").save(folder / f"{f.stem}.png", optimize=True)
        print(
            f"{folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder}: {len(names)} masks, "
            f"hole fraction {min(ratios):.3f}..{max(ratios):.3f} (mean {np.mean(ratios):.3f})"
        )


if __name__ == "__main__":
    main()
