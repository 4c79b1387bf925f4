"""The training objective: Charbonnier distance on the x_1 estimate (or on the velocity)."""

from __future__ import annotations

import torch
from torch import nn

from sirestore.model import ModelConfig
from sirestore.path import PathSample


def charbonnier(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean sqrt((a - b)^2 + eps^2): a smooth L1."""
    return torch.sqrt((a - b).pow(2) + eps * eps).mean()


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error: the distance PSNR measures."""
    return (a - b).pow(2).mean()


DISTANCES = {"charbonnier": charbonnier, "mse": mse}


def flow_loss(
    model: nn.Module, cfg: ModelConfig, s: PathSample, y: torch.Tensor, distance: str = "charbonnier"
) -> torch.Tensor:
    """Loss of one path sample: the network's raw output against x_1 or against dx_t
    (velocity prediction), by a distance of DISTANCES. `model` is a FlowModel, possibly wrapped
    for data parallelism."""
    if distance not in DISTANCES:
        raise ValueError(f"loss {distance!r}: expected one of {', '.join(DISTANCES)}")
    target = s.dx_t if cfg.predict_velocity else s.x_1
    return DISTANCES[distance](model(s.x_t, s.t, y, raw=True), target)
