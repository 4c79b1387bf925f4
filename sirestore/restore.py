"""Image in -> pad / tile -> sampler -> image out: the `Restorer` of the Python API."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from functools import partial
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sirestore.checkpoint import load_weights
from sirestore.degrade.mixture import TASKS
from sirestore.model import Conditioned, FlowModel, LowPrecision
from sirestore.nn.taskenc import condition, forced
from sirestore.precision import resolve as resolve_precision
from sirestore.sampler import STEPS, Projection, sample
from sirestore.tiling import axis_weights, check_tile, parse_size, plan_tiles, restore_tiled, tile_starts

__all__ = ["Restorer", "axis_weights", "check_tile", "default_weights", "restore_float_image", "tile_starts"]


def default_weights() -> Path:
    """Path of the shipped weights."""
    return Path(str(resources.files("sirestore") / "weights" / "default.safetensors"))


def resolve_weights(weights: str | Path | None) -> Path:
    """The weights file: the shipped default for None; for a bare name such as "allinone" that is not a
    file here, the shipped `sirestore/weights/<name>.safetensors` when there is one; else the path itself."""
    if weights is None:
        return default_weights()
    path = Path(weights)
    shipped = default_weights().parent / f"{path.name}.safetensors"
    if not path.exists() and path.name == str(weights) and not path.suffix and shipped.is_file():
        return shipped
    return path


def mean_and_spread(outputs: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (B, C, H, W) and per-pixel standard deviation averaged over channels (B, 1, H, W) of a sequence of
    same-shaped restorations, float32; one in memory at a time (Welford, in float64)."""
    mean = m2 = None
    k = 0
    for k, x in enumerate(outputs, 1):
        x = x.double()
        if mean is None:
            mean, m2 = torch.zeros_like(x), torch.zeros_like(x)
        delta = x - mean
        mean += delta / k
        m2 += delta * (x - mean)
    if mean is None:
        raise ValueError("need at least one restoration")
    return mean.float(), (m2 / k).sqrt().mean(1, keepdim=True).float()


