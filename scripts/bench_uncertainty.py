"""Does the uncertainty map point at the errors? Spearman rank correlation, per image, between the map of
`sirestore restore --samples K --uncertainty map.png` and the absolute error of the restoration, averaged over
CBSD68; writes docs/uncertainty.md (+ .csv).

    python scripts/bench_uncertainty.py [--weights W] [--samples 8] [--steps 1] [--sampler euler] [--limit N]

The map is `sirestore.uncertainty.restore_uncertain`'s: the observation bootstrap when the inpainting mask is
given, Tweedie's posterior standard deviation for a deterministic model on noise (noise level estimated from
the image, or read by an all-in-one model's detector), the spread of the samples for a stochastic model
(e.g. --sampler sde with a stochastic bridge). Degradations, image k seeded seed + k:
- inpaint: the committed 40-60 % free-form masks (benchmarks/masks), mask given; rho over all pixels (the
  observed ones have zero error and zero spread) and over the holes only;
- awgn sigma = 50, blind.
Per-pixel map and error are averaged over the color channels. Calibration: the mean of the map against the
RMS error of the restoration (equal for a calibrated map).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from report import write_csv  # noqa: E402

from sirestore.data import list_images, load_uint8  # noqa: E402
from sirestore.degrade import parse_spec  # noqa: E402
from sirestore.known import Known, load_mask  # noqa: E402
from sirestore.metrics import psnr  # noqa: E402
from sirestore.restore import Restorer  # noqa: E402
from sirestore.uncertainty import restore_uncertain, spearman  # noqa: E402

TASKS = ("inpaint 40-60 %, mask given", "awgn:sigma=50")


def degrade(task: str, x: torch.Tensor, path: Path, gen: torch.Generator) -> tuple[torch.Tensor, Known | None]:
    """The degraded image (1, C, H, W) and what is known of it (the mask for inpainting, else None)."""
    if task.startswith("inpaint"):
        mask = load_mask(ROOT / f"benchmarks/masks/freeform_40-60/{path.stem}.png", holes="white")
        return x * mask, Known(mask=mask)
    return parse_spec(task)(x, gen)[0], None


def run(args: argparse.Namespace) -> list[dict]:
    restorer = Restorer(weights=args.weights, steps=args.steps, sampler=args.sampler, seed=args.seed)
    rows = []
    for task in TASKS:
        for k, path in enumerate(list_images(args.data / "CBSD68")[: args.limit]):
            x = load_uint8(path, gray=False)[None].float() / 255
            y, known = degrade(task, x, path, torch.Generator().manual_seed(args.seed + k))
            start = time.perf_counter()
            out, std, method = restore_uncertain(restorer, y, args.samples, args.seed, known)
            seconds = time.perf_counter() - start
            out = out.clamp(0, 1)
            err = (out - x).abs().mean(1)[0].numpy()
            spread = std[0, 0].numpy()
            holes = (known.mask == 0).numpy() if known is not None else np.ones(err.shape, bool)
            rows.append(
                {
                    "task": task,
                    "image": path.stem,
                    "method": method,
                    "rho": spearman(spread, err),
                    "rho_holes": spearman(spread[holes], err[holes]),
                    "psnr": psnr(out, x),
                    "mean_std": float(spread.mean()),
                    "rmse": float((out - x).pow(2).mean().sqrt()),
                    "seconds": seconds,
                }
            )
            print(f"{task} {path.stem}: rho {rows[-1]['rho']:.3f} ({rows[-1]['rho_holes']:.3f})", flush=True)
    return rows


def write(args: argparse.Namespace, rows: list[dict]) -> None:
    write_csv(args.out.with_suffix(".csv"), rows)
    n = len(rows) // len(TASKS)
    lines = [
        "# Uncertainty maps against the true error",
        "",
        f"Produced by `python scripts/bench_uncertainty.py --weights {args.weights} --samples {args.samples} "
        f"--steps {args.steps} --sampler {args.sampler} --seed {args.seed}"
        + (f" --limit {args.limit}" if args.limit else "")
        + f"` on a CPU ({torch.get_num_threads()} threads), CBSD68 ({n} images, image k seeded {args.seed} + k). "
        "Map: `sirestore restore --samples K --uncertainty map.png` (`sirestore.uncertainty.restore_uncertain`), "
        "averaged over channels; error: |restoration - clean|, averaged over channels. rho: Spearman rank "
        "correlation per image, then averaged (min / max over the images in brackets). Calibration: mean of the "
        "map against the RMS error of the restoration, [0, 1] units.",
        "",
        "Methods: *bootstrap*, the spread of K restorations that each see a random 80 % of the observed pixels "
        "(zero on the observed pixels, which the restoration keeps); *tweedie*, the posterior standard deviation "
        "sigma sqrt(J_ii) of an MMSE denoiser (Tweedie's second-order identity), J_ii from K probed restorations "
        "(Hutchinson), the noise level estimated from the image; *samples*, the spread of K stochastic samples.",
        "",
        "| degradation | method | rho, all pixels | rho, holes only | PSNR | mean map / RMSE | s / image |",
        "|---|---|---|---|---|---|---|",
    ]
    for task in TASKS:
        rs = [r for r in rows if r["task"] == task]
        rho = np.array([r["rho"] for r in rs])
        hole = np.array([r["rho_holes"] for r in rs])
        hole_cell = f"{hole.mean():.3f} [{hole.min():.2f}, {hole.max():.2f}]" if task.startswith("inpaint") else ""
        mean = {key: np.mean([r[key] for r in rs]) for key in ("psnr", "mean_std", "rmse", "seconds")}
        lines.append(
            f"| {task} | {rs[0]['method']} | {rho.mean():.3f} [{rho.min():.2f}, {rho.max():.2f}] | {hole_cell} | "
            f"{mean['psnr']:.2f} | {mean['mean_std']:.4f} / {mean['rmse']:.4f} | {mean['seconds']:.1f} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default="default", help="weights: a shipped name or a .safetensors path")
    p.add_argument("--samples", type=int, default=8, help="K restorations per image")
    p.add_argument("--steps", type=int, default=1, help="sampler steps of each restoration")
    p.add_argument("--sampler", default="euler", help="sde (with a stochastic bridge) makes the model stochastic")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="first N images only")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    p.add_argument("--out", type=Path, default=ROOT / "docs/uncertainty.md")
    args = p.parse_args()
    write(args, run(args))


if __name__ == "__main__":
    main()
