"""Mixtures of degradations for all-in-one training: per-image draws, labels, levels, masks."""

import pytest
import torch

from sirestore.degrade.base import REGISTRY
from sirestore.degrade.mixture import TASK_OF, TASKS, Mixture, noise_level, task_labels


def test_every_degradation_has_a_task():
    assert set(TASK_OF) == set(REGISTRY) - {"compose"}
    assert set(TASK_OF.values()) == {*TASKS, None}
    assert [name for name, task in TASK_OF.items() if task is None] == ["clean"]


def test_clean_images_have_no_label_and_no_noise():
    x = torch.rand(3, 3, 16, 16)
    batch = Mixture({"clean": 1.0})(x, torch.Generator().manual_seed(0))
    assert torch.equal(batch.y, x) and torch.equal(batch.labels, torch.zeros(3, len(TASKS)))
    assert torch.equal(batch.sigma, torch.zeros(3)) and torch.equal(batch.mask, torch.ones(3, 1, 16, 16))
    assert [p[0]["type"] for p in batch.params] == ["clean"] * 3


def test_labels_and_noise_level_of_a_composition():
    x = torch.rand(1, 3, 32, 32)
    mix = Mixture({"gaussian_blur:sigma=1.5+awgn:sigma=20": 1.0})
    batch = mix(x, torch.Generator().manual_seed(0))
    expected = torch.zeros(len(TASKS))
    expected[[TASKS.index("blur"), TASKS.index("noise")]] = 1
    assert torch.equal(batch.labels[0], expected)
    assert batch.sigma[0].item() == pytest.approx(20.0)
    assert torch.equal(batch.mask, torch.ones(1, 1, 32, 32))
    assert torch.equal(task_labels(batch.params[0]), expected) and noise_level(batch.params[0]) == pytest.approx(20.0)


def test_per_image_draws_follow_the_weights_and_the_seed():
    x = torch.rand(64, 3, 16, 16)
    mix = Mixture({"awgn:sigma=10": 3.0, "inpaint:ratio=0.3": 1.0})
    a = mix(x, torch.Generator().manual_seed(1))
    b = mix(x, torch.Generator().manual_seed(1))
    assert torch.equal(a.y, b.y) and torch.equal(a.labels, b.labels)
    noisy = a.labels[:, TASKS.index("noise")]
    assert 0.55 < noisy.mean().item() < 0.95  # about 3/4
    holes = a.labels[:, TASKS.index("inpaint")].bool()
    assert torch.equal(holes, ~noisy.bool())
    assert (a.mask[holes] < 1).any() and torch.equal(a.mask[~holes], torch.ones_like(a.mask[~holes]))
    assert torch.equal(a.sigma[noisy.bool()], torch.full((int(noisy.sum()),), 10.0))


def test_bad_mixtures_are_refused():
    with pytest.raises(ValueError, match="weight"):
        Mixture({})
    with pytest.raises(ValueError, match="weight"):
        Mixture({"awgn": 0.0})
