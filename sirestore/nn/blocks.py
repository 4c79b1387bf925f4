"""Building blocks of the restoration U-Net.

Every block works on (B, C, H, W) tensors. The main block is a MobileNetV2 inverted
residual (1x1 expand -> depthwise 3x3 -> 1x1 linear bottleneck) with a gated activation,
a light channel attention and FiLM time conditioning; grouped 1x1 convolutions are
followed by a ShuffleNet channel shuffle.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle: (B, g*k, H, W) -> (B, k*g, H, W), interleaving groups."""
    if groups == 1:
        return x
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ChannelNorm(nn.Module):
    """Layer normalisation over the channel axis of a (B, C, H, W) tensor."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.standardize(x, self.weight.view(-1), self.bias.view(-1))

    def standardize(self, x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None):
        """(x - mean) / std over channels, then the affine (C,) weight and bias when given."""
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            # channels-last memory: the channel axis is innermost, so the statistics are reductions over
            # the rows of a (pixels, C) view; 2-4x faster than layer_norm for our few channels on a CPU
            b, c, h, w = x.shape
            v = x.permute(0, 2, 3, 1).reshape(-1, c).float()  # bfloat16 statistics would be coarse and slow
            d = v - v.mean(1, keepdim=True)
            v = d * torch.rsqrt((d * d).mean(1, keepdim=True) + self.eps)
            v = v if weight is None else v * weight + bias
            return v.view(b, h, w, c).permute(0, 3, 1, 2)
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        h = (x - mean) * torch.rsqrt(var + self.eps)
        return h if weight is None else h * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)


def spatial_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over height and width: (B, C, H, W) -> (B, C, 1, 1), float32 for a bfloat16 x. A bfloat16
    channels-last x is summed by a matrix product (float32 accumulation) instead of mean's float32 copy of
    the whole tensor."""
    b, c, h, w = x.shape
    if x.dtype != torch.bfloat16:
        return x.mean((2, 3), keepdim=True)
    if x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last):
        return x.mean((2, 3), keepdim=True, dtype=torch.float32)
    ones = torch.ones(b, 1, h * w, dtype=x.dtype, device=x.device)
    return (torch.bmm(ones, x.permute(0, 2, 3, 1).reshape(b, h * w, c)).float() / (h * w)).view(b, c, 1, 1)


