"""Widen levels of trained weights to a multiple of their width, computing the same function.

    python scripts/widen_weights.py --weights sirestore/weights/default.safetensors \
        --level 0 --width 32 [--noise 0.01] [--seed 0] -o runs/widened.safetensors

The output is an `init_weights` for a training config whose widths are the new ones
(sirestore/nn/widen.py: Net2Net-style repeated channels, then a small relative perturbation of
the weights that grew so that training separates the copies).
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from sirestore.checkpoint import load_weights, save_weights
from sirestore.model import FlowModel
from sirestore.nn.unet import count_parameters
from sirestore.nn.widen import perturb_copies, widen_level


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--level", type=int, action="append", required=True, help="level to widen (repeatable)")
    parser.add_argument("--width", type=int, action="append", required=True, help="its new width (one per --level)")
    parser.add_argument("--noise", type=float, default=0.01, help="relative perturbation of the grown weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()
    if len(args.level) != len(args.width):
        parser.error("give one --width per --level")
    model = load_weights(args.weights)
    old = model.state_dict()
    state, net = old, model.cfg.net
    for level, width in zip(args.level, args.width):
        state, net = widen_level(state, net, level, width, prefix="net.")
    state = perturb_copies(state, old, args.noise, torch.Generator().manual_seed(args.seed))
    wide = FlowModel(dataclasses.replace(model.cfg, net=net))
    wide.load_state_dict(state)
    save_weights(wide, args.output)
    print(f"{args.output}: widths {net.widths}, {count_parameters(wide):,} parameters")


if __name__ == "__main__":
    main()
