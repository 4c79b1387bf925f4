"""Shift one task's logit in an all-in-one model's degradation detector (a calibration of how sure it must be).

    python scripts/calibrate_detector.py WEIGHTS --task haze --shift -1 [-o OUTPUT]

Adds `shift` to the bias of that task's output in the detector's last layer, so every probability it reports
becomes sigmoid(logit + shift); the network is untouched. OUTPUT defaults to WEIGHTS (rewritten in place).
The shipped all-in-one detector (configs/allinone_detect_clean.yaml) has haze shifted by -1: as sure of haze as
version 1 on hazy validation images, with fewer false alarms on undamaged training photos (README,
"Detector version 2").
"""

from __future__ import annotations

import argparse

import torch

from sirestore.checkpoint import load_weights, save_weights
from sirestore.model import FlowModel
from sirestore.tasks import TASKS


def shift_logit(model: FlowModel, task: str, shift: float) -> FlowModel:
    """model with `shift` added to its detector's logit of `task` (in place; returned)."""
    if model.detector is None:
        raise ValueError("the model has no degradation detector")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; one of {', '.join(TASKS)}")
    last = [m for m in model.detector.head.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.bias[TASKS.index(task)] += shift
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--shift", type=float, required=True, help="added to the task's logit")
    parser.add_argument("-o", "--output", help="where to write the result (default: weights)")
    args = parser.parse_args()
    save_weights(shift_logit(load_weights(args.weights), args.task, args.shift), args.output or args.weights)
    print(f"{args.output or args.weights}: {args.task} logit shifted by {args.shift:+g}")


if __name__ == "__main__":
    main()
