"""Reading and writing image files: float32 H x W x C arrays in [0, 1], C = 1 (gray) or 3 (color).

`read_image` opens whatever Pillow opens (PNG, JPEG, BMP, TIFF, WebP, GIF, ...; not EPS, whose decoder
runs Ghostscript), refuses files above a pixel limit before decoding them, forces a full
decode so truncated or corrupt files fail early, applies the EXIF orientation, and returns the
pixels plus an `ImageInfo` (source mode, bit depth, alpha, ICC profile, dpi, EXIF). Alpha is kept
apart and never restored. `write_image` writes the same kind of image back, atomically.

Notes:
- Images are returned and written upright; the EXIF orientation tag is dropped on write.
- 1-bit images are written as 8-bit gray; palette images as RGB, or RGBA when they have
  transparency; CMYK and other colour modes as RGB.
- 16-bit gray, gray + alpha and colour PNG/TIFF keep 16 bits; 16-bit colour (and gray + alpha)
  TIFFs are written through OpenCV without ICC profile or dpi, gray + alpha as RGBA.
- Float ("F") TIFFs must hold finite values in [0, 1]; they are written back as float TIFF
  (bit_depth 32; 16-bit when colour or alpha is added), as 16-bit PNG, or 8-bit elsewhere.
- Multi-frame files (animated GIF/PNG/WebP, multi-page TIFF) are refused; MPO (a JPEG holding
  extra pictures) gives its first picture.
- `read_image` sets Pillow's MAX_IMAGE_PIXELS, LOAD_TRUNCATED_IMAGES and TiffImagePlugin.READ_LIBTIFF
  for the duration of the call under a module lock (restored afterwards): concurrent reads are serialised.
"""

from __future__ import annotations

import io
import struct
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageCms, ImageFile, TiffImagePlugin, UnidentifiedImageError, features

from sirestore import _imageio_png as png
from sirestore._imagewrite import atomic_write, checked, encode
from sirestore.fsutil import file_problem, one_line, shown


class ImageReadError(ValueError):
    """A file that cannot be read as a single image; the message is `"<path>: <problem>"`."""


class ImageWriteError(ValueError):
    """An image that cannot be written; the message is `"<path>: <problem>"`."""


@dataclass
class ImageInfo:
    """What `write_image` needs to write an image like its source."""

    mode: str  # Pillow mode of the source ("L", "RGB", "P", "I;16", ...); "LA"/"RGB"/"RGBA" for 16-bit ones
    bit_depth: int = 8  # 8, 16, or 32 for float TIFF sources
    gray: bool = False  # True when the content is one channel
    alpha: np.ndarray | None = None  # H x W float32 in [0, 1], or None
    format: str | None = None  # "PNG", "JPEG", ... of the source
    icc_profile: bytes | None = None
    dpi: tuple[float, float] | None = None
    exif: bytes | None = None  # EXIF without the orientation tag (JPEG/PNG/WebP sources only)


MAX_PIXELS = 200_000_000
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
if features.check("webp"):
    _FORMATS[".webp"] = "WEBP"
SUPPORTED_SUFFIXES: set[str] = set(_FORMATS)
_ALPHA_FORMATS = {"PNG", "TIFF", "WEBP"}
_EXIF_FORMATS = {"JPEG", "MPO", "PNG", "WEBP"}
_PIL_LOCK = threading.Lock()
_BLOCKED_FORMATS = {"EPS"}
# What decoders raise on malformed files
_DECODE_ERRORS: tuple[type[Exception], ...] = (OSError, SyntaxError, ValueError, EOFError, struct.error)
_DECODE_ERRORS += (TypeError, KeyError, IndexError, ZeroDivisionError, OverflowError)  # Pillow, found by fuzzing


@contextmanager
def _pillow_limits(max_pixels: int) -> Iterator[None]:
    """Pillow's bomb limit at `max_pixels` (its warning made an error), truncated files refused."""
    with _PIL_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data": the read fails or succeeds on its own
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, TiffImagePlugin.READ_LIBTIFF
        # libtiff also for uncompressed TIFFs: Pillow's own decoder garbles EXIF orientations 5-8
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = max_pixels, False
        TiffImagePlugin.READ_LIBTIFF = saved[2] or features.check("libtiff")
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, TiffImagePlugin.READ_LIBTIFF = saved


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, ImageInfo]:
    """Read one image as float32 H x W x C in [0, 1] (C = 1 or 3), upright, plus its ImageInfo.

    Raises ImageReadError (one line naming the file) for anything that is not one readable image.
    """
    path = Path(path)

    def fail(problem: object) -> ImageReadError:
        return ImageReadError(f"{shown(path)}: {one_line(problem, empty='unknown error')}")

    try:
        problem = file_problem(path)
        if problem:
            raise fail(problem)
        with _pillow_limits(max_pixels):
            return _read(path, max_pixels, fail)
    except ImageReadError:
        raise
    except PermissionError as e:
        raise fail("permission denied") from e
    except UnidentifiedImageError as e:
        raise fail("not a recognised image file") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise fail(f"image is larger than the limit of {max_pixels} pixels") from e
    except MemoryError as e:
        raise fail("not enough memory to decode the image") from e
    except _DECODE_ERRORS as e:
        raise fail(f"corrupt or truncated image data ({e or type(e).__name__})") from e


def _formats() -> list[str]:
    """Pillow formats read: all but those whose decoder runs an external program (EPS: Ghostscript)."""
    Image.init()
    return [f for f in Image.ID if f not in _BLOCKED_FORMATS]


def _read(path: Path, max_pixels: int, fail) -> tuple[np.ndarray, ImageInfo]:
    with Image.open(path, formats=_formats()) as im:
        w, h = im.size
        if w <= 0 or h <= 0:
            raise fail(f"image has zero size ({w}x{h})")
        if w * h > max_pixels:
            raise fail(f"image is {w}x{h} = {w * h} pixels, above the limit of {max_pixels} pixels")
        frames = getattr(im, "n_frames", 1)
        if frames > 1 and im.format != "MPO":
            raise fail(f"has {frames} frames; only single-frame images are supported")
        fmt = im.format
        tiff_orientation = im.tag_v2.get(0x0112, 1) if fmt == "TIFF" else 1
        im.load()
        orientation = png.exif_orientation(im)  # Pillow has applied (and dropped) a TIFF's on load
        info = ImageInfo(
            mode=im.mode,
            format=fmt,
            icc_profile=im.info.get("icc_profile") or None,
            dpi=_dpi(im.info.get("dpi")),
            exif=_exif(im) if fmt in _EXIF_FORMATS else None,
        )
        arr16 = png.read_16bit_color(path, im, tiff_orientation)
        if arr16 is not None:
            arr, alpha, info.mode = arr16
            info.bit_depth = 16
        else:
            arr, alpha, info.bit_depth = _pixels(im, info, fail)
    arr, alpha = png.orient(arr, orientation), None if alpha is None else png.orient(alpha, orientation)
    info.gray, info.alpha = arr.shape[2] == 1, alpha
    if info.icc_profile and info.icc_profile[16:20] != (b"GRAY" if info.gray else b"RGB "):
        info.icc_profile = None  # e.g. a CMYK profile after conversion to RGB
    return arr, info


def _dpi(value: object) -> tuple[float, float] | None:
    try:
        x, y = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return (x, y) if x > 0 and y > 0 else None


def _exif(im: Image.Image) -> bytes | None:
    """EXIF bytes without the orientation tag, or None."""
    try:
        exif = im.getexif()
        exif.pop(0x0112, None)
        return exif.tobytes() if len(exif) else None
    except Exception:  # noqa: BLE001 - broken EXIF is dropped, not fatal
        return None


