"""Restoring files and folders: plan input -> output names, then restore each file.

A problem with one file is reported as one line naming it; the others still go through.
Outputs are written atomically (a temporary file renamed into place), existing outputs are
kept unless overwriting is asked for, and an input is never replaced.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from sirestore.imageio import SUPPORTED_SUFFIXES, ImageReadError, ImageWriteError, read_image, write_image
from sirestore.restore import Restorer

WRITABLE = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def _inputs(inputs: list[Path], errors: list[str]) -> list[Path]:
    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in SUPPORTED_SUFFIXES and not f.is_dir())
            if not found:
                errors.append(f"{p}: no images in this folder")
            files += found
        elif p.exists() or p.is_symlink():
            files.append(p)
        else:
            errors.append(f"{p}: no such file or directory")
    return files


def plan_outputs(inputs: list[Path], output: Path, overwrite: bool) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(input, output) pairs and one-line errors for inputs that cannot be done.

    One input file and an output that is not a folder: the output is that file. Otherwise
    the output is a folder (created) and each result keeps its input's name.
    """
    errors: list[str] = []
    files = _inputs(inputs, errors)
    single = len(inputs) == 1 and not inputs[0].is_dir() and not output.is_dir() and output.suffix != ""
    if single and output.suffix.lower() not in WRITABLE:
        return [], [f"{output}: cannot write {output.suffix!r} files; use one of {', '.join(sorted(WRITABLE))}"]
    if not single and output.exists() and not output.is_dir():
        return [], [f"{output}: exists and is not a folder (several inputs need an output folder)"]
    jobs: list[tuple[Path, Path]] = []
    taken: set[Path] = set()
    for src in files:
        dst = output if single else output / (src.name if src.suffix.lower() in WRITABLE else src.stem + ".png")
        if dst.resolve() in taken:
            errors.append(f"{src}: another input already writes {dst}")
        elif dst.exists() and src.exists() and dst.resolve() == src.resolve():
            errors.append(f"{src}: the output would replace the input")
        elif dst.exists() and not overwrite:
            errors.append(f"{dst}: exists (use --overwrite to replace it)")
        else:
            taken.add(dst.resolve())
            jobs.append((src, dst))
    return jobs, errors


def restore_file(restorer: Restorer, src: Path, dst: Path) -> None:
    """Read, restore and write one image, keeping size, mode, bit depth and alpha."""
    from sirestore.imageio import from_tensor, to_tensor

    image, info = read_image(src)
    restored = from_tensor(restorer.restore_tensor(to_tensor(image)))
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_image(dst, restored, info)


def restore_files(restorer: Restorer, jobs: list[tuple[Path, Path]]) -> int:
    """Restore every job; print one line per failure; return the number of failures."""
    failed = 0
    bar = tqdm(jobs, disable=len(jobs) < 2, unit="image", file=sys.stderr, dynamic_ncols=True)
    for src, dst in bar:
        try:
            restore_file(restorer, src, dst)
        except (ImageReadError, ImageWriteError) as err:
            failed += 1
            bar.write(f"error: {err}", file=sys.stderr)
        except (OSError, RuntimeError, ValueError, MemoryError) as err:
            failed += 1
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            bar.write(f"error: {src}: {first}", file=sys.stderr)
    return failed
