"""Run an exported model (`sirestore export --format onnx`) with onnxruntime.

`OrtRestorer` is a `Restorer` whose network-and-sampler call is the ONNX graph: the same I/O
(numpy, PIL, tensors; gray, alpha, 16 bit) and the same tiling; the steps and the sampler are
those baked into the file (its metadata). onnx and onnxruntime are optional: without them,
`require` raises one line telling to `pip install "sirestore[onnx]"`.
"""

from __future__ import annotations

import base64
import importlib
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from sirestore.fsutil import file_problem, first_line, shown
from sirestore.nn.taskenc import SIGMA_SCALE, condition, detector_tiles, forced, pool_detection
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
    inputs = [i.name for i in session.get_inputs()]
    if inputs not in (["y"], ["y", "task"]) or (inputs == ["y", "task"]) != ("detector" in meta):
        raise OnnxError(f"{shown(path)}: unexpected inputs; re-export it with this version of sirestore")
    return session, meta


def detector_session(path: str | Path, meta: dict[str, str], threads: int | None = None) -> object:
    """The onnxruntime session of the degradation detector stored (base64 ONNX) in an all-in-one export."""
    ort = require("onnxruntime")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    try:
        data = base64.b64decode(meta["detector"], validate=True)
        return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - binascii and onnxruntime errors alike
        raise OnnxError(f"{shown(Path(path))}: its detector graph is unreadable ({first_line(err)[:200]})") from None


class OrtRestorer(Restorer):
    """A Restorer running an exported ONNX model with onnxruntime (CPU).

    Same calls as `Restorer` (numpy / PIL / tensors, `restore_tensor`, tiles); steps and sampler
    come from the file. `threads` sets onnxruntime's intra-op threads (default: its own choice).
    """

    def __init__(
        self,
        onnx_path: str | Path,
        tile: int | None = None,
        overlap: int = 32,
        threads: int | None = None,
        task: str | None = None,
    ):
        check_tile(tile, overlap)
        self.session, self.meta = load_session(onnx_path, threads)
        self.onnx_path = self.weights = Path(onnx_path)
        self.model = None
        self.device = torch.device("cpu")
        self.steps, self.sampler, self.seed = int(self.meta.get("steps", 1)), self.meta.get("sampler", "euler"), 0
        self.tile, self.overlap, self.max_memory = tile, overlap, None
        self.precision = "fp32"  # the exported graph's arithmetic
        self.mask = None  # the exported graph has no mask input
        self.detector = detector_session(onnx_path, self.meta, threads) if "detector" in self.meta else None
        self.tasks = self.meta["tasks"].split(",") if self.detector is not None else []
        if task is not None and self.detector is None:
            raise ValueError("--task needs an all-in-one model (with a degradation detector)")
        if task is not None and task not in self.tasks:
            raise ValueError(f"unknown task {task!r}; choose from {', '.join(self.tasks)}")
        self.task = task

    @property
    def has_detector(self) -> bool:
        """Whether the exported model carries a degradation detector graph."""
        return self.detector is not None

    def _detect(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The detector graph on tiles of y (B, C, H, W), as `Restorer._detect`: probabilities (B, T), noise (B,)."""
        tiles, n = detector_tiles(y.float())
        tiles = tiles.expand(-1, 3, -1, -1) if tiles.shape[1] == 1 else tiles
        vec = torch.from_numpy(self.detector.run(["task"], {"crop": np.ascontiguousarray(tiles.cpu().numpy())})[0])
        return pool_detection(vec[:, :-1], vec[:, -1] * SIGMA_SCALE, n)

    def condition(self, y: torch.Tensor) -> torch.Tensor | None:
        """As `Restorer.condition`, with the detector graph of the file; None without one."""
        if self.detector is None:
            return None
        probs, sigma = self._detect(y)
        if self.task is not None:
            return forced(self.tasks.index(self.task), len(self.tasks), sigma)
        return condition(probs, sigma)

    def explain(self, y: torch.Tensor) -> dict[str, float]:
        """As `Restorer.explain`, with the detector graph of the file."""
        if self.detector is None:
            raise ValueError("--explain needs an all-in-one model (with a degradation detector)")
        probs, sigma = self._detect(y)
        return {**{t: float(p) for t, p in zip(self.tasks, probs[0])}, "sigma": float(sigma[0])}

    def _run(
        self,
        y: torch.Tensor,
        dc: Projection | None,
        noise: torch.Tensor | None = None,
        task: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """y (B, 3, H, W) float32 -> restoration (B, 3, H, W), one session run (exports have no noise source);
        `task` (1 or B, T + 1) is the conditioning vector of an all-in-one export."""
        if dc is not None:
            raise ValueError("data-consistency hooks need the torch backend")
        feed = {"y": np.ascontiguousarray(y.detach().cpu().numpy(), dtype=np.float32)}
        if self.detector is not None:
            vec = task.expand(y.shape[0], -1) if task is not None else self.condition(y)
            feed["task"] = np.ascontiguousarray(vec.cpu().numpy(), dtype=np.float32)
        try:
            out = self.session.run(["x"], feed)[0]
        except Exception as err:  # noqa: BLE001 - onnxruntime's own error types
            raise RuntimeError(f"onnxruntime failed: {first_line(err)[:200]}") from None
        return torch.from_numpy(out)
