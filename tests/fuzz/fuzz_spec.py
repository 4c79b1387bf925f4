"""Coverage-guided fuzzing of the degradation spec parser (atheris / libFuzzer): any text parses or
raises SpecError.

    python tests/fuzz/fuzz_spec.py [-max_total_time=20] [CORPUS_DIR ...] [other libFuzzer options]
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

import atheris
import torch  # noqa: F401 - loads before instrumentation, uninstrumented

try:
    from tests.fuzz._harness import fuzzer_args
except ImportError:  # run as a script: put the repository on the path first
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.fuzz._harness import fuzzer_args

with atheris.instrument_imports(include=["sirestore"]):
    from sirestore.degrade import REGISTRY, SpecError, parse_spec


def test_one_input(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))
    try:
        parse_spec(text)
    except SpecError:
        pass


def tokens() -> list[str]:
    """Names, argument names and punctuation of the spec language, for libFuzzer's dictionary."""
    words = {":", "=", "+", ",", "true", "false", "levin", "random", "freeform", "box", "reflect", "circular"}
    for name, cls in REGISTRY.items():
        words |= {name} | {f.name for f in fields(cls) if f.init}
    return sorted(words)


def seeds() -> list[tuple[str, bytes]]:
    specs = [
        "awgn:sigma=25",
        "awgn:sigma_max=55",
        "motion_blur:kernel=levin3+awgn:sigma=2.55",
        "gaussian_blur:sigma=1.6,boundary=circular",
        "jpeg:quality=30+sr:scale=2",
        "inpaint:mask=box,ratio=0.2",
        "low_light:gamma=2+rain+haze:beta=1",
        "poisson_gaussian:peak=10,sigma=2+speckle:looks=4",
    ]
    return [(f"spec{i}", s.encode()) for i, s in enumerate(specs)]


def main() -> None:
    atheris.Setup(fuzzer_args(sys.argv, seeds(), tokens()), test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
