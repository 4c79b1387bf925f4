"""Metrics on the shared protocol: PSNR on uint8 levels, SSIM reference settings."""

import math

import pytest
import torch

from sirestore.metrics import psnr, rgb_to_y, ssim


def test_psnr_known_value():
    a = torch.zeros(1, 1, 4, 4)
    b = torch.full((1, 1, 4, 4), 10 / 255)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100))
    assert psnr(a, a) == float("inf")


def test_psnr_clamps_and_rounds():
    x = torch.randint(0, 256, (1, 3, 8, 8)).float() / 255
    assert psnr(x + 0.4 / 255, x) == psnr(x, x)  # the same uint8 levels
    assert psnr(x * 0 + 2.0, torch.ones_like(x)) == float("inf")  # clamped to 1


def test_psnr_border():
    a = torch.zeros(1, 1, 8, 8)
    b = a.clone()
    b[..., 0, :] = 1
    assert psnr(a, b, border=2) == float("inf")


def test_ssim_identity_and_range():
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert ssim(x, x) == pytest.approx(1.0)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert 0 < ssim(noisy, x) < 0.9


def test_ssim_matches_scikit_image_when_available():
    skm = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 40, 40, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    a, b = [(t[0, 0] * 255).round().double().numpy() for t in (y, x)]
    ref = skm.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    assert ssim(y, x) == pytest.approx(ref, abs=2e-3)


def test_rgb_to_y_white_and_black():
    assert rgb_to_y(torch.ones(1, 3, 1, 1)).item() == pytest.approx(235 / 255)
    assert rgb_to_y(torch.zeros(1, 3, 1, 1)).item() == pytest.approx(16 / 255)
