"""Weights as safetensors with their model config, and verified, crash-safe training checkpoints.

Nothing here unpickles arbitrary objects: weights are safetensors, checkpoints are read with
`torch.load(..., weights_only=True)`. A weights file can be checked against a sha256 (given, or
listed in a `SHA256SUMS` file beside it). A checkpoint is written atomically with a sha256
sidecar (`last.pt.sha256`, in `sha256sum -c` format); the one it replaces is kept as `prev.pt`,
so a crash at any moment leaves at least one good checkpoint to resume from.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sirestore.fsutil import first_line, one_line, shown, temp_path
from sirestore.model import FlowModel, ModelConfig

FORMAT = "sirestore-weights-1"


class WeightsError(ValueError):
    """A weights file that is missing, unreadable, corrupt or does not match the code."""


class CheckpointError(ValueError):
    """No usable training checkpoint to resume from (the message is one line)."""


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort; not every OS can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write) -> None:
    """Call write(tmp_path), fsync it, then rename the temporary file onto `path` (same folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        write(str(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


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
        raise WeightsError(f"{path}: weights do not match this version of sirestore ({first_line(err)})") from None
    return model.eval()


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_sha256sums(path: str | Path) -> dict[str, str]:
    """file name -> lower-case hex sha256 from a `sha256sum` style list; {} when there is none."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return {}
    sums = {}
    for line in text.splitlines():
        digest, _, name = line.strip().partition(" ")
        if len(digest) == 64 and name.strip():
            sums[name.strip().lstrip("*")] = digest.lower()
    return sums


def listed_sha256(path: str | Path) -> str | None:
    """The sha256 that a SHA256SUMS file beside `path` lists for it, if any."""
    path = Path(path)
    return read_sha256sums(path.parent / "SHA256SUMS").get(path.name)


def verify_sha256(path: str | Path, expected: str) -> None:
    """Raise WeightsError (one line) unless the file's sha256 is `expected`."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{shown(path)}: weights file not found")
    actual = sha256(path)
    if actual != expected.lower():
        raise WeightsError(f"{shown(path)}: sha256 is {actual}, expected {expected.lower()} (corrupt or wrong file)")


def sidecar(path: str | Path) -> Path:
    """The sha256 sidecar of a checkpoint: `<path>.sha256`."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _write_sidecar(path: Path, digest: str) -> None:
    atomic_write_bytes(sidecar(path), f"{digest}  {path.name}\n".encode())


def checkpoint_problem(path: str | Path) -> tuple[str | None, str | None]:
    """(problem or None, sha256 of the file): the file against its sidecar, when it has one."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        return ("missing" if isinstance(err, FileNotFoundError) else f"unreadable ({err.strerror or err})"), None
    digest = hashlib.sha256(data).hexdigest()
    expected = read_sha256sums(sidecar(path)).get(path.name)
    if sidecar(path).exists() and expected != digest:
        return f"sha256 does not match {sidecar(path).name} (corrupt or truncated)", digest
    return None, digest


def save_checkpoint(state: dict, path: str | Path, previous: str | Path | None = None) -> None:
    """Write a training checkpoint (tensors, numbers, strings only) atomically, with a sha256 sidecar.

    With `previous`, an existing good `path` is first moved there (sidecar first), so that a crash
    at any point leaves `path` or `previous` good. Without it, a crash between the two renames
    leaves a checkpoint that fails verification.
    """
    path = Path(path)
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    if previous is not None and path.exists():
        problem, old_digest = checkpoint_problem(path)
        if problem is None and old_digest is not None:
            _write_sidecar(Path(previous), old_digest)
            os.replace(path, previous)
    _write_sidecar(path, hashlib.sha256(data).hexdigest())
    atomic_write_bytes(path, data)


def load_checkpoint(path: str | Path) -> dict:
    """Read a training checkpoint without unpickling arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)


def _read_checked(path: Path) -> tuple[dict | None, str | None]:
    """(state, None) for a good checkpoint, else (None, problem)."""
    problem, _ = checkpoint_problem(path)
    if problem:
        return None, problem
    try:
        state = load_checkpoint(path)
    except Exception as err:  # noqa: BLE001 - any failure to decode an untrusted file makes it unusable
        return None, f"unreadable ({one_line(err)[:200]})"
    missing = {"model", "ema", "opt", "gen", "step"} - set(state if isinstance(state, dict) else ())
    if missing:
        return None, f"not a sirestore checkpoint (no {', '.join(sorted(missing))})"
    return state, None


def load_latest_checkpoint(path: str | Path, previous: str | Path) -> tuple[dict | None, list[str]]:
    """The state of the newest good checkpoint among `path` and `previous`, and one-line warnings.

    (None, []) when neither exists (nothing to resume). Raises CheckpointError when files exist but
    none is good. A checkpoint without a sidecar (older sirestore) is loaded unverified.
    """
    path, previous = Path(path), Path(previous)
    if not path.exists() and not previous.exists():
        return None, []
    problems = []
    for candidate in (path, previous):
        state, problem = _read_checked(candidate)
        if state is not None:
            warnings = [f"{shown(p)}; resuming from {shown(candidate)} (step {int(state['step'])})" for p in problems]
            return state, warnings
        problems.append(f"{shown(candidate)}: {problem}")
    raise CheckpointError("cannot resume: " + "; ".join(problems))
