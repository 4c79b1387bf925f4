"""Command line: `sirestore restore | eval | export | serve | train`. Thin: parse, call the library, report.

Every user error ends in one line on stderr naming the file and the problem, and a
non-zero exit; no traceback. Ctrl-C (SIGINT) ends with one line and exit status 130.
Heavy modules (torch) are imported inside `main`, so an interrupt at start-up is handled too.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from sirestore.cli_args import build_parser
from sirestore.fsutil import one_line


class UsageError(Exception):
    """A command-line mistake reported as one line."""


INTERRUPTED = {
    "restore": "interrupted; the outputs written are complete, re-run with --skip-existing to do the rest",
    "train": "interrupted; continue from the last checkpoint with --resume",
    "export": "interrupted; nothing was written",
    "serve": "stopped",
}


def _max_memory(value: str | None) -> int | None:
    """Bytes of --max-memory, or a one-line UsageError."""
    from sirestore.tiling import parse_size

    try:
        return None if value is None else parse_size(value)
    except ValueError as err:
        raise UsageError(f"--max-memory {err}") from None


def _check_weights(args: argparse.Namespace) -> Path:
    """The weights path, its sha256 checked against --weights-sha256 or a SHA256SUMS file beside it."""
    from sirestore.checkpoint import listed_sha256, verify_sha256
    from sirestore.restore import resolve_weights

    weights = resolve_weights(args.weights)
    expected = args.weights_sha256
    if expected is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", expected):
        raise UsageError(f"--weights-sha256 {expected!r}: expected 64 hexadecimal digits")
    expected = expected or listed_sha256(weights)
    if expected:
        verify_sha256(weights, expected)
    return weights


def _ort_restorer(args: argparse.Namespace):
    """An OrtRestorer for --backend ort / --onnx; options the ONNX file fixes must agree with it."""
    from sirestore.fsutil import shown
    from sirestore.ort import OrtRestorer

    if args.onnx is None:
        raise UsageError("--backend ort needs --onnx MODEL.onnx (made by `sirestore export --format onnx`)")
    for flag, value in (("--weights", args.weights), ("--weights-sha256", args.weights_sha256)):
        if value is not None:
            raise UsageError(f"{flag} does not apply to --backend ort: the weights are inside the ONNX file")
    if args.device != "cpu":
        raise UsageError("--backend ort runs on the CPU; leave out --device")
    if args.max_memory is not None:
        raise UsageError("--max-memory needs the torch backend; use --tile with --backend ort")
    if args.precision == "bf16":
        raise UsageError("--precision bf16 needs the torch backend (onnxruntime runs the exported float32 graph)")
    try:
        restorer = OrtRestorer(args.onnx, tile=args.tile, threads=args.threads, task=args.task)
    except ValueError as err:
        raise UsageError(str(err)) from None
    for flag, asked, baked in (("--steps", args.steps, restorer.steps), ("--sampler", args.sampler, restorer.sampler)):
        if asked is not None and asked != baked:
            raise UsageError(
                f"{shown(args.onnx)}: exported with --steps {restorer.steps} --sampler {restorer.sampler}, "
                f"not {flag} {asked}; export it again to change them"
            )
    return restorer


def _restorer(args: argparse.Namespace):
    import torch

    from sirestore.restore import Restorer

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steps is not None and args.steps < 1:
        raise UsageError("--steps must be >= 1")
    max_memory = _max_memory(args.max_memory)
    if args.backend == "ort" or (args.backend is None and args.onnx is not None):
        return _ort_restorer(args)
    if args.onnx is not None:
        raise UsageError("--onnx needs --backend ort")
    weights = _check_weights(args)
    try:
        return Restorer(
            weights=weights,
            steps=args.steps or 1,
            sampler=args.sampler or "euler",
            seed=args.seed,
            tile=args.tile,
            device=args.device,
            max_memory=max_memory,
            task=args.task,
            noise_scale=args.noise_scale,
            precision=args.precision,
        )
    except ValueError as err:
        raise UsageError(str(err)) from None


def cmd_restore(args: argparse.Namespace) -> int:
    from sirestore.batch import clean_output_folders, plan_outputs, restore_files
    from sirestore.cli_known import known_from_args
    from sirestore.fsutil import shown
    from sirestore.imageio import MAX_PIXELS

    max_pixels = MAX_PIXELS if args.max_pixels is None else args.max_pixels
    if max_pixels < 1:
        raise UsageError("--max-pixels must be >= 1")
    if args.samples is None:
        args.samples = 8 if args.uncertainty is not None else 1
    if args.samples < 1:
        raise UsageError("--samples must be >= 1")
    known = known_from_args(args)  # None without --mask / --kernel / --scale / --sigma / --speckle / --pnp-iters
    jobs, errors, notes = plan_outputs(args.inputs, args.output, args.overwrite, args.skip_existing)
    for msg in notes:
        print(f"note: {msg}", file=sys.stderr)
    for msg in errors:
        print(f"error: {msg}", file=sys.stderr)
    if not jobs:
        return 1 if errors else 0
    restorer = _restorer(args)
    if args.explain and not restorer.has_detector:
        raise UsageError("--explain needs an all-in-one model (with a degradation detector)")
    for path in clean_output_folders(jobs):
        print(f"note: removed {shown(path)}, a temporary file left by an interrupted run", file=sys.stderr)
    image_fn = None
    if known is not None:
        from sirestore.known import known_image_fn

        image_fn = known_image_fn(restorer, known, args.seed)
    if args.samples > 1 or args.uncertainty is not None:
        image_fn = _sampling(args, restorer, known, jobs)
    on_read = _explainer(restorer, jobs) if args.explain else None
    failed = restore_files(restorer, jobs, max_pixels, image_fn, on_read)
    return 1 if errors or failed else 0


def _sampling(args: argparse.Namespace, restorer, known, jobs: list):
    """restore --samples / --uncertainty: the uncertainty map, or the mean of several seeded restorations."""
    from sirestore.fsutil import shown
    from sirestore.uncertainty import uncertainty_image_fn

    if args.uncertainty is not None:
        if len(jobs) != 1:
            raise UsageError("--uncertainty writes one map: give one input image")
        if args.uncertainty.exists() and not args.overwrite:
            raise UsageError(f"{shown(args.uncertainty)} exists; add --overwrite to replace it")
    elif not restorer.stochastic:
        print(
            "note: this model and sampler are deterministic, so every sample is the same "
            "(use --sampler sde with a stochastic-path model, or a noise -> clean model)",
            file=sys.stderr,
        )
    try:
        return uncertainty_image_fn(restorer, args.samples, args.uncertainty, known, args.seed)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _explainer(restorer, jobs: list):
    """restore --explain: after each image is read, print one line of what the detector sees in it."""
    import torch

    from sirestore.fsutil import shown

    def report(src: Path, image) -> None:
        y = torch.from_numpy(image).permute(2, 0, 1)[None]
        print(explanation(shown(src), restorer.explain(y)), flush=True)

    return report


def explanation(name: str, found: dict[str, float]) -> str:
    """One line: the tasks by decreasing probability (those >= 0.05), and the noise level."""
    sigma = found.pop("sigma")
    ranked = sorted(found.items(), key=lambda kv: -kv[1])
    shownp = [f"{t} {p:.2f}" for t, p in ranked if p >= 0.05] or [f"nothing above 0.05 (most likely {ranked[0][0]})"]
    return f"{name}: {', '.join(shownp)}; noise level {sigma:.1f}/255"


def cmd_eval(args: argparse.Namespace) -> int:
    from sirestore.evaluate import Perceptual, evaluate_folder, evaluate_pairs, format_table
    from sirestore.perceptual import INSTALL, PerceptualUnavailable

    try:
        perceptual = Perceptual(scores=False if args.no_perceptual else None, fid=args.fid, dists=args.dists)
    except PerceptualUnavailable as err:
        raise UsageError(f"{'--fid' if args.fid else '--dists'}: {err}") from None
    restorer = _restorer(args)
    if args.data is not None:
        if not args.degradation:
            raise UsageError("--data needs --degradation (e.g. awgn:sigma=25)")
        result = evaluate_folder(
            restorer, args.data, args.degradation, args.seed, args.border, limit=args.limit, perceptual=perceptual
        )
    else:
        result = evaluate_pairs(
            restorer, args.pairs[0], args.pairs[1], args.border, limit=args.limit, perceptual=perceptual
        )
    if not perceptual.lpips and not args.no_perceptual:
        print(f"note: LPIPS skipped, weights not installed: {INSTALL}", file=sys.stderr)
    if args.fid and result.fid is None:
        print("note: FID / KID need at least 2 images", file=sys.stderr)
    result.settings.update(
        {
            "steps": restorer.steps,
            "sampler": restorer.sampler,
            "precision": restorer.precision,
            "seed": args.seed,
            "weights": str(restorer.weights),
            "tile": args.tile,
            "max_memory": args.max_memory,
            "backend": "ort" if restorer.model is None else "torch",
        }
    )
    print(format_table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from sirestore.checkpoint import load_weights, sha256
    from sirestore.export import check_exportable, export_onnx
    from sirestore.fsutil import shown

    if args.opset < 17:
        raise UsageError("--opset must be >= 17")
    out = args.output
    if out.is_dir():
        raise UsageError(f"{shown(out)}: is a folder; give the file to write, e.g. {shown(out / 'model.onnx')}")
    if (out.exists() or out.is_symlink()) and not args.overwrite:
        raise UsageError(f"{shown(out)}: exists (use --overwrite to replace it)")
    weights = _check_weights(args)
    model = load_weights(weights)
    check_exportable(model, args.steps, args.sampler)  # before the slow part
    export_onnx(model, out, args.steps, args.sampler, args.int8, weights_sha256=sha256(weights), opset=args.opset)
    kind = "int8" if args.int8 else "fp32"
    size = out.stat().st_size / 1e6
    print(f"wrote {shown(out)}: {args.sampler}, {args.steps} step(s), {kind}, {size:.1f} MB, opset {args.opset}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from sirestore.config import TrainConfig
    from sirestore.train import train

    try:
        cfg = TrainConfig.from_yaml(args.config)
    except (OSError, ValueError, TypeError) as err:
        raise UsageError(f"{args.config}: {err}") from None
    if args.out_dir:
        cfg.out_dir = args.out_dir
    if args.steps:
        cfg.steps = args.steps
    train(cfg, resume=args.resume, progress=not args.no_progress, stop_at=args.stop_at)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise UsageError('`sirestore serve` needs the serve extra: pip install "sirestore[serve]"') from None
    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be from 0 to 65535")
    if args.max_pixels < 1 or not args.max_upload_mb > 0:
        raise UsageError("--max-pixels and --max-upload-mb must be positive")
    import torch

    from sirestore.restore import Restorer
    from sirestore.serve import serve

    if args.threads:
        torch.set_num_threads(args.threads)
    max_memory = _max_memory(args.max_memory)
    try:  # steps are set per job
        restorer = Restorer(
            weights=_check_weights(args), tile=args.tile, max_memory=max_memory, precision=args.precision
        )
    except ValueError as err:
        raise UsageError(str(err)) from None
    serve(restorer, args.host, args.port, args.max_pixels, int(args.max_upload_mb * 1e6))
    return 0


COMMANDS = {
    "restore": cmd_restore,
    "eval": cmd_eval,
    "export": cmd_export,
    "serve": cmd_serve,
    "train": cmd_train,
}


def main(argv: list[str] | None = None) -> int:
    """Run one command; user errors (SpecError, WeightsError, ... are ValueErrors) give one line."""
    args = build_parser().parse_args(argv)
    try:
        from sirestore.allocator import keep_freed_memory

        keep_freed_memory()  # large tensors reuse freed memory instead of page-faulting fresh mappings
        return COMMANDS[args.command](args)
    except (UsageError, ValueError, OSError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED.get(args.command, "interrupted"), file=sys.stderr)
        return 130
    except Exception as err:
        if os.environ.get("SIRESTORE_DEBUG"):
            raise
        name = type(err).__name__
        print(f"error: internal error ({name}: {one_line(err)}); SIRESTORE_DEBUG=1 shows where", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
