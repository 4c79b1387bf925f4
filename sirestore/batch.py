"""Restoring files and folders: plan input -> output names, then restore each file.

A problem with one file is reported as one line naming it; the others still go through.
Outputs are written atomically (a temporary file renamed into place), existing outputs are
kept unless overwriting is asked for (or skipped, to finish an interrupted batch), and an input
is never replaced. Stale temporary files left in an output folder by a killed run are removed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sirestore.fsutil import clean_stale_temps, first_line, shown
from sirestore.imageio import (
    MAX_PIXELS,
    SUPPORTED_SUFFIXES,
    ImageInfo,
    ImageReadError,
    ImageWriteError,
    read_image,
    write_image,
)
from sirestore.restore import Restorer, restore_float_image

WRITABLE = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
# image (H x W x C float32) and its info -> the restoration and the info to write it with
ImageFn = Callable[[np.ndarray, ImageInfo], tuple[np.ndarray, ImageInfo]]
OnRead = Callable[[Path, np.ndarray], None]  # (source path, H x W x C float32 image)


def _inputs(inputs: list[Path], errors: list[str]) -> list[Path]:
    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            try:
                found = sorted(f for f in p.iterdir() if f.suffix.lower() in SUPPORTED_SUFFIXES and not f.is_dir())
            except OSError as err:
                errors.append(f"{shown(p)}: cannot list this folder ({err.strerror or err})")
                continue
            if not found:
                errors.append(f"{shown(p)}: no images in this folder")
            files += found
        elif p.exists() or p.is_symlink():
            files.append(p)
        else:
            errors.append(f"{shown(p)}: no such file or directory")
    return files


def _resolved(path: Path) -> Path:
    """`path.resolve()`, or the absolute path when resolving fails (a symbolic link loop)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def plan_outputs(
    inputs: list[Path], output: Path, overwrite: bool, skip_existing: bool = False
) -> tuple[list[tuple[Path, Path]], list[str], list[str]]:
    """(input, output) pairs, one-line errors for inputs that cannot be done, and one-line notes.

    One input file and an output that is not a folder: the output is that file. Otherwise
    the output is a folder (created) and each result keeps its input's name. With
    `skip_existing`, inputs whose output exists are left out with a note instead of an error.
    """
    errors: list[str] = []
    notes: list[str] = []
    files = _inputs(inputs, errors)
    single = len(inputs) == 1 and not inputs[0].is_dir() and not output.is_dir() and output.suffix != ""
    if single and output.suffix.lower() not in WRITABLE:
        kinds = ", ".join(sorted(WRITABLE))
        return [], [f"{shown(output)}: cannot write {output.suffix!r} files; use one of {kinds}"], []
    if not single and (output.exists() or output.is_symlink()) and not output.is_dir():
        return [], [f"{shown(output)}: exists and is not a folder (several inputs need an output folder)"], []
    jobs: list[tuple[Path, Path]] = []
    taken: set[Path] = set()
    for src in files:
        dst = output if single else output / (src.name if src.suffix.lower() in WRITABLE else src.stem + ".png")
        exists = dst.exists() or dst.is_symlink()
        if _resolved(dst) in taken:
            errors.append(f"{shown(src)}: another input already writes {shown(dst)}")
        elif exists and src.exists() and _resolved(dst) == _resolved(src):
            errors.append(f"{shown(src)}: the output would replace the input")
        elif exists and skip_existing:
            notes.append(f"{shown(dst)}: exists, skipped")
        elif exists and not overwrite:
            errors.append(f"{shown(dst)}: exists (use --overwrite to replace it, or --skip-existing)")
        else:
            taken.add(_resolved(dst))
            jobs.append((src, dst))
    return jobs, errors, notes


def clean_output_folders(jobs: list[tuple[Path, Path]]) -> list[Path]:
    """Remove stale temporary files (of killed runs) from the folders the jobs write to."""
    return [p for folder in sorted({dst.parent for _, dst in jobs}) for p in clean_stale_temps(folder)]


def restore_file(
    restorer: Restorer,
    src: Path,
    dst: Path,
    max_pixels: int = MAX_PIXELS,
    image_fn: ImageFn | None = None,
    on_read: OnRead | None = None,
) -> None:
    """Read, restore and write one image, keeping size, mode, bit depth and alpha.

    `image_fn` replaces the plain restoration (known-operator mode, which may change the size);
    `on_read(src, image)` runs on the image read (`restore --explain`)."""
    image, info = read_image(src, max_pixels=max_pixels)
    if on_read is not None:
        on_read(src, image)
    if image_fn is None:
        restored = restore_float_image(restorer, image)
    else:
        restored, info = image_fn(image, info)
    del image  # the input's memory is free before encoding
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_image(dst, restored, info)


def restore_files(
    restorer: Restorer,
    jobs: list[tuple[Path, Path]],
    max_pixels: int = MAX_PIXELS,
    image_fn: ImageFn | None = None,
    on_read: OnRead | None = None,
) -> int:
    """Restore every job (with `image_fn` / `on_read` as in restore_file); print one line per failure;
    return the number of failures."""
    failed = 0
    quiet = len(jobs) < 2 or not sys.stderr.isatty()
    bar = tqdm(jobs, disable=quiet, unit="image", file=sys.stderr, dynamic_ncols=True)
    for src, dst in bar:
        try:
            restore_file(restorer, src, dst, max_pixels, image_fn, on_read)
        except (ImageReadError, ImageWriteError) as err:
            failed += 1
            bar.write(f"error: {err}", file=sys.stderr)
        except (OSError, RuntimeError, ValueError, MemoryError) as err:
            failed += 1
            bar.write(f"error: {shown(src)}: {first_line(err)}", file=sys.stderr)
    return failed
