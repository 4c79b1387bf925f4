"""CPU throughput (megapixels per second) of sirestore against classical and learned baselines, in one process.

    python scripts/bench_speed.py [--sizes 256 512 1024 2048] [--repeats 3] [--weights W] [--out docs/speed.md] [--all]
                                  [--allocator keep|default]

Every method restores the same noisy square color image per size (the first CBSD68 image mirrored
to size, AWGN sigma 25, seed 0): sirestore at 1, 2 and 4 Euler steps in torch, float32 and (on a
CPU with native bfloat16) bfloat16 autocast, the 1-step onnxruntime exports (fp32 and int8,
exported to a temporary folder), OpenCV fastNlMeansDenoisingColored(h=10, hColor=10, 7, 21), BM3D
when the optional `bm3d` package is importable, a DnCNN-sized network (17 plain 3x3 convolutions of
64 channels with ReLU, batch norm folded away) and DDIM-50 on our backbone (50 evaluations of a
noise -> clean FlowModel of the shipped widths), each in float32 and, beside the bfloat16 rows, in
bfloat16. The last two have random weights: their speed does not depend on the weights. Methods
alternate within each repeat after a warm-up, and the table gives the median time; the ratios are
against OpenCV NLM and the DnCNN-sized network in the same precision, measured in the same run.
Without --all, the slow baselines (DDIM-50, BM3D) run at 256 and 512 px only. The process's C allocator
keeps freed memory for reuse as the command line's does (`sirestore.allocator`; `--allocator default`
leaves glibc's setting), for every method alike. Writes --out (markdown with the conditions) and a PNG plot
beside it.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from plot_pil import line_plot  # noqa: E402

from sirestore.allocator import keep_freed_memory  # noqa: E402
from sirestore.checkpoint import load_weights, sha256  # noqa: E402
from sirestore.data import list_images, load_uint8  # noqa: E402
from sirestore.model import FlowModel, ModelConfig  # noqa: E402
from sirestore.precision import autocast, native_bf16  # noqa: E402
from sirestore.restore import Restorer, default_weights  # noqa: E402
from sirestore.sampler import euler_step, sample  # noqa: E402

NLM = "OpenCV NLM"
DNCNN = "DnCNN-sized (random weights)"
DDIM = "DDIM-50 on our backbone (random weights)"
BF16 = ", bf16"  # in the names of the bfloat16 rows
SLOW = {DDIM, DDIM + BF16, "BM3D"}
SLOW_MAX = 512
ALLOCATORS = {  # the conditions line of each allocator setting
    "keep": "freed memory kept for reuse (`sirestore.allocator.keep_freed_memory`, as the command line runs), "
    "for every method",
    "default": "glibc's default (large blocks mapped fresh and page-faulted on every call), for every method",
}


def test_image(data: Path, size: int) -> np.ndarray:
    """size x size x 3 uint8: a CBSD68 image mirrored to size, AWGN sigma 25 (seed 0)."""
    x = load_uint8(list_images(data)[0], gray=False).permute(1, 2, 0).numpy()
    pad = ((0, max(0, size - x.shape[0])), (0, max(0, size - x.shape[1])), (0, 0))
    mirrored = np.pad(x, pad, mode="symmetric")[:size, :size].astype(np.float32)
    noisy = mirrored + 25 * np.random.default_rng(0).standard_normal((size, size, 3))
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


def dncnn_sized() -> nn.Module:
    """17 layers of 3x3 convolutions, 64 channels, ReLU (DnCNN with batch norm folded into the convs)."""
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(inplace=True)]
    for _ in range(15):
        layers += [nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(64, 3, 3, padding=1))
    return nn.Sequential(*layers).eval().to(memory_format=torch.channels_last)


def to_input(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> (1, 3, H, W) float32 in [0, 1], channels-last."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    return x.contiguous(memory_format=torch.channels_last)


def _nlm(image: np.ndarray) -> Callable[[], object]:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return lambda: cv2.fastNlMeansDenoisingColored(bgr, None, 10, 10, 7, 21)


def _bm3d(image: np.ndarray) -> Callable[[], object]:
    import bm3d

    x = image.astype(np.float32) / 255
    return lambda: bm3d.bm3d_rgb(x, 25 / 255)


def _tensor_call(fn: Callable[[torch.Tensor], object], image: np.ndarray, precision: str) -> Callable[[], object]:
    x = to_input(image)

    def call() -> object:
        with autocast(precision, x.device):
            return fn(x)

    return call


def precisions() -> list[str]:
    """fp32, and bf16 where the CPU computes it natively (emulated bfloat16 is slower: not worth a row)."""
    return ["fp32", "bf16"] if native_bf16() else ["fp32"]


def methods(args: argparse.Namespace, tmp: Path) -> dict[str, Callable[[np.ndarray], Callable[[], object]]]:
    """name -> (image -> a call that restores it)."""
    model = load_weights(args.weights)
    table: dict[str, Callable[[np.ndarray], Callable[[], object]]] = {}
    for precision in precisions():
        for steps in (1, 2, 4):
            restorer = Restorer(model=model, steps=steps, precision=precision)
            name = f"sirestore {steps} step{'s' * (steps > 1)} (torch {precision})"
            table[name] = lambda im, r=restorer: lambda: r(im)
    try:
        from sirestore.export import export_onnx
        from sirestore.ort import OrtRestorer

        for int8 in (False, True):
            path = tmp / f"model{'_int8' * int8}.onnx"
            export_onnx(model, path, int8=int8, weights_sha256=sha256(args.weights))
            ort = OrtRestorer(path, threads=torch.get_num_threads())
            table[f"sirestore 1 step (onnxruntime {'int8' if int8 else 'fp32'})"] = lambda im, r=ort: lambda: r(im)
    except (ImportError, ValueError) as err:
        print(f"note: onnxruntime rows left out ({err})", file=sys.stderr)
    table[NLM] = _nlm
    if importlib.util.find_spec("bm3d") is not None:
        table["BM3D"] = _bm3d
    net = dncnn_sized()
    cfg = ModelConfig.from_dict(model.cfg.to_dict())
    cfg.source_is_noise, cfg.noise, cfg.net.residual = True, 0.0, False
    ddim = FlowModel(cfg).eval().to(memory_format=torch.channels_last)

    def ddim50(x: torch.Tensor) -> torch.Tensor:
        return sample(ddim, x, steps=50, step=euler_step, gen=torch.Generator().manual_seed(0))

    for precision in precisions():
        tag = BF16 if precision == "bf16" else ""
        table[DNCNN + tag] = lambda im, p=precision: _tensor_call(net, im, p)
        table[DDIM + tag] = lambda im, p=precision: _tensor_call(ddim50, im, p)
    return table


@torch.no_grad()
def measure(args: argparse.Namespace, table: dict) -> dict[tuple[str, int], float | None]:
    """(method, size) -> median seconds per image, None when skipped."""
    results: dict[tuple[str, int], float | None] = {}
    for size in args.sizes:
        image = test_image(args.data, size)
        calls = {}
        for name, make in table.items():
            if name in SLOW and size > SLOW_MAX and not args.all:
                results[name, size] = None
                continue
            calls[name] = make(image)
            calls[name]()  # warm-up
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(args.repeats):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
        for name, ts in times.items():
            results[name, size] = statistics.median(ts)
            print(f"{size:>5} px  {name:<45} {results[name, size]:8.3f} s", file=sys.stderr, flush=True)
    return results


def markdown_table(results: dict[tuple[str, int], float | None], names: list[str], sizes: list[int]) -> str:
    """The results as a markdown table, sizes within each method."""
    head = "| method | size (px) | s / image | MP/s | vs OpenCV NLM | vs DnCNN-sized (same precision) |"
    rows = [head, "|---|---|---|---|---|---|"]
    for name in names:
        for size in sizes:
            sec = results.get((name, size))
            if sec is None:
                rows.append(f"| {name} | {size} | skipped (slow; --all runs it) | | | |")
                continue
            ratios = []
            for base in (NLM, DNCNN + BF16 if "bf16" in name else DNCNN):
                b = results.get((base, size))
                ratios.append(f"{b / sec:.2f}x" if b else "-")
            rows.append(f"| {name} | {size} | {sec:.3f} | {size * size / 1e6 / sec:.3f} | {ratios[0]} | {ratios[1]} |")
    return "\n".join(rows)


def conditions(args: argparse.Namespace, load: float) -> str:
    """CPU, cores, threads, versions and date, as markdown bullets."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"Python {platform.python_version()}", f"torch {torch.__version__}", f"OpenCV {cv2.__version__}"]
    versions.append(f"numpy {np.__version__}")
    for mod in ("onnxruntime", "bm3d"):
        if importlib.util.find_spec(mod) is not None:
            versions.append(f"{mod} {getattr(__import__(mod), '__version__', '?')}")
    return "\n".join(
        [
            f"- CPU: {cpu}; {os.cpu_count()} logical cores; torch threads {torch.get_num_threads()}; "
            f"load average {load:.2f} when the run began; native bfloat16 (AVX512-BF16 or AMX): "
            f"{'yes' if native_bf16() else 'no'}",
            f"- {', '.join(versions)}",
            f"- {datetime.datetime.now():%Y-%m-%d %H:%M}; median of {args.repeats} repeats after a warm-up; "
            f"weights {Path(args.weights).name} ({sha256(args.weights)[:12]})",
            f"- C allocator: {ALLOCATORS[args.allocator_applied]}",
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--weights", type=Path, default=default_weights())
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "CBSD68")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "speed.md", help="markdown report (PNG plot beside it)")
    p.add_argument("--threads", type=int, help="torch / onnxruntime / OpenCV threads (default: their choice)")
    p.add_argument("--all", action="store_true", help=f"run the slow baselines above {SLOW_MAX} px too")
    p.add_argument(
        "--allocator", choices=sorted(ALLOCATORS), default="keep", help="the C allocator's setting (default: keep)"
    )
    args = p.parse_args()
    args.allocator_applied = "keep" if args.allocator == "keep" and keep_freed_memory() else "default"
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        table = methods(args, Path(tmp))
        results = measure(args, table)
    names = list(table)
    text = markdown_table(results, names, args.sizes)
    print(text)
    plot = args.out.with_suffix(".png")
    series = {n: [(s, s * s / 1e6 / t) for s in args.sizes if (t := results.get((n, s)))] for n in names}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    line_plot(series, plot, "CPU throughput, color images", "image side (px)", "megapixels / s", args.sizes)
    body = [
        "# Speed on a CPU\n",
        "Generated by `python scripts/bench_speed.py " + " ".join(sys.argv[1:]) + "`.\n",
        conditions(args, load) + "\n",
        "Square color images (the first CBSD68 image mirrored to size, AWGN sigma 25); one image per call. "
        "DnCNN-sized: 17 plain 3x3 convolutions of 64 channels with ReLU (batch norm folded away). DDIM-50: 50 "
        "evaluations of our network set up as noise -> clean (same widths). Both have random weights, timing "
        "only: their speed does not depend on the weights. bf16 rows run the networks under bfloat16 autocast "
        "(`--precision bf16`, the default on a CPU with native bfloat16). Ratios are throughput relative to the "
        "baseline at the same size (DnCNN-sized in the row's precision), measured in the same run.\n",
        text + "\n",
        f"![MP/s vs image size]({plot.name})\n",
    ]
    args.out.write_text("\n".join(body))
    print(f"wrote {args.out} and {plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
