"""Export the restoration function (network + deterministic sampler, unrolled) to ONNX.

The graph maps the degraded image y (B, 3, H, W) float32 in [0, 1] (gray as three equal
channels, as `Restorer.restore_tensor` feeds the network) to the restoration (B, 3, H, W), with
dynamic B, H and W. Padding to the network's multiple and cropping happen inside the graph,
at every network evaluation, exactly as in `UNet.forward`. The sampler's times are constants, so
each gets a copy of the network with its FiLM folded into the expansion convs (`net_at`): plain
Conv nodes with initializers, the blocks' folded inference path (`InvertedResidual._folded`).
Needs the `onnx` extra (`pip install "sirestore[onnx]"`); `--int8` also needs onnxruntime.
"""

from __future__ import annotations

import base64
import copy
import io
import logging
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

import sirestore
from sirestore.checkpoint import atomic_write
from sirestore.degrade.mixture import TASKS
from sirestore.model import FlowModel
from sirestore.nn.blocks import InvertedResidual
from sirestore.nn.unet import UNet
from sirestore.ort import FORMAT, OnnxError, require
from sirestore.sampler import STEPS, sample, time_grid

ODE_SAMPLERS = ("euler", "heun")
OPSET = 17


def _pad_index(n: torch.Tensor, p: torch.Tensor, reflect: torch.Tensor) -> torch.Tensor:
    """Source indices (n + p,) of an axis of length n padded by p at its end (reflect or replicate)."""
    i = torch.arange(n + p)
    last = n - 1
    return torch.where(reflect, torch.where(i <= last, i, 2 * last - i), torch.minimum(i, last))


def pad_to_multiple(x: torch.Tensor, m: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H', W') padded right/bottom to multiples of m, as `unet._pad` does
    (reflection when both pads are smaller than the sides, else replication), with traceable
    shapes: gathers with computed indices instead of Python control flow."""
    h, w = torch.as_tensor(x.shape[-2]), torch.as_tensor(x.shape[-1])  # traced sizes when exporting
    ph, pw = (-h) % m, (-w) % m
    reflect = (ph < h) & (pw < w)
    x = x.index_select(-2, _pad_index(h, ph, reflect))
    return x.index_select(-1, _pad_index(w, pw, reflect))


@torch.no_grad()
def net_at(net: UNet, t: float) -> UNet:
    """A copy of `net` for the one time t, to be run as `body(inp, None)`: every block's FiLM
    affine (1 + scale) h + shift is folded into its expansion conv (any `groups`), film removed.

    A network conditioned on a task vector c (all-in-one models) is run as `body(inp, c)` instead:
    its embedding time(t) + task(c) is affine in c, so each block's FiLM becomes one linear map of c
    (film(time(t) + W c + b) = film.W W c + film(time(t) + b)), evaluated per image in the graph."""
    frozen = copy.deepcopy(net)
    if net.time is None:
        return frozen
    emb = net.time(torch.full((1,), t))  # (1, emb_dim)
    if net.task is not None:
        base = emb + net.task.bias  # (1, emb_dim)
        for block in frozen.modules():
            if isinstance(block, InvertedResidual) and block.film is not None:
                film = nn.Linear(net.task.in_features, block.film.out_features)
                film.weight.copy_(block.film.weight @ net.task.weight)
                film.bias.copy_(block.film(base)[0])
                block.film, block.fold = film, False
        frozen.time = frozen.task = None
        return frozen
    for block in frozen.modules():
        if isinstance(block, InvertedResidual) and block.film is not None:
            w, b = block.folded_expansion(emb)
            block.expand.weight.copy_(w)
            block.expand.bias.copy_(b)
            block.film = None
    return frozen


class _TracedModel(nn.Module):
    """A FlowModel look-alike for the samplers whose forward traces to ONNX with dynamic shapes.

    forward(x_t (B, 3, H, W), t (B,), y (B, 3, H, W)) -> x1_hat (B, 3, H, W), like FlowModel.forward,
    for t in `times` (the sampler's grid): one network copy per time, its FiLM folded into constants.
    """

    def __init__(self, model: FlowModel, times: list[float]) -> None:
        super().__init__()
        self.cfg, self.path, self.times = model.cfg, model.path, times
        self.nets = nn.ModuleList(net_at(model.net, t) for t in (times if model.net.time is not None else [0.0]))
        self.task: torch.Tensor | None = None  # the graph's task input (all-in-one models), set per forward

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # the sampler gives one time per evaluation; its value (a constant of the trace) picks the network
        tv = float(t.reshape(-1)[0])
        net = self.nets[min(range(len(self.nets)), key=lambda i: abs(self.times[i] - tv))]
        inp = torch.cat([x_t, y], dim=1) if net.cfg.cond_channels else x_t
        out = net.body(pad_to_multiple(inp, net.multiple), self.task)[..., : x_t.shape[-2], : x_t.shape[-1]]
        out = x_t + out if net.cfg.residual else out
        return self.path.x1_from_velocity(x_t, out, t) if self.cfg.predict_velocity else out


class RestoreGraph(nn.Module):
    """y (B, 3, H, W) [, task (B, len(TASKS) + 1)] -> restoration (B, 3, H, W): `sample` with `steps`
    steps of an ODE sampler; all-in-one models take their conditioning vector as the second input."""

    def __init__(self, model: FlowModel, steps: int = 1, sampler: str = "euler") -> None:
        super().__init__()
        check_exportable(model, steps, sampler)
        self.traced = _TracedModel(model.eval(), time_grid(steps).tolist())
        self.steps, self.step = steps, STEPS[sampler]

    def forward(self, y: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        self.traced.task = task
        return sample(self.traced, y, steps=self.steps, step=self.step)


class DetectorGraph(nn.Module):
    """crop (B, 3, h, w) -> the conditioning vector (B, len(TASKS) + 1): an all-in-one model's detector."""

    def __init__(self, model: FlowModel) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, crop: torch.Tensor) -> torch.Tensor:
        return self.model.detect_condition(crop)