def _pixels(im: Image.Image, info: ImageInfo, fail) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Pixels as float32 H x W x C, alpha, and bit depth of a loaded Pillow image."""
    mode = im.mode
    if mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if im.has_transparency_data else "RGB")
    elif mode in ("L", "RGB") and "transparency" in im.info:
        im = im.convert("LA" if mode == "L" else "RGBA")
    elif mode in ("La", "RGBa"):
        im = im.convert(mode.upper())
    elif mode == "CMYK":
        im = _cmyk_to_rgb(im, info.icc_profile)
        info.icc_profile = None
    elif mode in ("RGBX", "YCbCr", "HSV"):
        im = im.convert("RGB")
    mode = im.mode
    if mode.startswith("I;16") and not mode.endswith("S"):
        return np.asarray(im).astype(np.float32)[..., None] / np.float32(65535), None, 16
    if mode == "I":
        arr = np.asarray(im)
        if arr.min() < 0 or arr.max() > 65535:
            raise fail("32-bit integer pixels outside 0..65535 are not supported")
        return arr.astype(np.float32)[..., None] / np.float32(65535), None, 16
    if mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise fail("contains NaN or infinite values")
        if arr.min() < 0 or arr.max() > 1:
            raise fail(f"float pixels span [{arr.min():g}, {arr.max():g}]; only values in [0, 1] are supported")
        return arr[..., None].copy(), None, 32
    if mode not in ("L", "LA", "RGB", "RGBA"):
        raise fail(f"unsupported image mode {mode!r}")
    arr = np.asarray(im).reshape(im.height, im.width, -1).astype(np.float32)
    arr /= np.float32(255)  # in place: one float buffer at a time
    if mode in ("LA", "RGBA"):
        return arr[..., :-1].copy(), arr[..., -1].copy(), 8
    return arr, None, 8


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """CMYK -> RGB through the embedded ICC profile when possible, else Pillow's plain conversion."""
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception:  # noqa: BLE001 - fall back to the naive conversion
            pass
    return im.convert("RGB")


def write_image(path: str | Path, image: np.ndarray, info: ImageInfo, quality: int = 95) -> None:
    """Write float32 H x W x C (C = 1 or 3) in [0, 1] like its source described by `info`, atomically.

    The format follows the suffix; alpha is re-attached for PNG/TIFF/WebP and dropped otherwise;
    PNG/TIFF keep a 16-bit (or float TIFF) source depth, other formats are 8-bit. Values are
    clipped to [0, 1] and rounded. Raises ImageWriteError (one line naming the file).
    """
    path = Path(path)

    def fail(problem: object) -> ImageWriteError:
        return ImageWriteError(f"{shown(path)}: {one_line(problem, empty='unknown error')}")

    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise fail(f"cannot write {path.suffix or 'files without a suffix'!r}; use one of {sorted(_FORMATS)}")
    arr = checked(image, fail)
    if info.alpha is not None and fmt in _ALPHA_FORMATS:
        alpha = np.asarray(info.alpha, dtype=np.float32)
        if alpha.shape != arr.shape[:2]:
            raise fail(f"alpha is {alpha.shape} but the image is {arr.shape[:2]}")
        arr = np.concatenate([arr, np.clip(np.nan_to_num(alpha), 0, 1)[..., None]], axis=2)
    depth = info.bit_depth if fmt in ("PNG", "TIFF") else 8
    atomic_write(path, lambda f: encode(f, fmt, arr, depth, info, quality), fail)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H x W x C (or H x W) float array -> (1, C, H, W) float32 tensor (a copy)."""
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise ValueError(f"expected an H x W x C array, got shape {a.shape}")
    return torch.from_numpy(a.transpose(2, 0, 1).copy())[None]


def from_tensor(x: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) tensor -> H x W x C float32 array clamped to [0, 1] (NaN stays NaN)."""
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"expected a batch of one image, got shape {tuple(x.shape)}")
        x = x[0]
    if x.ndim != 3:
        raise ValueError(f"expected a (1, C, H, W) tensor, got shape {tuple(x.shape)}")
    return x.detach().to("cpu", torch.float32).clamp(0, 1).permute(1, 2, 0).contiguous().numpy()
