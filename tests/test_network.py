"""Network and checkpoint behaviour: shapes, sizes, identity at init, safetensors round trip."""

import json

import pytest
import torch

from sirestore.checkpoint import WeightsError, load_weights, save_weights
from sirestore.config import TrainConfig
from sirestore.model import FlowModel
from sirestore.nn.blocks import InvertedResidual, channel_shuffle
from sirestore.nn.unet import UNet, UNetConfig, count_parameters

from .conftest import randomize, tiny_config


@pytest.mark.parametrize("hw", [(1, 1), (7, 13), (16, 16), (33, 20)])
def test_any_size(tiny_model, hw):
    x = torch.rand(2, 3, *hw)
    out = tiny_model(x, torch.zeros(2), x)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()


def test_identity_at_initialisation():
    model = FlowModel(tiny_config())
    x = torch.rand(1, 3, 24, 24)
    assert torch.equal(model(x, torch.zeros(1), x), x)


def test_time_conditioning_changes_output(tiny_model):
    x = torch.rand(1, 3, 16, 16)
    assert not torch.allclose(tiny_model(x, torch.zeros(1), x), tiny_model(x, torch.full((1,), 0.7), x))


def test_condition_required():
    net = UNet(UNetConfig(widths=[8, 16], enc_blocks=[1], mid_blocks=1, dec_blocks=[1], emb_dim=8))
    with pytest.raises(ValueError, match="condition"):
        net(torch.rand(1, 3, 8, 8), torch.zeros(1), None)


def test_channel_shuffle_is_a_permutation():
    x = torch.arange(12.0).view(1, 12, 1, 1)
    y = channel_shuffle(x, 3)
    assert sorted(y.flatten().tolist()) == x.flatten().tolist()
    assert y.flatten()[:4].tolist() == [0, 4, 8, 1]
    assert torch.equal(channel_shuffle(x, 1), x)


def test_grouped_network_runs():
    cfg = tiny_config()
    cfg.net.groups = 2
    model = randomize(FlowModel(cfg))
    x = torch.rand(1, 3, 16, 16)
    assert model(x, torch.zeros(1), x).shape == x.shape


@pytest.mark.parametrize(
    "name",
    [
        "denoise",
        "denoise_grow",
        "denoise_widen",
        "denoise_sharp",
        "allinone",
        "allinone_finetune",
        "allinone_clean",
        "allinone_rain",
        "allinone_sharp",
        "allinone_mask",
    ],
)
def test_shipped_configs_are_under_one_million_parameters(name):
    from pathlib import Path

    cfg = TrainConfig.from_yaml(Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml")
    assert count_parameters(FlowModel(cfg.model)) <= 1_000_000


def test_weights_round_trip(tmp_path, tiny_model):
    path = tmp_path / "w.safetensors"
    save_weights(tiny_model, path, extra={"note": "x"})
    loaded = load_weights(path)
    x = torch.rand(1, 3, 20, 20)
    assert torch.equal(loaded(x, torch.zeros(1), x), tiny_model(x, torch.zeros(1), x))
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temporary left behind


def test_weights_errors(tmp_path, tiny_model):
    with pytest.raises(WeightsError, match="not found"):
        load_weights(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00\x01garbage")
    with pytest.raises(WeightsError, match="junk.safetensors"):
        load_weights(junk)
    from safetensors.torch import save_file

    path = tmp_path / "mismatch.safetensors"
    state = {k: v for k, v in tiny_model.state_dict().items() if "head" not in k}
    save_file(
        state, str(path), metadata={"format": "sirestore-weights-1", "config": json.dumps(tiny_model.cfg.to_dict())}
    )
    with pytest.raises(WeightsError, match="do not match"):
        load_weights(path)


def test_channel_norm_channels_last_path_matches():
    from sirestore.nn.blocks import ChannelNorm

    norm = ChannelNorm(6)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 6, 5, 7)
    ref = norm(x)
    fused = norm(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(ref, fused, atol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
def test_folded_inference_matches_training_path(tiny_model, channels_last):
    x = torch.rand(2, 3, 24, 40)
    t = torch.full((2,), 0.3)
    with torch.enable_grad():
        ref = tiny_model(x, t, x).detach()
    model, xin = tiny_model, x
    if channels_last:
        model, xin = tiny_model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.allclose(model(xin, t, xin), ref, atol=1e-5)
        mixed = model(xin, torch.tensor([0.3, 0.6]), xin)  # different times: the unfolded path
    assert torch.allclose(mixed[0], ref[0], atol=1e-5)


@pytest.mark.parametrize("same_tensor", [True, False])
def test_single_image_inference_matches_training_path(tiny_model, same_tensor):
    # batch 1: the channel attention's scale is folded into the projection; x_t is y: one stem input
    x = torch.rand(1, 3, 20, 36).contiguous(memory_format=torch.channels_last)
    y = x if same_tensor else x.clone()
    t = torch.full((1,), 0.0)
    with torch.enable_grad():
        ref = tiny_model(x, t, x.clone()).detach()
    with torch.no_grad():
        assert torch.allclose(tiny_model(x, t, y), ref, atol=1e-5)


def test_folded_weights_are_reused_only_while_weights_and_time_are_the_same(tiny_model):
    """Inference keeps each block's folded weights for the next call; a different time, an in-place weight
    update (an optimizer or EMA step), new weights loaded or new storage must each give fresh ones."""
    x = torch.rand(1, 3, 16, 24)

    def check(model, t):
        with torch.enable_grad():
            ref = model(x, torch.full((1,), t), x).detach()
        with torch.no_grad():
            assert torch.allclose(model(x, torch.full((1,), t), x), ref, atol=1e-5)

    with torch.no_grad():
        tiny_model(x, torch.zeros(1), x)  # fills the caches at t = 0
    check(tiny_model, 0.5)
    check(tiny_model, 0.0)
    blocks = [m for m in tiny_model.modules() if isinstance(m, InvertedResidual)]  # not the time embedding's
    assert blocks
    with torch.no_grad():
        for p in (p for b in blocks for p in b.parameters()):
            p.mul_(1.1)  # in place, as an optimizer step
    check(tiny_model, 0.0)
    other = randomize(FlowModel(tiny_model.cfg))
    tiny_model.load_state_dict({k: v for k, v in other.state_dict().items() if ".time." not in k}, strict=False)
    check(tiny_model, 0.0)
    for p in (p for b in blocks for p in b.parameters()):
        p.data = p.data * 0.9  # new storage, no in-place version bump
    check(tiny_model, 0.0)


def test_fold_cache_keeps_the_last_times_of_a_sampler(tiny_model):
    """A few-step sampler finds each step's folded weights again on the next image; the least recently used
    time is forgotten beyond FOLDS, and new weights forget them all."""
    from sirestore.nn.blocks import FOLDS

    x = torch.rand(1, 3, 16, 16)
    block = next(m for m in tiny_model.modules() if isinstance(m, InvertedResidual))
    emb = {}

    def folded(t):
        with torch.no_grad():
            e = tiny_model.net.time(torch.full((1,), t))
            emb[t] = e
            return block._folded_weights(x, e)

    first = {t: folded(t) for t in (0.0, 0.25, 0.5, 0.75)}
    assert all(folded(t) is first[t] for t in first)  # all four kept
    for k in range(FOLDS - 1):
        folded(0.01 * (k + 1))  # 7 new times: of the first four only the most recently used (0.75) stays
    assert len(block._cache[1]) == FOLDS
    assert folded(0.75) is first[0.75]
    assert folded(0.0) is not first[0.0]
    kept = folded(0.0)
    assert folded(0.0) is kept
    with torch.no_grad():
        block.beta.add_(1.0)  # an optimizer step
    assert folded(0.0) is not kept and len(block._cache[1]) == 1


def test_strided_convs_equal_unshuffle_then_conv():
    from torch.nn import functional as F

    from sirestore.nn.blocks import Down
    from sirestore.nn.unet import _stem_weight

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 12, 16, generator=gen)
    down = Down(5, 7)
    assert torch.allclose(down(x), down.conv(F.pixel_unshuffle(x, 2)), atol=1e-5)
    w, b = torch.randn(4, 20, 3, 3, generator=gen), torch.randn(4, generator=gen)
    ref = F.conv2d(F.pixel_unshuffle(x, 2), w, b, padding=1)
    assert torch.allclose(F.conv2d(x, _stem_weight(w), b, stride=2, padding=2), ref, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 8, 16, 16), (2, 6, 7, 9)])
