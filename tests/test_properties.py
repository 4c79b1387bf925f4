"""Property tests of the Python API: any image shape and dtype restores; any spec parses or raises SpecError."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sirestore import Restorer
from sirestore.degrade import REGISTRY, Degradation, SpecError, parse_spec
from sirestore.model import FlowModel

from .conftest import randomize, tiny_config

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
RESTORER = Restorer(model=randomize(FlowModel(tiny_config())))
DTYPES = [np.uint8, np.uint16, np.float32, np.float64]


@st.composite
def images(draw) -> np.ndarray:
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    channels = draw(st.sampled_from([None, 1, 2, 3, 4]))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = (h, w) if channels is None else (h, w, channels)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype.kind == "u":
        return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True, dtype=dtype)
    return rng.random(shape).astype(dtype)


@SETTINGS
@given(images())
def test_restorer_keeps_shape_dtype_range_and_alpha(image):
    out = RESTORER(image)
    assert out.shape == image.shape and out.dtype == image.dtype
    if image.dtype.kind == "f":
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    if image.ndim == 3 and image.shape[2] in (2, 4):
        assert np.array_equal(out[..., -1], image[..., -1])


@settings(max_examples=20, deadline=None, derandomize=True)
@given(st.integers(1, 40), st.integers(1, 40), st.sampled_from([1, 3]), st.booleans())
def test_restorer_tensors(h, w, c, batched):
    x = torch.rand((2, c, h, w) if batched else (c, h, w), generator=torch.Generator().manual_seed(h * w))
    out = RESTORER(x)
    assert out.shape == x.shape and torch.isfinite(out).all()


def _kind(field) -> str:
    return str(field.type).split(" ")[0]


@st.composite
def values(draw, kind: str) -> str:
    """A value of the field's type, often out of its valid range, sometimes not of the type at all."""
    garbage = st.text(max_size=8)
    typed = {
        "float": st.floats(allow_nan=True, allow_infinity=True).map(repr) | st.sampled_from(["0", "1e400", "-0"]),
        "int": st.integers(-(10**6), 10**6).map(str) | st.sampled_from(["9" * 5000, "0x10", "1_0"]),
        "bool": st.sampled_from(["1", "0", "true", "False", "yes", "NO", "maybe"]),
        "str": st.sampled_from(["random", "levin1", "levin9", "freeform", "box", "reflect", "circular", ".", __file__]),
    }.get(kind, garbage)
    return draw(typed | garbage if draw(st.integers(0, 9)) == 0 else typed)


@st.composite
def specs(draw) -> str:
    """A spec built from REGISTRY: names, their own argument names, values of their types."""
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(REGISTRY)))
        args = [f for f in fields(REGISTRY[name]) if f.init]
        chosen = draw(st.lists(st.sampled_from(args), max_size=3, unique_by=lambda f: f.name)) if args else []
        items = [f"{f.name}={draw(values(_kind(f)))}" for f in chosen]
        parts.append(name + (":" + ",".join(items) if items else ""))
    return "+".join(parts)


def _parses_or_spec_error(spec: str) -> None:
    try:
        result = parse_spec(spec)
    except SpecError:
        return
    assert isinstance(result, Degradation)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(specs())
def test_registry_specs_parse_or_raise_spec_error(spec):
    _parses_or_spec_error(spec)


@settings(max_examples=300, deadline=None, derandomize=True)
@example(f"motion_blur:kernel={__file__}")  # a file that is not a kernel
@example("motion_blur:kernel=levin99+awgn")
@given(st.text(max_size=60) | st.text(alphabet=":=+,. _-0123456789abcdelmnoprstuvwxyz", max_size=60))
def test_garbage_specs_parse_or_raise_spec_error(spec):
    _parses_or_spec_error(spec)


def test_every_registered_default_applies():
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for name in REGISTRY:
        y, params = parse_spec(name)(x, torch.Generator().manual_seed(1))
        assert y.shape[:2] == x.shape[:2] and params[0]["type"] == name
