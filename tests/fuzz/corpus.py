"""A corpus of hostile and odd inputs for `sirestore restore`, generated on the fly (no binaries committed).

`make_corpus(folder)` writes every case into `folder` and returns its `Case`s: each either restores
("ok": an output of the given size and kind, upright) or fails ("error": one `error:` line naming it).
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, TiffImagePlugin, features

from sirestore._imageio_png import PNG_SIGNATURE, encode_png16, png_header

WRITABLE = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}  # suffixes an output keeps (else .png)
W, H = 24, 16  # size of the ordinary pictures


@dataclass
class Case:
    """One input: what it is, where it is, and what restoring it must give."""

    name: str  # short id
    path: Path  # the input (a file, a link, a folder, a pipe...)
    expect: str  # "ok" or "error"
    kind: str | None = None  # "ok": the output's kind as `describe` tells it
    size: tuple[int, int] | None = None  # "ok": the output's (width, height), upright

    @property
    def output_name(self) -> str:
        """Name of the output in the output folder (the CLI's rule)."""
        return self.path.name if self.path.suffix.lower() in WRITABLE else self.path.stem + ".png"


def picture(h: int = H, w: int = W, c: int = 3, depth: int = 8, seed: int = 0) -> np.ndarray:
    """Smooth, asymmetric content (orientation mistakes show) with a little noise; uint8/uint16."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = [xx / max(w - 1, 1), yy / max(h - 1, 1), (xx + 2 * yy) / (w + 2 * h), 1 - xx / max(w, 1)]
    noise = np.random.default_rng(seed).normal(0, 0.02, (h, w, c))
    arr = np.clip(np.stack(planes[:c], axis=2) * 0.8 + 0.1 + noise, 0, 1)
    scale, dtype = (255, np.uint8) if depth == 8 else (65535, np.uint16)
    arr = np.round(arr * scale).astype(dtype)
    return arr[..., 0] if c == 1 else arr


def _encode(arr: np.ndarray, fmt: str, **kw) -> bytes:
    return _save(Image.fromarray(arr), fmt, **kw)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(width: int, height: int, idat: bytes, extra: bytes = b"") -> bytes:
    """A hand-made 8-bit RGB PNG with the given IHDR size and IDAT payload."""
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return PNG_SIGNATURE + ihdr + extra + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _ifd(entries: list[tuple[int, int, int]], next_at: int = 0) -> bytes:
    return (
        struct.pack("<H", len(entries))
        + b"".join(struct.pack("<HHII", *e[:2], 1, e[2]) for e in entries)
        + (struct.pack("<I", next_at))
    )


def _tiff_gray(width: int, height: int, pixels: bytes, broken_second_page: bool = False) -> bytes:
    """A hand-made uncompressed 8-bit gray little-endian TIFF (any claimed size), optionally followed
    by a second page without dimensions (found by the fuzzer: Pillow raised TypeError)."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1)]
    entries += [(273, 4, 8), (277, 3, 1), (278, 4, height), (279, 4, len(pixels))]
    ifd_at = 8 + len(pixels)
    second_at = ifd_at + 2 + 12 * len(entries) + 4
    data = b"II*\x00" + struct.pack("<I", ifd_at) + pixels + _ifd(entries, second_at if broken_second_page else 0)
    return data + (_ifd([(262, 3, 1)]) if broken_second_page else b"")


def _patch_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    at = data.index(b"\xff\xc0") + 5  # SOF0: length(2) precision(1) height(2) width(2)
    return data[:at] + struct.pack(">HH", height, width) + data[at + 4 :]


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def describe(path: Path) -> tuple[tuple[int, int], str]:
    """(size, kind) of an image file: Pillow's mode, "L;16"/"RGB;16"/... for 16-bit PNG and TIFF."""
    with Image.open(path) as im:
        size, mode, fmt = im.size, im.mode, im.format
        bits = im.tag_v2.get(258, (8,)) if fmt == "TIFF" else (8,)
    if fmt == "PNG":
        depth, color = png_header(path)
        mode = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}[color] + ("" if depth == 8 else f";{depth}")
    elif mode == "I;16":
        mode = "L;16"
    elif max(bits if isinstance(bits, tuple) else (bits,)) == 16 and mode in ("RGB", "RGBA", "LA"):
        mode += ";16"
    return size, mode


