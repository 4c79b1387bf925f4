"""Profile one network evaluation of the shipped model on the CPU (torch.profiler): top operators by self CPU time.

    python scripts/profile_cpu.py [--weights W] [--size 512] [--repeats 3] [--rows 15] [--precision auto]

The input is a (1, 3, size, size) noisy image in channels-last memory, as `Restorer` feeds it;
the time is the median of --repeats timed runs after a warm-up, then one profiled run. The C allocator keeps
freed memory for reuse, as the command line runs (`sirestore.allocator`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sirestore.allocator import keep_freed_memory  # noqa: E402
from sirestore.precision import PRECISIONS  # noqa: E402
from sirestore.restore import Restorer, default_weights  # noqa: E402


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=default_weights())
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rows", type=int, default=15)
    p.add_argument(
        "--precision", default="auto", choices=PRECISIONS, help="the network's arithmetic (see --help of restore)"
    )
    args = p.parse_args()
    keep_freed_memory()  # as the command line runs
    restorer = Restorer(weights=args.weights, precision=args.precision)
    gen = torch.Generator().manual_seed(0)
    y = (torch.rand(1, 3, args.size, args.size, generator=gen) + 0.1 * torch.randn(1, 3, args.size, args.size)).clamp(
        0, 1
    )
    y = y.contiguous(memory_format=torch.channels_last)
    restorer.restore_tensor(y)  # warm-up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        restorer.restore_tensor(y)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"{args.size}x{args.size}, {restorer.precision}, {torch.get_num_threads()} threads: median {median:.3f} s")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        restorer.restore_tensor(y)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
