"""Helpers for sirestore.imageio: 16-bit PNG header/encoder, OpenCV 16-bit I/O, EXIF orientation.

Pillow reads 16-bit colour (and gray + alpha) PNGs and TIFFs as 8-bit, so those are decoded
with OpenCV; 16-bit PNGs are written by the small encoder below (keeps ICC, dpi and EXIF).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (gray, gray+alpha, RGB, RGBA)
_IDAT_CHUNK = 1 << 24


def png_header(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG file's IHDR, or None when the file is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png16(
    arr: np.ndarray, icc: bytes | None = None, dpi: tuple[float, float] | None = None, exif: bytes | None = None
) -> bytes:
    """Encode an H x W x C uint16 array (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) as a 16-bit PNG."""
    h, w, c = arr.shape
    raw = np.ascontiguousarray(arr, dtype=">u2").reshape(h, w * c).view(np.uint8)
    filtered = raw.copy()
    filtered[:, 2 * c :] -= raw[:, : -2 * c]  # "Sub" filter, bytes wrap modulo 256
    data = np.concatenate([np.ones((h, 1), np.uint8), filtered], axis=1).tobytes()
    out = [PNG_SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, _COLOR_TYPES[c], 0, 0, 0))]
    if icc:
        out.append(_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    if dpi:
        ppm = [max(1, round(d / 0.0254)) for d in dpi[:2]]
        out.append(_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    if exif:
        out.append(_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    packed = zlib.compress(data, 6)
    out += [_chunk(b"IDAT", packed[i : i + _IDAT_CHUNK]) for i in range(0, len(packed), _IDAT_CHUNK)]
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


def read_16bit_color(
    path: Path, im: Image.Image, tiff_orientation: int = 1
) -> tuple[np.ndarray, np.ndarray | None, str] | None:
    """Pixels, alpha and mode ("LA", "RGB", "RGBA") of a 16-bit colour or gray + alpha PNG/TIFF, else None.

    `im` is the same file opened and loaded by Pillow (so known to be intact; 8-bit, and upright for
    TIFF, whose orientation tag was `tiff_orientation`). The result is laid out like `im`: OpenCV's
    pixels are matched against Pillow's high bytes, which settles whether OpenCV applied the TIFF
    orientation itself (OpenCV 5 does) and catches any disagreement between the two decoders.
    """
    if im.format == "PNG":
        depth, color_type = png_header(path) or (8, 0)
        if depth != 16 or color_type not in (2, 4, 6):
            return None
        channels = {2: 3, 4: 2, 6: 4}[color_type]
    elif im.format == "TIFF":
        bits, channels = im.tag_v2.get(258, (8,)), im.tag_v2.get(277, 1)
        if max(bits if isinstance(bits, tuple) else (bits,)) != 16 or channels < 2:
            return None
    else:
        return None
    raw = cv2_read(path)
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 3:
        raise OSError("OpenCV could not decode the 16-bit image")
    ref = np.asarray(im).reshape(im.height, im.width, -1).astype(np.int16)
    if channels == 2:  # OpenCV and Pillow both widen gray + alpha to four channels
        raw, ref = raw[..., [0, -1]], ref[..., [0, -1]]
    for k in dict.fromkeys((1, tiff_orientation if im.format == "TIFF" else 1)):
        oriented = orient(raw, k)
        if oriented.shape == ref.shape and np.abs((oriented >> 8).astype(np.int16) - ref).max() <= 1:
            break
    else:
        raise OSError("OpenCV and Pillow decode the 16-bit pixels differently")
    arr = oriented.astype(np.float32) / np.float32(65535)
    if channels == 2:
        return arr[..., :1], arr[..., 1], "LA"
    if arr.shape[2] == 4:
        return arr[..., :3], arr[..., 3], "RGBA"
    return arr, None, "RGB"


def cv2_read(path: Path) -> np.ndarray | None:
    """Decode a file with OpenCV keeping depth and channels, colour in RGB(A) order; None on failure."""
    import cv2

    arr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        return None
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[..., [2, 1, 0, 3][: arr.shape[2]]]
    return arr


def cv2_encode(suffix: str, arr: np.ndarray) -> bytes:
    """Encode an H x W x C (C = 1, 3 or 4, RGB(A) order) array with OpenCV, e.g. 16-bit colour TIFF."""
    import cv2

    if arr.shape[2] in (3, 4):
        arr = arr[..., [2, 1, 0, 3][: arr.shape[2]]]
    ok, buf = cv2.imencode(suffix, np.ascontiguousarray(arr))
    if not ok:
        raise ValueError(f"OpenCV could not encode {suffix}")
    return buf.tobytes()


def exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation 1..8 of an open image; 1 when absent, out of range or the EXIF block is broken."""
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block does not make the pixels unreadable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an H x W[ x C] array, as PIL.ImageOps.exif_transpose does."""
    if orientation in (5, 6, 7, 8):
        arr = arr.swapaxes(0, 1)  # transpose first, then the flips below make 6 and 8 rotations
    if orientation in (2, 3, 6, 7):
        arr = arr[:, ::-1]
    if orientation in (3, 4, 7, 8):
        arr = arr[::-1]
    return np.ascontiguousarray(arr)
