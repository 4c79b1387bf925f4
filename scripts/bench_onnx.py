"""PSNR and CPU throughput of the torch backend against onnxruntime fp32 and int8 exports.

PSNR on CBSD68 with AWGN sigma = 25 under the `sirestore eval` protocol (image k seeded with
seed + k, uint8 rounding; `sirestore.evaluate.evaluate_folder`), and throughput on a 512 x 512
color image (megapixels per second, best of --repeats), all in one process with the same number
of threads; ratios are relative to torch.

    python scripts/bench_onnx.py --weights runs/phase1_ema.safetensors --limit 10
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sirestore.checkpoint import load_weights, sha256  # noqa: E402
from sirestore.evaluate import evaluate_folder  # noqa: E402
from sirestore.export import export_onnx  # noqa: E402
from sirestore.ort import OrtRestorer  # noqa: E402
from sirestore.restore import Restorer, default_weights  # noqa: E402


def throughput(restorer: Restorer, size: int, repeats: int) -> float:
    """Megapixels per second restoring one (1, 3, size, size) image: best of `repeats` after a warm-up."""
    y = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    restorer.restore_tensor(y)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        restorer.restore_tensor(y)
        best = min(best, time.perf_counter() - start)
    return size * size / 1e6 / best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=default_weights())
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "CBSD68")
    p.add_argument("--sigma", type=float, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--size", type=int, default=512, help="side of the throughput image (default 512)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="threads for torch and onnxruntime (default 1)")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    model = load_weights(args.weights)
    spec = f"awgn:sigma={args.sigma:g}"
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        digest = sha256(args.weights)
        export_onnx(model, fp32, weights_sha256=digest)
        export_onnx(model, int8, int8=True, weights_sha256=digest)
        sizes = {"torch fp32": args.weights.stat().st_size, "ort fp32": fp32.stat().st_size}
        sizes["ort int8"] = int8.stat().st_size
        restorers = {
            "torch fp32": Restorer(model=model),
            "ort fp32": OrtRestorer(fp32, threads=args.threads),
            "ort int8": OrtRestorer(int8, threads=args.threads),
        }
        rows = {}
        for name, restorer in restorers.items():
            result = evaluate_folder(restorer, args.data, spec, seed=args.seed, limit=args.limit)
            rows[name] = (result.psnr, result.ssim, throughput(restorer, args.size, args.repeats), result.images)
    n = rows["torch fp32"][3]
    print(f"weights {args.weights}, {args.data.name} {spec}, {n} images, 1 step euler")
    print(f"throughput: {args.size}x{args.size} color, best of {args.repeats}, {args.threads} thread(s)\n")
    print("| backend | PSNR (dB) | SSIM | dPSNR | MP/s | speed vs torch | file (MB) |")
    print("|---|---|---|---|---|---|---|")
    base_psnr, _, base_speed, _ = rows["torch fp32"]
    for name, (psnr, ssim, speed, _) in rows.items():
        print(
            f"| {name} | {psnr:.3f} | {ssim:.4f} | {psnr - base_psnr:+.3f} | {speed:.3f} | "
            f"{speed / base_speed:.2f}x | {sizes[name] / 1e6:.2f} |"
        )


if __name__ == "__main__":
    main()
