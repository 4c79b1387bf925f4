"""Figures drawn with Pillow (no matplotlib): a line plot (series of (x, y) points, log or linear axes, ticks,
legend) and a grid of before/after crops."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COLORS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _decades(lo: float, hi: float) -> list[float]:
    """Tick values 1, 2, 5 x 10^k spanning [lo, hi]."""
    ticks = []
    for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        ticks += [m * 10.0**k for m in (1, 2, 5) if lo <= m * 10.0**k <= hi]
    return ticks


def _linear_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """About `count` round tick values (1, 2 or 5 times a power of ten apart) inside [lo, hi]."""
    raw = (hi - lo) / count
    step = min((m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)), key=lambda v: abs(v - raw))
    first = math.ceil(lo / step)
    return [round(k * step, 10) for k in range(first, math.floor(hi / step) + 1)]


def line_plot(
    series: dict[str, list[tuple[float, float]]],
    path: str | Path,
    title: str,
    xlabel: str,
    ylabel: str,
    xticks: list[float] | None = None,
    size: tuple[int, int] = (1000, 640),
    log_y: bool = True,
    log_x: bool = True,
) -> None:
    """Write a PNG: one coloured line with points per series (log or linear axes: `log_x`, `log_y`),
    legend on the right."""
    width, height = size
    left, right, top, bottom = 90, 330, 50, 70
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    font, small = _font(16), _font(13)
    fy = math.log10 if log_y else (lambda v: v)
    fx = math.log10 if log_x else (lambda v: v)
    kept = lambda p: (p[0] > 0 or not log_x) and (p[1] > 0 or not log_y)  # noqa: E731
    pts = [p for s in series.values() for p in s if kept(p)]
    xs, ys = [p[0] for p in pts], [fy(p[1]) for p in pts]
    xpad = 0.05 if log_x else 0.05 * (max(xs) - min(xs) or 1.0)
    x0, x1 = fx(min(xs)) - xpad, fx(max(xs)) + xpad
    pad = 0.15 if log_y else 0.08 * (max(ys) - min(ys) or 1.0)
    y0, y1 = min(ys) - pad, max(ys) + pad

    def to_px(x: float, y: float) -> tuple[float, float]:
        px = left + (fx(x) - x0) / (x1 - x0) * (width - left - right)
        py = height - bottom - (fy(y) - y0) / (y1 - y0) * (height - top - bottom)
        return px, py

    d.rectangle([left, top, width - right, height - bottom], outline="black")
    xmin = 10**x0 if log_x else x0
    for t in _decades(10**y0, 10**y1) if log_y else _linear_ticks(y0, y1):
        _, py = to_px(xmin, t)
        d.line([left, py, width - right, py], fill=(225, 225, 225))
        d.text((left - 8, py), f"{t:g}", fill="black", font=small, anchor="rm")
    for t in xticks or (sorted(set(xs)) if log_x else _linear_ticks(x0, x1)):
        px, _ = to_px(t, 10**y0 if log_y else y0)
        d.line([px, top, px, height - bottom], fill=(225, 225, 225))
        d.text((px, height - bottom + 8), f"{t:g}", fill="black", font=small, anchor="mt")
    d.text(((left + width - right) / 2, 18), title, fill="black", font=font, anchor="mm")
    d.text(((left + width - right) / 2, height - 25), xlabel, fill="black", font=font, anchor="mm")
    label = Image.new("RGB", (height - top - bottom, 24), "white")
    ImageDraw.Draw(label).text((label.width / 2, 12), ylabel, fill="black", font=font, anchor="mm")
    img.paste(label.rotate(90, expand=True), (12, top))
    for i, (name, points) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        xy = [to_px(x, y) for x, y in sorted(points) if kept((x, y))]
        if len(xy) > 1:
            d.line(xy, fill=color, width=3)
        for px, py in xy:
            d.ellipse([px - 5, py - 5, px + 5, py + 5], fill=color)
        ly = top + 10 + 24 * i
        d.line([width - right + 15, ly, width - right + 45, ly], fill=color, width=3)
        d.ellipse([width - right + 25, ly - 5, width - right + 35, ly + 5], fill=color)
        d.text((width - right + 52, ly), name, fill="black", font=small, anchor="lm")
    img.save(path)


def _crop(x, size: int) -> Image.Image:
    """Centre crop of a (1, C, H, W) tensor in [0, 1] as an RGB image of size x size (or smaller)."""
    h, w = x.shape[-2:]
    s = min(size, h, w)
    top, left = (h - s) // 2, (w - s) // 2
    a = (x[0, :, top : top + s, left : left + s].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(a if a.shape[2] == 3 else a[..., 0]).convert("RGB")


def crops_figure(rows: list, path: Path, size: int = 128) -> None:
    """One row per task: clean, degraded, baseline and ours at each step count, centre crops.
    rows: (title, clean, degraded, baseline, {steps: output}) with (1, C, H, W) tensors."""
    if not rows:
        return
    steps = sorted(rows[0][4])
    heads = ["clean", "degraded", "baseline", *[f"{s} step{'s' if s > 1 else ''}" for s in steps]]
    pad, title_h = 4, 18
    width = len(heads) * (size + pad) + pad
    height = title_h + len(rows) * (size + title_h + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw, font = ImageDraw.Draw(canvas), _font(12)
    for j, head in enumerate(heads):
        draw.text((pad + j * (size + pad), 2), head, fill="black", font=font)
    for i, (title, clean, degraded, baseline, outs) in enumerate(rows):
        top = title_h + i * (size + title_h + pad)
        draw.text((pad, top), title[:100], fill="black", font=font)
        for j, img in enumerate([clean, degraded, baseline, *[outs[s] for s in steps]]):
            canvas.paste(_crop(img, size), (pad + j * (size + pad), top + title_h))
    canvas.save(path)
