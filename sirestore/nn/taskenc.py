"""Degradation detectors: tiny CNNs that tell which degradations an image has, and how noisy it is.

y (B, 3, H, W) -> logits (B, T) of the tasks in `degrade.mixture.TASKS` (multi-label: mixtures have
several) and the noise level (B,) on the 0..255 scale, one answer per image of any size. Their output,
`condition`, is what the restoration network is conditioned on (through FiLM). Two versions
(`model.ModelConfig.detector`):
- 1, `TaskEncoder`: four stride-2 convolutions, mean and standard deviation pooling of the last one. It
  learns slowly (noise averages out under four downsamplings before it is pooled); phases 1-4 of the
  all-in-one recipe trained it jointly with the network.
- 2, `StageEncoder`: the image and its high-pass residual through a full-resolution convolution, then
  stride-2 ones, every stage pooled into channel means and log standard deviations (noise and JPEG
  blocks show in the first stages, haze and low light in the last), a normalised MLP head.
- 3, `DarkStageEncoder`: version 2 whose head also reads the mean and log standard deviation of the image's
  dark channel (He et al. 2009), the statistic the dark channel prior dehazes with.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

SIGMA_SCALE = 50.0  # the noise level is predicted and fed to the network as sigma / SIGMA_SCALE


def mean_std(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (biased) standard deviation over height and width: (B, C, H, W) -> (B, C), (B, C). Reduced over
    the rows of a (B, H W, C) view, which channels-last memory gives without a copy: 5x faster on a CPU than
    `std((2, 3))` on such a tensor."""
    b, c = h.shape[:2]
    v = h.permute(0, 2, 3, 1).reshape(b, -1, c)
    mean = v.mean(1)
    d = v - mean[:, None]
    # the floor keeps the gradient finite on a constant channel (a black tile), as torch.std's backward does
    return mean, (d * d).mean(1).clamp_min(1e-12).sqrt()


