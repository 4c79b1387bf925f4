"""Weighted mixtures of degradation specs, for all-in-one training, with task labels.

Each image of a batch gets its own spec, drawn by weight from `choices`, and its own random
parameters; the result carries, per image, the multi-hot task label over `TASKS`, the noise
level (what `restore --explain` reports) and the inpainting mask when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sirestore.degrade.base import Degradation, Params, parse_spec
from sirestore.tasks import TASK_OF, TASKS

__all__ = ["TASKS", "TASK_OF", "Batch", "Mixture", "inpaint_mask", "noise_level", "task_labels"]


def task_labels(params: Params) -> torch.Tensor:
    """Multi-hot (len(TASKS),) float label of one image's degradation parameters."""
    label = torch.zeros(len(TASKS))
    for p in params:
        task = TASK_OF[p["type"]]
        if task is not None:
            label[TASKS.index(task)] = 1.0
    return label


def noise_level(params: Params, index: int = 0) -> float:
    """Standard deviation (0..255 scale) of the additive Gaussian noise of image `index`; 0 if none."""
    sigma = 0.0
    for p in params:
        if p["type"] in ("awgn", "poisson_gaussian") and "sigma" in p:
            s = p["sigma"]
            s = float(s.reshape(-1)[index] if torch.is_tensor(s) and s.numel() > 1 else s)
            sigma = (sigma**2 + s**2) ** 0.5
    return sigma


def inpaint_mask(params: Params, x: torch.Tensor) -> torch.Tensor:
    """The inpainting mask of degradation parameters `params` applied to x (B, C, H, W): (B, 1, H, W),
    1 = known pixel, 0 = hole; all ones when nothing was inpainted."""
    known = [p["mask"] for p in params if p["type"] == "inpaint"]
    ones = torch.ones_like(x[:, :1])
    return ones if not known else (ones * known[0].to(x.device, x.dtype))


@dataclass
class Batch:
    """What a mixture returns for a batch of B clean images."""

    y: torch.Tensor  # (B, C, H, W) observations
    labels: torch.Tensor  # (B, len(TASKS)) multi-hot task labels
    sigma: torch.Tensor  # (B,) additive noise level on the 0..255 scale (0 without noise)
    mask: torch.Tensor  # (B, 1, H, W) 1 = known pixel, 0 = hole (all ones without inpainting)
    params: list[Params] = field(default_factory=list)  # per image, the degradation parameters


class Mixture:
    """Draw, per image, one spec from `choices` (spec -> weight > 0) and apply it."""

    def __init__(self, choices: dict[str, float]) -> None:
        if not choices or any(w <= 0 for w in choices.values()):
            raise ValueError("a mixture needs at least one spec, every weight > 0")
        self.specs = list(choices)
        self.parts: list[Degradation] = [parse_spec(s) for s in self.specs]
        w = torch.tensor([float(choices[s]) for s in self.specs], dtype=torch.float64)
        self.probs = w / w.sum()

    def __call__(self, x: torch.Tensor, gen: torch.Generator | None = None) -> Batch:
        """Degrade x (B, C, H, W); one draw of the spec index per image, then its parameters."""
        picks = torch.multinomial(self.probs, x.shape[0], replacement=True, generator=gen).tolist()
        ys, labels, sigmas, masks, params = [], [], [], [], []
        for i, k in enumerate(picks):
            y, p = self.parts[k](x[i : i + 1], gen)
            ys.append(y)
            labels.append(task_labels(p))
            sigmas.append(noise_level(p))
            masks.append(inpaint_mask(p, x[i : i + 1]))
            params.append(p)
        return Batch(torch.cat(ys), torch.stack(labels), torch.tensor(sigmas, dtype=x.dtype), torch.cat(masks), params)
