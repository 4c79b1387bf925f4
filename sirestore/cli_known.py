"""The known-degradation options of `sirestore restore` (--mask, --kernel, --scale, --sigma, --pnp-iters,
--speckle, ...): their definitions and their checks, giving a `Known` or None when none is given."""

from __future__ import annotations

import argparse
import math

KNOWN_FLAGS = ("mask", "kernel", "scale", "sigma", "speckle", "pnp_iters")  # any of them selects the mode


def add_known_args(p: argparse.ArgumentParser) -> None:
    """Add the option group to the restore parser."""
    g = p.add_argument_group("known degradation (see README, Known degradation)")
    g.add_argument("--mask", help="inpainting mask image of the input's size: white = known, black = hole")
    g.add_argument("--mask-holes", choices=["black", "white"], help="which pixels of --mask are holes (default black)")
    g.add_argument("--kernel", help="blur kernel: .png/.npy/.mat file, normalised to sum 1 (non-blind deblurring)")
    g.add_argument("--kernel-index", type=int, help="which kernel of a .mat file holding several (1-based)")
    g.add_argument("--scale", help="super-resolution: the input is the low-res image, the output S times larger")
    g.add_argument("--downsample", choices=["bicubic", "average"], help="--scale without --kernel (default bicubic)")
    g.add_argument(
        "--boundary",
        choices=["valid", "circular"],
        help="blur/downsampling at the frame: valid (default; for bicubic --scale, exactly the resize) or circular",
    )
    g.add_argument("--sigma", type=float, help="Gaussian noise level of the input, 0-255 (proximal step)")
    g.add_argument("--rho", type=float, help="expected error of the network's estimate, 0-255 (default 10)")
    g.add_argument("--pnp-iters", type=int, help="plug-and-play HQS with N iterations (needs --kernel or --scale)")
    g.add_argument("--refine-kernel", action="store_true", help="with --pnp-iters: correct the kernel's error")
    g.add_argument("--speckle", type=float, help="gamma speckle of L looks: log-domain model + likelihood step")


def _scale(value: str | None) -> int:
    if value is None:
        return 1
    try:
        scale = float(value)
    except ValueError:
        scale = math.nan
    if not (math.isfinite(scale) and scale >= 1 and scale == int(scale)):
        raise ValueError(f"--scale {value}: must be a whole number >= 1")
    return int(scale)


def _level(flag: str, value: float | None, default: float, positive: bool = False):
    """A 0-255 level -> [0, 1] units, checked."""
    if value is None:
        return default
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{flag} {value}: must be a finite number {'>' if positive else '>='} 0")
    return value / 255


def _needs(args: argparse.Namespace, flag: str, *required: str) -> None:
    if getattr(args, flag.lstrip("-").replace("-", "_")) not in (None, False) and not any(
        getattr(args, r) is not None for r in required
    ):
        raise ValueError(f"{flag} needs {' or '.join('--' + r.replace('_', '-') for r in required)}")


def known_from_args(args: argparse.Namespace):
    """A `Known` from the options, None when none of them is given; a ValueError (one line) for a bad option."""
    _needs(args, "--mask-holes", "mask")
    _needs(args, "--kernel-index", "kernel")
    _needs(args, "--downsample", "scale")
    _needs(args, "--boundary", "kernel", "scale")
    _needs(args, "--rho", "sigma", "speckle")
    _needs(args, "--refine-kernel", "pnp_iters")
    if not any(getattr(args, f) is not None for f in KNOWN_FLAGS):
        return None
    for flag, value in (("--tile", args.tile), ("--max-memory", args.max_memory), ("--onnx", args.onnx)):
        if value is not None:
            raise ValueError(f"{flag} does not apply to known-degradation restoration (whole images, torch)")
    if args.backend == "ort":
        raise ValueError("known-degradation restoration needs the torch backend")
    if args.pnp_iters is not None and args.pnp_iters < 1:
        raise ValueError("--pnp-iters must be >= 1")
    if args.downsample is not None and args.kernel is not None:
        raise ValueError("--downsample applies to --scale without --kernel (the kernel is the downsampling blur)")
    if args.speckle is not None and not (math.isfinite(args.speckle) and args.speckle > 0):
        raise ValueError(f"--speckle {args.speckle}: the number of looks must be > 0")

    import torch

    from sirestore.degrade.kernels import load_kernel
    from sirestore.known import Known, load_mask

    mask = None if args.mask is None else load_mask(args.mask, args.mask_holes or "black")
    kernel = None if args.kernel is None else load_kernel(args.kernel, args.kernel_index)
    if kernel is not None and max(kernel.shape) > 257:
        raise ValueError(f"{args.kernel}: kernel of {kernel.shape[1]}x{kernel.shape[0]} pixels is too large")
    return Known(
        mask=mask,
        kernel=None if kernel is None else kernel.to(torch.float32),
        scale=_scale(args.scale),
        downsample=args.downsample or "bicubic",
        boundary=args.boundary or "valid",
        sigma=_level("--sigma", args.sigma, 0.0),
        rho=_level("--rho", args.rho, 10 / 255, positive=True),
        speckle=args.speckle,
        pnp_iters=args.pnp_iters or 0,
        refine_kernel=args.refine_kernel,
    )
