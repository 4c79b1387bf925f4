"""Known-operator mode: restore y = A x (+ noise) when A is known (a mask, a blur kernel, a scale) or the
noise is multiplicative speckle of known looks.

`Known` says what is known; `restore_known(restorer, y, known)` builds the operator, starts the sampler from a
consistent guess and applies data consistency to every x_1 estimate (`sirestore.consistency`), or runs
plug-and-play HQS (`sirestore.pnp`). Noiseless observations end with one more projection, so the observed
pixels of an inpainting are exactly the input's. With a boundary-aware ("valid") operator the image is
restored on a grid extended by the kernel's reach (the sampler starts from y mirrored outward) and cropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from sirestore.batch import ImageFn
from sirestore.consistency import LogSpeckle, proximal, speckle_guidance
from sirestore.degrade.boundary import CroppedOperator, pad_reflect, valid_blur, valid_downsample
from sirestore.degrade.inpaint import fill_holes, telea_fill
from sirestore.degrade.kernels import bicubic_kernel
from sirestore.degrade.operators import BlurOperator, DownsampleOperator, Identity, LinearOperator, MaskOperator
from sirestore.degrade.resize import ResizeOperator
from sirestore.imageio import ImageInfo, read_image
from sirestore.pnp import pnp_hqs
from sirestore.restore import Restorer

DOWNSAMPLE_KERNELS: dict[str, Callable[[int], torch.Tensor | None]] = {
    "bicubic": bicubic_kernel,  # antialiased bicubic (MATLAB imresize, the `sr` degradation)
    "average": lambda scale: None,  # the mean of each scale x scale block
}
BOUNDARIES = ("valid", "circular")
BOX_ITERS = 100  # at most this many alternating projections between {A x = y} and [0, 1] (noiseless case)
BOX_TOL = 0.1 / 255  # until the clamped result reproduces y to this RMS


@dataclass(frozen=True)
class Known:
    """What is known about an observation y. One operator: a mask, or a kernel and/or a scale."""

    mask: torch.Tensor | None = None  # (H, W) or (B, 1, H, W): 1 = observed pixel, 0 = hole
    kernel: torch.Tensor | None = None  # (kh, kw) blur kernel summing to 1
    scale: int = 1  # y is this many times smaller than x (per side)
    downsample: str = "bicubic"  # without a kernel: "bicubic" or "average" (see DOWNSAMPLE_KERNELS)
    boundary: str = "valid"  # "valid": the frame sees blur from outside it (bicubic downsampling: the frame is
    # resized as the `sr` degradation does it, see ResizeOperator); "circular": periodic images
    sigma: float = 0.0  # Gaussian noise level of y, [0, 1] units; > 0 uses the proximal step
    rho: float = 10 / 255  # expected error of the network's estimate (proximal step, speckle step)
    speckle: float | None = None  # looks L of multiplicative gamma speckle (likelihood guidance; no operator)
    pnp_iters: int = 0  # > 0: plug-and-play HQS with this many iterations instead of the sampler
    refine_kernel: bool = False  # PnP: re-estimate the kernel (the kernel-error variant)

    def __post_init__(self) -> None:
        if self.mask is not None and (self.kernel is not None or self.scale != 1):
            raise ValueError("a mask cannot be combined with a kernel or a scale")
        if self.speckle is not None and (self.mask is not None or self.kernel is not None or self.scale != 1):
            raise ValueError("speckle guidance has no operator: leave out the mask, kernel and scale")
        if self.speckle is not None and (self.speckle <= 0 or self.sigma or self.pnp_iters):
            raise ValueError("speckle needs looks > 0 and no noise level or plug-and-play iterations")
        if not isinstance(self.scale, int) or self.scale < 1:
            raise ValueError(f"scale must be a whole number >= 1, got {self.scale}")
        if self.downsample not in DOWNSAMPLE_KERNELS or self.boundary not in BOUNDARIES:
            raise ValueError(f"downsample must be one of {', '.join(DOWNSAMPLE_KERNELS)}, boundary one of {BOUNDARIES}")
        if self.sigma < 0 or self.rho <= 0 or self.pnp_iters < 0:
            raise ValueError("need sigma >= 0, rho > 0 and pnp_iters >= 0")
        if self.refine_kernel and (self.kernel is None or not self.pnp_iters):
            raise ValueError("kernel refinement needs plug-and-play iterations and a kernel")
        if self.pnp_iters and self.mask is None and self.kernel is None and self.scale == 1:
            raise ValueError("plug-and-play needs an operator: a mask, a kernel or a scale")

    def operator(self, kernel: torch.Tensor | None = None) -> LinearOperator:
        """The operator, with `kernel` in place of the known one when given (kernel refinement)."""
        kernel = self.kernel if kernel is None else kernel
        if self.mask is not None:
            return MaskOperator(self.mask)
        valid = self.boundary == "valid"
        if self.scale > 1:
            if kernel is None and self.downsample == "bicubic" and valid:
                return ResizeOperator(self.scale)
            k = DOWNSAMPLE_KERNELS[self.downsample](self.scale) if kernel is None else kernel
            return valid_downsample(self.scale, k) if valid else DownsampleOperator(self.scale, k)
        if kernel is not None:
            return valid_blur(kernel) if valid else BlurOperator(kernel)
        return Identity()


def load_mask(path: str | Path, holes: str = "black") -> torch.Tensor:
    """A mask image (upright, as images are read) -> (H, W) float, 1 = observed. `holes` = "black" (pixels
    darker than mid-gray are holes; white = known) or "white" (the LaMa convention, as the `inpaint` spec)."""
    if holes not in ("black", "white"):
        raise ValueError(f"holes must be 'black' or 'white', got {holes!r}")
    image, _ = read_image(path)
    bright = torch.from_numpy(image.mean(axis=2) >= 0.5)
    return (bright if holes == "black" else ~bright).float()


def initial_guess(op: LinearOperator, y: torch.Tensor) -> torch.Tensor:
    """A guess on the operator's x grid: holes filled (mask; Telea), y upsampled (bicubic), mirrored outward
    (valid)."""
    if isinstance(op, MaskOperator):
        return telea_fill(y, op.mask) if y.shape[1] in (1, 3) else fill_holes(y, op.mask)
    x = y if op.scale == 1 else F.interpolate(y, scale_factor=op.scale, mode="bicubic", align_corners=False)
    return pad_reflect(x, op.x_margin()) if isinstance(op, CroppedOperator) else x


def _check_mask(mask: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if tuple(mask.shape[-2:]) != tuple(y.shape[-2:]):
        mh, mw = mask.shape[-2:]
        raise ValueError(f"the mask is {mw}x{mh} pixels but the image is {y.shape[-1]}x{y.shape[-2]}")
    return mask if mask.dim() == 4 else mask[None, None]


@torch.no_grad()
def restore_known(restorer: Restorer, y: torch.Tensor, known: Known, seed: int = 0, tell: bool = True) -> torch.Tensor:
    """Restore y (B, C, H, W), C = 1 or 3, in [0, 1] knowing `known`: (B, C, scale H, scale W), not clamped.

    The sampler's settings (steps, sampler, its seed) come from the restorer, `seed` seeds the plug-and-play
    re-noising; tiling does not apply. An all-in-one model left to detect is told the operator's task
    (`operator_task`) unless `tell` is False."""
    if restorer.tile is not None or restorer.max_memory is not None:
        raise ValueError("known-operator restoration runs on whole images: leave out the tile size / memory limit")
    y = y.to(restorer.device, torch.float32)
    if known.speckle is not None:  # denoise in the log domain; guide every decoded x_1 estimate
        log, guide = LogSpeckle(known.speckle), speckle_guidance(y, known.speckle, known.rho)
        return log.decode(restorer.restore_tensor(log.observe(y), lambda v: log.encode(guide(log.decode(v)))))
    if known.mask is not None:
        known = replace(known, mask=_check_mask(known.mask, y))
    op = known.operator()
    guess = initial_guess(op, y)
    if known.pnp_iters:
        gen = torch.Generator().manual_seed(seed)
        run = pnp_hqs(
            restorer.restore_tensor,
            known.operator,
            y,
            guess,
            kernel=known.kernel,
            iters=known.pnp_iters,
            sigma=known.sigma,
            gen=gen,
            refine_kernel=known.refine_kernel,
        )
        x = run.x
    else:
        dc = proximal(op, y, known.sigma, known.rho)
        x = _masked(_told(restorer, known) if tell else restorer, known).restore_tensor(dc(guess), dc)
    if known.sigma == 0:
        x = consistent_in_range(op, y, x)
    return op.crop_x(x) if isinstance(op, CroppedOperator) else x


def operator_task(known: Known) -> str | None:
    """The all-in-one task that `known`'s operator names: "inpaint" for a mask, "low_resolution" for a scale,
    "blur" for a kernel alone; None without an operator."""
    if known.mask is not None:
        return "inpaint"
    if known.scale > 1:
        return "low_resolution"
    return "blur" if known.kernel is not None else None


def _told(restorer: Restorer, known: Known) -> Restorer:
    """`restorer` conditioned on the task of `known`'s operator when it is an all-in-one model left to detect:
    the operator says what the degradation is (a detector reads a hole-filled image as barely degraded, and the
    model then harms the fill: -0.55 dB on the first 8 CBSD68 images with 20-40 % holes; kernels and scales:
    `scripts/eval_known_task.py`, figures in README); else `restorer` itself."""
    task = operator_task(known)
    if task is None or restorer.task is not None or not restorer.has_detector:
        return restorer
    return restorer.replace(task=task)


def _masked(restorer: Restorer, known: Known) -> Restorer:
    """`restorer` giving `known`'s mask (B or 1, 1, H, W) to its network when the network has a mask input (it
    then knows which pixels to fill instead of guessing from the filled image); else `restorer` itself."""
    model = restorer.model
    if known.mask is None or model is None or not model.cfg.net.mask_channels:
        return restorer
    return restorer.replace(mask=known.mask)


def consistent_in_range(
    op: LinearOperator, y: torch.Tensor, x: torch.Tensor, iters: int = BOX_ITERS, tol: float = BOX_TOL
) -> torch.Tensor:
    """Project x onto {A x = y}, alternating with the clamp to [0, 1] (POCS: both sets are convex and the true
    image lies in both) until the clamped image is consistent to `tol` RMS or after `iters` rounds, so the
    saved (clamped) image stays consistent: (B, C, H', W'). A mask needs one projection (it keeps x in
    range when y is)."""
    dc = proximal(op, y, 0, 1.0)
    x = dc(x)
    if isinstance(op, MaskOperator):
        return x
    for _ in range(iters):
        inside = x.clamp(0, 1)
        if float((op.A(inside) - y.to(x.device, x.dtype)).pow(2).mean().sqrt()) <= tol:
            break
        x = dc(inside)
    return x


def known_image_fn(restorer: Restorer, known: Known, seed: int = 0) -> ImageFn:
    """For `batch.restore_files`: H x W x C float32 image and its info -> the restoration and the output's info
    (with a scale, alpha is resized with bicubic and the dpi multiplied)."""

    def fn(image: np.ndarray, info: ImageInfo) -> tuple[np.ndarray, ImageInfo]:
        y = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
        out = restore_known(restorer, y, known, seed)[0].clamp_(0, 1).permute(1, 2, 0).contiguous().cpu().numpy()
        if known.scale > 1:
            h, w = out.shape[:2]
            alpha = (
                None
                if info.alpha is None
                else np.clip(cv2.resize(info.alpha, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)
            )
            dpi = None if info.dpi is None else (info.dpi[0] * known.scale, info.dpi[1] * known.scale)
            info = replace(info, alpha=alpha, dpi=dpi)
        return out, info

    return fn
