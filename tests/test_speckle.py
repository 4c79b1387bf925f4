"""The log domain of the speckle mode: exact inverse, unbiased observation, noise level within the denoiser's range."""

from __future__ import annotations

import pytest
import torch

from sirestore.consistency import LogSpeckle
from sirestore.degrade import parse_spec


def test_encode_decode_are_inverse_above_the_floor():
    log = LogSpeckle(2.0)
    x = torch.linspace(log.floor, 1, 101, dtype=torch.float64)
    assert torch.allclose(log.decode(log.encode(x)), x, atol=1e-12)
    low, high = log.encode(torch.tensor([log.floor, 1.0])).tolist()
    assert low == 0.0 and 0 < high <= 1  # [floor, 1] lands inside [0, 1]


@pytest.mark.parametrize("looks", [1.0, 4.0])
def test_observation_is_unbiased_with_the_predicted_noise_level(looks):
    log = LogSpeckle(looks)
    x = torch.full((1, 1, 256, 256), 0.4, dtype=torch.float64)
    y, _ = parse_spec(f"speckle:looks={looks}")(x, torch.Generator().manual_seed(0))
    v = log.observe(y) - log.encode(x)
    assert abs(v.mean().item()) < 0.1 * log.noise_std / log.range
    assert v.std().item() == pytest.approx(log.noise_std / log.range, rel=0.05)
    assert log.noise_std / log.range <= 50 / 255 + 1e-12


def test_rejects_bad_settings():
    with pytest.raises(ValueError):
        LogSpeckle(0.0)
    with pytest.raises(ValueError):
        LogSpeckle(1.0, floor=0.0)
