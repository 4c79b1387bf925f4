"""Encoding for `imageio.write_image`: the array checks, quantisation, format options and the atomic write."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image, features

from sirestore import _imageio_png as png
from sirestore.fsutil import temp_path

if TYPE_CHECKING:
    from sirestore.imageio import ImageInfo


def checked(image: np.ndarray, fail) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3) or a.shape[0] == 0 or a.shape[1] == 0:
        raise fail(f"expected an H x W x C array with C = 1 or 3, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise fail(f"expected a float array with values in [0, 1], got {a.dtype}")
    if not np.isfinite(a).all():
        raise fail("image contains NaN or infinite values")
    a = a.astype(np.float32, copy=False)
    return a if a.min() >= 0 and a.max() <= 1 else np.clip(a, 0, 1)  # no copy when already in range


def quantize(arr: np.ndarray, bits: int, rows: int = 256) -> np.ndarray:
    """floor(arr * (2^bits - 1) + 0.5) as uint8/uint16, a band of rows at a time (small temporaries)."""
    scale = np.float32((1 << bits) - 1)
    out = np.empty(arr.shape, np.uint8 if bits == 8 else np.uint16)
    for i in range(0, arr.shape[0], rows):
        out[i : i + rows] = np.floor(arr[i : i + rows] * scale + np.float32(0.5))
    return out


def encode(f: BinaryIO, fmt: str, arr: np.ndarray, depth: int, info: ImageInfo, quality: int) -> None:
    """Encode H x W x C float (C = 1-4, last channel alpha for 2 and 4) into the open file `f`."""
    c = arr.shape[2]
    icc = info.icc_profile
    icc = icc if icc and fmt != "BMP" and icc[16:20] == (b"GRAY" if c <= 2 else b"RGB ") else None
    if fmt == "PNG" and depth > 8:
        f.write(png.encode_png16(quantize(arr, 16), icc, info.dpi, info.exif))
        return
    if fmt == "TIFF" and depth > 8 and c > 1:  # Pillow writes no 16-bit colour or gray + alpha TIFF
        q = quantize(arr, 16)
        f.write(png.cv2_encode(".tif", q[..., [0, 0, 0, 1]] if c == 2 else q))
        return
    kw: dict[str, object] = {}
    if icc:
        kw["icc_profile"] = icc
    if info.dpi:
        kw["dpi"] = info.dpi
    if info.exif and fmt in ("JPEG", "PNG", "WEBP") and len(info.exif) < 65000:
        kw["exif"] = info.exif
    if fmt in ("JPEG", "WEBP"):
        kw["quality"] = quality
    if fmt == "JPEG":
        kw["subsampling"] = 0 if quality >= 90 else 2
    if fmt == "TIFF" and features.check("libtiff"):
        kw["compression"] = "tiff_lzw"
    if fmt == "TIFF" and depth == 32:
        pixels = arr[..., 0].copy()  # float TIFF
    elif fmt == "TIFF" and depth == 16:
        pixels = quantize(arr[..., 0], 16)
    else:
        pixels = quantize(arr, 8)
        if fmt == "WEBP" and c <= 2:  # WebP has no gray modes
            pixels = pixels[..., [0, 0, 0, 1][: c + 2]]
        pixels = pixels[..., 0] if pixels.shape[2] == 1 else pixels
    Image.fromarray(pixels).save(f, fmt, **kw)


def atomic_write(path: Path, encode: Callable[[BinaryIO], None], fail) -> None:
    """Encode into a hidden temporary file next to `path`, then rename it onto `path`."""
    if not path.parent.is_dir():
        raise fail(f"folder {path.parent} does not exist")
    if path.is_dir():
        raise fail("is a directory")
    tmp = temp_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except PermissionError as e:
        raise fail("permission denied") from e
    except OSError as e:
        raise fail(f"cannot create a file in {path.parent}: {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            encode(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, Exception):
            raise fail(f"cannot write: {e or type(e).__name__}") from e
        raise
