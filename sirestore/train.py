"""A linear training loop: data -> degrade -> path -> network -> loss, with EMA,
cosine learning rate, periodic validation, atomic checkpoints and exact resume.
Runs on the CPU, on CUDA with bfloat16 autocast, and data-parallel under torchrun.

Crash safety: checkpoints are verified by sha256 and the previous one is kept (prev.pt), so a
run killed at any moment resumes (--resume) from the newest good checkpoint, losing at most
ckpt_every steps; the resumed run is bit-identical to an uninterrupted one on the same machine.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from sirestore.checkpoint import (
    CheckpointError,
    atomic_write_bytes,
    load_latest_checkpoint,
    load_weights,
    save_checkpoint,
    save_weights,
)
from sirestore.config import TrainConfig
from sirestore.data import CropSampler, load_folder, read_exclude_list
from sirestore.degrade import parse_spec
from sirestore.degrade.mixture import Mixture, inpaint_mask, noise_level, task_labels
from sirestore.fsutil import clean_stale_temps, first_line
from sirestore.loss import detector_loss, flow_loss
from sirestore.metrics import psnr
from sirestore.model import Conditioned, FlowModel, ModelConfig, split_state
from sirestore.nn.taskenc import condition
from sirestore.nn.unet import grow_stem
from sirestore.path import sample_times
from sirestore.precision import native_bf16
from sirestore.sampler import sample


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay from cfg.lr to cfg.min_lr."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def _setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises a process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        return rank, world, torch.device("cuda")
    return rank, world, torch.device("cpu")


def load_data(cfg: TrainConfig) -> tuple[CropSampler, list[torch.Tensor]]:
    """Training crop sampler and the held-out validation images (a list of (1, 3, H, W))."""
    skip = read_exclude_list(cfg.exclude_list)
    color = [im for d in cfg.color_dirs for im in load_folder(d, gray=False, skip=skip)]
    val = color[len(color) - cfg.val_count :] if cfg.val_count else []
    color = color[: len(color) - cfg.val_count]
    gray = [im for d in cfg.gray_dirs for im in load_folder(d, gray=True)]
    return CropSampler(color, gray, cfg.patch, cfg.gray_prob), [v[None].float() / 255 for v in val]


@torch.no_grad()
def validate(model: FlowModel, images: list[torch.Tensor], spec: str, seed: int) -> float:
    """Mean PSNR of one-step restorations of the validation images (image k: seed + k); an all-in-one model
    is conditioned on what its detector finds in the image's tiles, as `Restorer` does, and a model with a mask
    input is given the inpainting mask."""
    degradation = parse_spec(spec)
    scores = []
    for k, x in enumerate(images):
        x = x.to(next(model.parameters()).device)
        y, params = degradation(x, torch.Generator().manual_seed(seed + k))
        task = condition(*model.detect_tiled(y)) if model.detector is not None else None
        mask = inpaint_mask(params, x) if model.cfg.net.mask_channels else None
        net = model if task is None and mask is None else Conditioned(model, task, mask)
        scores.append(psnr(sample(net, y, steps=1).clamp(0, 1), x))
    return sum(scores) / max(1, len(scores))


def _batch(sampler: CropSampler, cfg: TrainConfig, degradation, model: FlowModel, gen: torch.Generator, device):
    """One training batch: clean crops, their degradation (a spec or a Mixture), a path sample;
    returns (path sample, y, task labels (B, T), noise levels (B,) on the 0..255 scale, the inpainting masks
    given to a network with a mask input (B, 1, H, W), each with probability mask_prob, else all ones; None for
    other networks)."""
    x_1 = sampler.sample(cfg.batch, gen)
    if isinstance(degradation, Mixture):
        d = degradation(x_1, gen)
        y, labels, sigma, mask = d.y, d.labels, d.sigma, d.mask
    else:
        y, params = degradation(x_1, gen)
        labels = task_labels(params).expand(cfg.batch, -1)
        sigma = torch.tensor([noise_level(params, i) for i in range(cfg.batch)])
        mask = inpaint_mask(params, x_1)
    if model.cfg.net.mask_channels:
        given = torch.rand(cfg.batch, generator=gen) < cfg.mask_prob
        mask = torch.where(given.view(-1, 1, 1, 1), mask, torch.ones_like(mask)).to(device)
    else:
        mask = None
    if x_1.shape[1] == 1:  # gray images run as three equal channels
        x_1, y = x_1.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
    x_1, y = x_1.to(device), y.to(device)
    x_0 = model.path.source(y, gen) if not model.cfg.source_is_noise else torch.randn(y.shape, generator=gen).to(device)
    t = sample_times(cfg.batch, cfg.t0_prob, gen).to(device)
    s = model.path.sample(x_0, x_1, t, None if not model.cfg.noise else gen)
    return s, y, labels.to(device), sigma.to(device), mask


def _loss(net, model: FlowModel, cfg: TrainConfig, batch, gen: torch.Generator) -> torch.Tensor:
    """The flow loss of a batch, plus the detector's loss for models with one. A batch is conditioned
    on its true degradation vector with probability teacher_prob, else on the detected one."""
    s, y, labels, sigma, mask = batch
    if cfg.detector_only:  # net is the detector (possibly wrapped for data parallelism)
        return detector_loss(net(y), labels, sigma)
    if model.detector is None:
        return flow_loss(net, cfg.model, s, y, cfg.loss, perceptual=cfg.lpips_weight, mask=mask)
    teacher = torch.rand((), generator=gen).item() < cfg.teacher_prob
    task = condition(labels, sigma) if teacher else None
    loss = flow_loss(net, cfg.model, s, y, cfg.loss, task=task, perceptual=cfg.lpips_weight, mask=mask)
    if cfg.freeze_detector:
        return loss
    return loss + cfg.task_weight * detector_loss(model.detection, labels, sigma)


def _resume(out: Path, model: FlowModel, ema: FlowModel, opt, gen: torch.Generator, rank: int) -> int:
    """Load the newest good checkpoint of `out` into the training state; its step (0 when none)."""
    state, warnings = load_latest_checkpoint(out / "last.pt", out / "prev.pt")
    for line in warnings if rank == 0 else []:
        print(f"warning: {line}", file=sys.stderr)
    if state is None:
        return 0
    try:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"][rank])
    except (RuntimeError, KeyError, IndexError, TypeError, ValueError) as err:
        raise CheckpointError(f"{out}: the checkpoint does not match this config ({first_line(err)})") from None
    return int(state["step"])


def _init_from(model: FlowModel, path: str) -> None:
    """Copy the weights of a safetensors file into `model`, for fine-tuning.

    The source may have fewer blocks per level than `model` (same everything else), no
    degradation detector or no mask input: the network is grown, and as every new block starts as the identity
    (beta = 0), the detector's conditioning map and the mask's stem weights at zero, it starts as the same
    function. A source
    with another detector version gives its network only: the new detector starts untrained (train it
    with detector_only)."""
    source = load_weights(path)
    if not _can_grow(source.cfg, model.cfg):
        raise ValueError(f"{path}: init_weights has a different model config than this run")
    state = source.state_dict()
    grow = model.cfg.net.mask_channels - source.cfg.net.mask_channels
    if grow:
        state["net.stem.weight"] = grow_stem(state["net.stem.weight"], grow)
    if source.cfg.detector != model.cfg.detector:
        state = split_state(state)[0]
    model.load_state_dict(state, strict=False)  # new blocks keep their identity init


def _can_grow(src: ModelConfig, dst: ModelConfig) -> bool:
    """True when dst equals src except for as many or more blocks at every level, for a mask input that src
    lacks, for a degradation detector that src lacks (its conditioning map starts at zero: no effect) or has in
    another version, or for the path noise s (the same network and x_1 target: a straight bridge grows
    into a stochastic one)."""
    a, b = src.to_dict(), dst.to_dict()
    a["noise"] = b["noise"]
    counts = ("enc_blocks", "dec_blocks", "mid_blocks", "task_dim", "mask_channels")
    na, nb = a.pop("net"), b.pop("net")
    if b["detector"]:
        a["detector"] = b["detector"]
    if a != b or {k: v for k, v in na.items() if k not in counts} != {k: v for k, v in nb.items() if k not in counts}:
        return False
    if na["task_dim"] not in (0, nb["task_dim"]) or na["mask_channels"] not in (0, nb["mask_channels"]):
        return False
    more = zip(
        [na["mid_blocks"], *na["enc_blocks"], *na["dec_blocks"]],
        [nb["mid_blocks"], *nb["enc_blocks"], *nb["dec_blocks"]],
    )
    return all(x <= y for x, y in more)


def _truncate_log(path: Path, step: int) -> float:
    """Drop log lines after `step` (work lost with a crash, about to be redone) and broken lines.

    Returns the training time logged up to `step` (seconds), so that `time` stays cumulative.
    """
    if not path.is_file():
        return 0.0
    kept, elapsed = [], 0.0
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("step", 0) <= step:
            kept.append(line + "\n")
            elapsed = max(elapsed, float(record.get("time", 0.0)))
    atomic_write_bytes(path, "".join(kept).encode())
    return elapsed


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, stop_at: int | None = None) -> FlowModel:
    """Train a model per cfg; returns the EMA model. Writes cfg.out_dir/{last.pt, ema.safetensors, log.jsonl}.

    resume continues exactly from cfg.out_dir/last.pt (prev.pt when last.pt is damaged); stop_at
    ends the run early at that step (with a checkpoint), so a long schedule can be split over sessions.
    """
    rank, world, device = _setup_distributed()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)  # initialisation: identical on every rank
    model = FlowModel(cfg.model)
    if cfg.init_weights:
        _init_from(model, cfg.init_weights)
    model = model.to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    if cfg.detector_only and model.detector is None:
        raise ValueError("detector_only needs a model with a detector (model.detector)")
    if cfg.freeze_detector and (model.detector is None or cfg.detector_only):
        raise ValueError("freeze_detector needs a model with a detector (model.detector) and no detector_only")
    trained = model.detector if cfg.detector_only else model
    model.requires_grad_(False)
    trained.requires_grad_(True)
    if cfg.freeze_detector:
        model.detector.requires_grad_(False)
    params = [p for p in trained.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    step = _resume(out, model, ema, opt, gen, rank) if resume else 0
    elapsed = 0.0
    if rank == 0:
        clean_stale_temps(out)
        if resume:
            elapsed = _truncate_log(out / "log.jsonl", step)
    net = torch.nn.parallel.DistributedDataParallel(trained) if world > 1 else trained
    sampler, val_images = load_data(cfg)
    degradation = Mixture(cfg.mixture) if cfg.mixture else parse_spec(cfg.degradation)
    amp = (cfg.amp and device.type == "cuda") or (cfg.cpu_amp and device.type == "cpu" and native_bf16())
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress or rank != 0, dynamic_ncols=True)
    t_start = time.time() - elapsed
    end = min(cfg.steps, stop_at) if stop_at else cfg.steps
    while step < end:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = _batch(sampler, cfg, degradation, model, gen, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = _loss(net, model, cfg, batch, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        decay = min(cfg.ema, (1 + step) / (10 + step))  # short memory early in training
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), model.parameters()):
                p_ema.lerp_(p, 1 - decay)
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr_at(step, cfg):.1e}")
        record = {"step": step, "loss": loss.item(), "time": time.time() - t_start}
        if step % cfg.val_every == 0 or step == cfg.steps:
            if rank == 0 and val_images:
                record["val_psnr"] = validate(ema, val_images, cfg.val_degradation, cfg.seed)
                for spec in cfg.val_specs:
                    record[f"val/{spec}"] = validate(ema, val_images, spec, cfg.seed)
                bar.write(f"step {step}: validation PSNR {record['val_psnr']:.2f} dB")
        if step % cfg.ckpt_every == 0 or step == end:
            gens = [None] * world
            if world > 1:
                dist.all_gather_object(gens, gen.get_state())
            else:
                gens = [gen.get_state()]
            if rank == 0:
                state = {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict()}
                state.update(gen=gens, step=step, config=json.dumps(cfg.to_dict()))
                save_checkpoint(state, out / "last.pt", previous=out / "prev.pt")
                save_weights(ema, out / "ema.safetensors", extra={"step": step})
        if rank == 0 and (step % cfg.log_every == 0 or "val_psnr" in record):
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
    bar.close()
    if world > 1:
        dist.barrier()
    return ema
