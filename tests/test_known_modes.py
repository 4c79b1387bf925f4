"""Known-operator details: the exact bicubic-resize operator (the `sr` degradation), noiseless restoration that
stays in range, and the Telea start for inpainting."""

from __future__ import annotations

import pytest
import torch

from sirestore.degrade import parse_spec
from sirestore.degrade.resize import ResizeOperator
from sirestore.known import Known, consistent_in_range, telea_fill


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_resize_operator_is_the_sr_degradation_and_adjoint(scale):
    op = ResizeOperator(scale)
    x = _rand(2, 3, 6 * scale, 5 * scale, seed=1)
    lr = parse_spec(f"sr:scale={scale},upsample=false")(x, None)[0]
    assert torch.allclose(op.A(x), lr, atol=1e-12)  # borders included
    y = _rand(*lr.shape, seed=2)
    lhs, rhs = (op.A(x) * y).sum(), (x * op.A_T(y)).sum()
    assert abs(lhs - rhs).item() <= 1e-9 * abs(lhs).item()


def test_resize_pseudo_inverse_reproduces_the_observation():
    op = ResizeOperator(4)
    y = _rand(1, 3, 7, 9, seed=3)
    assert torch.allclose(op.A(op.A_pinv(y)), y, atol=1e-4)  # A A^+ y = y (PCG to 1e-6 relative residual)
    x = _rand(1, 3, 28, 36, seed=4)
    assert torch.allclose(op.A(op.A_pinv(op.A(x))), op.A(x), atol=1e-4)  # A A^+ A = A


def test_known_scale_uses_the_exact_resize_unless_circular():
    assert isinstance(Known(scale=2).operator(), ResizeOperator)
    assert not isinstance(Known(scale=2, boundary="circular").operator(), ResizeOperator)


def test_consistent_in_range_keeps_consistency_after_the_clamp():
    op = ResizeOperator(2)
    clean = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = op.A(clean)
    guess = clean + 0.3 * _rand(1, 3, 24, 24, seed=5)  # far outside [0, 1] in places
    one = op.A_pinv(y - op.A(guess)) + guess  # a single projection
    box = consistent_in_range(op, y, guess)
    residual = lambda x: (op.A(x.clamp(0, 1)) - y).pow(2).mean().sqrt().item()  # noqa: E731
    assert residual(one) > 10 * residual(box)
    assert (op.A(box) - y).abs().max().item() < 1e-4


@pytest.mark.parametrize("channels", [1, 3])
def test_telea_fill_keeps_observed_pixels_and_fills_holes(channels):
    gen = torch.Generator().manual_seed(0)
    x = 0.2 + 0.6 * torch.rand(2, channels, 20, 24, generator=gen)
    mask = torch.ones(20, 24)
    mask[5:12, 6:15] = 0
    filled = telea_fill(x * mask, mask)
    assert filled.shape == x.shape
    assert torch.equal(filled[..., mask.bool()], x[..., mask.bool()])
    holes = filled[..., ~mask.bool()]
    assert holes.min() > 0.1 and holes.max() < 0.9  # filled from the surroundings, not left at 0


def test_inpaint_telea_fill_is_the_known_mode_start():
    """`inpaint:telea=true` fills the holes as known mode's start does (what a mask-input network is trained on);
    a fill is smooth or Telea, not both."""
    x = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(1))
    y, params = parse_spec("inpaint:ratio=0.4,telea=true")(x, torch.Generator().manual_seed(2))
    mask = params[0]["mask"]
    assert torch.equal(y, telea_fill(x * mask, mask))
    with pytest.raises(ValueError, match="one fill"):
        parse_spec("inpaint:smooth=true,telea=true")


def test_known_mode_gives_the_mask_to_a_mask_input_network():
    """restore_known passes the mask to a network with a mask input (its output then depends on it), and to
    no other network; the mask-input weights at zero give what the network gives without a mask."""
    from sirestore.known import restore_known
    from sirestore.model import FlowModel
    from sirestore.restore import Restorer

    from .conftest import randomize, tiny_config

    cfg = tiny_config()
    cfg.net.mask_channels = 1
    model = randomize(FlowModel(cfg))
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(3))
    mask = torch.ones(24, 24)
    mask[4:14, 6:18] = 0
    seen = []
    forward = FlowModel.forward

    def spy(self, *args, mask=None, **kw):
        seen.append(mask)
        return forward(self, *args, mask=mask, **kw)

    restorer = Restorer(model=model)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FlowModel, "forward", spy)
        told = restore_known(restorer, x * mask, Known(mask=mask))
    assert seen and torch.equal(seen[0], mask[None, None])
    assert restorer.mask is None  # the restorer itself is unchanged
    stem = model.net.stem.weight
    with torch.no_grad():
        stem[:, 4 * 6 :] = 0  # the mask's sub-pixels: unused
    unused = restore_known(restorer, x * mask, Known(mask=mask))
    plain = randomize(FlowModel(tiny_config()))
    with torch.no_grad():
        plain.load_state_dict({**model.state_dict(), "net.stem.weight": stem[:, : 4 * 6]})
    assert not torch.allclose(told, unused, atol=1e-4)
    torch.testing.assert_close(unused, restore_known(Restorer(model=plain), x * mask, Known(mask=mask)))


def test_a_given_mask_needs_the_whole_image():
    from sirestore.model import FlowModel
    from sirestore.restore import Restorer

    from .conftest import randomize, tiny_config

    cfg = tiny_config()
    cfg.net.mask_channels = 1
    restorer = Restorer(model=randomize(FlowModel(cfg)), tile=80).replace(mask=torch.ones(1, 1, 100, 100))
    with pytest.raises(ValueError, match="whole images"):
        restorer.restore_tensor(torch.rand(1, 3, 100, 100))
