"""Weights as safetensors with their model config, and atomic training checkpoints."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sirestore.model import FlowModel, ModelConfig

FORMAT = "sirestore-weights-1"


class WeightsError(ValueError):
    """A weights file that is missing, unreadable or does not match the code."""


def atomic_write(path: str | Path, write) -> None:
    """Call write(tmp_path), then rename the temporary file onto `path` (same folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_weights(model: FlowModel, path: str | Path, extra: dict | None = None) -> None:
    """Write the model's parameters and config (JSON in the safetensors metadata)."""
    meta = {"format": FORMAT, "config": json.dumps(model.cfg.to_dict()), "extra": json.dumps(extra or {})}
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def read_metadata(path: str | Path) -> dict:
    """The metadata header of a safetensors file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def load_weights(path: str | Path) -> FlowModel:
    """Rebuild a FlowModel from a safetensors file written by save_weights."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        meta = read_metadata(path)
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"{path}: not a readable safetensors file ({err})") from None
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{path}: not sirestore weights (format {meta.get('format')!r})")
    try:
        model = FlowModel(ModelConfig.from_dict(json.loads(meta["config"])))
        model.load_state_dict(tensors, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0]
        raise WeightsError(f"{path}: weights do not match this version of sirestore ({first})") from None
    return model.eval()


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Atomically write a training checkpoint (tensors, numbers, strings only)."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path) -> dict:
    """Read a training checkpoint without unpickling arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)
