"""Throughput of one-step restoration against OpenCV non-local means, in one process.

    python scripts/bench_speed.py [--weights W] [--size 512] [--repeats 5]

Both run on the same noisy 512x512 color image (a CBSD68 image mirrored to size, AWGN
sigma 25, seed 0), alternately, with torch and OpenCV on all cores; the ratio of median
times is printed (speed figures are ratios, never absolute times on a shared CPU).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from sirestore.data import list_images, load_uint8
from sirestore.nn.unet import count_parameters
from sirestore.restore import Restorer


def test_image(data: Path, size: int) -> np.ndarray:
    x = load_uint8(list_images(data)[0], gray=False).permute(1, 2, 0).numpy()
    tiled = np.pad(x, ((0, max(0, size - x.shape[0])), (0, max(0, size - x.shape[1])), (0, 0)), mode="symmetric")
    noisy = tiled[:size, :size].astype(np.float32) + 25 * np.random.default_rng(0).standard_normal((size, size, 3))
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/CBSD68"))
    parser.add_argument("--weights")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    image = test_image(args.data, args.size)
    restorer = Restorer(weights=args.weights)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    methods = {
        "sirestore 1 step (torch)": lambda: restorer(image),
        "OpenCV fastNlMeansDenoisingColored(h=10, 10, 7, 21)": lambda: cv2.fastNlMeansDenoisingColored(
            bgr, None, 10, 10, 7, 21
        ),
    }
    for fn in methods.values():  # warm-up
        fn()
    times = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    mp = args.size * args.size / 1e6
    base = statistics.median(times["OpenCV fastNlMeansDenoisingColored(h=10, 10, 7, 21)"])
    print(
        f"{args.size}x{args.size} color, {torch.get_num_threads()} torch threads, OpenCV {cv2.__version__}, "
        f"{count_parameters(restorer.model)} parameters, median of {args.repeats}"
    )
    print("| method | s / image | MP/s | throughput vs OpenCV NLM |\n|---|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.3f} | {mp / med:.2f} | {base / med:.2f}x |")


if __name__ == "__main__":
    main()
