"""The restoration network: a light U-Net of inverted-residual blocks.

f(x_t, t, cond) -> x1_hat, all (B, C, H, W) in [0, 1] (roughly). A pixel-unshuffle x2
front end works at half resolution from the first layer (as in FFDNet), so every block
runs on 4x fewer pixels; deeper levels halve again and widen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from sirestore.nn.blocks import Down, InvertedResidual, TimeMLP, Up, float32


@dataclass
class UNetConfig:
    """Shape of the network; stored beside the weights so a checkpoint rebuilds itself."""

    channels: int = 3  # image channels of x_t and of the output (gray is run as 3 equal ones)
    cond_channels: int = 3  # extra input channels (the observation y, a mask...); 0 for none
    widths: list[int] = field(default_factory=lambda: [32, 64, 96, 128])  # width per level
    enc_blocks: list[int] = field(default_factory=lambda: [1, 1, 2])  # blocks per encoder level
    mid_blocks: int = 4  # blocks at the lowest resolution
    dec_blocks: list[int] = field(default_factory=lambda: [1, 1, 1])  # blocks per decoder level
    expand: int = 2  # inverted-residual expansion factor
    groups: int = 1  # groups of the 1x1 convs (channel shuffle follows when > 1)
    emb_dim: int = 64  # time-embedding width; 0 disables time conditioning
    residual: bool = True  # predict x1_hat = x_t + network output (bridge paths)
    task_dim: int = 0  # size of a per-image conditioning vector (the degradation detector's), added to
    # the time embedding by a zero-initialised linear map; 0 = none
    mask_channels: int = 0  # 1: an input channel for the holes of a known inpainting mask (1 = missing pixel;
    # all zeros, the same as no mask, when none is given); 0 = none

    def to_dict(self) -> dict:
        return asdict(self)


class UNet(nn.Module):
    """Inverted-residual U-Net. forward(x_t (B,C,H,W), t (B,), cond (B,Cc,H,W)|None)."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        if len(cfg.enc_blocks) != len(cfg.widths) - 1 or len(cfg.dec_blocks) != len(cfg.widths) - 1:
            raise ValueError("enc_blocks and dec_blocks need one entry per level but the last")
        self.cfg = cfg
        w, e, d = cfg.widths, cfg.expand, cfg.emb_dim
        self.time = TimeMLP(d) if d > 0 else None
        if cfg.task_dim and not d:
            raise ValueError("task_dim needs a time embedding (emb_dim > 0) to add to")
        self.task = nn.Linear(cfg.task_dim, d) if cfg.task_dim else None
        if self.task is not None:  # no effect at initialisation: a grown denoiser starts as itself
            nn.init.zeros_(self.task.weight)
            nn.init.zeros_(self.task.bias)
        if cfg.mask_channels not in (0, 1):
            raise ValueError(f"mask_channels is 0 or 1, got {cfg.mask_channels}")
        self.stem = nn.Conv2d(4 * (cfg.channels + cfg.cond_channels + cfg.mask_channels), w[0], 3, padding=1)
        self.encoders = nn.ModuleList(
            nn.ModuleList(InvertedResidual(w[i], e, d, cfg.groups) for _ in range(n))
            for i, n in enumerate(cfg.enc_blocks)
        )
        self.downs = nn.ModuleList(Down(w[i], w[i + 1]) for i in range(len(w) - 1))
        self.middle = nn.ModuleList(InvertedResidual(w[-1], e, d, cfg.groups) for _ in range(cfg.mid_blocks))
        self.ups = nn.ModuleList(Up(w[i + 1], w[i]) for i in range(len(w) - 1))
        self.decoders = nn.ModuleList(
            nn.ModuleList(InvertedResidual(w[i], e, d, cfg.groups) for _ in range(n))
            for i, n in enumerate(cfg.dec_blocks)
        )
        self.head = nn.Conv2d(w[0], 4 * cfg.channels, 3, padding=1)
        if cfg.residual:  # start as the identity x1_hat = x_t
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this (forward pads to it)."""
        return 2 ** len(self.cfg.widths)

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor | None = None,
        task: torch.Tensor | None = None,
        holes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x_t (B, C, H, W), t (B,), cond (B, Cc, H, W) or None, task (B, task_dim) or None (no
        conditioning vector: the time embedding alone), holes (B or 1, 1, H, W) or None: 1 where a known mask
        says a pixel is missing (needs mask_channels; None computes the same as all zeros) -> (B, C, H, W)."""
        h0, w0 = x_t.shape[-2:]
        m = self.multiple
        pad = (0, (-w0) % m, 0, (-h0) % m)
        if self.cfg.cond_channels and cond is None:
            raise ValueError(f"this network needs a condition with {self.cfg.cond_channels} channels")
        if holes is not None and not self.cfg.mask_channels:
            raise ValueError("this network has no mask input (mask_channels = 0)")
        with float32(x_t):  # the time embedding stays float32 under autocast
            emb = self.time(t.expand(x_t.shape[0])) if self.time is not None else None
            if self.task is not None and task is not None:
                emb = emb + self.task(task.to(emb.dtype))
        w = _stem_weight(self.stem.weight)  # (O, C + Cc + M, 6, 6)
        n, nc = self.cfg.channels, self.cfg.channels + self.cfg.cond_channels
        if cond is x_t and self.cfg.cond_channels == n and not torch.is_grad_enabled():
            # x_t = y (the first step of a bridge): the stem's two input halves see the same image,
            # so their weights add up and the input is neither concatenated nor read twice
            h = F.conv2d(_pad(x_t, pad), w[:, :n] + w[:, n:nc], self.stem.bias, stride=2, padding=2)
        else:
            inp = x_t if cond is None else torch.cat([x_t, cond], dim=1)
            h = F.conv2d(_pad(inp, pad), w[:, :nc], self.stem.bias, stride=2, padding=2)
        if holes is not None:  # the mask's channel, a separate (bias-free) part of the same stem convolution
            holes = _pad(holes.to(h.dtype).expand(x_t.shape[0], -1, -1, -1), pad)
            h = h + F.conv2d(holes, w[:, nc:], stride=2, padding=2)
        out = self.trunk(h, emb)[..., :h0, :w0]
        return x_t + out if self.cfg.residual else out

    def body(self, inp: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        """The network on a padded input without a mask: inp (B, C + Cc, H, W) with H, W multiples of
        `multiple`, emb (B or 1, emb_dim) or None -> (B, C, H, W), before cropping and the residual."""
        # the stem, a 3x3 conv after pixel-unshuffle x2, runs as the equal 6x6 stride-2 conv
        w = _stem_weight(self.stem.weight)[:, : inp.shape[1]]
        return self.trunk(F.conv2d(inp, w, self.stem.bias, stride=2, padding=2), emb)

    def trunk(self, h: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        """Everything after the stem: h (B, widths[0], H/2, W/2) -> (B, C, H, W)."""
        skips = []
        for blocks, down in zip(self.encoders, self.downs):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            h = down(h)
        for block in self.middle:
            h = block(h, emb)
        for blocks, up, skip in zip(reversed(self.decoders), reversed(self.ups), reversed(skips)):
            h = up(h) + skip
            for block in blocks:
                h = block(h, emb)
        return F.pixel_shuffle(self.head(h), 2)


def _stem_weight(w: torch.Tensor) -> torch.Tensor:
    """(O, 4 Cin, 3, 3) weights of a 3x3 conv after pixel-unshuffle x2 -> (O, Cin, 6, 6) weights of
    the same map as a stride-2 conv with padding 2 on the full-resolution input. Unshuffled channel
    c * 4 + 2 a + b holds sub-pixel (a, b) of channel c; tap (i, j) of it lands on (2 i + a, 2 j + b)."""
    o, c4 = w.shape[:2]
    return w.view(o, c4 // 4, 2, 2, 3, 3).permute(0, 1, 4, 2, 5, 3).reshape(o, c4 // 4, 6, 6)


def grow_stem(weight: torch.Tensor, mask_channels: int) -> torch.Tensor:
    """Stem weights (O, 4 Cin, 3, 3) of a network without a mask input -> (O, 4 (Cin + mask_channels), 3, 3)
    with zero weights on the mask's sub-pixels: the grown network computes the same function."""
    o, c4, kh, kw = weight.shape
    return torch.cat([weight, weight.new_zeros(o, 4 * mask_channels, kh, kw)], dim=1)


def _pad(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """Pad right/bottom by reflection when the image is large enough, else by replication."""
    if not any(pad):
        return x
    mode = "reflect" if pad[1] < x.shape[-1] and pad[3] < x.shape[-2] else "replicate"
    return F.pad(x, pad, mode=mode)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
