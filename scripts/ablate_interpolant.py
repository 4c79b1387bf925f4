"""Interpolant ablation on a short budget: which path and which network target to ship.

    python scripts/ablate_interpolant.py [--steps 2000] [--only NAME ...] [--work runs/ablation]

Eight variants of the shipped network (same widths and blocks, no detector; the output is added to x_t
only for the bridge's x_1 targets, where x_t starts at y, except in the eighth) are trained from scratch with
the same data, degradation mixture, optimizer, seed and number of steps; they differ only in the path
(straight bridge y -> x, stochastic bridge with gamma(t) = s sqrt(t (1 - t)), noise -> x conditioned on
y) and in what the network outputs (x_1 or the velocity); the sixth is plain L1 regression x_1 = f(y)
(trained at t = 0 only, the "CNN" row of the literature); the seventh is a conditional DDPM (SR3 style:
noise prediction on the variance-preserving path, sampled with DDIM 10/20/50 and DDPM 1000); the eighth is
the straight bridge's x_1 taken as the network's output itself, as the noise -> clean variants do. The flow
variants use the smooth-L1 (Charbonnier) loss, DDPM its usual MSE on the noise.
Each is evaluated at 1, 2, 4 and 8 Euler steps (the sde sampler for the stochastic bridge) on the 8
validation images held out of CBSD432 (never on a test set: the choice of what to ship is made here),
for each evaluation degradation (image k seeded k): PSNR and LPIPS-alex. Training resumes from
runs/ablation/<variant> when interrupted, and each variant's scores are kept, so variants can be
run in parallel processes (--only) and a last run without --only assembles docs/ablation.md and .csv
(the scores are kept in docs/ablation/, so that run retrains nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from report import write_csv  # noqa: E402

from sirestore import perceptual  # noqa: E402
from sirestore.config import TrainConfig  # noqa: E402
from sirestore.degrade import parse_spec  # noqa: E402
from sirestore.metrics import psnr  # noqa: E402
from sirestore.model import ModelConfig  # noqa: E402
from sirestore.nn.unet import UNetConfig  # noqa: E402
from sirestore.restore import Restorer  # noqa: E402
from sirestore.train import load_data, train  # noqa: E402

VARIANTS: dict[str, tuple[dict, dict]] = {  # (ModelConfig fields, TrainConfig fields) of each variant
    "bridge, x1": ({}, {}),
    "bridge, velocity": ({"predict_velocity": True}, {}),
    "stochastic bridge s=0.5, x1": ({"noise": 0.5}, {}),
    "noise -> clean, x1": ({"source_is_noise": True}, {}),
    "noise -> clean, velocity": ({"source_is_noise": True, "predict_velocity": True}, {}),
    "L1 regression (t = 0 only)": ({}, {"t0_prob": 1.0}),  # the "CNN" row: x1 = f(y), no path
    "DDPM (noise prediction)": ({"source_is_noise": True, "diffusion": True}, {"t0_prob": 0.0, "loss": "mse"}),
    # the bridge's x_1 with the network's output taken as the estimate itself (not added to x_t), to tell the
    # path from the output parametrisation
    "bridge, x1, output not added to x_t": ({"residual": False}, {}),
}
DDPM_1000_SPEC = "awgn:sigma=25"  # DDPM's 1000-step sampler runs on this spec only (1000 evaluations an image)


def settings(name: str) -> list[tuple[str, int]]:
    """(sampler, steps) to evaluate a variant with."""
    model_fields = VARIANTS[name][0]
    if model_fields.get("diffusion"):
        return [("ddim", 10), ("ddim", 20), ("ddim", 50), ("ddpm", 1000)]
    return [("sde" if model_fields.get("noise") else "euler", n) for n in STEPS]


MIXTURE = {  # training degradations: one of each family the evaluation covers
    "awgn:sigma_max=55": 2.0,
    "motion_blur+awgn:sigma_max=5": 1.0,
    "jpeg:quality_min=10,quality_max=60": 1.0,
    "inpaint:ratio_min=0.05,ratio_max=0.6,smooth=true": 1.0,
}
EVAL_SPECS = ("awgn:sigma=25", "awgn:sigma=50", "motion_blur:kernel=levin3+awgn:sigma=2.55", "jpeg:quality=20")
EVAL_SPECS += ("inpaint:ratio=0.5,smooth=true",)
STEPS = (1, 2, 4, 8)


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def config(name: str, steps: int, work: Path) -> TrainConfig:
    model_fields, train_fields = dict(VARIANTS[name][0]), VARIANTS[name][1]
    net = UNetConfig(widths=[16, 48, 96, 160], enc_blocks=[1, 2, 2], mid_blocks=2, dec_blocks=[1, 1, 1])
    # the output is a correction of x_t only for the bridge's x_1 (x_t starts at y, close to x_1); a
    # velocity, or an estimate from a noise source, is the network's output itself (zero at initialisation)
    net.residual = model_fields.pop("residual", True) and not any(
        model_fields.get(k) for k in ("diffusion", "source_is_noise", "predict_velocity")
    )
    return TrainConfig(
        model=ModelConfig(net=net, **model_fields),
        mixture=dict(MIXTURE),
        patch=96,
        batch=8,
        steps=steps,
        lr=2e-3,
        warmup=200,
        val_every=steps,
        ckpt_every=250,
        seed=0,
        out_dir=str(work / slug(name)),
        **train_fields,
    )


@torch.no_grad()
def evaluate(model, images: list[torch.Tensor], name: str) -> list[dict]:
    """PSNR / LPIPS-alex per evaluation spec and (sampler, steps), averaged over the images."""
    rows = []
    with_lpips = perceptual.available("lpips")
    for spec in EVAL_SPECS:
        degrade = parse_spec(spec)
        pairs = [(x, degrade(x, torch.Generator().manual_seed(k))[0]) for k, x in enumerate(images)]
        for sampler, n in settings(name):
            if n == 1000 and spec != DDPM_1000_SPEC:
                continue
            r = Restorer(model=model, steps=n, seed=0, sampler=sampler)
            p, lp, start = 0.0, 0.0, time.perf_counter()
            for x, y in pairs:
                out = r.restore_tensor(y).clamp(0, 1)
                p += psnr(out, x)
                lp += float(perceptual.lpips(out, x)[0]) if with_lpips else float("nan")
            k, seconds = len(pairs), (time.perf_counter() - start) / len(pairs)
            rows.append(
                {"spec": spec, "sampler": sampler, "steps": n, "psnr": p / k, "lpips": lp / k, "seconds": seconds}
            )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=2000, help="training steps of every variant")
    p.add_argument("--only", nargs="+", choices=list(VARIANTS), help="train / evaluate only these variants")
    p.add_argument("--work", type=Path, default=ROOT / "runs/ablation")
    p.add_argument("--out", type=Path, default=ROOT / "docs/ablation.md")
    args = p.parse_args()
    results: dict[str, list[dict]] = {}
    minutes: dict[str, float] = {}
    for name in args.only or VARIANTS:
        # each variant's scores are kept beside the report (committed), so that assembling it, or a later
        # session, needs no retraining; the checkpoints themselves stay in --work
        cached = args.out.parent / "ablation" / f"{slug(name)}-{args.steps}.json"
        if not cached.exists():
            cfg = config(name, args.steps, args.work)
            resume = (Path(cfg.out_dir) / "last.pt").exists()
            model = train(cfg, resume=resume, progress=False)
            log = (Path(cfg.out_dir) / "log.jsonl").read_text().splitlines()
            rows = evaluate(model, load_data(cfg)[1], name)
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps({"minutes": float(json.loads(log[-1])["time"]) / 60, "rows": rows}))
        record = json.loads(cached.read_text())
        results[name], minutes[name] = record["rows"], record["minutes"]
        print(f"{name}: trained {args.steps} steps in {minutes[name]:.1f} min", flush=True)
    write(args, results, minutes)


def write(args, results: dict[str, list[dict]], minutes: dict[str, float]) -> None:
    rows = [{"variant": name, **row} for name, rs in results.items() for row in rs]
    write_csv(args.out.with_suffix(".csv"), rows, ["variant", "spec", "sampler", "steps", "psnr", "lpips", "seconds"])
    lines = [
        "# Interpolant ablation (short budget)",
        "",
        f"Produced by `python scripts/ablate_interpolant.py --steps {args.steps}` on a 2-core CPU (the "
        "variants ran as parallel `--only` processes with `OMP_NUM_THREADS=1`, so the minutes and the seconds "
        "per image in the CSV were measured under load). Every variant: the shipped widths and blocks, trained from "
        f"scratch for {args.steps} steps (batch 8, 96 px crops, AdamW 2e-3 cosine, seed 0) on the mixture "
        + ", ".join(f"`{s}` ({w:g})" for s, w in MIXTURE.items())
        + ". Evaluated on the 8 validation images held out of CBSD432 (image k seeded k), uint8 PSNR (dB) and "
        "LPIPS-alex; Euler steps (the sde sampler for the stochastic bridge; DDIM and DDPM for the diffusion "
        "model, which trains on the MSE of its noise prediction at uniform times). Training minutes: "
        + ", ".join(f"{n} {m:.0f}" for n, m in minutes.items())
        + ".",
        "",
    ]
    lines += ["| variant | sampler, steps | " + " | ".join(f"`{spec}`" for spec in EVAL_SPECS) + " |"]
    lines.append("|---|---|" + "---|" * len(EVAL_SPECS))
    for name, rs in results.items():
        for sampler, n in settings(name):
            cells = {
                r["spec"]: f"{r['psnr']:.2f} / {r['lpips']:.3f}"
                for r in rs
                if (r["sampler"], r["steps"]) == (sampler, n)
            }
            lines.append(
                f"| {name} | {sampler}, {n} | " + " | ".join(cells.get(spec, "not run") for spec in EVAL_SPECS) + " |"
            )
    lines += [
        "",
        "Cells: PSNR (dB) / LPIPS-alex (lower is better). DDPM's 1000-step sampler runs on `"
        + DDPM_1000_SPEC
        + "` only.",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