def _valid_files(rgb: np.ndarray, rng: np.random.Generator) -> dict[str, tuple[bytes, str, tuple[int, int]]]:
    """name -> (bytes, expected output kind, upright size) of readable images."""
    gray, rgba = picture(c=1), picture(c=4)
    p = Image.fromarray(rgb).convert("P")
    small = Image.fromarray(rgb).convert("RGB")
    files = {
        "rgb.png": (_encode(rgb, "PNG"), "RGB", (W, H)),
        "gray.png": (_encode(gray, "PNG"), "L", (W, H)),
        "rgba.png": (_encode(rgba, "PNG"), "RGBA", (W, H)),
        "la.png": (_encode(picture(c=4)[..., [0, 3]], "PNG"), "LA", (W, H)),
        "onebit.png": (_encode(gray > 120, "PNG"), "L", (W, H)),
        "rgb_trns.png": (_encode(rgb, "PNG", transparency=tuple(int(v) for v in rgb[0, 0])), "RGBA", (W, H)),
        "gray16.png": (encode_png16(picture(c=1, depth=16)[..., None]), "L;16", (W, H)),
        "rgb16.png": (encode_png16(picture(depth=16)), "RGB;16", (W, H)),
        "rgba16.png": (encode_png16(picture(c=4, depth=16)), "RGBA;16", (W, H)),
        "la16.png": (encode_png16(picture(c=4, depth=16)[..., [0, 3]]), "LA;16", (W, H)),
        "gray16.tif": (_encode(picture(c=1, depth=16), "TIFF"), "L;16", (W, H)),
        "rgb16.tif": (cv2.imencode(".tif", picture(depth=16)[..., ::-1].copy())[1].tobytes(), "RGB;16", (W, H)),
        "float.tif": (_encode(picture(c=1).astype(np.float32) / 255, "TIFF"), "F", (W, H)),
        "int32.tif": (_encode(picture(c=1, depth=16).astype(np.int32), "TIFF"), "L;16", (W, H)),
        "lzw.tif": (_encode(rgb, "TIFF", compression="tiff_lzw"), "RGB", (W, H)),
        "cmyk.tif": (_save(small.convert("CMYK"), "TIFF"), "RGB", (W, H)),
        "one_by_one.png": (_encode(rgb[:1, :1], "PNG"), "RGB", (1, 1)),
        "one_by_one.jpg": (_encode(rgb[:1, :1], "JPEG"), "RGB", (1, 1)),
        "strip_wide.png": (_encode(picture(3, 100_000, 1), "PNG"), "L", (100_000, 3)),
        "strip_tall.png": (_encode(picture(100_000, 3, 1), "PNG"), "L", (3, 100_000)),
        "cmyk.jpg": (_save(small.convert("CMYK"), "JPEG", quality=95), "RGB", (W, H)),
        "gray.jpg": (_encode(gray, "JPEG", quality=95), "L", (W, H)),
        "progressive.jpg": (_encode(rgb, "JPEG", quality=95, progressive=True), "RGB", (W, H)),
        "exif6.png": (_encode(rgb, "PNG", exif=_exif(6)), "RGB", (H, W)),
        "exif_bad_value.jpg": (_encode(rgb, "JPEG", quality=95, exif=_exif(9)), "RGB", (W, H)),
        "exif_garbage.jpg": (_encode(rgb, "JPEG", quality=95, exif=b"Exif\x00\x00" + rng.bytes(64)), "RGB", (W, H)),
        "single.gif": (_save(p, "GIF"), "RGB", (W, H)),
        "palette.png": (_save(p, "PNG"), "RGB", (W, H)),
        "palette_trns.png": (_save(p, "PNG", transparency=0), "RGBA", (W, H)),
        "plain.bmp": (_encode(rgb, "BMP"), "RGB", (W, H)),
        "plain.ppm": (_encode(rgb, "PPM"), "RGB", (W, H)),
        "png_named.jpg": (_encode(rgb, "PNG"), "RGB", (W, H)),
        "jpeg_named.png": (_encode(rgb, "JPEG", quality=95), "RGB", (W, H)),
        "png_named.tif": (_encode(gray, "PNG"), "L", (W, H)),
        "UPPER.JPG": (_encode(rgb, "JPEG", quality=95), "RGB", (W, H)),
        "no_suffix": (_encode(rgb, "PNG"), "RGB", (W, H)),
        "icc_garbage.png": (_encode(rgb, "PNG", icc_profile=rng.bytes(300)), "RGB", (W, H)),
        "mpo.jpg": (_save(small, "MPO", save_all=True, append_images=[small.rotate(90)]), "RGB", (W, H)),
        "with space.png": (_encode(rgb, "PNG"), "RGB", (W, H)),
        "ünïcødé ✓.png": (_encode(rgb, "PNG"), "RGB", (W, H)),
        "new\nline.png": (_encode(rgb, "PNG"), "RGB", (W, H)),
        "-dash.png": (_encode(rgb, "PNG"), "RGB", (W, H)),
        "long_" + "x" * 231 + ".png": (_encode(rgb, "PNG"), "RGB", (W, H)),
        os.fsdecode(b"latin1-\xe9\xff.png"): (_encode(rgb, "PNG"), "RGB", (W, H)),
        "dup.gif": (_save(p, "GIF"), "RGB", (W, H)),
    }
    for k in range(1, 9):
        files[f"exif{k}.jpg"] = (_encode(rgb, "JPEG", quality=95, exif=_exif(k)), "RGB", (H, W) if k > 4 else (W, H))
    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    ifd[0x0112] = 8
    files["orient8.tif"] = (_encode(rgb, "TIFF", tiffinfo=ifd), "RGB", (H, W))
    if features.check("webp"):
        files["lossless.webp"] = (_encode(rgb, "WEBP", lossless=True), "RGB", (W, H))
    return files


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _bad_files(rgb: np.ndarray, rng: np.random.Generator) -> dict[str, bytes]:
    """name -> bytes of files that must be refused."""
    png, jpg = _encode(rgb, "PNG"), _encode(rgb, "JPEG")
    tif, png16 = _encode(rgb, "TIFF"), encode_png16(picture(depth=16))
    frames = [Image.fromarray(picture(seed=s)) for s in range(3)]
    raw_rgb = zlib.compress(b"\x00" * 13)  # one row of four RGB pixels
    at = png.index(b"IDAT") + 4
    return {
        "empty.png": b"",
        "trunc.png": png[: len(png) // 2],
        "trunc.jpg": jpg[: len(jpg) // 2],
        "trunc16.png": png16[: len(png16) * 2 // 3],
        "trunc.tif": tif[: len(tif) // 2],
        "header_only.png": png[:33],
        "random.png": rng.bytes(2048),
        "random.jpg": rng.bytes(777),
        "png_sig_garbage.png": PNG_SIGNATURE + rng.bytes(500),
        "jpeg_soi_garbage.jpg": b"\xff\xd8\xff" + rng.bytes(500),
        "text.png": b"not an image\n",
        "notes.txt": b"just some notes\n",
        "page.jpg": b"<!doctype html><html><body>hello</body></html>\n",
        "gzipped.png": gzip.compress(png, mtime=0),
        "vector.eps": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
        "anim.gif": _save(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "apng.png": _save(frames[0], "PNG", save_all=True, append_images=frames[1:]),
        "multipage.tif": _save(frames[0], "TIFF", save_all=True, append_images=frames[1:]),
        "nan.tif": _encode(np.full((H, W), np.nan, np.float32), "TIFF"),
        "inf.tif": _encode(np.full((H, W), np.inf, np.float32), "TIFF"),
        "range.tif": _encode(np.full((H, W), 2.0, np.float32), "TIFF"),
        "negative.tif": _encode(np.full((H, W), -5, np.int32), "TIFF"),
        "bomb.png": _png(100_000, 100_000, zlib.compress(b"")),
        "bomb.jpg": _patch_jpeg_size(jpg, 65_000, 65_000),
        "bomb_gif.gif": _save(frames[0], "GIF")[:6] + b"\xff\xff\xff\xff" + _save(frames[0], "GIF")[10:],
        "bomb.tif": _tiff_gray(100_000, 100_000, b"\x00" * 64),
        "page2_no_size.tif": _tiff_gray(8, 8, b"\x80" * 64, broken_second_page=True),
        "big_valid.png": _encode(np.zeros((2000, 2000), np.uint8), "PNG", optimize=True),
        "zero_dims.png": _png(0, 0, raw_rgb),
        "bad_crc.png": png[: at + 4] + bytes([png[at + 4] ^ 0xFF]) + png[at + 5 :],
        "bad_zlib.png": _png(4, 1, rng.bytes(40)),
        "text_bomb.png": _png(1, 1, zlib.compress(b"\x00" * 4), _ztxt(8 << 20)),
        "garbage_trailer.tif": tif[:8] + rng.bytes(len(tif) - 8),
        os.fsdecode(b"bad\xff.png"): b"not an image either\n",
        "bad\nname.png": b"nor this\n",
        "dup.ppm": _encode(rgb, "PPM"),  # its output dup.png is already dup.gif's
    }


def _ztxt(size: int) -> bytes:
    """A zTXt chunk that inflates to `size` bytes."""
    return _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"\x00" * size, 9))


def _special(folder: Path) -> list[Case]:
    """Links, a folder, a pipe, a device and an unreadable file."""
    (folder / "loop.png").symlink_to("loop.png")
    (folder / "dangling.png").symlink_to("does-not-exist.png")
    (folder / "devnull.png").symlink_to(os.devnull)
    (folder / "folder.png").mkdir()
    os.mkfifo(folder / "fifo.png")
    (folder / "good_link.png").symlink_to("rgb.png")
    (folder / "unreadable.png").write_bytes(_encode(picture(), "PNG"))
    (folder / "unreadable.png").chmod(0)
    bad = ("loop.png", "dangling.png", "devnull.png", "folder.png", "fifo.png", "unreadable.png")
    cases = [Case(n, folder / n, "error") for n in bad]
    return cases + [Case("good_link.png", folder / "good_link.png", "ok", "RGB", (W, H))]


def make_corpus(folder: str | Path) -> list[Case]:
    """Write the corpus into `folder` (created); its cases, sorted by file name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    rgb = picture()
    cases = []
    for name, (data, kind, size) in _valid_files(rgb, rng).items():
        (folder / name).write_bytes(data)
        cases.append(Case(name, folder / name, "ok", kind, size))
    for name, data in _bad_files(rgb, rng).items():
        (folder / name).write_bytes(data)
        cases.append(Case(name, folder / name, "error"))
    cases += _special(folder)
    outputs = [c.output_name for c in cases if c.name != "dup.ppm"]
    assert len(set(outputs)) == len(outputs), "only dup.ppm may collide with another case's output"
    return sorted(cases, key=lambda c: os.fsencode(c.path.name))


def without_file_permission_override():
    """A `preexec_fn` that takes root's power to read unreadable files (CAP_DAC_*) from a child process,
    so the unreadable case is refused for real; None when not root or not on Linux (nothing to take)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not Path("/proc/self/status").exists():
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def drop() -> None:
        for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, out of the bounding set before exec
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")

    return drop
