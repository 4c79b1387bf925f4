"""The restoration model: a network plus the interpolant that gives its output meaning."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from sirestore.degrade.mixture import TASKS
from sirestore.nn.taskenc import DETECTORS, condition, detector_tiles, pool_detection
from sirestore.nn.unet import UNet, UNetConfig
from sirestore.path import Interpolant, VPPath
from sirestore.precision import autocast


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model from its weights (stored in checkpoints)."""

    net: UNetConfig = field(default_factory=UNetConfig)  # network shape
    noise: float = 0.0  # interpolant noise s of gamma(t) = s sqrt(t(1-t)); 0 = straight bridge
    source_is_noise: bool = False  # noise -> clean path conditioned on y (else bridge from y)
    predict_velocity: bool = False  # the network outputs the velocity instead of x1_hat
    detector: int = 0  # all-in-one: a degradation detector of this version (nn.taskenc.DETECTORS; 0 = none,
    # true = 1) detects the degradation of y and conditions the network on it (needs net.task_dim = len(TASKS) + 1)
    diffusion: bool = False  # the DDPM baseline: the variance-preserving path (path.VPPath, needs
    # source_is_noise) and the network predicts the noise x_0; sample with --sampler ddim or ddpm

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        net = UNetConfig(**d.pop("net", {}))
        return cls(net=net, **d)

    def __post_init__(self) -> None:
        self.detector = int(self.detector)  # configs and older weights say true for version 1
        if self.detector and self.detector not in DETECTORS:
            raise ValueError(f"detector version {self.detector} is not one of {sorted(DETECTORS)}")

    def to_dict(self) -> dict:
        return asdict(self)


class FlowModel(nn.Module):
    """f(x_t, t, y) -> x1_hat, the estimate of the clean image; (B, 3, H, W) tensors."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.source_is_noise and cfg.net.cond_channels == 0:
            raise ValueError("the noise -> clean path needs the observation as a condition")
        if cfg.detector and cfg.net.task_dim != len(TASKS) + 1:
            raise ValueError(f"a detector needs net.task_dim = {len(TASKS) + 1}, got {cfg.net.task_dim}")
        self.cfg = cfg
        self.net = UNet(cfg.net)
        self.detector = DETECTORS[cfg.detector](len(TASKS)) if cfg.detector else None
        self.detection: tuple[torch.Tensor, torch.Tensor] | None = None  # (logits, sigma) of the last forward
        if cfg.diffusion and (not cfg.source_is_noise or cfg.noise or cfg.predict_velocity):
            raise ValueError("a diffusion model needs source_is_noise, no path noise and no velocity prediction")
        self.path = VPPath() if cfg.diffusion else Interpolant(noise=cfg.noise, source_is_noise=cfg.source_is_noise)

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor,
        raw: bool = False,
        task: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x1_hat for x_t (B, C, H, W) at times t (B,) given the observation y (B, C, H, W).

        raw=True returns the network output itself (x1_hat, the velocity or the noise, per the config). With a
        detector, `task` (B, len(TASKS) + 1) is the conditioning vector (see `nn.taskenc.condition`);
        None detects it from y. In training the detector always runs (its output is kept in
        `detection`), so that data-parallel training sees every parameter used. `mask` (B or 1, 1, H, W), 1 =
        observed pixel, 0 = hole, is a known inpainting mask for a network with a mask input
        (net.mask_channels); None: no mask is known (the same as all ones).
        """
        cond = y if self.cfg.net.cond_channels else None
        if self.detector is not None and (task is None or self.training):
            logits, sigma = self.detector(y)
            self.detection = (logits, sigma)  # for the detector's training loss
            if task is None:
                task = condition(torch.sigmoid(logits), sigma).detach()
        extra = {} if task is None else {"task": task}
        if mask is not None:
            extra["holes"] = 1 - mask
        out = self.net(x_t, t, cond, **extra)
        if raw:
            return out
        if self.cfg.predict_velocity:
            return self.path.x1_from_velocity(x_t, out, t)
        if self.cfg.diffusion:
            return self.path.x1_from_x0(x_t, out, t)
        return out

    def detect(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Task probabilities (B, len(TASKS)) and noise level (B,) (0..255 scale) detected in y."""
        if self.detector is None:
            raise ValueError("this model has no degradation detector")
        logits, sigma = self.detector(y)
        return torch.sigmoid(logits), sigma

    def detect_tiled(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As `detect`, on a whole image y (B, 3, H, W): pooled over its tiles (`taskenc.detector_tiles`), the
        crop size the detector is trained on."""
        tiles, n = detector_tiles(y)
        return pool_detection(*self.detect(tiles), n)

    def detect_condition(self, y: torch.Tensor) -> torch.Tensor:
        """The conditioning vector (B, len(TASKS) + 1) detected in y."""
        return condition(*self.detect(y))

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """dx_t estimate at (x_t, t) given y."""
        x_0 = None if self.cfg.source_is_noise else y
        return self.path.velocity_from_x1(x_t, self(x_t, t, y), t, x_0)


def split_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A FlowModel's state dict -> (everything but the degradation detector, the detector's entries)."""
    network = {k: v for k, v in state.items() if not k.startswith("detector.")}
    return network, {k: v for k, v in state.items() if k not in network}


class Conditioned(nn.Module):
    """A FlowModel run with a fixed conditioning vector `task` (1 or B, len(TASKS) + 1), detected once
    per image (or forced) instead of at every network evaluation, and/or a known inpainting `mask`
    (1 or B, 1, H, W; 1 = observed) for a network with a mask input: what the samplers get."""

    def __init__(self, model: FlowModel, task: torch.Tensor | None, mask: torch.Tensor | None = None) -> None:
        super().__init__()
        if mask is not None and not model.cfg.net.mask_channels:
            raise ValueError("this model has no mask input (net.mask_channels = 0)")
        self.model, self.task, self.mask = model, task, mask
        self.cfg, self.path = model.cfg, model.path

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor, raw: bool = False) -> torch.Tensor:
        task = None if self.task is None else self.task.expand(x_t.shape[0], -1)
        return self.model(x_t, t, y, raw=raw, task=task, mask=self.mask)


class LowPrecision(nn.Module):
    """A flow model (FlowModel or Conditioned) whose network runs under `autocast(precision)` and
    returns float32: what the samplers get, so their arithmetic stays float32."""

    def __init__(self, model: nn.Module, precision: str) -> None:
        super().__init__()
        self.model, self.precision = model, precision
        self.cfg, self.path = model.cfg, model.path

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor, raw: bool = False) -> torch.Tensor:
        with autocast(self.precision, x_t.device):
            out = self.model(x_t, t, y, raw=raw)
        return out.to(x_t.dtype)