def test_spatial_mean_matches_mean_in_both_precisions(shape):
    from sirestore.nn.blocks import spatial_mean

    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    assert torch.allclose(spatial_mean(x), x.mean((2, 3), keepdim=True), atol=1e-6)
    xb = x.bfloat16()
    out = spatial_mean(xb)  # the matrix-product path
    assert out.shape == (shape[0], shape[1], 1, 1)
    assert torch.allclose(out.float(), xb.float().mean((2, 3), keepdim=True), atol=2e-2)
    expected = xb.contiguous().mean((2, 3), keepdim=True, dtype=torch.float32)
    assert torch.equal(spatial_mean(xb.contiguous()), expected) and out.dtype == torch.float32


def _mask_model(seed: int = 0) -> FlowModel:
    cfg = tiny_config()
    cfg.net.mask_channels = 1
    return randomize(FlowModel(cfg), seed)


@pytest.mark.parametrize("hw", [(16, 16), (13, 21)])
def test_mask_input_no_mask_is_all_observed_and_a_mask_changes_the_output(hw):
    """A network with a mask input: no mask computes the same as an all-ones mask (no holes) on every path
    (x_t = y, x_t != y, with and without gradients); holes change the output."""
    model = _mask_model()
    x, z = torch.rand(2, 3, *hw), torch.rand(2, 3, *hw)
    ones = torch.ones(1, 1, *hw)
    holes = ones.clone()
    holes[..., 2:6, 3:9] = 0
    t = torch.zeros(2)
    with torch.no_grad():
        for x_t in (x, z):
            ref = model(x_t, t, x)
            torch.testing.assert_close(model(x_t, t, x, mask=ones), ref, atol=1e-6, rtol=0)
            assert not torch.allclose(model(x_t, t, x, mask=holes), ref, atol=1e-4)
        fast = model(x, t, x, mask=holes)  # x_t is y: the summed stem weights
    with torch.enable_grad():
        slow = model(x, t, x.clone(), mask=holes)  # the concatenated input
    torch.testing.assert_close(fast, slow.detach(), atol=1e-5, rtol=0)


def test_mask_needs_a_mask_input(tiny_model):
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="no mask input"):
        tiny_model(x, torch.zeros(1), x, mask=torch.ones(1, 1, 8, 8))
    cfg = tiny_config()
    cfg.net.mask_channels = 2
    with pytest.raises(ValueError, match="mask_channels"):
        FlowModel(cfg)


def test_body_without_a_mask_equals_forward():
    """`body` (what the ONNX export traces) on the concatenated input of a mask-input network: the same as
    forward without a mask."""
    from sirestore.export import pad_to_multiple

    model = _mask_model(1)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        emb = model.net.time(torch.zeros(1))
        out = x + model.net.body(pad_to_multiple(torch.cat([x, x], 1), model.net.multiple), emb)
        torch.testing.assert_close(out, model(x, torch.zeros(1), x), atol=1e-5, rtol=0)