def local_mean3(y: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Mean of each pixel's 3x3 neighbourhood, borders replicated: (B, C, H, W) -> (B, C, H, W), with box the
    (C, 1, 3, 3) kernel of ninths. A depthwise convolution: on a channels-last tensor of 3 channels 8x faster on a
    CPU than `avg_pool2d`, the same values."""
    return F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), box.to(y.dtype), groups=box.shape[0])


class TaskEncoder(nn.Module):
    """forward(y (B, C_in, H, W)) -> (logits (B, tasks), sigma (B,) on the 0..255 scale); detector version 1."""

    def __init__(self, tasks: int, in_channels: int = 3, widths: tuple[int, ...] = (16, 24, 32, 48)) -> None:
        super().__init__()
        layers, c = [], in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, stride=2, padding=1), nn.GELU()]
            c = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(2 * c, 64), nn.GELU(), nn.Linear(64, tasks + 1))
        self.tasks = tasks

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = torch.cat(mean_std(self.features(y)), dim=1)
        out = self.head(pooled)
        return out[:, : self.tasks], F.softplus(out[:, self.tasks]) * SIGMA_SCALE


class StageEncoder(nn.Module):
    """forward(y (B, C_in, H, W)) -> (logits (B, tasks), sigma (B,) on the 0..255 scale); detector version 2."""

    extra = 0  # image statistics the head reads beside the stages' (`features`)

    def __init__(
        self, tasks: int, in_channels: int = 3, widths: tuple[int, ...] = (16, 24, 32, 48, 64), hidden: int = 48
    ) -> None:
        super().__init__()
        self.stages, c = nn.ModuleList(), 2 * in_channels
        for i, w in enumerate(widths):
            self.stages.append(nn.Sequential(nn.Conv2d(c, w, 3, stride=1 if i == 0 else 2, padding=1), nn.GELU()))
            c = w
        self.register_buffer("box", torch.full((in_channels, 1, 3, 3), 1 / 9), persistent=False)  # local_mean3
        d = 2 * sum(widths) + self.extra
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, tasks + 1))
        self.tasks = tasks

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        local_mean = local_mean3(y, self.box)
        h, pooled = torch.cat([y, y - local_mean], dim=1), []
        for stage in self.stages:
            h = stage(h)
            mean, std = mean_std(h)
            pooled += [mean, torch.log(std + 1e-3)]
        out = self.head(torch.cat(pooled + self.features(y), dim=1))
        return out[:, : self.tasks], F.softplus(out[:, self.tasks]) * SIGMA_SCALE

    def features(self, y: torch.Tensor) -> list[torch.Tensor]:
        """Statistics (B, k) of y for the head beside the stages' (`extra` in all); none in version 2."""
        return []


DARK_PATCH = 7  # the dark channel's neighbourhood (px): small enough for 128 px tiles


def dark_channel(y: torch.Tensor) -> torch.Tensor:
    """The dark channel of y (B, C, H, W): the minimum over the channels and a DARK_PATCH square, (B, 1, H, W)."""
    return -F.max_pool2d(-y.amin(1, keepdim=True), DARK_PATCH, stride=1, padding=DARK_PATCH // 2)


class DarkStageEncoder(StageEncoder):
    """Detector version 3: version 2 plus the mean and log standard deviation of y's dark channel. In an
    undamaged photo most neighbourhoods hold a nearly black pixel in some channel (the dark channel prior);
    haze lifts the dark channel everywhere and flattens it, where a flat, bright or sandy photo need not."""

    extra = 2

    def features(self, y: torch.Tensor) -> list[torch.Tensor]:
        mean, std = mean_std(dark_channel(y))
        return [mean, torch.log(std + 1e-3)]


# ModelConfig.detector -> class
DETECTORS: dict[int, type[nn.Module]] = {1: TaskEncoder, 2: StageEncoder, 3: DarkStageEncoder}


DETECT_TILE = 128  # the detector sees an image as tiles of its training crop size (configs/allinone.yaml: patch)
DETECT_GRID = 4  # ... on an evenly spaced grid of at most DETECT_GRID x DETECT_GRID tiles over the whole image


def _grid_starts(size: int, tile: int) -> list[int]:
    """Evenly spaced starts of at most DETECT_GRID tiles of `tile` px covering 0..size."""
    k = min(DETECT_GRID, -(-size // tile))
    return sorted({round(i * (size - tile) / max(1, k - 1)) for i in range(k)})


def detector_tiles(y: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The tiles (B * n, C, h, w) the detector looks at in y (B, C, H, W), image by image, and n: squares of
    DETECT_TILE px (less when the image is smaller) on a grid over the image. The detector is trained on
    crops of that size; on a whole photo its pooled statistics mislead it (a sigma-25 photo read as 3)."""
    b, ch, h, w = y.shape
    th, tw = min(h, DETECT_TILE), min(w, DETECT_TILE)
    starts = [(r, c) for r in _grid_starts(h, th) for c in _grid_starts(w, tw)]
    shape = (b * len(starts), ch, th, tw)
    tiles = torch.empty(shape, dtype=y.dtype, device=y.device, memory_format=torch.channels_last)  # one copy
    for i, (r, c) in enumerate(starts):
        tiles[i :: len(starts)] = y[..., r : r + th, c : c + tw]
    return tiles, len(starts)


def pool_detection(probs: torch.Tensor, sigma: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tile probabilities (B * n, T) and noise levels (B * n,) -> per image: the mean probabilities
    (B, T) and the median noise level (B,) (robust to flat or textured tiles)."""
    return probs.unflatten(0, (-1, n)).mean(1), sigma.unflatten(0, (-1, n)).median(1).values


def condition(probs: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The network's conditioning vector: task probabilities (B, T) and noise level (B,) (0..255)
    -> (B, T + 1)."""
    return torch.cat([probs, (sigma / SIGMA_SCALE)[:, None]], dim=1)


def forced(task_index: int, tasks: int, sigma: torch.Tensor) -> torch.Tensor:
    """The conditioning vector (B, T + 1) of one known task (`restore --task`), with the detected
    noise level sigma (B,)."""
    probs = torch.zeros(sigma.shape[0], tasks, dtype=sigma.dtype, device=sigma.device)
    probs[:, task_index] = 1.0
    return condition(probs, sigma)
