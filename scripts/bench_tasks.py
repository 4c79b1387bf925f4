"""The rows of the all-in-one benchmark (scripts/bench_all.py): data, degradation, classical baseline.

Each `Task` names a test set under ../shared/data, how its observations are made (a degradation
spec with image k seeded seed + k, a spec template with the image's name for per-image masks, or
real pairs), the classical baseline run beside the model in the same run, and the published
numbers of ../shared/README.md where the protocol matches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sirestore import baselines
from sirestore.degrade.kernels import levin_kernel

Baseline = Callable[[np.ndarray, dict], np.ndarray]  # (degraded H x W x C in [0, 1], info) -> restored


@dataclass
class Task:
    """One benchmark row group: a test set and a degradation, restored at several step counts."""

    task: str  # what the row restores: "noise", "jpeg", "blur", ...
    data: str  # folder under the data root (for pairs: the folder holding rain/ and norain/)
    spec: str = ""  # degradation spec; "{name}" is replaced by the image's file stem; "" = real pairs
    baseline: Baseline | None = None  # classical method run beside the model
    baseline_name: str = ""  # its name in the table
    border: int = 0  # pixels cropped before scoring (super-resolution: the scale)
    y_channel: bool = False  # also report PSNR on the Y channel (rain, SR)
    known: dict = field(default_factory=dict)  # what the user is told: {"mask": dir} for mask-given inpainting
    published: dict[str, float] = field(default_factory=dict)  # method -> PSNR (dB), cited in README


def _nlm(sigma: float) -> Baseline:
    return lambda y, info: baselines.nlm(y, sigma)


def _wiener(index: int, sigma: float) -> Baseline:
    kernel = levin_kernel(index).numpy()
    return lambda y, info: baselines.wiener(y, kernel, sigma)


CBSD68_PUBLISHED = {  # ../shared/README.md, RGB PSNR at sigma 15 / 25 / 50
    15: {"CBM3D": 33.52, "CDnCNN-B 0.67M": 33.90, "FFDNet 0.85M": 33.87, "AirNet 8.9M (all-in-one)": 33.92},
    25: {"CBM3D": 30.71, "CDnCNN-B 0.67M": 31.24, "FFDNet 0.85M": 31.21, "AirNet 8.9M (all-in-one)": 31.26},
    50: {"CBM3D": 27.38, "CDnCNN-B 0.67M": 27.95, "FFDNet 0.85M": 27.96, "AirNet 8.9M (all-in-one)": 28.00},
}
GRAY_PUBLISHED = {
    "BSD68": {
        15: {"BM3D": 31.08, "DnCNN": 31.73},
        25: {"BM3D": 28.57, "DnCNN": 29.23},
        50: {"BM3D": 25.60, "DnCNN": 26.23},
    },
    "Set12": {
        15: {"BM3D": 32.37, "DnCNN": 32.86},
        25: {"BM3D": 29.97, "DnCNN": 30.44},
        50: {"BM3D": 26.72, "DnCNN": 27.18},
    },
}
LIVE1_COLOR_SWINIR = {10: 28.06, 20: 30.45, 30: 31.82, 40: 32.75}  # 12M parameters
MASK_BANDS = ("10-20", "20-40", "40-60")


def tasks() -> list[Task]:
    """Every row group of the benchmark, in report order."""
    rows = [
        Task("noise", "CBSD68", f"awgn:sigma={s}", _nlm(s), "OpenCV NLM", published=CBSD68_PUBLISHED[s])
        for s in (15, 25, 50)
    ]
    rows += [
        Task("noise", name, f"awgn:sigma={s}", _nlm(s), "OpenCV NLM", published=GRAY_PUBLISHED[name][s])
        for name in ("BSD68", "Set12")
        for s in (15, 25, 50)
    ]
    identity = lambda y, info: y  # noqa: E731 - the degraded input as its own baseline
    rows += [
        Task(
            "jpeg",
            "LIVE1",
            f"jpeg:quality={q}",
            identity,
            "JPEG input",
            published={"SwinIR 12M": LIVE1_COLOR_SWINIR[q]},
        )
        for q in (10, 20, 30, 40)
    ]
    rows += [Task("jpeg", "classic5", f"jpeg:quality={q}", identity, "JPEG input") for q in (10, 20, 30, 40)]
    rows += [
        Task("blur", "CBSD68", f"motion_blur:kernel=levin{i}+awgn:sigma=2.55", _wiener(i, 2.55), "Wiener, true kernel")
        for i in range(1, 9)
    ]
    rows += [
        Task(
            "inpaint",
            "CBSD68",
            f"inpaint:mask=benchmarks/masks/freeform_{band}/{{name}}.png",
            lambda y, info: baselines.inpaint(y, info["known"], "telea"),
            "OpenCV Telea",
            known={"mask": f"benchmarks/masks/freeform_{band}"},
        )
        for band in MASK_BANDS
    ]
    rows += [
        Task("rain", name, "", identity, "rainy input", y_channel=True) for name in ("Rain12", "Rain100L_subset10")
    ]
    rows += [
        Task(
            "low_resolution",
            name,
            f"sr:scale={s}",
            lambda y, info: y,  # the input is already the bicubic upsampling of the LR image
            "bicubic",
            border=s,
            y_channel=True,
        )
        for name in ("Set5/HR", "Set14")
        for s in (2, 4)
    ]
    rows += [
        Task("haze", "CBSD68", "haze", lambda y, info: baselines.dark_channel_prior(y), "dark channel prior"),
        Task("low_light", "CBSD68", "low_light:sigma=5", lambda y, info: baselines.clahe(y), "CLAHE"),
        Task("speckle", "CBSD68", "speckle:looks=4", lambda y, info: baselines.lee(y, 4), "Lee filter"),
        # undamaged photos: a blind model should leave them as they are (PSNR against the photo itself)
        Task("clean", "CBSD68", "clean", identity, "the photo"),
    ]
    return rows
