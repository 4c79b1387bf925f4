"""`clean`: no degradation at all (y = x), so that all-in-one training shows the model undamaged photos."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sirestore.degrade.base import Degradation, register
from sirestore.degrade.operators import Identity


@register
@dataclass
class Clean(Degradation):
    """`clean`: y = x. In a mixture its images carry no task label and noise level 0: the detector learns
    that nothing is wrong with them and the network that it should leave them as they are. No params."""

    name = "clean"

    def apply(self, x: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, dict]:
        return x, {}

    def operator(self, params: dict | list[dict]) -> Identity:
        """Nothing to invert: A = I."""
        return Identity()
