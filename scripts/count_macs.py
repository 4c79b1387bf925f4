"""Parameters and multiply-adds per pixel of a model's network (convolutions and linear layers).

    python scripts/count_macs.py [--weights W] [--size 256]

Counts every Conv2d of one forward pass at t = 0 on a size x size color image (the unfolded
training path, so FiLM and the residual scale are not counted), divided by the pixels.
"""

from __future__ import annotations

import argparse

import torch

from sirestore import load_model
from sirestore.nn.unet import count_parameters


def macs_per_pixel(model: torch.nn.Module, size: int) -> float:
    """Multiply-adds of all Conv2d layers for one (1, 3, size, size) image, per pixel."""
    total = 0

    def hook(mod: torch.nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * mod.weight[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    x = torch.rand(1, 3, size, size)
    with torch.enable_grad():  # the grad path runs every convolution as a module
        model(x, torch.zeros(1), x)
    for h in handles:
        h.remove()
    return total / size**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    model = load_model(args.weights)
    print(f"{count_parameters(model):,} parameters, {macs_per_pixel(model, args.size):,.0f} multiply-adds per pixel")


if __name__ == "__main__":
    main()
