"""Convert the Levin et al. (CVPR 2009) motion kernels from KAIR's Levin09.mat to sirestore/assets/levin09.npz.

Run once (needs h5py); the npz is committed so runtime code never reads the .mat:

    python scripts/convert_levin_kernels.py [../shared/data/kernels/Levin09.mat] [sirestore/assets/levin09.npz]

Levin09.mat is MATLAB v7.3 (HDF5): "kernels" is an 8x1 cell of object references to 2-D double arrays.
MATLAB stores arrays column-major, so h5py returns each one transposed; we transpose back.
Source: cszn/KAIR kernels/Levin09.mat (MIT).
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SIZES = (19, 17, 15, 27, 13, 21, 23, 23)  # from shared/data/kernels/README.md


def convert(src: Path, dst: Path) -> dict[str, np.ndarray]:
    """Read the 8 kernels, check sizes and normalisation, save float32 as levin1..levin8."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(src, "r") as f:
        refs = f["kernels"][()].ravel()
        for i, ref in enumerate(refs):
            k = np.asarray(f[ref][()], dtype=np.float64).T  # undo MATLAB's column-major storage
            if k.shape != (SIZES[i], SIZES[i]) or abs(k.sum() - 1) > 1e-6 or k.min() < 0:
                raise ValueError(f"kernel {i + 1}: unexpected shape {k.shape} or sum {k.sum()}")
            out[f"levin{i + 1}"] = (k / k.sum()).astype(np.float32)
    if len(out) != len(SIZES):
        raise ValueError(f"expected {len(SIZES)} kernels, found {len(out)}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(dst, **out)
    return out


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared/data/kernels/Levin09.mat"
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "sirestore/assets/levin09.npz"
    kernels = convert(src, dst)
    for key, k in kernels.items():
        print(f"{key}: {k.shape[0]}x{k.shape[1]} sum={k.sum():.6f}")
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