class SimpleGate(nn.Module):
    """Split channels in two halves and multiply them: (B, 2C, H, W) -> (B, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


REDUCTION = 8  # channel attention: squeeze units = channels // REDUCTION


class ChannelAttention(nn.Module):
    """Light channel attention (squeeze-excite): global pool -> C/r -> C -> sigmoid scale."""

    def __init__(self, channels: int, reduction: int = REDUCTION) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(channels, channels // reduction, 1)
        self.excite = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale(x)

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """The per-channel scale of x (B, C, H, W): (B, C, 1, 1) in (0, 1)."""
        return torch.sigmoid(self.excite(F.relu(self.squeeze(spatial_mean(x)))))


class InvertedResidual(nn.Module):
    """Inverted residual with linear bottleneck, gating, channel attention and FiLM.

    x -> norm -> FiLM(t) -> 1x1 expand (C -> 2eC) -> depthwise 3x3 -> gate (-> eC)
      -> channel attention -> 1x1 project (-> C, linear) -> * beta + x
    beta starts at zero, so every block is the identity at initialisation.
    """

    def __init__(self, channels: int, expand: int, emb_dim: int, groups: int = 1) -> None:
        super().__init__()
        hidden = channels * expand
        self.groups = groups
        self.norm = ChannelNorm(channels)
        self.film = nn.Linear(emb_dim, 2 * channels) if emb_dim > 0 else None
        self.expand = nn.Conv2d(channels, 2 * hidden, 1, groups=groups)
        self.dw = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden)
        self.gate = SimpleGate()
        self.attn = ChannelAttention(hidden)
        self.project = nn.Conv2d(hidden, channels, 1, groups=groups)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.fold = True  # inference may fold the norm affine, FiLM and attention into weights (export turns
        # it off where the conditioning is a graph input that differs between the images of a batch)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        if self.fold and not torch.is_grad_enabled() and self.groups == 1 and (emb is None or _same_rows(emb)):
            return self._folded(x, emb)
        h = self.norm(x)
        if self.film is not None and emb is not None:
            scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = channel_shuffle(self.expand(h), self.groups)
        h = self.attn(self.gate(self.dw(h)))
        return x + self.project(h) * self.beta

    def folded_expansion(self, emb: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the expansion conv with the FiLM affine of one time, emb (1, emb_dim),
        folded in: conv(norm(x) (1 + scale) + shift) = conv'(norm(x)). Any `groups`."""
        w, b = self.expand.weight, self.expand.bias  # (O, C / groups, 1, 1), (O,)
        if self.film is None or emb is None:
            return w, b
        scale, shift = self.film(emb[:1])[0].chunk(2)  # (C,), (C,)
        group = torch.arange(w.shape[0], device=w.device) // (w.shape[0] // self.groups)  # of each output
        scale, shift = (1 + scale).view(self.groups, -1)[group], shift.view(self.groups, -1)[group]
        return w * scale[:, :, None, None], b + (w[:, :, 0, 0] * shift).sum(1)

    def _folded(self, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        """Inference with one time for the whole batch (groups = 1): the same function in fewer
        passes over memory. The norm's affine and FiLM are folded into the expansion weights,
        beta into the projection, and, for a single image outside tracing, the channel
        attention's scale too (it multiplies the projection's input channels)."""
        w, b, wp, bp = self._folded_weights(x, emb)
        h = self.gate(self.dw(F.conv2d(self.norm.standardize(x), w, b)))
        with float32(x):
            scale = self.attn.scale(h)  # (B, hidden, 1, 1)
            if h.shape[0] == 1 and not torch.jit.is_tracing():
                wp = wp * scale.view(1, -1, 1, 1)
            else:
                h = h * scale.to(h.dtype)
        return x + F.conv2d(h, wp, bp)

    def _folded_weights(self, x: torch.Tensor, emb: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """(w, b, wp, bp): the expansion conv with the norm's affine and FiLM at emb[:1] folded in, and the
        projection with beta folded in; float32. Kept for later calls while the parameters (their storage,
        dtype and in-place version counters) are the same, for the last `FOLDS` embeddings (times): a
        restoration then skips ~10 small ops per block (a noticeable share of a small image's time), and a
        sampler of up to `FOLDS` steps finds every step's weights from the second image on. Not kept under
        tracing (export)."""
        entries = None  # this block's (embedding, folded weights) pairs for the current weights, oldest first
        if not torch.jit.is_tracing():
            e = None if emb is None else emb[:1].detach()
            weights = (x.device, tuple((p.data_ptr(), p._version, p.dtype) for p in self.parameters()))
            cache = getattr(self, "_cache", None)
            if cache is None or cache[0] != weights:  # new weights: forget every time
                self._cache = cache = (weights, [])
            entries = cache[1]
            for i, (e_i, folded) in enumerate(entries):
                if _same_embedding(e_i, e):
                    entries.append(entries.pop(i))  # most recently used last
                    return folded
        with float32(x):  # the folding is small: float32 even under autocast
            w, b = self.folded_expansion(emb)  # (O, C, 1, 1), (O,)
            b = b + (w[:, :, 0, 0] * self.norm.bias.view(1, -1)).sum(1)
            w = w * self.norm.weight.view(1, -1, 1, 1)
            beta = self.beta.view(-1, 1, 1, 1)
            wp, bp = self.project.weight * beta, self.project.bias * beta.view(-1)
        folded = (w, b, wp, bp)
        if entries is not None:
            entries.append((e, folded))
            del entries[:-FOLDS]
        return folded


FOLDS = 8  # folded weight sets kept per block (times of a sampler); 8 of the shipped model: ~30 MB


def _same_embedding(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """Whether two fold-cache embeddings ((1, D) or None) are equal."""
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(torch.equal(a, b))


def float32(x: torch.Tensor) -> torch.autocast:
    """A context without autocast on x's device: small computations (time embedding, weight folding, attention
    scales) stay float32 when the network runs under bfloat16 autocast."""
    return torch.autocast(x.device.type, enabled=False)


def _same_rows(emb: torch.Tensor) -> bool:
    """Whether every image of the batch has the same embedding (B, D)."""
    return emb.shape[0] == 1 or bool((emb == emb[:1]).all())


def time_embedding(t: torch.Tensor, dim: int, max_period: float = 1000.0) -> torch.Tensor:
    """Sinusoidal embedding of times t in [0, 1]: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = (t.float()[:, None] * 1000.0) * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class TimeMLP(nn.Module):
    """t (B,) -> embedding (B, dim) through a sinusoidal code and a two-layer MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(time_embedding(t, self.dim))


class Down(nn.Module):
    """Halve the resolution: pixel-unshuffle x2 then a 1x1 conv to the next width (run as one conv)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4 * c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # = conv(pixel_unshuffle(x, 2)): the 1x1 weights over the 4 sub-pixels of each input
        # channel are a 2x2 stride-2 kernel, which skips the unshuffle's pass over memory
        o, c4 = self.conv.weight.shape[:2]
        return F.conv2d(x, self.conv.weight.view(o, c4 // 4, 2, 2), self.conv.bias, stride=2)


class Up(nn.Module):
    """Double the resolution: 1x1 conv then pixel-shuffle x2 to the previous width."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, 4 * c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)
