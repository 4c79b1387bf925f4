"""Shared set-up of the atheris fuzz targets: libFuzzer arguments with bounded defaults, seed folders."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULTS = {"-max_total_time": "20", "-timeout": "10", "-seed": "1", "-rss_limit_mb": "4096"}


def fuzzer_args(argv: list[str], seeds: list[tuple[str, bytes]], tokens: list[str] = ()) -> list[str]:
    """argv with bounded defaults for the options it does not set, and a seed folder when it names none."""
    args = list(argv)
    work = Path(tempfile.mkdtemp(prefix="sirestore_fuzz_"))
    for key, value in DEFAULTS.items():
        if not any(a.startswith(key + "=") for a in args[1:]):
            args.append(f"{key}={value}")
    if not any(a.startswith("-artifact_prefix=") for a in args[1:]):
        args.append(f"-artifact_prefix={work}/")
    if tokens and not any(a.startswith("-dict=") for a in args[1:]):
        (work / "tokens.dict").write_text("".join(f'"{t}"\n' for t in tokens))
        args.append(f"-dict={work / 'tokens.dict'}")
    if not any(not a.startswith("-") for a in args[1:]):
        corpus = work / "corpus"
        corpus.mkdir()
        for name, data in seeds:
            (corpus / name).write_bytes(data)
        args.append(str(corpus))
    return args
