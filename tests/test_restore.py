"""The Python API: numpy / PIL / torch in and out, gray and alpha, tiling."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sirestore.restore import Restorer, axis_weights, tile_starts

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def restorer(tiny_model):
    return Restorer(model=tiny_model)


@pytest.mark.parametrize(
    "shape,dtype",
    [
        ((20, 30, 3), np.uint8),
        ((20, 30), np.uint8),
        ((17, 9, 4), np.uint8),
        ((20, 30, 3), np.uint16),
        ((20, 30, 1), np.float32),
        ((12, 10, 2), np.uint8),
    ],
)
def test_numpy_in_numpy_out(restorer, shape, dtype):
    rng = np.random.default_rng(0)
    top = {np.uint8: 255, np.uint16: 65535}.get(dtype, 1)
    image = (rng.random(shape) * top).astype(dtype)
    out = restorer(image)
    assert out.shape == image.shape and out.dtype == image.dtype
    if shape[-1] in (2, 4) and len(shape) == 3:
        assert np.array_equal(out[..., -1], image[..., -1])  # alpha untouched


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P"])
def test_pil_in_pil_out(restorer, mode):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 20, 3), dtype=np.uint8)).convert(mode)
    out = restorer(image)
    assert out.size == image.size
    assert out.mode == (mode if mode != "P" else "RGB")


def test_torch_in_torch_out(restorer):
    x = torch.rand(3, 21, 19)
    assert restorer(x).shape == x.shape
    assert restorer(x[None]).shape == (1, 3, 21, 19)


def test_gray_runs_as_equal_channels(restorer):
    g = torch.rand(1, 1, 16, 16)
    out_gray = restorer.restore_tensor(g)
    out_rgb = restorer.restore_tensor(g.expand(-1, 3, -1, -1))
    assert torch.allclose(out_gray, out_rgb.mean(1, keepdim=True), atol=1e-6)


def test_tiles_cover_and_blend():
    assert tile_starts(100, 40, 8) == [0, 30, 60]
    assert tile_starts(30, 40, 8) == [0]
    (s0, w0), (s1, w1), (s2, w2) = axis_weights(100, 40, 8)
    assert (s0, s1, s2) == (0, 30, 60) and w0[0] == 1 and w1[0] == 0 and w2[-1] == 1 and w0[-1] == 0
    assert axis_weights(30, 40, 8)[0][1].eq(1).all()


class LocalNet(torch.nn.Module):
    """A purely local network (one 3x3 convolution): tiling must reproduce it."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1, padding_mode="replicate")

    def forward(self, x_t, t, cond):
        return self.conv(x_t)


def test_tiled_equals_untiled_for_a_local_model():
    from sirestore.model import FlowModel

    from .conftest import tiny_config

    model = FlowModel(tiny_config())
    model.net = LocalNet()
    x = torch.rand(1, 3, 150, 170, generator=torch.Generator().manual_seed(0))
    full = Restorer(model=model).restore_tensor(x)
    tiled = Restorer(model=model, tile=96, overlap=32).restore_tensor(x)
    assert tiled.shape == full.shape
    assert (tiled - full).abs().max() < 1e-5


def test_bad_arguments(tiny_model):
    with pytest.raises(ValueError):
        Restorer(model=tiny_model, steps=0)
    with pytest.raises(ValueError):
        Restorer(model=tiny_model, sampler="rk4")
    with pytest.raises(TypeError):
        Restorer(model=tiny_model)("not an image")


def test_resolve_weights_names_shipped_files(tmp_path, monkeypatch):
    from sirestore.restore import default_weights, resolve_weights

    monkeypatch.chdir(tmp_path)
    assert resolve_weights(None) == default_weights()
    assert resolve_weights("default") == default_weights()
    assert resolve_weights("no_such_model") == Path("no_such_model")  # not shipped: the path itself
    assert resolve_weights("default.safetensors") == Path("default.safetensors")  # a file name is a path
    (tmp_path / "default").write_bytes(b"")
    assert resolve_weights("default") == Path("default")  # a file here wins over the shipped name


@pytest.mark.parametrize("sharp_name, plain_name", [("sharp", "default"), ("allinone_sharp", "allinone")])
def test_shipped_sharp_weights_are_their_plain_network_fine_tuned(sharp_name, plain_name):
    """`--weights sharp` / `allinone_sharp` name the sharp one-step fine-tunes of the denoiser / all-in-one model:
    the plain model's architecture and detector (or none), the same parameter count (at most 1.0M), different
    weights, and on a noisy crop of the example photo they still remove the noise (behaviour, not a quality
    figure: those are in README)."""
    from sirestore.checkpoint import load_weights
    from sirestore.metrics import psnr
    from sirestore.nn.unet import count_parameters
    from sirestore.restore import default_weights, resolve_weights

    path = resolve_weights(sharp_name)
    assert path.parent == default_weights().parent and path.is_file()
    sharp, plain = load_weights(path), load_weights(resolve_weights(plain_name))
    assert count_parameters(sharp) == count_parameters(plain) <= 1_000_000
    assert sharp.cfg == plain.cfg and (sharp.detector is None) == (plain.detector is None)
    photo = np.asarray(Image.open(ROOT / "examples/coffee_noisy.png").convert("RGB"))[:96, :128]
    clean = Restorer().restore_tensor(torch.from_numpy(photo.copy()).permute(2, 0, 1)[None] / 255)
    noisy = clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(0)) * 25 / 255
    out = Restorer(weights=sharp_name).restore_tensor(noisy)
    assert psnr(out.clamp(0, 1), clean) > psnr(noisy.clamp(0, 1), clean) + 3
    assert not torch.allclose(out, Restorer(weights=plain_name).restore_tensor(noisy), atol=1e-3)


def test_replace_copies_settings_and_shares_the_network(tiny_model):
    r = Restorer(model=tiny_model, steps=2)
    other = r.replace(steps=1, seed=3)
    assert (other.steps, other.seed, r.steps, r.seed) == (1, 3, 2, 0) and other.model is r.model
    with pytest.raises(AttributeError, match="no setting 'stepz'"):
        r.replace(stepz=1)
