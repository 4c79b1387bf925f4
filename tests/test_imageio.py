"""Reading and writing image files: modes, bit depths, orientation, metadata, errors, atomic writes."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageOps, TiffImagePlugin

from sirestore import _imageio_png
from sirestore.imageio import (
    SUPPORTED_SUFFIXES,
    ImageInfo,
    ImageReadError,
    ImageWriteError,
    from_tensor,
    read_image,
    to_tensor,
    write_image,
)

H, W = 6, 9  # not square, so a rotation shows in the shape


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def u8(rng):
    """Random uint8 arrays of a given trailing shape."""
    return lambda *c: rng.integers(0, 256, (H, W, *c), dtype=np.uint8)


@pytest.fixture
def u16(rng):
    """Random uint16 arrays using the full range."""
    return lambda *c: rng.integers(0, 65536, (H, W, *c), dtype=np.uint16)


@pytest.fixture
def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def roundtrip(src: Path, dst: Path) -> tuple[np.ndarray, ImageInfo]:
    image, info = read_image(src)
    write_image(dst, image, info)
    return image, info


@pytest.mark.parametrize(
    ("mode", "channels", "suffix"),
    [
        ("L", (), ".png"),
        ("RGB", (3,), ".png"),
        ("RGBA", (4,), ".png"),
        ("LA", (2,), ".png"),
        ("L", (), ".tif"),
        ("RGBA", (4,), ".tiff"),
        ("RGB", (3,), ".bmp"),
        ("L", (), ".bmp"),
    ],
)
def test_8bit_roundtrip_is_exact(tmp_path, u8, mode, channels, suffix):
    data = u8(*channels)
    Image.fromarray(data).save(tmp_path / f"in{suffix}")
    image, info = roundtrip(tmp_path / f"in{suffix}", tmp_path / f"out{suffix}")
    assert (info.mode, info.bit_depth, info.gray) == (mode, 8, mode in ("L", "LA"))
    assert image.dtype == np.float32 and image.shape == (H, W, 1 if info.gray else 3)
    assert (info.alpha is not None) == mode.endswith("A")
    with Image.open(tmp_path / f"out{suffix}") as out:
        assert out.mode == mode
        np.testing.assert_array_equal(np.asarray(out), data)


def test_jpeg_drops_alpha_and_keeps_gray(tmp_path, u8):
    Image.fromarray(u8(4)).save(tmp_path / "in.png")
    Image.fromarray(u8()).save(tmp_path / "gray.png")
    roundtrip(tmp_path / "in.png", tmp_path / "out.jpg")
    roundtrip(tmp_path / "gray.png", tmp_path / "gray.jpeg")
    with Image.open(tmp_path / "out.jpg") as a, Image.open(tmp_path / "gray.jpeg") as b:
        assert (a.format, a.mode, a.size, b.mode) == ("JPEG", "RGB", (W, H), "L")


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_is_read_and_written_as_rgb_or_rgba(tmp_path, u8, transparent):
    src = Image.fromarray(u8(3)).quantize(16)
    if transparent:
        src.info["transparency"] = 0
    src.save(tmp_path / "p.png", **({"transparency": 0} if transparent else {}))
    expected = np.asarray(src.convert("RGBA" if transparent else "RGB"))
    image, info = roundtrip(tmp_path / "p.png", tmp_path / "out.png")
    assert info.mode == "P" and image.shape == (H, W, 3)
    with Image.open(tmp_path / "out.png") as out:
        assert out.mode == ("RGBA" if transparent else "RGB")
        np.testing.assert_array_equal(np.asarray(out), expected)


def test_one_bit_becomes_gray(tmp_path, u8):
    Image.fromarray(u8() > 127).save(tmp_path / "b.png")
    image, info = roundtrip(tmp_path / "b.png", tmp_path / "out.png")
    assert info.mode == "1" and info.gray and set(np.unique(image)) <= {0.0, 1.0}
    with Image.open(tmp_path / "out.png") as out:
        assert out.mode == "L"


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_gray_is_exact(tmp_path, u16, suffix):
    data = u16()
    Image.fromarray(data).save(tmp_path / f"in{suffix}")
    image, info = roundtrip(tmp_path / f"in{suffix}", tmp_path / f"out{suffix}")
    assert (info.bit_depth, info.gray, info.mode) == (16, True, "I;16")
    np.testing.assert_array_equal(np.round(image[..., 0] * 65535).astype(np.uint16), data)
    with Image.open(tmp_path / f"out{suffix}") as out:
        assert out.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(out), data)


@pytest.mark.parametrize(("channels", "suffix"), [(3, ".png"), (4, ".png"), (3, ".tif"), (4, ".tiff")])
def test_16bit_color_is_exact(tmp_path, u16, channels, suffix):
    rgb = u16(channels)
    cv2.imwrite(str(tmp_path / f"in{suffix}"), rgb[..., [2, 1, 0, 3][:channels]])  # OpenCV wants BGR(A)
    image, info = roundtrip(tmp_path / f"in{suffix}", tmp_path / f"out{suffix}")
    assert info.bit_depth == 16 and not info.gray and image.shape == (H, W, 3)
    assert info.mode == ("RGB", "RGBA")[channels - 3]
    np.testing.assert_array_equal(np.round(image * 65535).astype(np.uint16), rgb[..., :3])
    if channels == 4:
        np.testing.assert_array_equal(np.round(info.alpha * 65535).astype(np.uint16), rgb[..., 3])
    out = cv2.imread(str(tmp_path / f"out{suffix}"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(out[..., [2, 1, 0, 3][:channels]], rgb)


def test_16bit_gray_alpha_png_is_exact(tmp_path, u16):
    la = u16(2)
    (tmp_path / "in.png").write_bytes(_imageio_png.encode_png16(la))
    image, info = roundtrip(tmp_path / "in.png", tmp_path / "out.png")
    assert (info.gray, info.bit_depth, info.mode) == (True, 16, "LA")
    assert _imageio_png.png_header(tmp_path / "out.png") == (16, 4)
    out = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(out[..., [0, 3]], la)


def test_16bit_png_orientation(tmp_path, u16):
    data = u16(3)
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "r.png").write_bytes(_imageio_png.encode_png16(data, exif=exif.tobytes()))
    image, _ = roundtrip(tmp_path / "r.png", tmp_path / "out.png")
    np.testing.assert_array_equal(np.round(image * 65535).astype(np.uint16), np.rot90(data, -1))
    with Image.open(tmp_path / "out.png") as out:
        assert out.size == (H, W) and 0x0112 not in out.getexif()


def test_png16_encoder_metadata_read_by_pillow(tmp_path, u16, srgb_icc):
    data = u16(3)
    (tmp_path / "a.png").write_bytes(_imageio_png.encode_png16(data, srgb_icc, (300, 300)))
    with Image.open(tmp_path / "a.png") as im:
        im.load()
        assert im.info["icc_profile"] == srgb_icc and np.allclose(im.info["dpi"], 300, atol=0.1)


def test_cmyk_jpeg_becomes_rgb(tmp_path, u8):
    Image.fromarray(u8(3)).convert("CMYK").save(tmp_path / "cmyk.jpg")
    image, info = roundtrip(tmp_path / "cmyk.jpg", tmp_path / "out.jpg")
    assert info.mode == "CMYK" and image.shape == (H, W, 3) and info.icc_profile is None
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.mode == "RGB"


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_rotated_jpeg_is_read_and_written_upright(tmp_path, u8, suffix):
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "maker"
    Image.fromarray(u8(3)).save(tmp_path / "rot.jpg", exif=exif.tobytes())
    image, info = roundtrip(tmp_path / "rot.jpg", tmp_path / f"out{suffix}")
    assert image.shape == (W, H, 3)
    with Image.open(tmp_path / f"out{suffix}") as out:
        assert out.size == (H, W) and 0x0112 not in out.getexif() and out.getexif()[0x010F] == "maker"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow(tmp_path, u8, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    src = Image.fromarray(u8(3))
    src.save(tmp_path / "o.png", exif=exif.tobytes())
    image, _ = read_image(tmp_path / "o.png")
    with Image.open(tmp_path / "o.png") as im:
        expected = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(np.round(image * 255).astype(np.uint8), expected)


def _tiff16_rgb(path: Path, data: np.ndarray, orientation: int) -> None:
    """Write an uncompressed 16-bit RGB TIFF with an orientation tag (neither Pillow nor OpenCV can)."""
    h, w, _ = data.shape
    pixels = data.astype("<u2").tobytes()
    ifd_at = 8 + len(pixels)
    short, long_ = (lambda v: struct.pack("<HIHH", 3, 1, v, 0)), (lambda v: struct.pack("<HII", 4, 1, v))
    entries = {
        256: short(w),
        257: short(h),
        258: struct.pack("<HII", 3, 3, ifd_at + 2 + 12 * 11 + 4),
        259: short(1),
        262: short(2),
        273: long_(8),
        274: short(orientation),
        277: short(3),
        278: short(h),
        279: long_(len(pixels)),
        284: short(1),
    }
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<H", t) + e for t, e in entries.items())
    bits = struct.pack("<3H", 16, 16, 16)
    path.write_bytes(b"II*\x00" + struct.pack("<I", ifd_at) + pixels + ifd + b"\x00" * 4 + bits)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("kind", ["8-bit gray", "8-bit gray lzw", "16-bit color"])
def test_tiff_orientation(tmp_path, u8, u16, orientation, kind):
    path = tmp_path / "o.tif"
    if kind == "16-bit color":
        data = u16(3)
        _tiff16_rgb(path, data, orientation)
    else:
        data = u8()
        ifd = TiffImagePlugin.ImageFileDirectory_v2()
        ifd[0x0112] = orientation
        Image.fromarray(data).save(path, tiffinfo=ifd, compression="tiff_lzw" if "lzw" in kind else None)
    image, info = read_image(path)
    scale = 255 if data.dtype == np.uint8 else 65535
    expected = _imageio_png.orient(data, orientation)
    np.testing.assert_array_equal(np.round(image * scale).astype(data.dtype).reshape(expected.shape), expected)
    assert info.bit_depth == (16 if kind == "16-bit color" else 8)


def test_mpo_gives_its_first_picture(tmp_path, u8):
    first, second = Image.fromarray(u8(3)), Image.fromarray(np.zeros((H, W, 3), np.uint8))
    first.save(tmp_path / "m.jpg", "MPO", save_all=True, append_images=[second], quality=100)
    image, info = read_image(tmp_path / "m.jpg")
    with Image.open(tmp_path / "m.jpg") as im:
        assert im.n_frames == 2
        expected = np.asarray(im.convert("RGB"))  # frame 0
    assert info.format == "MPO" and image.mean() > 0.1
    np.testing.assert_array_equal(np.round(image * 255).astype(np.uint8), expected)


@pytest.mark.skipif(".webp" not in SUPPORTED_SUFFIXES, reason="Pillow without WebP")
@pytest.mark.parametrize(("channels", "mode"), [((), "RGB"), ((4,), "RGBA")])
def test_webp_output(tmp_path, u8, channels, mode):
    Image.fromarray(u8(*channels)).save(tmp_path / "in.png")
    roundtrip(tmp_path / "in.png", tmp_path / "out.webp")
    with Image.open(tmp_path / "out.webp") as out:
        assert (out.format, out.mode, out.size) == ("WEBP", mode, (W, H))


def test_icc_dpi_kept(tmp_path, u8, srgb_icc):
    Image.fromarray(u8(3)).save(tmp_path / "in.png", icc_profile=srgb_icc, dpi=(300, 300))
    for suffix in (".png", ".jpg", ".tif"):
        roundtrip(tmp_path / "in.png", tmp_path / f"out{suffix}")
        with Image.open(tmp_path / f"out{suffix}") as out:
            assert out.info.get("icc_profile") == srgb_icc, suffix
            assert np.allclose(out.info["dpi"], 300, atol=0.5), suffix


def test_float_tiff(tmp_path, rng):
    data = rng.random((H, W), dtype=np.float32)
    Image.fromarray(data).save(tmp_path / "f.tif")
    image, info = roundtrip(tmp_path / "f.tif", tmp_path / "out.tif")
    assert info.bit_depth == 32 and info.gray
    np.testing.assert_array_equal(image[..., 0], data)
    with Image.open(tmp_path / "out.tif") as out:
        assert out.mode == "F"
        np.testing.assert_array_equal(np.asarray(out), data)


@pytest.mark.parametrize(
    ("value", "message"), [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"), (1.5, "only values in [0, 1]")]
)
def test_bad_float_tiff(tmp_path, rng, value, message):
    data = rng.random((H, W), dtype=np.float32)
    data[2, 3] = value
    Image.fromarray(data).save(tmp_path / "f.tif")
    with pytest.raises(ImageReadError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_image(tmp_path / "f.tif")


def _bad_files(tmp_path: Path, u8) -> dict[str, tuple[Path, str]]:
    """name -> (path, expected words of the message)."""
    frames = [Image.fromarray(u8(3)), Image.fromarray(u8(3))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    for suffix in ("png", "jpg"):
        buf = io.BytesIO()
        Image.fromarray(u8(3)).resize((64, 64)).save(buf, "PNG" if suffix == "png" else "JPEG")
        (tmp_path / f"cut.{suffix}").write_bytes(buf.getvalue()[: len(buf.getvalue()) * 2 // 3])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image\n")
    (tmp_path / "folder.png").mkdir()
    return {
        "animated": (tmp_path / "anim.gif", "has 2 frames"),
        "cut png": (tmp_path / "cut.png", "truncated"),
        "cut jpg": (tmp_path / "cut.jpg", "truncated"),
        "empty": (tmp_path / "empty.png", "empty"),
        "text": (tmp_path / "text.png", "not a recognised image"),
        "folder": (tmp_path / "folder.png", "directory"),
        "missing": (tmp_path / "missing.png", "not found"),
    }


@pytest.mark.parametrize("case", ["animated", "cut png", "cut jpg", "empty", "text", "folder", "missing"])
def test_read_errors_are_one_line_naming_the_file(tmp_path, u8, case):
    path, words = _bad_files(tmp_path, u8)[case]
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and words in message and "\n" not in message


def test_permission_denied(tmp_path, u8, monkeypatch):
    Image.fromarray(u8()).save(tmp_path / "locked.png")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        (tmp_path / "locked.png").chmod(0)
    else:  # root reads anything: fake the refusal
        monkeypatch.setattr(Image, "open", lambda *a, **k: (_ for _ in ()).throw(PermissionError(13, "denied")))
    with pytest.raises(ImageReadError, match="permission denied"):
        read_image(tmp_path / "locked.png")


def test_max_pixels(tmp_path, u8):
    Image.fromarray(u8(3)).save(tmp_path / "big.png")
    saved = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageReadError, match="the limit of 50 pixels"):
        read_image(tmp_path / "big.png", max_pixels=50)
    assert Image.MAX_IMAGE_PIXELS == saved
    assert read_image(tmp_path / "big.png", max_pixels=H * W)[0].shape == (H, W, 3)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_failed_encode_leaves_nothing(tmp_path, u8, monkeypatch):
    image = u8(3).astype(np.float32) / 255

    def broken(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError("encoder exploded")

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(ImageWriteError, match="encoder exploded") as err:
        write_image(tmp_path / "out.png", image, ImageInfo(mode="RGB"))
    assert "\n" not in str(err.value) and str(tmp_path / "out.png") in str(err.value)
    assert _listing(tmp_path) == []


def test_failed_rename_keeps_old_output(tmp_path, u8, monkeypatch):
    image = u8(3).astype(np.float32) / 255
    (tmp_path / "out.png").write_bytes(b"old")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(ImageWriteError, match="disk full"):
        write_image(tmp_path / "out.png", image, ImageInfo(mode="RGB"))
    assert _listing(tmp_path) == ["out.png"] and (tmp_path / "out.png").read_bytes() == b"old"


def test_write_leaves_no_temporary_file(tmp_path, u8):
    write_image(tmp_path / "out.png", u8(3).astype(np.float32) / 255, ImageInfo(mode="RGB"))
    assert _listing(tmp_path) == ["out.png"]


@pytest.mark.parametrize(
    ("name", "image", "words"),
    [
        ("out.gif", np.zeros((H, W, 3), np.float32), "cannot write '.gif'"),
        ("noext", np.zeros((H, W, 3), np.float32), "without a suffix"),
        ("out.png", np.zeros((H, W, 2), np.float32), "C = 1 or 3"),
        ("out.png", np.zeros((H, W, 3), np.uint8), "float array"),
        ("out.png", np.full((H, W, 3), np.nan, np.float32), "NaN"),
        ("missing/out.png", np.zeros((H, W, 3), np.float32), "does not exist"),
    ],
)
def test_write_errors(tmp_path, name, image, words):
    with pytest.raises(ImageWriteError) as err:
        write_image(tmp_path / name, image, ImageInfo(mode="RGB"))
    assert str(err.value).startswith(f"{tmp_path / name}: ") and words in str(err.value)
    assert "\n" not in str(err.value) and not (tmp_path / name).exists()


def test_rounding_and_clipping(tmp_path):
    image = np.array([[[-0.5], [0.5 / 255 - 1e-4], [0.5 / 255 + 1e-4], [2.0]]], np.float32)
    write_image(tmp_path / "r.png", image, ImageInfo(mode="L", gray=True))
    with Image.open(tmp_path / "r.png") as out:
        assert np.asarray(out).tolist() == [[0, 0, 1, 255]]


def test_tensor_conversion(rng):
    image = rng.random((H, W, 3), dtype=np.float32)
    x = to_tensor(image)
    assert x.shape == (1, 3, H, W) and x.dtype == torch.float32
    np.testing.assert_array_equal(from_tensor(x), image)
    assert from_tensor(torch.full((1, 1, 2, 2), 3.0)).max() == 1.0
    assert to_tensor(image[..., 0]).shape == (1, 1, H, W)


def test_supported_suffixes():
    assert {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"} <= SUPPORTED_SUFFIXES
