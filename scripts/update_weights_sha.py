"""Regenerate (or --check) sirestore/weights/SHA256SUMS, the sha256 of every shipped *.safetensors.

    python scripts/update_weights_sha.py          # after adding or replacing weights
    python scripts/update_weights_sha.py --check  # exit 1 when the list is out of date

`sirestore restore/eval` verify the default weights against this list when it names them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sirestore.checkpoint import atomic_write_bytes, sha256  # noqa: E402

FOLDER = ROOT / "sirestore" / "weights"


def expected_list(folder: Path = FOLDER) -> str:
    """The SHA256SUMS text for the weights now in `folder` (sha256sum format, sorted by name)."""
    return "".join(f"{sha256(p)}  {p.name}\n" for p in sorted(folder.glob("*.safetensors")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when out of date")
    parser.add_argument("--folder", type=Path, default=FOLDER, help="weights folder (default: the package's)")
    args = parser.parse_args(argv)
    text, path = expected_list(args.folder), args.folder / "SHA256SUMS"
    current = path.read_text() if path.is_file() else None
    if args.check:
        print(f"{path}: {'up to date' if current == text else 'OUT OF DATE'}")
        return 0 if current == text else 1
    atomic_write_bytes(path, text.encode())
    print(f"{path}: {len(text.splitlines())} file(s)\n{text}", end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
