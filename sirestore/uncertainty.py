"""Uncertainty maps (`sirestore restore --samples K --uncertainty map.png`): a per-pixel standard deviation,
shown as a heat map, of what the model does not know.

- A stochastic model (stochastic path sampled with sde, or noise -> clean): K restorations, their mean as the
  output and their spread as the map (`Restorer.restore_samples`).
- A deterministic model: the posterior standard deviation for Gaussian noise by Tweedie's formula, from K
  probed restorations (`tweedie_std`), the noise level given, detected or estimated (`estimate_sigma`).
- A given inpainting mask: the spread over K restorations from resampled observations (`bootstrap_std`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from sirestore.batch import ImageFn
from sirestore.degrade.kernels import conv, gaussian_kernel
from sirestore.imageio import ImageInfo, write_image
from sirestore.restore import Restorer, mean_and_spread


def heat_map(std: np.ndarray, top: float | None = None) -> np.ndarray:
    """Per-pixel standard deviation (H, W) in [0, 1] units -> an H x W x 3 float32 RGB heat map
    (OpenCV's inferno colormap), 0 black and `top` (default: the largest value) bright yellow."""
    top = float(std.max()) if top is None else top
    levels = np.zeros(std.shape, np.uint8) if top <= 0 else np.clip(std / top * 255 + 0.5, 0, 255).astype(np.uint8)
    bgr = cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO)
    return bgr[..., ::-1].astype(np.float32) / 255


def uncertainty_image_fn(
    restorer: Restorer, samples: int, map_path: Path | None, known: object | None = None, seed: int = 0
) -> ImageFn:
    """For `batch.restore_files`: with `map_path`, the restoration and uncertainty map of `restore_uncertain`
    (the map written there as a heat map: 8-bit RGB, the image's size, format from the suffix); without it,
    the mean of `samples` restorations (seeds seed, seed + 1, ...) of a model without a known degradation."""
    if map_path is None and known is not None:
        raise ValueError("--samples without --uncertainty cannot be combined with a known degradation")
    if map_path is not None:
        uncertainty_method(restorer, known)  # ValueError now for a known degradation it cannot map

    def fn(image: np.ndarray, info: ImageInfo) -> tuple[np.ndarray, ImageInfo]:
        y = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
        if map_path is None:  # a deterministic model's samples are all the same: one is enough
            out = restorer.restore_samples(y, samples if restorer.stochastic else 1)[0]
        else:
            out, std, _ = restore_uncertain(restorer, y, samples, seed, known)
            write_image(map_path, heat_map(std[0, 0].numpy()), ImageInfo(mode="RGB"))
        return out[0].clamp_(0, 1).permute(1, 2, 0).contiguous().numpy(), info

    return fn


def ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of the flattened a (ties get the mean of their ranks), float64 (n,)."""
    _, inverse, counts = np.unique(np.ravel(a), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + ends - 1) / 2)[inverse.ravel()]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two same-sized arrays (flattened); nan when either is constant."""
    if np.size(a) != np.size(b):
        raise ValueError(f"sizes differ: {np.size(a)} and {np.size(b)}")
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


# --- maps for deterministic models -------------------------------------------------------------------------

PROBE_EPS = 1 / 255  # finite-difference step of the Jacobian probes (results agree from 1/255 to 5/255)
SMOOTH = 2.0  # Gaussian sigma (px) averaging the per-pixel Hutchinson estimate of the Jacobian's diagonal
DROP = 0.2  # observation bootstrap: each restoration sees a random (1 - DROP) of the observed pixels

Restore = Callable[[torch.Tensor], torch.Tensor]


def estimate_sigma(y: torch.Tensor) -> torch.Tensor:
    """Gaussian noise level (B,) of images y (B, C, H, W), in y's units: Donoho's robust estimate, the median
    absolute finest diagonal Haar coefficient / 0.6745, median over channels. Reads texture as noise on
    clean images (a few 1/255 on photos), accurate on noisy ones."""
    h, w = y.shape[-2] // 2 * 2, y.shape[-1] // 2 * 2
    if h == 0 or w == 0:
        raise ValueError(f"need at least 2 x 2 pixels, got {tuple(y.shape[-2:])}")
    y = y[..., :h, :w].float()
    hh = (y[..., ::2, ::2] - y[..., ::2, 1::2] - y[..., 1::2, ::2] + y[..., 1::2, 1::2]) / 2
    return (hh.abs().flatten(2).median(-1).values / 0.6745).median(1).values


