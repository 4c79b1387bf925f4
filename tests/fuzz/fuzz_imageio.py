"""Coverage-guided fuzzing of `read_image` (atheris / libFuzzer): any bytes give an image or ImageReadError.

    python tests/fuzz/fuzz_imageio.py [-max_total_time=20] [CORPUS_DIR ...] [other libFuzzer options]

Seeds are small files of every kind the corpus test uses; crashes are written to a temporary folder
(see -artifact_prefix) and reported with the Python traceback.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris
import cv2  # noqa: F401 - heavy modules load before instrumentation, uninstrumented
import numpy  # noqa: F401
import torch  # noqa: F401

try:
    from tests.fuzz._harness import fuzzer_args
except ImportError:  # run as a script: put the repository on the path first
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.fuzz._harness import fuzzer_args

with atheris.instrument_imports(include=["PIL", "sirestore"]):
    from PIL import Image

    Image.init()  # imports (and so instruments) every format plugin
    from sirestore.imageio import ImageReadError, read_image

TARGET = Path(tempfile.mkdtemp(prefix="sirestore_fuzz_input_")) / "input"


def test_one_input(data: bytes) -> None:
    """One fuzzed file: read it (below 1 Mpx, to keep runs fast); only ImageReadError may escape."""
    TARGET.write_bytes(data)
    try:
        read_image(TARGET, max_pixels=1 << 20)
    except ImageReadError:
        pass


def seeds() -> list[tuple[str, bytes]]:
    """Small valid and broken files from the corpus generator."""
    from tests.fuzz.corpus import make_corpus

    folder = Path(tempfile.mkdtemp(prefix="sirestore_fuzz_seeds_"))
    found = []
    for case in make_corpus(folder):
        path = case.path
        if not path.is_symlink() and path.is_file() and 0 < path.stat().st_size <= 16384:
            try:
                found.append((f"seed{len(found):03d}", path.read_bytes()))
            except OSError:
                continue  # the unreadable case
    return found


def main() -> None:
    atheris.Setup(fuzzer_args(sys.argv, seeds()), test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
