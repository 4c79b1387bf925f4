"""Tiles in bounded memory: sizes, tile grids, blending weights, a memory estimate, the tiled loop.

A restoration in tiles keeps two full-size buffers, the input and the output; every tile's
network run adds its own activations. Tiles overlap by at least `overlap` pixels and are blended
with separable weights that sum to one at every pixel (a partition of unity), so the output is
accumulated in place, with no weight buffer and no normalisation pass; neighbours cross-fade over
`overlap` pixels in the middle of what they share. `plan_tiles` picks the
largest tile whose estimated memory (`run_bytes`, from the network's widths) fits a budget.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch

from sirestore.model import ModelConfig

_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
MIN_AUTO_TILE = 256  # smallest tile chosen from a budget (the seam figures of docs hold from here)
RESERVE = 64 * 2**20  # bytes kept aside for the library's scratch space and allocator slack


def parse_size(text: str | int) -> int:
    """Bytes of a size such as `1GB`, `512MB`, `1.5G`, `800MiB` or `1000000` (K/M/G/T are powers of 1024)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b)?\s*", str(text), re.IGNORECASE)
        if not m or (m.group(3) and m.group(3).lower() == "ib" and not m.group(2)):
            raise ValueError(f"{text!r} is not a size; use a number with a unit, e.g. 1GB or 512MB")
        value = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if value <= 0:
        raise ValueError(f"{text!r}: the memory size must be positive")
    return value


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Evenly spaced starts of the fewest tiles of length `tile` covering [0, size), neighbours
    sharing at least `overlap` pixels."""
    if size <= tile:
        return [0]
    n = 1 + math.ceil((size - tile) / (tile - overlap))
    return [round(k * (size - tile) / (n - 1)) for k in range(n)]


def _edge(overlap: int) -> torch.Tensor:
    """(overlap,) rising edge: zero over a margin of overlap/4 pixels (where the neighbour's
    border effects live), then a raised cosine up to one."""
    margin = overlap // 4
    k = overlap - margin
    rise = 0.5 - 0.5 * torch.cos(torch.pi * (torch.arange(k, dtype=torch.float64) + 0.5) / k)
    return torch.cat([torch.zeros(margin, dtype=torch.float64), rise])


def axis_weights(size: int, tile: int, overlap: int) -> list[tuple[int, torch.Tensor]]:
    """(start, weights (min(tile, size),)) of each tile along one axis. Neighbours cross-fade over
    `overlap` pixels in the middle of the part they share (each tile owns the rest up to there, so
    few pixels are averages of two tiles); the weights of all tiles sum to one at every position,
    so the 2-D products of two axes do too (a partition of unity)."""
    starts = tile_starts(size, tile, overlap)
    t = min(tile, size)
    edge = _edge(overlap)
    cuts = [b + (a + t - b - overlap) // 2 for a, b in zip(starts, starts[1:])]  # cross-fade starts
    raw = []
    for k, s in enumerate(starts):
        r = torch.ones(t, dtype=torch.float64)
        if k > 0:
            a = cuts[k - 1] - s
            r[:a] = 0
            r[a : a + overlap] *= edge
        if k < len(starts) - 1:
            a = cuts[k] - s
            r[a : a + overlap] *= edge.flip(0)
            r[a + overlap :] = 0
        raw.append(r)
    total = torch.zeros(size, dtype=torch.float64)
    for s, r in zip(starts, raw):
        total[s : s + t] += r
    return [(s, (r / total[s : s + t]).float()) for s, r in zip(starts, raw)]


def check_tile(tile: int | None, overlap: int) -> None:
    """Raise ValueError unless a tile size leaves room for the blending margins."""
    if overlap < 0:
        raise ValueError("overlap must be >= 0")
    if tile is not None and tile < 2 * overlap + 16:
        raise ValueError(f"tile must be at least {2 * overlap + 16} pixels (twice the overlap plus 16)")


def network_floats_per_pixel(cfg: ModelConfig) -> float:
    """Peak live float32 values per input pixel of one network evaluation, from the widths:
    the padded input, the encoder skips, and the largest block (x, its 2eC expansion and the
    depthwise output) at 1/4, 1/16... of the pixels, plus the head's output and crop."""
    net = cfg.net
    c_in = net.channels + net.cond_channels
    frac = [4.0 ** -(i + 1) for i in range(len(net.widths))]
    skips = sum(w * f for w, f in zip(net.widths[:-1], frac))
    block = max((1 + 4 * net.expand) * w * f for w, f in zip(net.widths, frac))
    return 2 * c_in + skips + block + 3 * net.channels


SAMPLER_IMAGES = {"euler": 3, "heun": 6, "sde": 4}  # live (B, 3, H, W) images a step adds


def run_bytes(cfg: ModelConfig, batch: int, h: int, w: int, sampler: str = "euler") -> int:
    """Estimated peak bytes of one sampler run on a (batch, 3, h, w) float32 tile (its input
    excluded): the network's activations at the padded size plus the sampler's images; the
    number of steps does not matter (the steps run one after another)."""
    m = 2 ** len(cfg.net.widths)
    padded = (-(-h // m) * m) * (-(-w // m) * m)
    floats = network_floats_per_pixel(cfg) * padded + 3 * SAMPLER_IMAGES.get(sampler, 6) * h * w
    return int(4 * batch * floats)


def plan_bytes(cfg: ModelConfig, shape: tuple[int, ...], tile: tuple[int, int] | None, sampler: str = "euler") -> int:
    """Estimated peak bytes restoring a (B, C, H, W) float32 image whole (tile None) or in tiles of
    `tile` = (th, tw): input and output images, a noise image for a noise source, one tile's run,
    its input crop and weighted output (two tile images), and RESERVE."""
    b, c, h, w = shape
    images = 2 * b * c * h * w + (3 * b * h * w if cfg.source_is_noise else 0)
    if tile is None:
        return 4 * images + run_bytes(cfg, b, h, w, sampler) + RESERVE
    th, tw = tile
    return 4 * (images + 2 * 3 * b * th * tw) + run_bytes(cfg, b, th, tw, sampler) + RESERVE


def plan_tiles(
    cfg: ModelConfig, shape: tuple[int, ...], budget: int, overlap: int, sampler: str = "euler"
) -> tuple[int, int] | None:
    """Tile (th, tw) for a (B, C, H, W) image under `budget` bytes, or None when the whole image
    fits: the largest square tile (a multiple of 16, at least MIN_AUTO_TILE or the image) that fits,
    since larger tiles give each pixel more context. Raises ValueError when even the smallest does not."""
    _, _, h, w = shape
    if plan_bytes(cfg, shape, None, sampler) <= budget:
        return None
    m = 16
    lowest = max(min(MIN_AUTO_TILE, max(h, w)), 2 * overlap + 16)
    for side in range(-(-max(h, w) // m) * m, lowest - 1, -m):
        tile = (min(side, h), min(side, w))
        if plan_bytes(cfg, shape, tile, sampler) <= budget:
            return tile
    tile = (min(lowest, h), min(lowest, w))
    need = plan_bytes(cfg, shape, tile, sampler)
    raise ValueError(
        f"a {w}x{h} image needs at least {need / 2**20:.0f} MiB (the image in and out plus a {lowest}-pixel "
        f"tile), more than the memory limit of {budget / 2**20:.0f} MiB"
    )


Run = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


def restore_tiled(
    run: Run, y: torch.Tensor, tile: tuple[int, int], overlap: int, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """Restore y (B, C, H, W), C = 1 or 3, in overlapping tiles of (th, tw): `run(tile (B, 3, th, tw),
    noise crop or None) -> (B, 3, th, tw)`; the weighted tiles are added into one output buffer
    (B, C, H, W), float32, in y's memory layout. Gray tiles run as three equal channels."""
    b, c, h, w = y.shape
    out = torch.zeros(y.shape, dtype=torch.float32, device=y.device)
    if y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous():
        out = out.contiguous(memory_format=torch.channels_last)
    cols = axis_weights(w, tile[1], overlap)
    for top, wy in axis_weights(h, tile[0], overlap):
        for left, wx in cols:
            th, tw = wy.numel(), wx.numel()
            patch = y[..., top : top + th, left : left + tw].to(torch.float32).expand(b, 3, th, tw)
            crop = None if noise is None else noise[..., top : top + th, left : left + tw]
            res = run(patch.contiguous(memory_format=torch.channels_last), crop)
            res = res.mean(1, keepdim=True) if c == 1 else res
            out[..., top : top + th, left : left + tw].addcmul_(res, (wy[:, None] * wx[None, :]).to(out.device))
    return out
