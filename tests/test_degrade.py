"""Degradations: shapes, seeding, identities at zero strength, spec parsing, kernels, masks, random specs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sirestore.degrade import REGISTRY, Compose, SpecError, levin_kernel, parse_spec
from sirestore.degrade.kernels import LEVIN_SIZES, gaussian_kernel
from sirestore.degrade.noise import standard_gamma
from sirestore.degrade.weather import _streak_layer

# one spec per registered name, random wherever the degradation can be
RANDOM_SPECS = {
    "clean": "clean",
    "awgn": "awgn:sigma=25",
    "poisson_gaussian": "poisson_gaussian:peak_min=5,peak_max=50,sigma=2",
    "speckle": "speckle:looks=4",
    "gaussian_blur": "gaussian_blur:sigma_min=0.5,sigma_max=2.5",
    "motion_blur": "motion_blur:kernel=random,size=15",
    "jpeg": "jpeg:quality_min=5,quality_max=60",
    "inpaint": "inpaint:mask=freeform,ratio=0.3",
    "sr": "sr:scale=2",
    "low_light": "low_light:sigma=2",
    "rain": "rain:density=0.02",
    "haze": "haze",
}
DETERMINISTIC = {"sr", "clean"}  # the same output for every seed


def _image(b: int = 2, c: int = 3, h: int = 32, w: int = 32, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(123), dtype=dtype)


def _run(spec: str, x: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, list[dict]]:
    return parse_spec(spec)(x, torch.Generator().manual_seed(seed))


def test_every_registered_name_is_tested():
    assert set(RANDOM_SPECS) == set(REGISTRY)


@pytest.mark.parametrize("name", sorted(RANDOM_SPECS))
@pytest.mark.parametrize(("c", "dtype"), [(3, torch.float32), (1, torch.float64)])
def test_shape_dtype_and_params(name, c, dtype):
    x = _image(c=c, h=24, w=20, dtype=dtype)
    y, params = _run(RANDOM_SPECS[name], x)
    assert y.shape == x.shape and y.dtype == dtype and torch.isfinite(y).all()
    assert len(params) == 1 and params[0]["type"] == name
    for key, value in params[0].items():
        if torch.is_tensor(value) and value.dim() > 0:
            assert value.shape[0] == x.shape[0], key


@pytest.mark.parametrize("name", sorted(RANDOM_SPECS))
def test_seeded_reproducible_and_seed_dependent(name):
    x = _image()
    y1, p1 = _run(RANDOM_SPECS[name], x, seed=7)
    y2, p2 = _run(RANDOM_SPECS[name], x, seed=7)
    assert torch.equal(y1, y2)
    for key, value in p1[0].items():
        assert torch.equal(value, p2[0][key]) if torch.is_tensor(value) else value == p2[0][key]
    y3, _ = _run(RANDOM_SPECS[name], x, seed=8)
    assert torch.equal(y1, y3) == (name in DETERMINISTIC)


@pytest.mark.parametrize(
    ("spec", "atol"),
    [
        ("clean", 0),
        ("awgn:sigma=0", 0),
        ("poisson_gaussian:peak=1e9,sigma=0", 1e-3),
        ("speckle:looks=1e8", 1e-3),
        ("gaussian_blur:sigma=0", 0),
        ("gaussian_blur:sigma=0,boundary=circular", 0),
        ("inpaint:ratio=0", 0),
        ("low_light:exposure=1,gamma=1,sigma=0", 0),
        ("rain:intensity=0", 0),
        ("rain:density=0", 0),
        ("haze:beta=0", 0),
    ],
)
def test_identity_at_zero_strength(spec, atol):
    x = _image()
    y, _ = _run(spec, x)
    torch.testing.assert_close(y, x, atol=atol, rtol=0)


def test_motion_blur_delta_kernel_is_identity(tmp_path):
    np.save(tmp_path / "delta.npy", np.pad(np.ones((1, 1)), 2))
    x = _image()
    y, params = _run(f"motion_blur:kernel={tmp_path / 'delta.npy'}", x)
    torch.testing.assert_close(y, x)
    assert params[0]["kernel"].shape == (2, 5, 5)


def test_jpeg_quality_100_is_near_identity():
    smooth = torch.nn.functional.interpolate(_image(h=8, w=8), size=(32, 32), mode="bilinear")
    for c, max_err in [(3, 4), (1, 2)]:  # libjpeg's 8-bit YCbCr round trip costs up to ~4 levels in RGB
        x = smooth[:, :c]
        y, params = _run("jpeg:quality=100,subsampling=0", x)
        assert (y - x).abs().mean() <= 1 / 255 and (y - x).abs().max() <= max_err / 255 + 1e-6
        assert params[0]["quality"].tolist() == [100, 100]
    y, _ = _run("jpeg:quality=5", smooth)
    assert (y - smooth).abs().mean() > 1 / 255


def test_jpeg_random_quality_in_range():
    _, params = _run("jpeg:quality_min=20,quality_max=25", _image(b=16, h=8, w=8))
    q = params[0]["quality"]
    assert q.min() >= 20 and q.max() <= 25 and q.unique().numel() > 1


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_shapes(scale):
    x = _image(h=24, w=36)
    y, params = _run(f"sr:scale={scale},upsample=false", x)
    assert y.shape == (2, 3, 24 // scale, 36 // scale) and params[0]["scale"] == scale
    y_up, params = _run(f"sr:scale={scale}", x)
    assert y_up.shape == x.shape and torch.equal(params[0]["lr"], y)


def test_parse_spec_round_trip():
    d = parse_spec("motion_blur:kernel=levin3+awgn:sigma=2.55")
    assert isinstance(d, Compose) and [p.name for p in d.parts] == ["motion_blur", "awgn"]
    assert d.parts[0].kernel == "levin3" and d.parts[1].sigma == pytest.approx(2.55)
    y, params = d(_image(), torch.Generator().manual_seed(0))
    assert [p["type"] for p in params] == ["motion_blur", "awgn"]
    assert params[0]["kernel"].shape == (2, 15, 15)
    assert parse_spec(" haze : beta = 0.5 , airlight=0.9 ").beta == 0.5
    assert parse_spec("sr:upsample=no").upsample is False


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "nope",
        "awgn:foo=1",
        "awgn:sigma",
        "awgn:sigma=abc",
        "awgn:sigma=-1",
        "sr:scale=5",
        "sr:upsample=maybe",
        "jpeg:quality=0",
        "jpeg:quality=2.5",
        "motion_blur:kernel=levin9",
        "motion_blur:kernel=no_such_file.png",
        "motion_blur:size=4",
        "gaussian_blur:boundary=zero",
        "inpaint:mask=circle",
        "inpaint:ratio=0.95",
        "low_light:gamma=0.5",
        "rain:angle=120",
        "rain:density_max=2",
        "rain:length_min=9,length_max=8",
        "rain:width=-1",
        "haze:airlight=2",
        "haze:zoom=0.5",
        "haze:zoom=2,zoom_max=1.5",
        "awgn+",
    ],
)
def test_bad_specs_raise(spec):
    with pytest.raises(SpecError):
        parse_spec(spec)


def test_levin_kernels():
    for i, size in enumerate(LEVIN_SIZES, start=1):
        k = levin_kernel(i)
        assert k.shape == (size, size) and k.dtype == torch.float32
        assert k.min() >= 0 and k.sum().item() == pytest.approx(1, abs=1e-5)
    assert not torch.equal(levin_kernel(1), levin_kernel(1).T)  # not symmetric: orientation matters


def test_levin_npz_matches_mat():
    h5py = pytest.importorskip("h5py")
    from pathlib import Path

    mat = Path(__file__).resolve().parents[2] / "shared/data/kernels/Levin09.mat"
    if not mat.is_file():
        pytest.skip("Levin09.mat not available")
    with h5py.File(mat, "r") as f:
        for i, ref in enumerate(f["kernels"][()].ravel(), start=1):
            np.testing.assert_allclose(levin_kernel(i).numpy(), f[ref][()].T, atol=1e-6)  # MATLAB column-major


def test_gaussian_kernel_size_and_sum():
    k = gaussian_kernel(1.6)
    assert k.shape == (11, 11) and k.sum().item() == pytest.approx(1)
    _, params = _run("gaussian_blur:sigma=2", _image())
    assert params[0]["kernel"].shape == (2, 13, 13)


@pytest.mark.parametrize("sigma", [5e-324, 1e-200, 1e-3])
def test_tiny_gaussian_is_a_delta_not_nan(sigma):
    # found by test_random_specs_never_crash (rain:width=5e-324): the square of a subnormal sigma is 0
    k = gaussian_kernel(sigma)
    assert k.shape == (3, 3) and k[1, 1].item() == 1 and k.sum().item() == 1


def test_user_kernel_file_is_normalised(tmp_path):
    Image.fromarray(np.array([[0, 255, 0], [0, 255, 255]], np.uint8)).save(tmp_path / "k.png")
    _, params = _run(f"motion_blur:kernel={tmp_path / 'k.png'}", _image())
    k = params[0]["kernel"][0]
    assert k.shape == (3, 3) and k.sum().item() == pytest.approx(1)


@pytest.mark.parametrize("mask", ["freeform", "box"])
@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.6])
def test_inpaint_hole_ratio(mask, ratio):
    x = _image(b=3, h=48, w=40)
    y, params = _run(f"inpaint:mask={mask},ratio={ratio},fill=0.5", x)
    m = params[0]["mask"]
    assert m.shape == (3, 1, 48, 40) and set(m.unique().tolist()) <= {0.0, 1.0}
    holes = 1 - m.mean(dim=(1, 2, 3))
    assert (holes - ratio).abs().max() <= 0.1
    torch.testing.assert_close(params[0]["ratio"], holes)
    torch.testing.assert_close(y, x * m + 0.5 * (1 - m))


def test_inpaint_mask_file(tmp_path):
    holes = np.zeros((16, 16), np.uint8)
    holes[4:8, 2:12] = 255
    Image.fromarray(holes).save(tmp_path / "mask.png")
    _, params = _run(f"inpaint:mask={tmp_path / 'mask.png'}", _image(h=16, w=16))
    expected = torch.from_numpy(holes == 0).float().expand(2, 1, 16, 16)
    torch.testing.assert_close(params[0]["mask"], expected)


@pytest.mark.parametrize("alpha", [0.4, 1.0, 4.0])
def test_standard_gamma_moments(alpha):
    g = standard_gamma((40000,), alpha, torch.Generator().manual_seed(0))
    assert g.min() >= 0
    assert g.mean().item() == pytest.approx(alpha, rel=0.03)
    assert g.var().item() == pytest.approx(alpha, rel=0.06)


def test_random_levels_vary_per_image():
    x = _image(b=4, h=16, w=16)
    for spec, key in [("low_light", "exposure"), ("haze", "beta"), ("rain", "angle"), ("awgn:sigma_max=50", "sigma")]:
        _, params = _run(spec, x)
        assert params[0][key].unique().numel() == 4, spec


def test_random_rain_settings_lie_in_their_ranges_and_vary():
    spec = "rain:density_max=0.02,length_min=5,length_max=9,width_max=1,intensity_min=0.4,intensity_max=0.9"
    _, params = _run(spec, _image(b=6))
    p = params[0]
    assert ((p["density"] >= 0.001) & (p["density"] <= 0.02)).all() and p["density"].unique().numel() == 6
    assert ((p["length"] >= 5) & (p["length"] <= 9)).all() and (p["length"] == p["length"].round()).all()
    assert ((p["width"] >= 0) & (p["width"] <= 1)).all() and p["width"].unique().numel() == 6
    assert ((p["intensity"] >= 0.4) & (p["intensity"] <= 0.9)).all()


def test_rain_streak_is_a_line_of_its_length_and_wider_streaks_are_fainter():
    seeds = torch.zeros(1, 1, 41, 41, dtype=torch.float64)
    seeds[..., 20, 20] = 0.7
    thin = _streak_layer(seeds, 11, 0.0, 0.0)[0, 0]  # vertical, 1 pixel wide, the seed's brightness
    assert thin[16:25, 20].tolist() == pytest.approx([0.7] * 9, abs=0.08)
    assert thin.sum().item() == pytest.approx(7.7, rel=0.02)
    assert thin[:, :20].max() < 1e-9 and thin[:, 21:].max() < 1e-9 and thin[:14].max() < 1e-9
    wide = _streak_layer(seeds, 11, 0.8, 0.0)[0, 0]  # the same energy, spread: a fainter core
    assert wide.sum().item() == pytest.approx(thin.sum().item(), rel=0.02) and 0 < wide.max() < 0.5 * thin.max()
    assert wide[:, 19].max() > 0


def test_haze_zoom_one_spans_the_whole_depth_range_and_zoom_sees_part_of_it():
    x = _image(b=4, h=24, w=24)
    t1 = _run("haze:beta=1", x)[1][0]["transmission"]
    torch.testing.assert_close(t1.amax(dim=(1, 2, 3)), torch.ones(4), atol=1e-6, rtol=0)
    torch.testing.assert_close(t1.amin(dim=(1, 2, 3)), torch.full((4,), math.exp(-1)), atol=1e-6, rtol=0)
    p = _run("haze:beta=1,zoom=3,zoom_max=4", x)[1][0]
    assert ((p["zoom"] >= 3) & (p["zoom"] <= 4)).all() and p["zoom"].unique().numel() == 4
    t = p["transmission"]
    spread = t.amax(dim=(1, 2, 3)) - t.amin(dim=(1, 2, 3))
    assert (t >= math.exp(-1) - 1e-6).all() and (t <= 1 + 1e-6).all()
    assert (spread < 1 - math.exp(-1) - 0.05).all()  # a window sees part of the depth range


# --- property test: random specs over the whole registry ------------------------------------------------------

_f = lambda lo, hi: st.floats(lo, hi, allow_nan=False, allow_infinity=False)  # noqa: E731
_opt = lambda s: st.one_of(st.none(), s)  # noqa: E731
ARGS = {
    "clean": st.fixed_dictionaries({}),
    "awgn": st.fixed_dictionaries({"sigma": _f(0, 50), "clip": st.booleans()}),
    "poisson_gaussian": st.fixed_dictionaries({"peak": _f(0.5, 100), "sigma": _f(0, 20), "peak_max": _opt(_f(1, 100))}),
    "speckle": st.fixed_dictionaries({"looks": _f(0.3, 50)}),
    "gaussian_blur": st.fixed_dictionaries(
        {"sigma": _f(0, 3), "sigma_max": _opt(_f(0, 3)), "boundary": st.sampled_from(["reflect", "circular"])}
    ),
    "motion_blur": st.fixed_dictionaries(
        {
            "kernel": st.sampled_from(["random"] + [f"levin{i}" for i in range(1, 9)]),
            "size": st.integers(1, 9).map(lambda n: 2 * n + 1),
            "boundary": st.sampled_from(["reflect", "circular"]),
        }
    ),
    "jpeg": st.fixed_dictionaries(
        {"quality": st.integers(10, 100), "quality_max": _opt(st.integers(10, 100)), "subsampling": st.integers(0, 2)}
    ),
    "inpaint": st.fixed_dictionaries(
        {"mask": st.sampled_from(["freeform", "box"]), "ratio": _f(0, 0.9), "fill": _f(0, 1)}
    ),
    "sr": st.fixed_dictionaries({"scale": st.integers(2, 4)}),
    "low_light": st.fixed_dictionaries({"exposure": _opt(_f(0.05, 1)), "gamma": _f(1, 3), "sigma": _f(0, 10)}),
    "rain": st.fixed_dictionaries(
        {
            "density": _f(0, 0.1),
            "length": st.integers(1, 20),
            "length_max": _opt(st.integers(20, 30)),
            "width": _f(0, 2),
            "angle": _opt(_f(-90, 90)),
            "intensity": _f(0, 1),
        }
    ),
    "haze": st.fixed_dictionaries(
        {"beta": _opt(_f(0, 3)), "airlight": _opt(_f(0, 1)), "zoom": _f(1, 3), "zoom_max": _opt(_f(3, 5))}
    ),
}
_part = st.sampled_from(sorted(ARGS)).flatmap(lambda name: ARGS[name].map(lambda kw: (name, kw)))


def _spec_text(name: str, kwargs: dict) -> str:
    if name == "jpeg" and kwargs["quality_max"] is not None:
        kwargs["quality_min"] = min(kwargs["quality"], kwargs["quality_max"])
    if name == "poisson_gaussian" and kwargs["peak_max"] is not None:
        kwargs["peak_min"] = min(1.0, kwargs["peak_max"])
    args = ",".join(f"{k}={v}" for k, v in kwargs.items() if v is not None)
    return f"{name}:{args}" if args else name


def test_property_strategies_cover_registry():
    assert set(ARGS) == set(REGISTRY)


@settings(max_examples=30, deadline=None)
@given(
    parts=st.lists(_part, min_size=1, max_size=3),
    shape=st.tuples(st.integers(1, 2), st.sampled_from([1, 3]), st.integers(4, 24), st.integers(4, 24)),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_specs_never_crash(parts, shape, seed):
    spec = "+".join(_spec_text(name, dict(kw)) for name, kw in parts)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed))
    y, params = parse_spec(spec)(x, torch.Generator().manual_seed(seed))
    assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all(), spec
    assert [p["type"] for p in params] == [name for name, _ in parts]


def test_inpaint_smooth_fill_keeps_known_pixels_and_fills_holes():
    from sirestore.degrade import parse_spec

    x = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    y, params = parse_spec("inpaint:ratio=0.3,smooth=true")(x, torch.Generator().manual_seed(1))
    mask = params[0]["mask"]
    assert torch.equal(y * mask, x * mask)  # known pixels untouched
    holes = (1 - mask).bool().expand_as(y)
    assert (y[holes] > 0.1).float().mean() > 0.9  # filled from the surroundings, not with the fill value 0
