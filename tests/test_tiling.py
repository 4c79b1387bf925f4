"""Tiles in bounded memory: budgets, the tile plan, blending weights, seeding, --max-memory."""

import numpy as np
import pytest
import torch

from sirestore.cli import main
from sirestore.model import FlowModel
from sirestore.restore import Restorer
from sirestore.tiling import axis_weights, parse_size, plan_bytes, plan_tiles, tile_starts

from .conftest import randomize, tiny_config


@pytest.fixture
def small_tiles(monkeypatch):
    """Let the tiny model tile small images: no reserve, tiles down to 32 pixels."""
    monkeypatch.setattr("sirestore.tiling.RESERVE", 0)
    monkeypatch.setattr("sirestore.tiling.MIN_AUTO_TILE", 32)


def identity_model() -> FlowModel:
    """The untrained tiny model: its head is zero, so x1_hat = x_t and the restoration is y."""
    return FlowModel(tiny_config()).eval()


class LocalNet(torch.nn.Module):
    """A purely local network: tiles must reproduce the untiled result."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(6, 3, 3, padding=1, padding_mode="replicate")

    def forward(self, x_t, t, cond):
        return self.conv(torch.cat([x_t, cond], 1))


@pytest.mark.parametrize(
    "text,value", [("1GB", 2**30), ("512MB", 512 * 2**20), ("1.5g", 3 * 2**29), ("800MiB", 800 * 2**20), ("4096", 4096)]
)
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "GB", "1XB", "-5MB", "0", "lots", "1 G B", "1iB"])
def test_parse_size_refuses(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_auto_tile_shrinks_with_the_budget_and_fits_it():
    cfg = identity_model().cfg
    shape = (1, 3, 3000, 4000)
    whole = plan_bytes(cfg, shape, None)
    assert plan_tiles(cfg, shape, whole, 32) is None
    areas = []
    for budget in np.linspace(whole - 1, plan_bytes(cfg, shape, (256, 256)), 12).astype(int):
        tile = plan_tiles(cfg, shape, int(budget), 32)
        assert tile is not None and min(tile) >= 256 and max(tile) <= 4000
        assert plan_bytes(cfg, shape, tile) <= budget
        areas.append(tile[0] * tile[1])
    assert areas == sorted(areas, reverse=True) and areas[0] > areas[-1]
    with pytest.raises(ValueError, match="needs at least"):
        plan_tiles(cfg, shape, plan_bytes(cfg, shape, (256, 256)) - 1, 32)


@pytest.mark.parametrize(
    "size,tile,overlap", [(100, 40, 8), (481, 256, 32), (300, 256, 32), (1001, 96, 32), (50, 64, 8)]
)
def test_blending_weights_are_a_partition_of_unity(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    assert starts[0] == 0 and starts[-1] == max(0, size - tile)
    assert all(min(tile, size) - (b - a) >= overlap for a, b in zip(starts, starts[1:]))
    total = torch.zeros(size, size)
    for top, wy in axis_weights(size, tile, overlap):
        for left, wx in axis_weights(size, tile, overlap):
            assert (wy >= 0).all() and (wx >= 0).all()
            total[top : top + wy.numel(), left : left + wx.numel()] += wy[:, None] * wx[None, :]
    assert (total - 1).abs().max() < 1e-6


@pytest.mark.parametrize("shape", [(1, 3, 150, 170), (2, 3, 97, 61), (1, 1, 131, 77)])
def test_tiled_identity_model_returns_the_input(small_tiles, shape):
    model = identity_model()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    budget = plan_bytes(model.cfg, shape, (48, 48))
    restorer = Restorer(model=model, max_memory=budget, overlap=8)
    tile = restorer.plan(shape)
    assert tile is not None and max(tile) <= 64
    out = restorer.restore_tensor(x)
    assert out.shape == x.shape and (out - x).abs().max() < 1e-5


def test_tiled_noise_source_is_seeded_like_untiled():
    model = randomize(FlowModel(tiny_config(source_is_noise=True)))
    model.net = LocalNet()
    x = torch.rand(1, 3, 150, 170, generator=torch.Generator().manual_seed(0))
    for sampler in ("euler", "heun"):
        full = Restorer(model=model, steps=2, sampler=sampler, seed=3).restore_tensor(x)
        tiled = Restorer(model=model, steps=2, sampler=sampler, seed=3, tile=80, overlap=16).restore_tensor(x)
        assert (tiled - full).abs().max() < 1e-5


def test_tiled_is_deterministic(small_tiles, tiny_model):
    x = torch.rand(1, 3, 120, 90, generator=torch.Generator().manual_seed(1))
    restorer = Restorer(model=tiny_model, max_memory=plan_bytes(tiny_model.cfg, x.shape, (64, 64)), overlap=8)
    assert restorer.plan(x.shape) is not None
    assert torch.equal(restorer.restore_tensor(x), restorer.restore_tensor(x))


@pytest.mark.parametrize("shape", [(67, 45), (67, 45, 4), (40, 81, 2), (67, 45, 3)])
def test_numpy_gray_and_alpha_with_max_memory(small_tiles, shape):
    model = identity_model()
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    restorer = Restorer(model=model, max_memory=plan_bytes(model.cfg, (1, 3, 67, 81), (32, 32)), overlap=8)
    assert restorer.plan((1, 1, *shape[:2])) is not None
    out = restorer(image)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert np.array_equal(out, image)  # identity model: same values, alpha untouched


def run(argv, capsys):
    code = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--max-memory", "1XB"], "--max-memory '1XB' is not a size"),
        (["--max-memory", "0"], "must be positive"),
        (["--max-memory", "lots"], "e.g. 1GB"),
        (["--max-memory", "1KB"], "needs at least"),
        (["--max-memory", "1GB", "--tile", "128"], "not both"),
        (["--max-memory", "1GB", "--onnx", "m.onnx"], "torch backend"),
    ],
)
def test_bad_max_memory_one_line(tmp_path, image_dir, tiny_weights, capsys, extra, needle):
    out = tmp_path / "o.png"
    code, err = run(
        ["restore", image_dir / "color.png", "-o", out, *extra] + ["--weights", tiny_weights] * ("--onnx" not in extra),
        capsys,
    )
    assert code != 0 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_cli_max_memory_restores(tmp_path, image_dir, tiny_weights, capsys):
    code, err = run(
        ["restore", image_dir, "-o", tmp_path / "out", "--weights", tiny_weights, "--max-memory", "1GB"], capsys
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["alpha.png", "color.png", "gray.png"]
