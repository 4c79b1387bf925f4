"""Reduced precision on the CPU: bfloat16 autocast where the processor computes it natively (`model.LowPrecision`
runs a flow model so).

Convolutions and matrix products then run in bfloat16 (8-bit mantissa) with float32 accumulation,
about 2-3x faster for our network on a CPU with AVX512-BF16 or AMX; elsewhere bfloat16 is emulated
and slower, so "auto" keeps float32 there.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when used: the command line reads PRECISIONS before torch loads
    import torch

PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles)."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve(precision: str, device: torch.device) -> str:
    """Return "fp32" or "bf16" for `precision` in PRECISIONS on `device`: "auto" is bf16 on a CPU with native
    bfloat16, fp32 elsewhere (on CUDA too: the shipped figures are float32 ones)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if device.type == "cpu" and native_bf16() else "fp32"
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context to run a network in: bfloat16 autocast for "bf16", nothing for "fp32"."""
    if precision == "bf16":
        import torch

        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
