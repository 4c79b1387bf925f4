"""Linear operators: adjoints, pseudo-inverses, and agreement with the degradations they describe."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sirestore.degrade import (
    BlurOperator,
    DownsampleOperator,
    Identity,
    MaskOperator,
    bicubic_kernel,
    gaussian_kernel,
    levin_kernel,
    load_kernel,
    parse_spec,
)
from sirestore.degrade.boundary import pad_reflect, pcg, valid_blur, valid_downsample
from sirestore.degrade.kernels import conv
from sirestore.degrade.operators import single

B, C, H, W = 2, 3, 12, 18


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _mask() -> torch.Tensor:
    return (_rand(B, 1, H, W, seed=5) > 0).double()


OPERATORS = {
    "identity": lambda: Identity(),
    "mask": lambda: MaskOperator(_mask()),
    "blur_levin": lambda: BlurOperator(levin_kernel(2)),  # kernel larger than the 12-pixel height: aliases
    "blur_per_image_even": lambda: BlurOperator(_rand(B, 4, 5, seed=3).abs()),
    "down_avg2": lambda: DownsampleOperator(2),
    "down_avg3": lambda: DownsampleOperator(3),
    "down_bicubic2": lambda: DownsampleOperator(2, bicubic_kernel(2)),
    "down_gauss3": lambda: DownsampleOperator(3, gaussian_kernel(1.0)),
}


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_adjoint(name):
    op = OPERATORS[name]()
    x = _rand(B, C, H, W, seed=1)
    y = _rand(*op.A(x).shape, seed=2)
    lhs, rhs = (op.A(x) * y).sum(), (x * op.A_T(y)).sum()
    assert abs(lhs - rhs).item() <= 1e-5 * max(1.0, abs(lhs).item())
    assert op.A_pinv(y).shape == x.shape and op(x).shape == y.shape


@pytest.mark.parametrize("name", ["identity", "mask", "down_avg2", "down_avg3", "down_bicubic2", "down_gauss3"])
def test_pseudo_inverse(name):
    op = OPERATORS[name]()
    x = _rand(B, C, H, W, seed=1)
    ax = op.A(x)
    torch.testing.assert_close(op.A(op.A_pinv(ax)), ax, atol=1e-6, rtol=0)  # A A+ A = A
    if name != "mask":  # surjective: A A+ y = y for any y
        y = _rand(*ax.shape, seed=2)
        torch.testing.assert_close(op.A(op.A_pinv(y)), y, atol=1e-6, rtol=0)
    p = op.A_pinv(ax)
    torch.testing.assert_close(op.A_pinv(op.A(p)), p, atol=1e-6, rtol=0)  # A+ A A+ = A+


def test_average_pooling_pinv_is_nearest_upsampling():
    y = _rand(1, 1, 2, 3)
    up = DownsampleOperator(2).A_pinv(y)
    assert torch.equal(up[..., ::2, ::2], y) and torch.equal(up[..., 1::2, 1::2], y)


def test_mask_pinv_is_mask_and_handles_soft_masks():
    m = _mask()
    y = _rand(B, C, H, W, seed=4)
    assert torch.equal(MaskOperator(m).A_pinv(y), y * m)
    soft = torch.tensor([[[[0.0, 0.5, 1.0]]]], dtype=torch.float64)
    torch.testing.assert_close(MaskOperator(soft).A_pinv(torch.ones(1, 1, 1, 3)), torch.tensor([[[[0.0, 2.0, 1.0]]]]))


def test_blur_pinv_inverts_a_well_conditioned_blur():
    op = BlurOperator(gaussian_kernel(0.8).double(), eps=1e-12)
    x = _rand(B, C, H, W, seed=1)
    torch.testing.assert_close(op.A_pinv(op.A(x)), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kernel", [levin_kernel(4), gaussian_kernel(1.3), _rand(3, 6, seed=9).abs().float()])
def test_blur_operator_matches_circular_conv(kernel):
    x = _rand(B, C, H, W, seed=1).float()
    torch.testing.assert_close(BlurOperator(kernel).A(x), conv(x, kernel, "circular"), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "spec",
    [
        "gaussian_blur:sigma_max=2,boundary=circular",
        "motion_blur:boundary=circular,size=9",
        "motion_blur:kernel=levin5,boundary=circular",
    ],
)
def test_blur_degradation_operator_is_exact_when_circular(spec):
    d = parse_spec(spec)
    x = torch.rand(B, C, 16, 20, generator=torch.Generator().manual_seed(0))
    y, params = d(x, torch.Generator().manual_seed(1))
    op = d.operator(params)
    assert isinstance(op, BlurOperator)
    torch.testing.assert_close(op.A(x), y, atol=1e-5, rtol=0)


def test_blur_reflect_operator_matches_inside_the_border():
    d = parse_spec("gaussian_blur:sigma=1")
    x = torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(0))
    y, params = d(x)
    r = params[0]["kernel"].shape[-1] // 2
    torch.testing.assert_close(d.operator(params).A(x)[..., r:-r, r:-r], y[..., r:-r, r:-r], atol=1e-5, rtol=0)


def test_inpaint_operator_reproduces_observation():
    d = parse_spec("inpaint:ratio=0.4")
    x = torch.rand(B, C, 16, 16, generator=torch.Generator().manual_seed(0))
    y, params = d(x, torch.Generator().manual_seed(2))
    op = d.operator(params)
    assert isinstance(op, MaskOperator)
    torch.testing.assert_close(op.A(x), y)
    torch.testing.assert_close(op.A(op.A_pinv(y)), y)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_operator_matches_bicubic_inside_the_border(scale):
    d = parse_spec(f"sr:scale={scale}")
    x = torch.rand(1, C, 12 * scale, 12 * scale, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y, params = d(x)
    op = d.operator(params)
    lr = params[0]["lr"]
    assert isinstance(op, DownsampleOperator) and op.A(x).shape == lr.shape and y.shape == x.shape
    m = 3  # torch renormalises truncated weights within ~2 * scale HR pixels (= 2-3 LR pixels) of the borders
    torch.testing.assert_close(op.A(x)[..., m:-m, m:-m], lr[..., m:-m, m:-m], atol=1e-5, rtol=0)
    torch.testing.assert_close(op.A(op.A_pinv(lr)), lr, atol=1e-5, rtol=0)


def test_noise_operators_are_identity_and_single_params():
    d = parse_spec("awgn:sigma=10")
    _, params = d(torch.zeros(1, 1, 4, 4))
    assert isinstance(d.operator(params), Identity)
    assert single(params) is params[0] and single(params[0]) is params[0]
    with pytest.raises(ValueError):
        single(params * 2)


def test_downsample_rejects_indivisible_sizes():
    with pytest.raises(ValueError):
        DownsampleOperator(3).A(torch.zeros(1, 1, 8, 9))


# --- Gram solves and boundary-aware ("valid") operators ---------------------------------------------------------

VALID = {  # operator, extended x shape
    "valid_blur_levin": lambda: (valid_blur(levin_kernel(5).double()), (B, C, H + 12, W + 12)),
    "valid_blur_even": lambda: (valid_blur(_rand(4, 5, seed=3).abs()), (B, C, H + 3, W + 4)),
    "valid_down_bicubic2": lambda: (valid_downsample(2, bicubic_kernel(2).double()), (B, C, 2 * (6 + 8), 2 * (9 + 8))),
    "valid_down_avg3": lambda: (valid_downsample(3), (B, C, 12, 18)),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_operator_adjoint_and_pseudo_inverse(name):
    op, shape = VALID[name]()
    x = _rand(*shape, seed=1)
    ax = op.A(x)
    y = _rand(*ax.shape, seed=2)
    assert abs((ax * y).sum() - (x * op.A_T(y)).sum()).item() <= 1e-9 * max(1.0, abs((ax * y).sum()).item())
    op.eps = 1e-10  # the pseudo-inverse tends to A^+ as eps -> 0
    p = op.A_pinv(ax)
    torch.testing.assert_close(op.A(p), ax, atol=1e-4, rtol=0)  # A A+ A = A (conjugate gradients to 1e-6)
    torch.testing.assert_close(op.A_pinv(op.A(p)), p, atol=1e-4, rtol=0)  # A+ A A+ = A+
    assert op.crop_x(x).shape[-2:] == (op.scale * ax.shape[-2], op.scale * ax.shape[-1])


def test_valid_blur_is_the_interior_of_any_boundary_convolution():
    k = levin_kernel(3).double()
    x = _rand(1, C, 40, 44, seed=1)
    r = k.shape[-1] // 2
    for boundary in ("reflect", "circular"):
        torch.testing.assert_close(valid_blur(k).A(x), conv(x, k, boundary)[..., r:-r, r:-r], atol=1e-12, rtol=0)


GRAM = {
    **OPERATORS,
    "valid_blur_levin": lambda: VALID["valid_blur_levin"]()[0],
    "valid_down_bicubic2": lambda: VALID["valid_down_bicubic2"]()[0],
}


@pytest.mark.parametrize("name", sorted(GRAM))
def test_gram_inverse_and_tikhonov_solve_their_equations(name):
    op = GRAM[name]()
    shape = dict((k, v()[1]) for k, v in VALID.items()).get(name, (B, C, H, W))
    y = _rand(*op.A(_rand(*shape)).shape, seed=2)
    lam, tol = 0.05, 1e-5 if name.startswith("valid") else 1e-9  # valid: conjugate gradients to 1e-6
    u = op.gram_inv(y, lam)
    torch.testing.assert_close(op.A(op.A_T(u)) + lam * u, y, atol=tol, rtol=0)  # (A A^T + lam) u = y
    x = op.tikhonov(y, lam)
    torch.testing.assert_close(op.A_T(op.A(x)) + lam * x, op.A_T(y), atol=tol, rtol=0)  # (A^T A + lam) x = A^T y


def test_pad_reflect_matches_torch_and_handles_large_pads():
    x = _rand(1, 2, 5, 7, seed=1)
    torch.testing.assert_close(pad_reflect(x, (2, 3, 1, 4)), F.pad(x, (1, 4, 2, 3), mode="reflect"))
    big = pad_reflect(x, (9, 9, 13, 13))
    assert big.shape == (1, 2, 23, 33) and torch.equal(big[..., 9:14, 13:20], x)


def test_pcg_solves_plane_by_plane():
    diag = 1 + _rand(2, 3, 4, 5, seed=1).abs()  # diagonally dominant: SPD
    b = _rand(2, 3, 4, 5, seed=2)
    u = pcg(lambda v: diag * v + 0.1 * v.roll(1, -1) + 0.1 * v.roll(-1, -1), b, lambda v: v / diag, 200, 1e-13)
    torch.testing.assert_close(diag * u + 0.1 * u.roll(1, -1) + 0.1 * u.roll(-1, -1), b, atol=1e-9, rtol=0)


def test_levin_kernels_read_from_the_mat_file_match_the_shipped_ones():
    pytest.importorskip("h5py")
    path = Path(__file__).resolve().parents[2] / "shared/data/kernels/Levin09.mat"
    if not path.is_file():
        pytest.skip("../shared/data/kernels/Levin09.mat is not here")
    for i in (1, 4, 8):
        torch.testing.assert_close(load_kernel(path, i), levin_kernel(i), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="holds 8 kernels"):
        load_kernel(path)
