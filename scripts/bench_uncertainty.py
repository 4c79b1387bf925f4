"""Does the uncertainty map point at the errors? Spearman rank correlation, per image, between the spread
of K stochastic restorations (`sirestore restore --samples K --uncertainty map.png`) and the absolute
error of their mean, averaged over CBSD68; writes docs/uncertainty.md (+ .csv).

    python scripts/bench_uncertainty.py --weights W [--samples 8] [--steps 4] [--limit N]

W must be a stochastic model (a stochastic bridge, gamma(t) = s sqrt(t (1 - t)), sampled with the sde
sampler, or a noise -> clean model): the shipped deterministic model has zero spread. Degradations, blind
(the model is not told the degradation), image k seeded seed + k:
- inpaint: the committed 40-60 % free-form masks (benchmarks/masks), holes filled smoothly from the
  observed pixels (the `inpaint:smooth=true` input); rho over all pixels and over the holes only;
- awgn sigma = 50.
Per-pixel spread and error are averaged over the color channels. Also: PSNR of the mean of the K
samples and of the first sample alone.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sirestore.checkpoint import load_weights  # noqa: E402
from sirestore.data import list_images, load_uint8  # noqa: E402
from sirestore.degrade import parse_spec  # noqa: E402
from sirestore.degrade.inpaint import Inpaint  # noqa: E402
from sirestore.metrics import psnr  # noqa: E402
from sirestore.restore import Restorer  # noqa: E402
from sirestore.uncertainty import spearman  # noqa: E402

TASKS = ("inpaint 40-60 %", "awgn:sigma=50")


def degrade(task: str, x: torch.Tensor, path: Path, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The degraded image (1, C, H, W) and the region (H, W) bool where rho is also reported (holes)."""
    if task.startswith("inpaint"):
        op = Inpaint(mask=str(ROOT / f"benchmarks/masks/freeform_40-60/{path.stem}.png"), smooth=True)
        y, params = op(x, gen)
        return y, params[0]["mask"][0, 0] == 0
    y, _ = parse_spec(task)(x, gen)
    return y, torch.ones(x.shape[-2:], dtype=torch.bool)


def run(args: argparse.Namespace) -> list[dict]:
    model = load_weights(args.weights)
    restorer = Restorer(model=model, steps=args.steps, sampler=args.sampler, seed=args.seed)
    if not restorer.stochastic:
        raise SystemExit(f"{args.weights} with --sampler {args.sampler} is deterministic: the spread is 0")
    rows = []
    for task in TASKS:
        for k, path in enumerate(list_images(args.data / "CBSD68")[: args.limit]):
            x = load_uint8(path, gray=False)[None].float() / 255
            y, region = degrade(task, x, path, torch.Generator().manual_seed(args.seed + k))
            start = time.perf_counter()
            mean, std = restorer.restore_samples(y, args.samples)
            seconds = time.perf_counter() - start
            mean = mean.clamp(0, 1)
            err = (mean - x).abs().mean(1)[0].numpy()
            spread = std[0, 0].numpy()
            region = region.numpy()
            first = Restorer(model=model, steps=args.steps, sampler=args.sampler, seed=args.seed)
            rows.append(
                {
                    "task": task,
                    "image": path.stem,
                    "rho": spearman(spread, err),
                    "rho_region": spearman(spread[region], err[region]),
                    "psnr_mean": psnr(mean, x),
                    "psnr_one": psnr(first.restore_tensor(y).clamp(0, 1), x),
                    "seconds": seconds,
                }
            )
            print(f"{task} {path.stem}: rho {rows[-1]['rho']:.3f} ({rows[-1]['rho_region']:.3f})", flush=True)
    return rows


def write(args: argparse.Namespace, rows: list[dict]) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [
        "# Uncertainty maps against the true error",
        "",
        f"Produced by `python scripts/bench_uncertainty.py --weights {args.weights} --samples {args.samples} "
        f"--steps {args.steps} --sampler {args.sampler} --seed {args.seed}"
        + (f" --limit {args.limit}" if args.limit else "")
        + f"` on a CPU ({torch.get_num_threads()} threads), CBSD68 ({len(rows) // len(TASKS)} images), blind. "
        f"Spread: per-pixel standard deviation of {args.samples} restorations (seeds {args.seed}.."
        f"{args.seed + args.samples - 1}), averaged over channels; error: |mean of the samples - clean|, "
        "averaged over channels. rho: Spearman rank correlation per image, then averaged (min / max over "
        "the images in brackets).",
        "",
        "| degradation | rho, all pixels | rho, holes only | PSNR of the mean | PSNR of one sample | s / image |",
        "|---|---|---|---|---|---|",
    ]
    for task in TASKS:
        rs = [r for r in rows if r["task"] == task]
        rho = np.array([r["rho"] for r in rs])
        hole = np.array([r["rho_region"] for r in rs])
        hole_cell = f"{hole.mean():.3f} [{hole.min():.2f}, {hole.max():.2f}]" if task.startswith("inpaint") else ""
        mean = {key: np.mean([r[key] for r in rs]) for key in ("psnr_mean", "psnr_one", "seconds")}
        lines.append(
            f"| {task} | {rho.mean():.3f} [{rho.min():.2f}, {rho.max():.2f}] | {hole_cell} | "
            f"{mean['psnr_mean']:.2f} | {mean['psnr_one']:.2f} | {mean['seconds']:.1f} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, required=True, help="a stochastic model (.safetensors)")
    p.add_argument("--samples", type=int, default=8, help="K restorations per image")
    p.add_argument("--steps", type=int, default=4, help="sampler steps of each restoration")
    p.add_argument("--sampler", default="sde", help="sde for a stochastic bridge, euler for noise -> clean")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="first N images only")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    p.add_argument("--out", type=Path, default=ROOT / "docs/uncertainty.md")
    args = p.parse_args()
    write(args, run(args))


if __name__ == "__main__":
    main()
