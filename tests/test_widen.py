"""Widening a level of a trained network (Net2Net repeated channels) keeps its function."""

import dataclasses

import pytest
import torch

from sirestore.model import FlowModel
from sirestore.nn.unet import UNetConfig
from sirestore.nn.widen import perturb_copies, repeat_map, widen_level

from .conftest import randomize, tiny_config


def _three_levels() -> FlowModel:
    net = UNetConfig(widths=[8, 16, 16], enc_blocks=[1, 1], mid_blocks=1, dec_blocks=[1, 2], emb_dim=8)
    return randomize(FlowModel(dataclasses.replace(tiny_config(), net=net)), seed=3)


def _widened(model: FlowModel, level: int, width: int) -> FlowModel:
    state, net = widen_level(model.state_dict(), model.cfg.net, level, width, prefix="net.")
    wide = FlowModel(dataclasses.replace(model.cfg, net=net)).eval()
    wide.load_state_dict(state)
    return wide


@pytest.mark.parametrize(("level", "width"), [(0, 16), (0, 24), (1, 32), (2, 48)])
def test_widening_keeps_the_function(level, width):
    model = _three_levels()
    wide = _widened(model, level, width)
    assert wide.cfg.net.widths[level] == width
    assert sum(p.numel() for p in wide.parameters()) > sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 20, 12, generator=gen)
    t = torch.tensor([0.0, 0.4])
    with torch.enable_grad():  # the unfolded path: every tensor of the state is used
        a, b = model(x, t, x), wide(x, t, x)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # and the folded inference path
        torch.testing.assert_close(wide(x[:1], t[:1], x[:1]), a[:1], atol=1e-5, rtol=1e-5)


def test_only_multiples_and_no_narrowing():
    with pytest.raises(ValueError, match="multiple"):
        repeat_map(16, 24)
    with pytest.raises(ValueError, match="multiple"):
        repeat_map(16, 8)
    model = _three_levels()
    with pytest.raises(ValueError, match="out of range"):
        widen_level(model.state_dict(), model.cfg.net, 3, 32, prefix="net.")


def test_perturbation_touches_only_grown_weights_and_separates_copies():
    model = _three_levels()
    old = model.state_dict()
    state, _ = widen_level(old, model.cfg.net, 0, 16, prefix="net.")
    gen = torch.Generator().manual_seed(0)
    assert perturb_copies(state, old, 0.0, gen) == state
    noisy = perturb_copies(state, old, 0.01, gen)
    grown = {k for k, v in state.items() if v.shape != old[k].shape and k.endswith("weight")}
    assert grown and all(not torch.equal(noisy[k], state[k]) for k in grown)
    assert all(torch.equal(noisy[k], state[k]) for k in state if k not in grown)
    stem = noisy["net.stem.weight"]
    assert not torch.equal(stem[:8], stem[8:])  # the copies differ now
    torch.testing.assert_close(stem[:8], stem[8:], atol=0.05 * stem.abs().max().item(), rtol=0)
