"""The command line's arguments: `build_parser()` for `sirestore restore | eval | export | serve | train`."""

from __future__ import annotations

import argparse
from pathlib import Path

from sirestore.precision import PRECISIONS
from sirestore.tasks import TASKS

MAX_MEMORY_HELP = "memory limit such as 1GB or 512MB: tiles chosen automatically when the image does not fit"
WEIGHTS_HELP = (
    "safetensors weights, or the name of shipped ones in sirestore/weights (default: 'default', the denoiser)"
)


def _add_precision(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="network arithmetic: bf16 (bfloat16 autocast, 2-3x faster on CPUs with AVX512-BF16 or AMX), fp32, "
        "or auto (default: bf16 where the CPU computes it natively, else fp32)",
    )


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", type=Path, help=WEIGHTS_HELP)
    p.add_argument("--weights-sha256", metavar="HEX", help="refuse weights whose sha256 is not HEX")
    p.add_argument("--steps", type=int, help="sampler steps; 1 = one network evaluation (default 1)")
    p.add_argument(
        "--sampler",
        choices=["euler", "heun", "sde", "ddim", "ddpm"],
        help="step rule (default euler; ddim / ddpm for diffusion-baseline weights)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    p.add_argument("--tile", type=int, help="restore in overlapping tiles of this many pixels (bounds memory)")
    p.add_argument("--max-memory", metavar="SIZE", help=MAX_MEMORY_HELP)
    p.add_argument("--threads", type=int, help="CPU threads for torch / onnxruntime (default: their choice)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    _add_precision(p)
    p.add_argument(
        "--backend",
        choices=["torch", "ort"],
        help="torch (default), or ort: onnxruntime on a file of `sirestore export`",
    )
    p.add_argument("--onnx", type=Path, help="the exported model for --backend ort (implies it)")
    p.add_argument(
        "--noise-scale",
        type=float,
        default=1.0,
        help="sde sampler: multiplies the path noise (0 = deterministic; the fidelity / realism knob)",
    )
    p.add_argument(
        "--task",
        choices=TASKS,
        help="all-in-one models: restore this degradation instead of the detected one(s)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sirestore", description="Fast, light image restoration with stochastic interpolants."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("restore", help="restore image files or folders")
    r.add_argument("inputs", nargs="+", type=Path, help="image files and/or folders")
    r.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="output file (one input) or folder (several inputs or a folder)",
    )
    existing = r.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing output files")
    existing.add_argument(
        "--skip-existing", action="store_true", help="leave inputs whose output exists (finish an interrupted batch)"
    )
    r.add_argument("--max-pixels", type=int, help="refuse images with more pixels than this (default 200 million)")
    r.add_argument(
        "--explain", action="store_true", help="all-in-one models: print the degradations detected in each input"
    )
    r.add_argument(
        "--samples",
        type=int,
        help="restorations behind --uncertainty (default 8); without it, average this many seeded restorations",
    )
    r.add_argument(
        "--uncertainty",
        type=Path,
        metavar="MAP",
        help="write a heat map of the per-pixel uncertainty (standard deviation) there (one input only): the spread "
        "of the samples of a stochastic model, Tweedie's posterior std for noise (deterministic model), or with "
        "--mask the spread over resampled observations",
    )
    _add_model_args(r)
    from sirestore.cli_known import add_known_args  # light: argparse only

    add_known_args(r)

    e = sub.add_parser("eval", help="evaluate on a folder of clean images or on real pairs")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="folder of clean images, degraded on the fly with --degradation")
    src.add_argument("--pairs", type=Path, nargs=2, metavar=("DEGRADED_DIR", "CLEAN_DIR"), help="real pairs")
    e.add_argument("--degradation", help="degradation spec, e.g. awgn:sigma=25 (with --data)")
    e.add_argument("--border", type=int, default=0, help="pixels cropped at each border before scoring (SR: scale)")
    e.add_argument("--limit", type=int, help="only the first N images")
    e.add_argument("--json", type=Path, help="write the results as JSON to this file")
    e.add_argument("--no-perceptual", action="store_true", help="skip LPIPS (computed when its weights are installed)")
    e.add_argument("--dists", action="store_true", help="also DISTS per image (slow: a full VGG16 per image)")
    e.add_argument("--fid", action="store_true", help="also FID / KID of the restored set against the clean set")
    _add_model_args(e)

    x = sub.add_parser("export", help="export the model and an unrolled ODE sampler to ONNX (for onnxruntime)")
    x.add_argument("--format", default="onnx", choices=["onnx"], help="export format (default onnx)")
    x.add_argument("-o", "--output", type=Path, required=True, help="the file to write, e.g. model.onnx")
    x.add_argument("--weights", type=Path, help=WEIGHTS_HELP)
    x.add_argument("--weights-sha256", metavar="HEX", help="refuse weights whose sha256 is not HEX")
    x.add_argument("--steps", type=int, default=1, help="sampler steps unrolled in the graph (default 1)")
    x.add_argument("--sampler", default="euler", choices=["euler", "heun", "sde"], help="euler or heun (default euler)")
    x.add_argument("--int8", action="store_true", help="dynamically quantised int8 weights (smaller; see README)")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset, >= 17 (default 17)")
    x.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    s = sub.add_parser("serve", help="a local web page: drop an image, restore it, compare, download")
    host_help = "address to listen on (default 127.0.0.1, this machine only; any other prints a warning)"
    s.add_argument("--host", default="127.0.0.1", help=host_help)
    s.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 = any free port)")
    s.add_argument("--weights", type=Path, help=WEIGHTS_HELP)
    s.add_argument("--weights-sha256", metavar="HEX", help="refuse weights whose sha256 is not HEX")
    s.add_argument("--threads", type=int, help="CPU threads for torch (default: its choice)")
    s.add_argument("--tile", type=int, help="restore in overlapping tiles of this many pixels (bounds memory)")
    s.add_argument("--max-memory", metavar="SIZE", help=MAX_MEMORY_HELP)
    _add_precision(s)
    s.add_argument("--max-pixels", type=int, default=50_000_000, help="refuse larger images (default 50 million)")
    s.add_argument("--max-upload-mb", type=float, default=50.0, help="refuse larger uploads (default 50 MB)")

    t = sub.add_parser("train", help="train a model from a YAML config")
    t.add_argument("--config", type=Path, required=True, help="YAML file of TrainConfig fields")
    t.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last.pt when it exists")
    t.add_argument("--out-dir", help="override the config's out_dir")
    t.add_argument("--steps", type=int, help="override the config's number of steps")
    t.add_argument("--stop-at", type=int, help="stop (with a checkpoint) after this step; --resume continues")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser
