"""Widen one level of a trained U-Net without changing its function (Net2Net's wider layers).

A level of width C becomes C' > C by repeating channels: new channel j copies channel j mod C,
and every layer that reads the level divides its weights on the copies of a channel by their
number, so sums are unchanged. The blocks' hidden channels and attention units are repeated the
same way. Channel norms see the same mean and variance over repeated channels, so the network
computes the same function; a small relative perturbation of the copies' incoming weights then
lets training tell them apart (identical copies get identical gradients).
"""

from __future__ import annotations

import dataclasses

import torch

from sirestore.nn.blocks import REDUCTION
from sirestore.nn.unet import UNetConfig


def repeat_map(old: int, new: int) -> torch.Tensor:
    """Source channel of each of `new` channels: j -> j mod old, (new,)."""
    if new < old or new % old:
        raise ValueError(f"a level of {old} channels can only grow to a multiple of {old}, not {new}")
    return torch.arange(new) % old


def _split_out(w: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """Rows (dim 0) of w picked by src (a new tensor): a producer of repeated channels."""
    return w[src]


def _split_in(w: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """Columns (dim 1) of w picked by src and divided by each source's number of copies."""
    copies = torch.bincount(src, minlength=int(src.max()) + 1).to(w.dtype)
    shape = [1, -1] + [1] * (w.dim() - 2)
    return w[:, src] / copies[src].view(shape)


def _sub(src: torch.Tensor, n: int) -> torch.Tensor:
    """The map of channels c * n + k (k < n: sub-pixels or halves) given the map of channels c."""
    return (src[:, None] * n + torch.arange(n)[None]).reshape(-1)


def _halves(src: torch.Tensor, old: int) -> torch.Tensor:
    """The map of [first half, second half] layouts: two blocks of len(src), sources offset by old."""
    return torch.cat([src, src + old])


def _block(state: dict, prefix: str, c_src: torch.Tensor, c_old: int, expand: int) -> None:
    """Widen one InvertedResidual's tensors in `state` in place (channels c_src.numel())."""
    h_old, c_new = c_old * expand, c_src.numel()
    h_src = repeat_map(h_old, c_new * expand)
    r_src = repeat_map(h_old // REDUCTION, c_new * expand // REDUCTION)
    g = lambda name: state[prefix + name]  # noqa: E731
    s = {}
    s["beta"] = g("beta")[:, c_src]
    s["norm.weight"], s["norm.bias"] = g("norm.weight")[:, c_src], g("norm.bias")[:, c_src]
    if prefix + "film.weight" in state:
        s["film.weight"] = _split_out(g("film.weight"), _halves(c_src, c_old))
        s["film.bias"] = _split_out(g("film.bias"), _halves(c_src, c_old))
    e_src = _halves(h_src, h_old)  # the expansion's 2 H outputs are the gate's two halves
    s["expand.weight"] = _split_in(_split_out(g("expand.weight"), e_src), c_src)
    s["expand.bias"] = _split_out(g("expand.bias"), e_src)
    s["dw.weight"], s["dw.bias"] = _split_out(g("dw.weight"), e_src), _split_out(g("dw.bias"), e_src)
    s["attn.squeeze.weight"] = _split_in(_split_out(g("attn.squeeze.weight"), r_src), h_src)
    s["attn.squeeze.bias"] = _split_out(g("attn.squeeze.bias"), r_src)
    s["attn.excite.weight"] = _split_in(_split_out(g("attn.excite.weight"), h_src), r_src)
    s["attn.excite.bias"] = _split_out(g("attn.excite.bias"), h_src)
    s["project.weight"] = _split_in(_split_out(g("project.weight"), c_src), h_src)
    s["project.bias"] = _split_out(g("project.bias"), c_src)
    state.update({prefix + k: v for k, v in s.items()})


def widen_level(
    state: dict[str, torch.Tensor], cfg: UNetConfig, level: int, width: int, prefix: str = ""
) -> tuple[dict[str, torch.Tensor], UNetConfig]:
    """A UNet state dict (keys under `prefix`) and config with level `level` widened to `width`
    channels, computing the same function. groups must be 1."""
    if cfg.groups != 1:
        raise ValueError("widening needs groups = 1")
    n = len(cfg.widths)
    if not 0 <= level < n:
        raise ValueError(f"level {level} out of range 0..{n - 1}")
    old = cfg.widths[level]
    src = repeat_map(old, width)
    state = dict(state)
    p = prefix

    def out(name: str, m: torch.Tensor) -> None:
        state[p + name + ".weight"] = _split_out(state[p + name + ".weight"], m)
        state[p + name + ".bias"] = _split_out(state[p + name + ".bias"], m)

    def inp(name: str, m: torch.Tensor) -> None:
        state[p + name + ".weight"] = _split_in(state[p + name + ".weight"], m)

    if level == 0:
        out("stem", src)
        inp("head", src)
    else:
        out(f"downs.{level - 1}.conv", src)
        inp(f"ups.{level - 1}.conv", src)
    if level < n - 1:
        inp(f"downs.{level}.conv", _sub(src, 4))  # input channel c * 4 + sub-pixel
        out(f"ups.{level}.conv", _sub(src, 4))  # output channel c * 4 + sub-pixel, before the shuffle
        blocks = [f"encoders.{level}.{i}." for i in range(cfg.enc_blocks[level])]
        blocks += [f"decoders.{level}.{i}." for i in range(cfg.dec_blocks[level])]
    else:
        blocks = [f"middle.{i}." for i in range(cfg.mid_blocks)]
    for b in blocks:
        _block(state, p + b, src, old, cfg.expand)
    widths = list(cfg.widths)
    widths[level] = width
    return state, dataclasses.replace(cfg, widths=widths)


def perturb_copies(
    state: dict[str, torch.Tensor], old: dict[str, torch.Tensor], scale: float, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Multiply every weight that grew (its shape differs from `old`'s) by 1 + scale * N(0, 1), so
    that repeated channels stop receiving identical gradients. scale = 0 returns state unchanged."""
    res = dict(state)
    for k, v in state.items():
        if k in old and old[k].shape != v.shape and k.endswith("weight") and scale > 0:
            noise = torch.randn(v.shape, generator=generator, dtype=v.dtype)
            res[k] = v * (1 + scale * noise)
    return res
