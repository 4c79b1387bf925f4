"""Which degradations of a training mixture dominate its loss? Per spec: the weights' one-step MSE on 128 px
crops of the config's validation images, relative to the first spec's, and its share of the expected loss.

    python scripts/mixture_loss_shares.py [--config configs/allinone.yaml] [--weights default]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sirestore.config import TrainConfig  # noqa: E402
from sirestore.degrade import parse_spec  # noqa: E402
from sirestore.restore import Restorer  # noqa: E402
from sirestore.train import load_data  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=ROOT / "configs/allinone.yaml")
    p.add_argument("--weights", default="default", help="weights file, or the name of shipped ones")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    cfg = TrainConfig.from_yaml(args.config)
    crops = torch.cat([x[..., :128, :128] for x in load_data(cfg)[1]])
    restorer, gen, total = Restorer(weights=args.weights), torch.Generator().manual_seed(args.seed), 0.0
    rows = []
    for spec, weight in cfg.mixture.items():
        y, _ = parse_spec(spec)(crops, gen)
        mse = float(((restorer.restore_tensor(y) - crops) ** 2).mean())
        rows.append((spec, weight / sum(cfg.mixture.values()), mse))
        total += rows[-1][1] * mse
    print(f"| spec | weight | MSE | x first | share of the loss |  ({args.weights}, {len(crops)} crops)")
    print("|---|---|---|---|---|")
    for spec, w, mse in rows:
        print(f"| `{spec}` | {w:.3f} | {mse:.5f} | {mse / rows[0][2]:.0f} | {w * mse / total:.3f} |")


if __name__ == "__main__":
    main()