def tweedie_std(
    restore: Restore,
    y: torch.Tensor,
    sigma: torch.Tensor,
    probes: int,
    gen: torch.Generator,
    smooth: float = SMOOTH,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior standard deviation of x given y = x + sigma n for an MMSE denoiser `restore` (Tweedie's
    second-order identity: Cov[x | y] = sigma^2 d E[x | y] / dy, so Var[x_i | y] = sigma^2 J_ii).

    J_ii is estimated from `probes` restorations of y + eps v, v Rademacher (Hutchinson: E[v * J v] = diag J),
    by finite differences, averaged over channels and over a Gaussian window of `smooth` px, clamped at 0.
    y (B, C, H, W), sigma (B,) in y's units -> (restore(y) (B, C', H, W), std (B, 1, H, W))."""
    if probes < 1:
        raise ValueError("probes must be >= 1")
    x = restore(y)
    diag = torch.zeros_like(x)
    for _ in range(probes):
        v = torch.randint(0, 2, y.shape, generator=gen).to(y) * 2 - 1
        diag += (restore(y + PROBE_EPS * v) - x) * v
    diag = (diag / (probes * PROBE_EPS)).mean(1, keepdim=True)
    if smooth > 0:
        diag = conv(diag, gaussian_kernel(smooth))
    std = sigma.to(diag).view(-1, 1, 1, 1) * diag.clamp(min=0).sqrt()
    return x, std


def bootstrap_std(
    restore: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    y: torch.Tensor,
    mask: torch.Tensor,
    samples: int,
    gen: torch.Generator,
    drop: float = DROP,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spread of an inpainting over resampled observations: `restore(y, mask)` on the given mask, and the
    per-pixel standard deviation of `samples` restorations that each see a random (1 - drop) of the observed
    pixels, set to 0 on the observed pixels (which the restoration keeps). y (B, C, H, W), mask (B, 1, H, W)
    with 1 = observed -> (restoration (B, C, H, W), std (B, 1, H, W))."""
    if samples < 1:
        raise ValueError("samples must be >= 1")
    x = restore(y, mask)
    keeps = (mask * (torch.rand(mask.shape, generator=gen) >= drop).to(mask) for _ in range(samples))
    std = mean_and_spread(restore(y * keep, keep) for keep in keeps)[1]
    return x, std * (1 - mask.to(std))


def noise_level(restorer: Restorer, y: torch.Tensor) -> torch.Tensor:
    """Noise level (B,) of y (B, C, H, W) in [0, 1] units: what an all-in-one model's detector reads, else
    `estimate_sigma`."""
    if not restorer.has_detector:
        return estimate_sigma(y)
    return torch.tensor([restorer.explain(y[i : i + 1])["sigma"] / 255 for i in range(y.shape[0])])


def uncertainty_method(restorer: Restorer, known: object | None = None) -> str:
    """Which map `restore_uncertain` makes: "bootstrap" with a known mask (`known`: a `sirestore.known.Known`),
    "tweedie" with a known noise level alone or a deterministic model, "samples" for a stochastic model;
    ValueError for other known degradations."""
    from sirestore.known import Known

    if known is None:
        return "samples" if restorer.stochastic else "tweedie"
    if not isinstance(known, Known):
        raise TypeError("known must be a sirestore.known.Known")
    if known.mask is not None and not known.pnp_iters:
        return "bootstrap"
    if known.sigma > 0 and known.kernel is None and known.scale == 1 and known.speckle is None and not known.pnp_iters:
        return "tweedie"
    raise ValueError("an uncertainty map with a known degradation needs a mask (and no plug-and-play) or --sigma alone")


def restorations(restorer: Restorer, samples: int, known: object | None = None) -> int:
    """How many restorations `restore_uncertain` runs: `samples`, plus the plain one that tweedie and bootstrap
    return as the output."""
    return samples + (uncertainty_method(restorer, known) != "samples")


def _float32(restorer: Restorer) -> Restorer:
    """The restorer with its network in float32 (a shallow copy when it runs bfloat16): Tweedie's finite
    differences, steps of 1/255, would drown in bfloat16 rounding."""
    return restorer if restorer.precision == "fp32" else restorer.replace(precision="fp32")


def restore_uncertain(
    restorer: Restorer, y: torch.Tensor, samples: int, seed: int = 0, known: object | None = None
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Restoration (B, C, H, W), not clamped, and uncertainty map (B, 1, H, W) of y (B, C, H, W) in [0, 1], and
    the method's name (`uncertainty_method`). Tweedie takes the noise level from `known.sigma` when given, else
    `noise_level`. `samples` restorations (plus one for tweedie and bootstrap); `seed` seeds the probes and the
    resampling."""
    from sirestore.known import restore_known

    if samples < 1:
        raise ValueError("samples must be >= 1")
    method = uncertainty_method(restorer, known)
    gen = torch.Generator().manual_seed(seed)
    if method == "samples":
        return (*restorer.restore_samples(y, samples), method)
    if method == "bootstrap":
        mask = known.mask.reshape(-1, 1, *known.mask.shape[-2:]).to(torch.float32)

        def run(obs: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
            return restore_known(restorer, obs, replace(known, mask=keep), seed)

        return (*bootstrap_std(run, y * mask, mask, samples, gen), method)
    restorer = _float32(restorer)
    if known is None:
        return (*tweedie_std(restorer.restore_tensor, y, noise_level(restorer, y), samples, gen), method)
    sigma = torch.full((y.shape[0],), known.sigma)
    return (*tweedie_std(lambda v: restore_known(restorer, v, known, seed), y, sigma, samples, gen), method)
