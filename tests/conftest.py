"""Shared fixtures: a tiny model, its weights file, small image files."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from sirestore.checkpoint import save_weights
from sirestore.model import FlowModel, ModelConfig
from sirestore.nn.unet import UNetConfig

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


def tiny_config(**model_kwargs) -> ModelConfig:
    """A network of a few thousand parameters with the structure of the real one."""
    net = UNetConfig(widths=[8, 16], enc_blocks=[1], mid_blocks=1, dec_blocks=[1], emb_dim=8)
    return ModelConfig(net=net, **model_kwargs)


def randomize(model: FlowModel, seed: int = 0) -> FlowModel:
    """Give every parameter a random value (blocks start as the identity otherwise)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return model.eval()


@pytest.fixture
def tiny_model() -> FlowModel:
    torch.manual_seed(0)
    return randomize(FlowModel(tiny_config()))


@pytest.fixture
def tiny_weights(tmp_path, tiny_model):
    path = tmp_path / "tiny.safetensors"
    save_weights(tiny_model, path)
    return path


@pytest.fixture
def image_dir(tmp_path):
    """A folder with a color PNG, a gray PNG and an RGBA PNG (odd sizes)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)).save(folder / "color.png")
    Image.fromarray(rng.integers(0, 256, (30, 33), dtype=np.uint8)).save(folder / "gray.png")
    Image.fromarray(rng.integers(0, 256, (20, 26, 4), dtype=np.uint8), "RGBA").save(folder / "alpha.png")
    return folder
