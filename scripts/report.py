"""Writing benchmark reports: the CSV beside each markdown report."""

from __future__ import annotations

import csv
from pathlib import Path


def write_csv(path: Path, rows: list[dict], keys: list[str] | None = None) -> None:
    """Rows as CSV with a header: the columns `keys` (other fields left out; missing ones empty), or the
    first row's fields. Creates the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys or list(rows[0]), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
