"""Known-operator mode: data consistency (projection, proximal step), speckle guidance, plug-and-play HQS with
the kernel-error variant, and `sirestore restore --mask / --kernel / --scale / --sigma / --pnp-iters / --speckle`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sirestore.cli import main
from sirestore.consistency import projection, proximal, speckle_guidance, speckle_log_likelihood, speckle_score
from sirestore.degrade import BlurOperator, DownsampleOperator, MaskOperator, bicubic_kernel, gaussian_kernel
from sirestore.degrade.boundary import pad_reflect, valid_blur, valid_downsample
from sirestore.degrade.inpaint import fill_holes
from sirestore.degrade.kernels import line_kernel
from sirestore.degrade.noise import standard_gamma
from sirestore.known import Known, initial_guess, restore_known
from sirestore.pnp import noise_levels, pnp_hqs, update_kernel
from sirestore.restore import Restorer
from sirestore.sampler import sample

B, C, H, W = 2, 3, 16, 20


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _mask(h: int = H, w: int = W) -> torch.Tensor:
    return (_rand(1, 1, h, w, seed=5) > 0.4).double()


# operator, shape of x
OPERATORS = {
    "mask": lambda: (MaskOperator(_mask()), (B, C, H, W)),
    "blur_circular": lambda: (BlurOperator(gaussian_kernel(0.8).double(), eps=1e-9), (B, C, H, W)),
    "blur_valid": lambda: (valid_blur(line_kernel(5, 30).double(), eps=1e-9), (B, C, H + 4, W + 4)),
    "down_bicubic2": lambda: (DownsampleOperator(2, bicubic_kernel(2).double()), (B, C, H, W)),
    "down_valid_bicubic2": lambda: (valid_downsample(2, bicubic_kernel(2).double()), (B, C, H + 2 * 2 * 4, W + 16)),
}


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_projection_makes_the_estimate_consistent_and_is_idempotent(name):
    op, shape = OPERATORS[name]()
    x_true, x1 = _rand(*shape, seed=1), _rand(*shape, seed=2)
    y = op.A(x_true)
    dc = projection(op, y)
    out = dc(x1)
    tol = 0 if name == "mask" else 1e-4  # A^+ of blur (and kernel downsampling) is regularised, eps 1e-9
    assert (op.A(out) - y).abs().max().item() <= tol
    torch.testing.assert_close(dc(out), out, atol=max(tol, 1e-6), rtol=0)


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_proximal_step_is_the_minimiser(name):
    """The gradient of ||A x - y||^2 / (2 sigma^2) + ||x - x1||^2 / (2 rho^2) vanishes at the result."""
    op, shape = OPERATORS[name]()
    y = op.A(_rand(*shape, seed=1)) + 0.05 * _rand(*op.A(_rand(*shape)).shape, seed=3)
    x1 = _rand(*shape, seed=2)
    sigma, rho = 0.05, 0.1
    x = proximal(op, y, sigma, rho)(x1)
    grad = op.A_T(op.A(x) - y) / sigma**2 + (x - x1) / rho**2
    assert grad.abs().max().item() < 1e-4 * (1 / rho**2)
    assert (op.A(x) - y).norm() < (op.A(x1) - y).norm()


def test_proximal_with_zero_sigma_is_the_projection_and_checks_rho():
    op, y = MaskOperator(_mask()), _rand(B, C, H, W, seed=1)
    x1 = _rand(B, C, H, W, seed=2)
    assert torch.equal(proximal(op, y, 0.0, 0.1)(x1), projection(op, y)(x1))
    with pytest.raises(ValueError):
        proximal(op, y, 0.1, 0.0)


def test_mask_projection_in_the_sampler_keeps_observed_pixels_exactly(tiny_model):
    mask = _mask().float()
    y = _rand(1, 3, H, W, seed=3).float()
    for steps in (1, 3):
        out = sample(tiny_model, y, steps=steps, dc=projection(MaskOperator(mask), y))
        out = projection(MaskOperator(mask), y)(out)
        assert torch.equal(out * mask, y * mask)


def test_fill_holes_keeps_observed_pixels_and_fills_smoothly():
    y = torch.linspace(0, 1, W).expand(1, 3, H, W).clone()
    mask = torch.ones(1, 1, H, W)
    mask[..., 4:12, 5:15] = 0
    filled = fill_holes(y * mask, mask)
    assert torch.equal(filled * mask, y * mask)
    assert (filled - y).abs().max() < 0.2  # a linear ramp is filled close to itself
    assert torch.equal(fill_holes(y, torch.zeros(1, 1, H, W)), torch.full_like(y, 0.5))


def test_initial_guess_lives_on_the_operator_grid():
    y = _rand(1, 3, 10, 12).float()
    k = line_kernel(7, 0)
    assert initial_guess(valid_blur(k), y).shape == (1, 3, 10 + 6, 12 + 6)
    op = valid_downsample(3, bicubic_kernel(3))
    assert initial_guess(op, y).shape == (1, 3, 3 * (10 + 2 * op.margin[0]), 3 * (12 + 2 * op.margin[2]))
    assert initial_guess(DownsampleOperator(2), y).shape == (1, 3, 20, 24)


# --- speckle -----------------------------------------------------------------------------------------------


def _speckle_case(looks: float = 2.0):
    """A clean image and its speckled observation y = x n, n ~ Gamma(L, 1/L)."""
    x = 0.1 + 0.9 * _rand(2, 3, 12, 12, seed=1)
    return x, x * standard_gamma(tuple(x.shape), looks, torch.Generator().manual_seed(7)) / looks


def test_speckle_score_is_the_gradient_of_the_log_likelihood():
    x, y = _speckle_case()
    xg = x.clone().requires_grad_(True)
    speckle_log_likelihood(y, xg, 2.0).sum().backward()
    torch.testing.assert_close(xg.grad, speckle_score(y, x, 2.0))


@pytest.mark.parametrize("looks,rho", [(1.0, 0.05), (4.0, 0.2), (16.0, 1.0)])
def test_speckle_guidance_increases_the_likelihood(looks, rho):
    x_true, y = _speckle_case(looks)
    x1 = (x_true + 0.2 * (_rand(*x_true.shape, seed=4) - 0.5)).clamp_min(0.01)  # an imperfect estimate
    guided = speckle_guidance(y, looks, rho)(x1)
    before, after = speckle_log_likelihood(y, x1, looks), speckle_log_likelihood(y, guided, looks)
    assert (after > before).all()
    lo, hi = torch.minimum(x1, y).clamp_min(1e-3), torch.maximum(x1, y).clamp_min(1e-3)
    assert ((guided >= lo - 1e-12) & (guided <= hi + 1e-12)).all()  # never passes y: each pixel improves


def test_restore_known_speckle_shape(tiny_model):
    y = _rand(1, 3, 18, 22).float()
    out = restore_known(Restorer(model=tiny_model), y, Known(speckle=4.0))
    assert out.shape == y.shape and out.dtype == torch.float32


# --- plug-and-play -------------------------------------------------------------------------------------------


def _blocks(x: torch.Tensor, b: int = 4) -> torch.Tensor:
    """The denoiser of the synthetic case: projection onto images constant on b x b blocks (the prior)."""
    return F.avg_pool2d(x, b).repeat_interleave(b, -2).repeat_interleave(b, -1)


def _perturbed(k: torch.Tensor) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    extra = 0.5 * k.max() * torch.rand(k.shape, generator=gen, dtype=k.dtype)
    k0 = torch.roll(k + extra * (torch.rand(k.shape, generator=gen, dtype=k.dtype) < 0.2), 1, -1)
    return k0 / k0.sum()


@pytest.mark.parametrize("boundary", ["circular", "valid"])
def test_kernel_error_variant_reduces_the_data_residual(boundary):
    """Block-constant image, a perturbed kernel: alternating kernel updates fit y far better than the kernel
    as given, and move the kernel towards the true one."""
    k_true = gaussian_kernel(1.6, 13).double()
    k0 = _perturbed(k_true)
    size = 64 if boundary == "circular" else 76  # the valid grid is 64 + 12, a multiple of the blocks
    x_true = _blocks(_rand(1, 3, size, size, seed=0))
    make_op = BlurOperator if boundary == "circular" else valid_blur
    true_op = make_op(k_true)
    y = true_op.A(x_true)
    x_init = y if boundary == "circular" else pad_reflect(y, true_op.margin)
    runs = {
        refine: pnp_hqs(_blocks, make_op, y, x_init, k0, 8, gen=torch.Generator().manual_seed(1), refine_kernel=refine)
        for refine in (False, True)
    }
    residual = {refine: (true_op.A(r.x) - y).norm().item() for refine, r in runs.items()}
    assert residual[True] < 0.5 * residual[False]
    assert (runs[True].kernel - k_true).abs().sum() < 0.5 * (k0 - k_true).abs().sum()
    assert runs[False].kernel is k0
    assert runs[True].kernel.min() >= 0 and abs(runs[True].kernel.sum().item() - 1) < 1e-9


def test_update_kernel_recovers_the_kernel_from_the_true_image():
    k_true = line_kernel(7, 45).double()
    x = _rand(1, 3, 40, 40, seed=2)
    y = valid_blur(k_true).A(x)
    k = update_kernel(valid_blur, x, y, _perturbed(k_true), reg=1e-6, iters=200)
    assert (k - k_true).abs().sum() < 0.05


def test_noise_levels_decrease_geometrically():
    levels = noise_levels(5, 0.2, 0.01)
    assert levels[0] == pytest.approx(0.2) and levels[-1] == pytest.approx(0.01)
    ratios = [b / a for a, b in zip(levels, levels[1:])]
    assert all(r == pytest.approx(ratios[0]) for r in ratios) and ratios[0] < 1
    assert noise_levels(1, 0.2, 0.01) == [0.01]


@pytest.mark.parametrize(
    "known",
    [
        Known(kernel=line_kernel(5, 20), pnp_iters=3, refine_kernel=True, sigma=0.02),
        Known(scale=2, pnp_iters=2),
        Known(kernel=gaussian_kernel(1.0), boundary="circular"),
    ],
)
def test_restore_known_shape_dtype_and_seed(tiny_model, known):
    restorer = Restorer(model=tiny_model)
    y = _rand(1, 3, 14, 18).float()
    a, b = restore_known(restorer, y, known, seed=3), restore_known(restorer, y, known, seed=3)
    assert a.shape == (1, 3, 14 * known.scale, 18 * known.scale) and a.dtype == torch.float32
    assert torch.equal(a, b)
    if known.pnp_iters:
        assert not torch.equal(a, restore_known(restorer, y, known, seed=4))
    gray = restore_known(restorer, y[:, :1], known, seed=3)
    assert gray.shape == (1, 1, *a.shape[-2:])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mask": torch.ones(4, 4), "kernel": torch.ones(3, 3) / 9},
        {"speckle": 2.0, "scale": 2},
        {"speckle": 0.0},
        {"scale": 0},
        {"refine_kernel": True, "kernel": torch.ones(3, 3) / 9},
        {"pnp_iters": 3},
        {"boundary": "reflect", "scale": 2},
    ],
)
def test_known_rejects_inconsistent_settings(kwargs):
    with pytest.raises(ValueError):
        Known(**kwargs)


# --- command line --------------------------------------------------------------------------------------------


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, err


def _arr(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im).astype(np.int64)


@pytest.mark.parametrize("name", ["color.png", "gray.png"])
def test_cli_inpainting_keeps_known_pixels_exactly(tmp_path, image_dir, tiny_weights, capsys, name):
    src = image_dir / name
    h, w = _arr(src).shape[:2]
    known = np.full((h, w), 255, np.uint8)
    known[h // 4 : h // 2, w // 5 : w // 2] = 0
    known[-3:, :4] = 0
    Image.fromarray(known).save(tmp_path / "mask.png")
    Image.fromarray(255 - known).save(tmp_path / "holes_white.png")
    out, out2 = tmp_path / "out.png", tmp_path / "out2.png"
    base = ["restore", src, "--weights", tiny_weights, "--steps", "2"]
    assert _run([*base, "-o", out, "--mask", tmp_path / "mask.png"], capsys)[0] == 0
    assert _run([*base, "-o", out2, "--mask", tmp_path / "holes_white.png", "--mask-holes", "white"], capsys)[0] == 0
    a, b = _arr(src), _arr(out)
    keep = known == 255
    assert a.shape == b.shape and np.abs(a - b)[keep].max() == 0
    assert np.abs(a - b)[~keep].max() > 0  # the holes were restored, not copied
    assert np.array_equal(b, _arr(out2))
    out3 = tmp_path / "out3.png"  # plug-and-play ends with the same projection
    assert _run([*base, "-o", out3, "--mask", tmp_path / "mask.png", "--pnp-iters", "2"], capsys)[0] == 0
    assert np.abs(a - _arr(out3))[keep].max() == 0


def test_cli_super_resolution_deblurring_pnp_and_speckle(tmp_path, image_dir, tiny_weights, capsys):
    np.save(tmp_path / "k.npy", np.outer(np.hanning(7)[1:-1], np.hanning(5)[1:-1]))
    alpha = image_dir / "alpha.png"
    runs = {
        "sr.png": [alpha, "--scale", "3"],
        "sr_avg.png": [image_dir / "gray.png", "--scale", "2", "--downsample", "average", "--boundary", "circular"],
        "deblur.png": [image_dir / "color.png", "--kernel", tmp_path / "k.npy", "--sigma", "5"],
        "pnp.png": [image_dir / "gray.png", "--kernel", tmp_path / "k.npy", "--pnp-iters", "2", "--refine-kernel"],
        "speckle.png": [image_dir / "color.png", "--speckle", "4", "--rho", "20"],
    }
    for out, argv in runs.items():
        code, err = _run(["restore", *argv, "-o", tmp_path / out, "--weights", tiny_weights], capsys)
        assert code == 0, err
    with Image.open(tmp_path / "sr.png") as im, Image.open(alpha) as src:
        assert im.mode == "RGBA" and im.size == (3 * src.size[0], 3 * src.size[1])
    with Image.open(tmp_path / "sr_avg.png") as im:
        assert im.mode == "L" and im.size == (66, 60)
    for out, src in (("deblur.png", "color.png"), ("pnp.png", "gray.png"), ("speckle.png", "color.png")):
        with Image.open(tmp_path / out) as im, Image.open(image_dir / src) as ref:
            assert im.size == ref.size and im.mode == ref.mode


@pytest.mark.parametrize(
    "argv,needle,status",
    [
        (["--mask", "MASK_SMALL"], "mask is 10x8 pixels but the image is 45x37", 1),
        (["--mask", "NOT_AN_IMAGE"], "not a recognised image", 2),
        (["--kernel", "NOT_AN_IMAGE"], "cannot read a kernel", 2),
        (["--kernel", "MAT"], "holds 2 kernels", 2),
        (["--kernel", "MAT", "--kernel-index", "3"], "no kernel 3", 2),
        (["--scale", "0.5"], "whole number >= 1", 2),
        (["--scale", "two"], "whole number >= 1", 2),
        (["--sigma", "-1"], "--sigma", 2),
        (["--speckle", "0"], "looks", 2),
        (["--pnp-iters", "0", "--scale", "2"], "--pnp-iters", 2),
        (["--refine-kernel"], "needs --pnp-iters", 2),
        (["--scale", "2", "--pnp-iters", "2", "--refine-kernel"], "kernel refinement", 2),
        (["--kernel-index", "2"], "needs --kernel", 2),
        (["--mask", "MASK_SMALL", "--scale", "2"], "cannot be combined", 2),
        (["--scale", "2", "--tile", "64"], "--tile does not apply", 2),
        (["--boundary", "circular"], "needs --kernel or --scale", 2),
    ],
)
def test_cli_bad_known_options_one_line(tmp_path, image_dir, tiny_weights, capsys, argv, needle, status):
    scipy_io = pytest.importorskip("scipy.io")
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(tmp_path / "small.png")
    (tmp_path / "text.png").write_text("not an image")
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = np.ones((3, 3)), np.eye(5)
    scipy_io.savemat(tmp_path / "k.mat", {"kernels": cell})
    files = {"MASK_SMALL": tmp_path / "small.png", "NOT_AN_IMAGE": tmp_path / "text.png", "MAT": tmp_path / "k.mat"}
    out = tmp_path / "o.png"
    args = ["restore", image_dir / "color.png", "-o", out, "--weights", tiny_weights, *[files.get(a, a) for a in argv]]
    code, err = _run(args, capsys)
    assert code == status and needle in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_mat_kernels_from_v5_cells(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    from sirestore.degrade.kernels import load_kernel

    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = np.ones((3, 3)), np.diag([1.0, 2.0, 1.0])
    scipy_io.savemat(tmp_path / "k.mat", {"kernels": cell})
    k = load_kernel(tmp_path / "k.mat", 2)
    assert torch.allclose(k, torch.diag(torch.tensor([0.25, 0.5, 0.25])))
    assert math.isclose(load_kernel(tmp_path / "k.mat", 1).sum().item(), 1.0, rel_tol=1e-6)
