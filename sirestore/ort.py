"""Run an exported model (`sirestore export --format onnx`) with onnxruntime.

`OrtRestorer` is a `Restorer` whose network-and-sampler call is the ONNX graph: the same I/O
(numpy, PIL, tensors; gray, alpha, 16 bit) and the same tiling; the steps and the sampler are
those baked into the file (its metadata). onnx and onnxruntime are optional: without them,
`require` raises one line telling to `pip install "sirestore[onnx]"`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from sirestore.fsutil import file_problem, first_line, shown
from sirestore.restore import Restorer, check_tile
from sirestore.sampler import Projection

FORMAT = "sirestore-onnx-1"
INSTALL = 'pip install "sirestore[onnx]"'


class OnnxError(ValueError):
    """A missing optional dependency, a bad ONNX file or an export that cannot be done (one line)."""


def require(name: str, what: str = "the onnxruntime backend") -> ModuleType:
    """Import the optional module `name` (onnx, onnxruntime) or raise OnnxError with the fix."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise OnnxError(f"{what} needs {name}, which is not installed: {INSTALL}") from None


def load_session(path: str | Path, threads: int | None = None) -> tuple[object, dict[str, str]]:
    """(onnxruntime.InferenceSession on CPU, the sirestore metadata) of an exported file."""
    ort = require("onnxruntime")
    path = Path(path)
    problem = file_problem(path)
    if problem:
        raise OnnxError(f"{shown(path)}: {'ONNX file not found' if problem == 'file not found' else problem}")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: no warnings on stderr
    if threads:
        opts.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types for any unreadable file
        raise OnnxError(f"{shown(path)}: not a readable ONNX model ({first_line(err)[:200]})") from None
    meta = dict(session.get_modelmeta().custom_metadata_map)
    if meta.get("format") != FORMAT:
        raise OnnxError(f"{shown(path)}: not a sirestore ONNX export (format {meta.get('format')!r})")
    if [i.name for i in session.get_inputs()] != ["y"]:
        raise OnnxError(f"{shown(path)}: unexpected inputs; re-export it with this version of sirestore")
    return session, meta


class OrtRestorer(Restorer):
    """A Restorer running an exported ONNX model with onnxruntime (CPU).

    Same calls as `Restorer` (numpy / PIL / tensors, `restore_tensor`, tiles); steps and sampler
    come from the file. `threads` sets onnxruntime's intra-op threads (default: its own choice).
    """

    def __init__(self, onnx_path: str | Path, tile: int | None = None, overlap: int = 32, threads: int | None = None):
        check_tile(tile, overlap)
        self.session, self.meta = load_session(onnx_path, threads)
        self.onnx_path = self.weights = Path(onnx_path)
        self.model = None
        self.device = torch.device("cpu")
        self.steps, self.sampler, self.seed = int(self.meta.get("steps", 1)), self.meta.get("sampler", "euler"), 0
        self.tile, self.overlap, self.max_memory, self.task = tile, overlap, None, None

    def _run(self, y: torch.Tensor, dc: Projection | None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """y (B, 3, H, W) float32 -> restoration (B, 3, H, W), one session run (exports have no noise source)."""
        if dc is not None:
            raise ValueError("data-consistency hooks need the torch backend")
        x = np.ascontiguousarray(y.detach().cpu().numpy(), dtype=np.float32)
        try:
            out = self.session.run(["x"], {"y": x})[0]
        except Exception as err:  # noqa: BLE001 - onnxruntime's own error types
            raise RuntimeError(f"onnxruntime failed: {first_line(err)[:200]}") from None
        return torch.from_numpy(out)
