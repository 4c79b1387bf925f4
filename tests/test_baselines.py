"""Classical baselines: each one improves its own degradation on a synthetic image."""

import numpy as np
import pytest
import torch

from sirestore import baselines
from sirestore.degrade.kernels import conv, gaussian_kernel
from sirestore.metrics import psnr


def _scene(h: int = 64, w: int = 80, c: int = 3) -> np.ndarray:
    """A smooth colour image with a few edges, float32 in [0.1, 0.9]."""
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w]).reshape(2, 1, 1)
    base = 0.5 + 0.25 * np.sin(6 * xx) * np.cos(4 * yy)
    img = np.stack([base, 0.8 * base + 0.1 * (xx > 0.5), 0.6 * base + 0.2 * (yy > 0.4)], axis=-1)[..., :c]
    return np.clip(img, 0.1, 0.9).astype(np.float32)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(psnr(torch.from_numpy(a).permute(2, 0, 1)[None], torch.from_numpy(b).permute(2, 0, 1)[None]))


@pytest.mark.parametrize("c", [1, 3])
def test_nlm_denoises(c):
    x = _scene(c=c)
    y = x + np.random.default_rng(0).normal(0, 25 / 255, x.shape).astype(np.float32)
    out = baselines.nlm(y, 25)
    assert out.shape == x.shape and out.dtype == np.float32
    assert _psnr(out, x) > _psnr(np.clip(y, 0, 1), x) + 3


def test_deconvolution_with_true_kernel():
    rng = np.random.default_rng(1)
    x = np.clip(0.5 + 0.2 * rng.standard_normal((72, 88, 3)), 0, 1).astype(np.float32)  # texture
    xt = torch.from_numpy(x).permute(2, 0, 1)[None]
    x = conv(xt, gaussian_kernel(1.2))[0].permute(1, 2, 0).numpy()  # a little correlated, like photos
    k = gaussian_kernel(1.2)
    y = conv(torch.from_numpy(x).permute(2, 0, 1)[None], k)[0].permute(1, 2, 0).numpy()
    y = y + rng.normal(0, 2.55 / 255, y.shape).astype(np.float32)
    blurred = _psnr(np.clip(y, 0, 1), x)
    assert _psnr(baselines.wiener(y, k.numpy(), 2.55), x) > blurred + 1
    assert _psnr(baselines.richardson_lucy(y, k.numpy()), x) > blurred + 1


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_inpaint_fills_holes_and_keeps_known(method):
    x = _scene()
    known = np.ones(x.shape[:2], bool)
    known[20:30, 30:45] = False
    y = x * known[..., None]
    out = baselines.inpaint(y, known, method)
    assert np.abs(out[known] - x[known]).max() <= 0.5 / 255 + 1e-6
    assert np.abs(out[~known] - x[~known]).mean() < 0.5 * np.abs(y[~known] - x[~known]).mean()
    with pytest.raises(ValueError, match="method"):
        baselines.inpaint(y, known, "magic")


def test_clahe_raises_contrast_of_a_dark_image():
    dark = 0.05 + 0.15 * _scene()
    out = baselines.clahe(dark)
    assert out.shape == dark.shape and out.std() > 1.3 * dark.std()


def test_dark_channel_prior_removes_uniform_haze():
    x = _scene()
    t, airlight = 0.6, 0.9
    hazy = x * t + airlight * (1 - t)
    assert _psnr(baselines.dark_channel_prior(hazy), x) > _psnr(hazy, x) + 2


def test_lee_reduces_speckle():
    x = _scene(c=1)
    y = x * np.random.default_rng(2).gamma(4, 1 / 4, x.shape).astype(np.float32)
    assert _psnr(baselines.lee(y, 4), x) > _psnr(np.clip(y, 0, 1), x) + 3


def test_bicubic_up_shape_and_constant():
    lr = np.full((9, 7, 3), 0.25, np.float32)
    out = baselines.bicubic_up(lr, 4)
    assert out.shape == (36, 28, 3) and np.allclose(out, 0.25, atol=1e-6)


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match="H x W x C"):
        baselines.nlm(np.zeros((8, 8), np.float32), 10)
