"""Degradation protocol, composition and the text spec parser.

A degradation maps clean images x (B, C, H, W) in [0, 1] to observations y of the same
shape, drawing its random parameters from an explicit torch.Generator, and returns them:

    y, params = Degradation(...)(x, gen)

`params` is a list with one dict per applied degradation, each with at least "type".
Text specs name degradations as `NAME[:key=value,...]` joined by `+`, for example
`motion_blur:kernel=levin3+awgn:sigma=2.55`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch

Params = list[dict]


class Degradation:
    """Base class: subclasses are dataclasses implementing `apply`."""

    name: str = ""

    def apply(self, x: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, dict]:
        """Degrade x (B, C, H, W); return y and this degradation's parameters."""
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, gen: torch.Generator | None = None) -> tuple[torch.Tensor, Params]:
        if x.dim() != 4:
            raise ValueError(f"expected a (B, C, H, W) image tensor, got shape {tuple(x.shape)}")
        y, params = self.apply(x, gen)
        return y, [{"type": self.name, **params}]

    def __add__(self, other: Degradation) -> Compose:
        return Compose([*_parts(self), *_parts(other)])


@dataclass
class Compose(Degradation):
    """Apply degradations in order (what `a + b` builds)."""

    parts: list[Degradation]
    name = "compose"

    def __call__(self, x: torch.Tensor, gen: torch.Generator | None = None) -> tuple[torch.Tensor, Params]:
        params: Params = []
        for part in self.parts:
            x, p = part(x, gen)
            params += p
        return x, params


def _parts(d: Degradation) -> list[Degradation]:
    return list(d.parts) if isinstance(d, Compose) else [d]


def uniform(lo: float, hi: float, batch: int, gen: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Per-image levels drawn uniformly in [lo, hi]: (B,). Equal bounds give a constant."""
    if lo == hi:
        return torch.full((batch,), float(lo), device=device)
    return lo + (hi - lo) * torch.rand(batch, generator=gen).to(device)


def randn_like(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise of x's shape drawn from gen (on the CPU, then moved)."""
    return torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)


# name -> degradation class; filled by the modules that define them (see degrade/__init__.py)
REGISTRY: dict[str, type[Degradation]] = {}


def register(cls: type[Degradation]) -> type[Degradation]:
    """Class decorator adding a degradation to the spec vocabulary under its `name`."""
    REGISTRY[cls.name] = cls
    return cls


class SpecError(ValueError):
    """A degradation spec that cannot be parsed."""


def _convert(value: str, kind: Callable) -> object:
    if kind is bool:
        if value.lower() in ("1", "true", "yes"):
            return True
        if value.lower() in ("0", "false", "no"):
            return False
        raise ValueError(value)
    return kind(value)


def parse_one(text: str) -> Degradation:
    """`NAME[:key=value,...]` -> one Degradation."""
    name, _, args = text.strip().partition(":")
    name = name.strip()
    if name not in REGISTRY:
        raise SpecError(f"unknown degradation {name!r}; known: {', '.join(sorted(REGISTRY))}")
    cls = REGISTRY[name]
    types = {f.name: f.type for f in fields(cls) if f.init}
    kwargs: dict[str, object] = {}
    for item in filter(None, (a.strip() for a in args.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in types:
            raise SpecError(f"{name}: bad argument {item!r}; arguments: {', '.join(types) or 'none'}")
        kind = {"float": float, "int": int, "bool": bool, "str": str}.get(str(types[key]).split(" ")[0], str)
        try:
            kwargs[key] = _convert(value.strip(), kind)
        except ValueError:
            raise SpecError(f"{name}: {key}={value!r} is not a valid {kind.__name__}") from None
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, OSError) as err:  # OSError: a kernel or mask file that cannot be read
        raise SpecError(f"{name}: {err}") from None


def parse_spec(spec: str) -> Degradation:
    """`a[:k=v,...]+b[:...]` -> a Degradation (a Compose for more than one part)."""
    if not spec or not spec.strip():
        raise SpecError("empty degradation spec")
    parts = [parse_one(p) for p in spec.split("+")]
    return parts[0] if len(parts) == 1 else Compose(parts)
