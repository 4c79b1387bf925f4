"""Known-operator benchmark: restoration when the degradation is known (sirestore.known), against the
blind model, the classical method and the plain projection, in one run; writes docs/known.md (+ .csv).

    python scripts/bench_known.py [--weights W] [--limit N] [--only inpaint deblur sr speckle] [--cache DIR]

The work is split into units (inpaint, deblur at each noise level, sr, speckle). With --cache DIR each
finished unit is saved there and loaded instead of recomputed on the next run, so a long run survives
interruption and units can run in parallel processes (`--only deblur-2.55 --cache DIR` in one,
`--only deblur-7.65 --cache DIR` in another), then one run with --cache assembles the report.

Rows (../shared/README.md protocol; image k seeded seed + k; uint8 PSNR/SSIM):
- inpaint: CBSD68 with the committed free-form masks (benchmarks/masks), mask given. Ours: the sampler
  with range-null-space projection (DDNM-style) at 1/4/8 steps and plug-and-play HQS, all started from the
  Telea fill (known.telea_fill); the blind model on the holes filled
  with 0; OpenCV Telea and Navier-Stokes. `exact` = max |output - input| over known pixels in uint8.
- deblur: CBSD68, each Levin kernel (circular blur, as the FFT operator) + AWGN 2.55 and 7.65. Ours:
  the proximal sampler (1 step) and plug-and-play HQS (8 iterations); Wiener with the true kernel.
- sr: Set5/Set14 x4, antialiased bicubic. Ours: projection sampler and PnP; bicubic; the blind model
  on the bicubic upsampling. `consistency` = RMS (0-255) of bicubic_downsample(output) - input.
- speckle: CBSD68 as gray, gamma speckle L = 1, 4. Ours: the model in the log domain (consistency.LogSpeckle) with
  likelihood guidance; Lee filter; blind model.
NFE = network evaluations per image; seconds per image on this CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from report import write_csv  # noqa: E402

from sirestore import baselines  # noqa: E402
from sirestore.checkpoint import load_weights  # noqa: E402
from sirestore.data import list_images, load_uint8  # noqa: E402
from sirestore.degrade import levin_kernel, parse_spec  # noqa: E402
from sirestore.degrade.resize import bicubic_resize  # noqa: E402
from sirestore.known import Known, load_mask, restore_known  # noqa: E402
from sirestore.metrics import psnr, ssim, to_uint8_levels  # noqa: E402
from sirestore.restore import Restorer, default_weights  # noqa: E402

BANDS = ("10-20", "20-40", "40-60")


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).numpy()


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]


def _q(x: torch.Tensor) -> torch.Tensor:
    return to_uint8_levels(x.clamp(0, 1)).float() / 255


class Table:
    """Accumulates per-image scores into mean rows keyed by (task, setting, method)."""

    def __init__(self) -> None:
        self.acc: dict[tuple[str, str, str], dict[str, float]] = {}

    def add(self, key: tuple[str, str, str], clean: torch.Tensor, out: torch.Tensor, seconds: float, nfe: int, **extra):
        row = {"psnr": psnr(_q(out), clean), "ssim": ssim(_q(out), clean), "seconds": seconds, "nfe": nfe, **extra}
        acc = self.acc.setdefault(key, {"n": 0})
        acc["n"] += 1
        for k, v in row.items():
            acc[k] = max(acc.get(k, v), v) if k in ("exact", "consistency") else acc.get(k, 0.0) + v

    def dump(self) -> list:
        """The accumulators as JSON-able [[task, setting, method], acc] pairs (in insertion order)."""
        return [[list(k), v] for k, v in self.acc.items()]

    def load(self, items: list) -> None:
        """Add accumulators written by `dump` (a unit computed earlier)."""
        for key, acc in items:
            self.acc[tuple(key)] = acc

    def rows(self) -> list[dict]:
        out = []
        for (task, setting, method), acc in self.acc.items():
            n = acc["n"]
            row = {k: (v if k in ("exact", "consistency") else v / n) for k, v in acc.items() if k != "n"}
            out.append({"task": task, "setting": setting, "method": method, "images": n, **row})
        return out


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def images(root: Path, name: str, gray: bool, limit: int | None):
    for k, path in enumerate(list_images(root / name)[:limit]):
        yield k, path, load_uint8(path, gray)[None].float() / 255


def bench_inpaint(t: Table, model, root: Path, seed: int, limit: int | None) -> None:
    blind = Restorer(model=model, seed=seed)
    steps = {s: Restorer(model=model, steps=s, seed=seed) for s in (1, 4, 8)}
    for band in BANDS:
        for _k, path, x in images(root, "CBSD68", False, limit):
            mask = load_mask(ROOT / f"benchmarks/masks/freeform_{band}/{path.stem}.png", holes="white")
            y = x * mask
            key = ("inpaint", f"CBSD68 holes {band} %")
            out, s = timed(blind.restore_tensor, y)
            t.add((*key, "blind model (holes = 0), 1 step"), x, out, s, 1)
            for n, r in steps.items():
                out, s = timed(restore_known, r, y, Known(mask=mask), seed)
                exact = float((_q(out) - _q(y)).abs().mul(255)[..., mask.bool()].max())
                t.add((*key, f"ours, mask given, {n} step{'s' * (n > 1)}"), x, out, s, n, exact=exact)
            out, s = timed(restore_known, steps[1], y, Known(mask=mask, pnp_iters=8), seed)
            t.add((*key, "ours, mask given, plug-and-play, 8 iterations"), x, out, s, 8)
            for method in ("telea", "ns"):
                out, s = timed(baselines.inpaint, _hwc(y), mask.numpy() > 0, method)
                t.add((*key, f"OpenCV {method}"), x, _chw(out), s, 0)


def bench_deblur(t: Table, model, root: Path, seed: int, limit: int | None, sigmas=(2.55, 7.65)) -> None:
    one, blind = Restorer(model=model, steps=1, seed=seed), Restorer(model=model, seed=seed)
    for sigma in sigmas:
        for i in range(1, 9):
            kernel = levin_kernel(i)
            spec = parse_spec(f"motion_blur:kernel=levin{i},boundary=circular+awgn:sigma={sigma}")
            key = ("deblur", f"CBSD68 levin{i} sigma {sigma}")
            known = Known(kernel=kernel, sigma=sigma / 255, boundary="circular")
            for k, _path, x in images(root, "CBSD68", False, limit):
                y, _ = spec(x, torch.Generator().manual_seed(seed + k))
                out, s = timed(blind.restore_tensor, y)
                t.add((*key, "blind model, 1 step"), x, out, s, 1)
                out, s = timed(restore_known, one, y, known, seed)
                t.add((*key, "ours, proximal sampler, 1 step"), x, out, s, 1)
                out, s = timed(
                    restore_known,
                    one,
                    y,
                    Known(kernel=kernel, sigma=sigma / 255, boundary="circular", pnp_iters=8),
                    seed,
                )
                t.add((*key, "ours, plug-and-play, 8 iterations"), x, out, s, 8)
                out, s = timed(baselines.wiener, _hwc(y), kernel.numpy(), sigma)
                t.add((*key, "Wiener, true kernel"), x, _chw(out), s, 0)


def consistency(out: torch.Tensor, lr: torch.Tensor) -> float:
    """RMS (0-255) of the uint8 output bicubic-downsampled to the LR grid, against the LR input."""
    return float((bicubic_resize(_q(out), lr.shape[-2:]) - lr).pow(2).mean().sqrt() * 255)


def bench_sr(t: Table, model, root: Path, seed: int, limit: int | None) -> None:
    one, blind = Restorer(model=model, steps=1, seed=seed), Restorer(model=model, seed=seed)
    for name in ("Set5/HR", "Set14"):
        for _k, _path, x in images(root, name, False, limit):
            h, w = (d - d % 4 for d in x.shape[-2:])
            x = x[..., :h, :w]
            lr = bicubic_resize(x, (h // 4, w // 4))
            key = ("sr", f"{name} x4")
            up = bicubic_resize(lr, (h, w))
            t.add((*key, "bicubic"), x, up, 0.0, 0, consistency=consistency(up, lr))
            out, s = timed(blind.restore_tensor, up)
            t.add((*key, "blind model on bicubic, 1 step"), x, out, s, 1, consistency=consistency(out, lr))
            out, s = timed(restore_known, one, lr, Known(scale=4), seed)
            t.add((*key, "ours, scale given, 1 step"), x, out, s, 1, consistency=consistency(out, lr))
            out, s = timed(restore_known, one, lr, Known(scale=4, pnp_iters=8), seed)
            t.add((*key, "ours, plug-and-play, 8 iterations"), x, out, s, 8, consistency=consistency(out, lr))


def bench_speckle(t: Table, model, root: Path, seed: int, limit: int | None) -> None:
    one = Restorer(model=model, steps=1, seed=seed)
    for looks in (1, 4):
        spec = parse_spec(f"speckle:looks={looks}")
        key = ("speckle", f"CBSD68 gray L = {looks}")
        for k, _path, x in images(root, "CBSD68", True, limit):
            y, _ = spec(x, torch.Generator().manual_seed(seed + k))
            out, s = timed(one.restore_tensor, y)
            t.add((*key, "blind model, 1 step"), x, out, s, 1)
            out, s = timed(restore_known, one, y, Known(speckle=float(looks)), seed)
            t.add((*key, "ours, log domain + likelihood guidance, 1 step"), x, out, s, 1)
            out, s = timed(baselines.lee, _hwc(y), looks)
            t.add((*key, "Lee filter"), x, _chw(out), s, 0)


UNITS = {
    "inpaint": bench_inpaint,
    "deblur-2.55": partial(bench_deblur, sigmas=(2.55,)),
    "deblur-7.65": partial(bench_deblur, sigmas=(7.65,)),
    "sr": bench_sr,
    "speckle": bench_speckle,
}
BENCHES = ("inpaint", "deblur", "sr", "speckle")  # --only names: a bench is the units named after it


def run_unit(name: str, args, model, table: Table) -> int:
    """Compute unit `name` into `table`, or load it from args.cache when it was finished before."""
    tag = hashlib.sha256(args.weights.read_bytes()).hexdigest()[:12]
    cached = args.cache / f"{name}-{tag}-limit{args.limit or 'all'}-seed{args.seed}.json" if args.cache else None
    if cached is not None and cached.exists():
        info = json.loads(cached.read_text())
        table.load(info["acc"])
        print(f"{name}: loaded from {cached} ({info['threads']} threads)", flush=True)
        return info["threads"]
    part, start = Table(), time.perf_counter()
    UNITS[name](part, model, args.data, args.seed, args.limit)
    table.load(part.dump())
    print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_text(json.dumps({"acc": part.dump(), "threads": torch.get_num_threads()}))
        tmp.replace(cached)
    return torch.get_num_threads()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=default_weights())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="only the first N images of each set (a quick check)")
    p.add_argument("--only", nargs="+", choices=[*BENCHES, *UNITS], help="benches or single units to run")
    p.add_argument("--cache", type=Path, help="save finished units here and reuse them (see above)")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    p.add_argument("--out", type=Path, default=ROOT / "docs/known.md")
    args = p.parse_args()
    model, table = load_weights(args.weights), Table()
    threads = {
        name: run_unit(name, args, model, table)
        for name in UNITS
        if not args.only or name in args.only or name.split("-")[0] in args.only
    }
    rows = table.rows()
    keys = ["task", "setting", "method", "images", "psnr", "ssim", "nfe", "seconds", "exact", "consistency"]
    write_csv(args.out.with_suffix(".csv"), rows, keys)
    cmd = "python scripts/bench_known.py" + (f" --limit {args.limit}" if args.limit else "")
    cmd += f" --only {' '.join(args.only)}" if args.only else ""
    lines = [
        "# Known-operator benchmark",
        "",
        f"Produced by `{cmd}` with `{args.weights.name}`, seed {args.seed}, CPU "
        f"(torch threads per unit: {', '.join(f'{k} {v}' for k, v in threads.items())}).",
        "See the script's docstring for the rows; `exact` is the largest uint8 difference on known pixels,",
        "`consistency` the largest RMS (0-255) of the downsampled output against the input.",
        "",
        "| task | setting | method | PSNR | SSIM | NFE | s / image | exact | consistency |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        extra = [f"{r[k]:.2f}" if k in r else "" for k in ("exact", "consistency")]
        lines.append(
            f"| {r['task']} | {r['setting']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['nfe']:.0f} "
            f"| {r['seconds']:.3f} | {' | '.join(extra)} |"
        )
        print(lines[-1])
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.csv')}")


if __name__ == "__main__":
    main()