class Restorer:
    """Restore images with a trained model.

    Accepts numpy arrays (H x W [x C], uint8 / uint16 / float in [0, 1]), PIL images and
    torch tensors ((C, H, W) or (B, C, H, W) float in [0, 1]) and returns the same kind.
    Gray images run as three equal channels; an alpha channel is passed through unchanged.
    `tile` fixes the tile size; `max_memory` (bytes, or a size such as "1GB") instead chooses
    tiles from an estimate of the memory needed, only when the whole image does not fit.
    An all-in-one model (with a degradation detector) is conditioned on what it detects in each
    image (once per image, on a grid of tiles: `detector_tiles`), or on `task`
    (a name of degrade.mixture.TASKS) when given. `precision` ("fp32", "bf16" or "auto", see
    `sirestore.precision`) is the network's arithmetic: float32 by default, so that results do not depend on
    the CPU; the command line's default is "auto". The sampler and data consistency stay float32.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        steps: int = 1,
        sampler: str = "euler",
        seed: int = 0,
        tile: int | None = None,
        overlap: int = 32,
        device: str | torch.device = "cpu",
        model: FlowModel | None = None,
        max_memory: int | str | None = None,
        task: str | None = None,
        noise_scale: float = 1.0,
        precision: str = "fp32",
    ) -> None:
        if steps < 1:
            raise ValueError("steps must be >= 1")
        if sampler not in STEPS:
            raise ValueError(f"unknown sampler {sampler!r}; choose from {', '.join(STEPS)}")
        check_tile(tile, overlap)
        if tile is not None and max_memory is not None:
            raise ValueError("give a tile size or a memory limit, not both")
        self.max_memory = None if max_memory is None else parse_size(max_memory)
        self.device = torch.device(device)
        self.weights = None if model is not None else resolve_weights(weights)
        self.model = (model if model is not None else load_weights(self.weights)).to(self.device).eval()
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.steps, self.sampler, self.seed = steps, sampler, seed
        if task is not None and task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
        if task is not None and not self.has_detector:
            raise ValueError("--task needs an all-in-one model (with a degradation detector)")
        self.task = task
        if noise_scale < 0:
            raise ValueError("noise_scale must be >= 0")
        self.noise_scale = noise_scale  # multiplies the path noise gamma(t) in the sde sampler
        self.tile, self.overlap = tile, overlap
        self.precision = resolve_precision(precision, self.device)  # "fp32" or "bf16": the network's arithmetic
        self.mask: torch.Tensor | None = None  # (B or 1, 1, H, W), 1 = observed: a known inpainting mask that a
        # network with a mask input is given (known mode sets it with `replace`); whole images only

    def replace(self, **changes: object) -> Restorer:
        """A shallow copy sharing the network, with some settings changed, e.g. `replace(precision="fp32")`. An
        unknown name raises AttributeError; the values are not validated again: pass resolved ones."""
        unknown = [name for name in changes if name not in vars(self)]
        if unknown:
            raise AttributeError(f"a Restorer has no setting {unknown[0]!r}")
        new = copy.copy(self)
        vars(new).update(changes)
        return new

    def plan(self, shape: tuple[int, ...]) -> tuple[int, int] | None:
        """Tile (th, tw) used for a (B, C, H, W) image, or None when it runs whole."""
        h, w = shape[-2:]
        if self.tile:
            return (min(self.tile, h), min(self.tile, w)) if max(h, w) > self.tile else None
        if self.max_memory is None:
            return None
        if self.model is None:
            raise ValueError("a memory limit needs the torch backend; give a tile size instead")
        return plan_tiles(self.model.cfg, tuple(shape), self.max_memory, self.overlap, self.sampler)

    @torch.no_grad()
    def restore_tensor(self, y: torch.Tensor, dc: Projection | None = None) -> torch.Tensor:
        """Restore a batch y (B, C, H, W), C = 1 or 3, float (not necessarily in [0, 1])."""
        return self._restore(y, dc).contiguous()

    def _restore(self, y: torch.Tensor, dc: Projection | None = None) -> torch.Tensor:
        """restore_tensor without the final copy to contiguous memory: (B, C, H, W), any layout."""
        if y.dim() != 4 or y.shape[1] not in (1, 3):
            raise ValueError(f"expected (B, 1 or 3, H, W), got {tuple(y.shape)}")
        tile = self.plan(y.shape)
        if tile is not None and self.mask is not None:
            raise ValueError("a known mask is given to the network on whole images only: leave out the tiles")
        vec = self.condition(y)  # once per image, for every tile and step
        run = self._run if vec is None else partial(self._run, task=vec)
        if tile is not None:
            b, _, h, w = y.shape
            noise = None  # a noise source: the untiled path's draw, cropped per tile
            if self.model is not None and self.model.cfg.source_is_noise:
                noise = torch.randn((b, 3, h, w), generator=torch.Generator().manual_seed(self.seed))
            y = y.to(self.device) if y.dtype in (torch.float32, torch.float64) else y.to(self.device, torch.float32)
            return restore_tiled(lambda t, n: run(t, dc, n), y, tile, self.overlap, noise).to(y.device)
        gray = y.shape[1] == 1
        y3 = y.expand(-1, 3, -1, -1) if gray else y
        y3 = y3.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last)
        out = run(y3, dc)
        out = out.mean(1, keepdim=True) if gray else out
        return out.to(y.device)

    def _run(
        self,
        y: torch.Tensor,
        dc: Projection | None,
        noise: torch.Tensor | None = None,
        task: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The sampler on y (B, 3, H, W); `noise` (B, 3, H, W) replaces the seeded draw of a noise source;
        `task` (1 or B, len(TASKS) + 1) is the conditioning vector of an all-in-one model."""
        gen = torch.Generator().manual_seed(self.seed)
        step = STEPS[self.sampler]
        mask = self.mask if self.mask is not None and self.model.cfg.net.mask_channels else None
        if mask is not None:
            mask = mask.to(y.device, y.dtype)
        model = self.model if task is None and mask is None else Conditioned(self.model, task, mask)
        model = model if self.precision == "fp32" else LowPrecision(model, self.precision)
        return sample(
            model, y, steps=self.steps, step=step, gen=gen, dc=dc, x_start=noise, noise_scale=self.noise_scale
        )

    @property
    def has_detector(self) -> bool:
        """Whether the model is an all-in-one model with a degradation detector (`task`, `explain`)."""
        return self.model is not None and self.model.detector is not None

    @property
    def stochastic(self) -> bool:
        """Whether restorations depend on the seed: a noise source, or the sde sampler on a noisy path."""
        if self.model is None:
            return False
        cfg = self.model.cfg
        return cfg.source_is_noise or (self.sampler == "sde" and cfg.noise * self.noise_scale > 0)

    @torch.no_grad()
    def restore_samples(self, y: torch.Tensor, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`samples` restorations of y (B, C, H, W) with seeds seed, seed + 1, ...: their mean (B, C, H, W)
        and the per-pixel standard deviation over the samples, averaged over channels (B, 1, H, W)."""
        if samples < 1:
            raise ValueError("samples must be >= 1")
        seed = self.seed

        def draws():
            for k in range(samples):
                self.seed = seed + k
                yield self.restore_tensor(y)

        try:
            return mean_and_spread(draws())
        finally:
            self.seed = seed

    @torch.no_grad()
    def _detect(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The detector on tiles of y (B, C, H, W), C = 1 or 3 (`detector_tiles`): probabilities (B, len(TASKS)),
        noise level (B,) on the 0..255 scale."""
        y = y.to(self.device, torch.float32)
        return self.model.detect_tiled(y.expand(-1, 3, -1, -1) if y.shape[1] == 1 else y)

    def condition(self, y: torch.Tensor) -> torch.Tensor | None:
        """The conditioning vector (B, len(TASKS) + 1) of images y (B, C, H, W), C = 1 or 3: detected on
        the centre crop, or forced by `task`; None for models without a detector."""
        if not self.has_detector:
            return None
        probs, sigma = self._detect(y)
        if self.task is not None:
            return forced(TASKS.index(self.task), len(TASKS), sigma)
        return condition(probs, sigma)

    def explain(self, y: torch.Tensor) -> dict[str, float]:
        """What the detector sees in one image y (1, C, H, W): {task: probability, ..., "sigma": noise
        level on the 0..255 scale}. ValueError for models without a detector."""
        if not self.has_detector:
            raise ValueError("--explain needs an all-in-one model (with a degradation detector)")
        probs, sigma = self._detect(y)
        return {**{t: float(p) for t, p in zip(TASKS, probs[0])}, "sigma": float(sigma[0])}

    def __call__(self, image: np.ndarray | Image.Image | torch.Tensor):
        """Restore one image given as numpy, PIL or torch; returns the same type and layout."""
        if isinstance(image, torch.Tensor):
            x = image if image.dim() == 4 else image[None]
            out = self.restore_tensor(x.float()).clamp(0, 1)
            return out if image.dim() == 4 else out[0]
        if isinstance(image, Image.Image):
            return _restore_pil(self, image)
        if isinstance(image, np.ndarray):
            return _restore_numpy(self, image)
        raise TypeError(f"cannot restore an object of type {type(image).__name__}")


def restore_float_image(restorer: Restorer, image: np.ndarray) -> np.ndarray:
    """H x W x C float32 (C = 1 or 3) -> the restoration, H x W x C float32 clamped to [0, 1].

    Memory-lean: the input is viewed (not copied) as a channels-last tensor and, in tiles,
    the output is the only other full-size buffer."""
    x = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    out = restorer._restore(x)[0].clamp_(0, 1).permute(1, 2, 0)
    return out.contiguous().numpy()


def _restore_numpy(restorer: Restorer, image: np.ndarray) -> np.ndarray:
    """H x W or H x W x C (C in 1, 2, 3, 4: alpha kept) numpy image, any of uint8/uint16/float."""
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4)):
        raise ValueError(f"expected an H x W or H x W x C image with C <= 4, got shape {image.shape}")
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(image.dtype, 1.0)
    arr = image.astype(np.float32) / scale
    planes = arr[..., None] if arr.ndim == 2 else arr
    color = planes[..., :3] if planes.shape[2] >= 3 else planes[..., :1]
    alpha = planes[..., 3:] if planes.shape[2] == 4 else planes[..., 1:] if planes.shape[2] == 2 else None
    x = torch.from_numpy(np.ascontiguousarray(color.transpose(2, 0, 1)))[None]
    out = restorer.restore_tensor(x).clamp(0, 1)[0].numpy().transpose(1, 2, 0)
    dtype = image.dtype if image.dtype.kind == "f" or scale != 1.0 else np.dtype(np.float32)
    out = out.astype(dtype) if scale == 1.0 else np.floor(out * scale + 0.5).astype(dtype)
    if alpha is not None:  # the input's own values, bit for bit, when the dtype is kept
        src = image.reshape(planes.shape)[..., color.shape[2] :] if dtype == image.dtype else alpha
        out = np.concatenate([out, src.astype(dtype, copy=False)], axis=2)
    return out.reshape(image.shape)


def _restore_pil(restorer: Restorer, image: Image.Image) -> Image.Image:
    """PIL image in modes L, LA, RGB, RGBA (others converted to RGB/RGBA first)."""
    mode = image.mode
    if mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in mode or "transparency" in image.info else "RGB")
    out = _restore_numpy(restorer, np.asarray(image))
    return Image.fromarray(out, mode=image.mode)
