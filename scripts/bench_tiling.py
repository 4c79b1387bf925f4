"""Tiling: seams (PSNR tiled - untiled) on CBSD68 and the peak memory of `sirestore restore --max-memory`.

    python scripts/bench_tiling.py [--weights W] [--limit 20] [--tiles 128 256 384] [--auto-budget 100MB]
                                   [--mp-size 6000 4000] [--max-memory 1GB] [--skip-seams] [--skip-memory]

Seams: the first --limit CBSD68 images, AWGN sigma 25, image k seeded with k (the `sirestore eval`
protocol), restored whole and in tiles of each size (overlap 32) and with `max_memory=--auto-budget`
(small enough that tiles are chosen for 481 x 321 images); the mean PSNR difference tiled - untiled
and the largest per-image difference. Memory: a synthetic noisy color PNG of --mp-size pixels
(a CBSD68 image resized, AWGN sigma 25) restored by `python -m sirestore.cli restore` in a child
process with --max-memory; its peak resident memory (ru_maxrss from wait4) against --goal.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sirestore.data import list_images  # noqa: E402
from sirestore.evaluate import evaluate_folder  # noqa: E402
from sirestore.restore import Restorer, default_weights  # noqa: E402
from sirestore.tiling import parse_size, plan_bytes  # noqa: E402


def seams(args: argparse.Namespace) -> None:
    """Print the PSNR difference of tiled restorations against the untiled one."""
    spec = "awgn:sigma=25"
    base = evaluate_folder(Restorer(weights=args.weights), args.data, spec, limit=args.limit)
    h, w = base_shape(args.data)
    configs = {
        f"tile {t}, overlap {args.overlap}": Restorer(weights=args.weights, tile=t, overlap=args.overlap)
        for t in args.tiles
    }
    auto = Restorer(weights=args.weights, max_memory=args.auto_budget, overlap=args.overlap)
    configs[f"auto, max_memory {args.auto_budget} -> {auto.plan((1, 3, h, w))} on {w}x{h}"] = auto
    print(f"{args.data.name}, first {base.images} images, {spec}, untiled PSNR {base.psnr:.3f} dB\n")
    print("| tiles | PSNR (dB) | mean tiled - untiled (dB) | largest per-image abs difference (dB) |")
    print("|---|---|---|---|")
    for name, restorer in configs.items():
        res = evaluate_folder(restorer, args.data, spec, limit=args.limit)
        diffs = [r["psnr"] - b["psnr"] for r, b in zip(res.per_image, base.per_image)]
        print(f"| {name} | {res.psnr:.3f} | {res.psnr - base.psnr:+.4f} | {max(abs(d) for d in diffs):.4f} |")


def base_shape(data: Path) -> tuple[int, int]:
    """(height, width) of the first image of a folder."""
    im = cv2.imread(str(list_images(data)[0]))
    return im.shape[0], im.shape[1]


def synthetic_png(data: Path, width: int, height: int, path: Path) -> None:
    """A noisy color photo-like PNG: a CBSD68 image resized to width x height, AWGN sigma 25."""
    im = cv2.resize(cv2.imread(str(list_images(data)[0])), (width, height), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(0)
    for i in range(0, height, 500):  # in bands: small temporaries
        band = im[i : i + 500].astype(np.float32) + rng.normal(0, 25, im[i : i + 500].shape).astype(np.float32)
        im[i : i + 500] = np.clip(band, 0, 255).round().astype(np.uint8)
    cv2.imwrite(str(path), im)


def memory(args: argparse.Namespace) -> None:
    """Peak resident memory of `sirestore restore --max-memory` on a large synthetic image."""
    width, height = args.mp_size
    model = Restorer(weights=args.weights, max_memory=args.max_memory)
    tile = model.plan((1, 3, height, width))
    estimate = plan_bytes(model.model.cfg, (1, 3, height, width), tile) / 2**20
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "big.png", Path(tmp) / "out.png"
        synthetic_png(args.data, width, height, src)
        cmd = [sys.executable, "-m", "sirestore.cli", "restore", str(src), "-o", str(dst)]
        cmd += ["--max-memory", args.max_memory, "--weights", str(args.weights)]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        ok = os.waitstatus_to_exitcode(status) == 0 and dst.exists()
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    goal = parse_size(args.goal) / 2**20
    print(f"\n{width}x{height} color PNG ({width * height / 1e6:.0f} MP), --max-memory {args.max_memory}: tiles {tile}")
    print("| peak RSS (MiB) | goal (MiB) | estimate of the restoration (MiB) | wall time (s) | exit ok |")
    print("|---|---|---|---|---|")
    print(f"| {peak:.0f} | < {goal:.0f} | {estimate:.0f} | {seconds:.1f} | {ok} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=default_weights())
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "CBSD68")
    p.add_argument("--limit", type=int, default=20, help="first N images for the seams (default 20)")
    p.add_argument("--tiles", type=int, nargs="+", default=[128, 256, 384])
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--auto-budget", default="100MB", help="max_memory of the auto row (default 100MB)")
    p.add_argument("--mp-size", type=int, nargs=2, default=[6000, 4000], metavar=("W", "H"))
    p.add_argument("--max-memory", default="1GB")
    p.add_argument("--goal", default="1.5GB", help="peak resident memory goal (default 1.5GB)")
    p.add_argument("--threads", type=int, help="torch threads here and in the child (default: torch's)")
    p.add_argument("--skip-seams", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if not args.skip_seams:
        seams(args)
    if not args.skip_memory:
        memory(args)


if __name__ == "__main__":
    main()