def detector_onnx_bytes(model: FlowModel, opset: int = OPSET) -> bytes:
    """The fp32 ONNX graph of DetectorGraph (input `crop`, output `task`, dynamic batch/height/width)."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            DetectorGraph(model),
            (torch.rand(1, 3, 40, 56),),
            buf,
            dynamo=False,
            input_names=["crop"],
            output_names=["task"],
            opset_version=opset,
            dynamic_axes={"crop": {0: "batch", 2: "height", 3: "width"}, "task": {0: "batch"}},
        )
    return buf.getvalue()


def check_exportable(model: FlowModel, steps: int, sampler: str) -> None:
    """Raise OnnxError (one line) unless the model and sampler give a deterministic function."""
    if sampler not in ODE_SAMPLERS:
        raise OnnxError(f"--sampler {sampler}: ONNX export needs a deterministic (ODE) sampler: euler or heun")
    if steps < 1:
        raise OnnxError("--steps must be >= 1")
    if model.cfg.noise > 0 or model.cfg.source_is_noise:
        kind = "starts from noise" if model.cfg.source_is_noise else f"has path noise {model.cfg.noise:g}"
        raise OnnxError(f"this model {kind} (stochastic); ONNX export needs a deterministic model (noise 0, bridge)")


def to_onnx_bytes(model: FlowModel, steps: int = 1, sampler: str = "euler", opset: int = OPSET) -> bytes:
    """The fp32 ONNX graph of RestoreGraph (input `y`, output `x`, dynamic batch/height/width)."""
    graph = RestoreGraph(model, steps, sampler)
    example: tuple[torch.Tensor, ...] = (torch.rand(1, 3, 37, 53),)
    names, axes = ["y"], {"y": {0: "batch", 2: "height", 3: "width"}, "x": {0: "batch", 2: "height", 3: "width"}}
    if model.detector is not None:
        example += (torch.rand(1, model.net.cfg.task_dim),)
        names.append("task")
        axes["task"] = {0: "batch"}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings on the constant times, the legacy exporter notice
        torch.onnx.export(
            graph,
            example,
            buf,
            dynamo=False,  # the TorchScript exporter: no onnxscript needed
            input_names=names,
            output_names=["x"],
            opset_version=opset,
            dynamic_axes=axes,
        )
    return buf.getvalue()


def _quantize(data: bytes) -> bytes:
    """Dynamic int8 quantisation of the 1x1 convolutions of the blocks (most of the weights): int8
    weights per output channel, activations quantised on the fly. The 3x3 stem, head and depthwise
    convs and the channel attention stay fp32 (quantising them costs PSNR and no time)."""
    onnx = require("onnx", "int8 export")
    require("onnxruntime", "int8 export")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    proto = onnx.load_from_string(data)
    shapes = {i.name: tuple(i.dims) for i in proto.graph.initializer}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    keep = [n.name for n in convs if shapes.get(n.input[1], (0, 0, 3, 3))[2:] != (1, 1) or "/attn/" in n.name]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)  # its advice to pre-process, printed on the root logger
        try:
            quantize_dynamic(src, dst, weight_type=QuantType.QUInt8, per_channel=True, nodes_to_exclude=keep)
        finally:
            logging.disable(previous)
        return dst.read_bytes()


def export_onnx(
    model: FlowModel,
    path: str | Path,
    steps: int = 1,
    sampler: str = "euler",
    int8: bool = False,
    weights_sha256: str = "",
    opset: int = OPSET,
) -> dict[str, str]:
    """Write the ONNX model to `path` atomically; returns the metadata stored in it."""
    onnx = require("onnx", "ONNX export")
    check_exportable(model, steps, sampler)
    data = to_onnx_bytes(model, steps, sampler, opset)
    if int8:
        data = _quantize(data)
    proto = onnx.load_from_string(data)
    meta = {
        "format": FORMAT,
        "sirestore_version": sirestore.__version__,
        "steps": str(steps),
        "sampler": sampler,
        "int8": str(int(int8)),
        "weights_sha256": weights_sha256,
        "pad_multiple": str(model.net.multiple),
        "padding": "in-graph",
        "input": "y: float32 (batch, 3, height, width) in [0, 1]; gray as 3 equal channels",
        "output": "x: float32 (batch, 3, height, width), not clamped",
    }
    if model.detector is not None:  # the detector travels in the metadata, as its own small ONNX graph
        meta["input"] += (
            "; task: float32 (batch, tasks + 1), the conditioning vector: what the `detector` graph (base64 in "
            "this metadata; input crop = the image's centre, at most 1024 px a side) returns, or a forced task"
        )
        meta["tasks"] = ",".join(TASKS)
        meta["detector"] = base64.b64encode(detector_onnx_bytes(model, opset)).decode("ascii")
    onnx.helper.set_model_props(proto, meta)
    proto.producer_name, proto.producer_version = "sirestore", sirestore.__version__
    onnx.checker.check_model(proto)
    atomic_write(path, lambda tmp: onnx.save(proto, tmp))
    return meta
