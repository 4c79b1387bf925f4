"""Denoising benchmark of the shipped (or given) weights, through `sirestore eval`.

    python scripts/bench_denoise.py [--weights W] [--steps 1 4] [--precision fp32] [--data ../shared/data]
                                    [--out docs/denoise.md]

Runs CBSD68 (color) and BSD68, Set12 (gray) at sigma 15/25/50, seed 0 (image k uses seed k),
AWGN not clipped, PSNR/SSIM on uint8 as in ../shared/README.md, and writes a markdown table
beside the published numbers quoted there. The network runs in float32 unless --precision says
otherwise (see `sirestore restore --help`).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch

from sirestore import load_model
from sirestore.cli import main as cli
from sirestore.nn.unet import count_parameters
from sirestore.precision import PRECISIONS

PUBLISHED = {  # ../shared/README.md, RGB / gray PSNR (dB) at sigma 15 / 25 / 50
    "CBSD68": {
        "CBM3D": (33.52, 30.71, 27.38),
        "CDnCNN-B (0.67M)": (33.90, 31.24, 27.95),
        "FFDNet (0.85M)": (33.87, 31.21, 27.96),
        "DRUNet (32.6M)": (34.30, 31.69, 28.51),
    },
    "BSD68": {
        "BM3D": (31.08, 28.57, 25.60),
        "DnCNN (0.56M)": (31.73, 29.23, 26.23),
        "FFDNet (0.49M)": (31.63, 29.19, 26.29),
        "DRUNet (32.6M)": (31.91, 29.48, 26.59),
    },
    "Set12": {
        "BM3D": (32.37, 29.97, 26.72),
        "DnCNN (0.56M)": (32.86, 30.44, 27.18),
        "DRUNet (32.6M)": (33.25, 30.94, 27.90),
    },
}
SIGMAS = (15, 25, 50)


def run(data: Path, weights: str | None, steps: int, precision: str) -> dict:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in PUBLISHED:
            for sigma in SIGMAS:
                out = Path(tmp) / f"{name}_{sigma}.json"
                argv = [
                    "eval",
                    "--data",
                    str(data / name),
                    "--degradation",
                    f"awgn:sigma={sigma}",
                    "--seed",
                    "0",
                    "--steps",
                    str(steps),
                    "--precision",
                    precision,
                    "--json",
                    str(out),
                ]
                if weights:
                    argv += ["--weights", weights]
                assert cli(argv) == 0
                results[name, sigma] = json.loads(out.read_text())
    return results


def table(results: dict[int, dict], params: int) -> str:
    lines = ["| set | method | sigma 15 | sigma 25 | sigma 50 |", "|---|---|---|---|---|"]
    for name, published in PUBLISHED.items():
        for steps, res in results.items():
            ours = " | ".join(f"**{res[name, s]['psnr']:.2f}** / {res[name, s]['ssim']:.4f}" for s in SIGMAS)
            unit = "step" if steps == 1 else "steps"
            lines.append(f"| {name} | sirestore ({params / 1e6:.2f}M), {steps} {unit} (PSNR / SSIM) | {ours} |")
        first = next(iter(results.values()))
        inp = " | ".join(f"{first[name, s]['input_psnr']:.2f}" for s in SIGMAS)
        lines.append(f"| {name} | noisy input | {inp} |")
        for method, values in published.items():
            lines.append(f"| {name} | {method} (published) | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--weights")
    parser.add_argument("--steps", type=int, nargs="+", default=[1], help="sampler steps, one row each")
    parser.add_argument("--out", type=Path, default=Path("docs/denoise.md"))
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS, help="the network's arithmetic")
    args = parser.parse_args()
    results = {steps: run(args.data, args.weights, steps, args.precision) for steps in args.steps}
    params = count_parameters(load_model(args.weights).net)
    steps = " ".join(map(str, args.steps))
    options = f" --weights {args.weights}" if args.weights else ""
    options += f" --precision {args.precision}" if args.precision != "fp32" else ""
    options += (
        f" --out {args.out}" if args.out != parser.get_default("out") else ""
    )  # else it overwrites docs/denoise.md
    text = (
        f"# Denoising benchmark\n\nProduced by `python scripts/bench_denoise.py --steps {steps}{options}` "
        f"(each cell is one `sirestore eval --data DATA/SET --degradation awgn:sigma=S --seed 0 --steps "
        f"N --precision P`, Euler sampler; network arithmetic {args.precision}), on "
        f"{platform.processor() or platform.machine()} CPU, torch {torch.__version__}.\n"
        "AWGN not clipped, image k seeded with k, PSNR (dB) on uint8 over all channels, no border; "
        "published rows quoted from ../shared/README.md (same protocol).\n\n" + table(results, params) + "\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
