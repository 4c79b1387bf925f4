"""What an all-in-one model's degradation detector reads in the held-out validation images (never a test set).

    python scripts/eval_detector.py [--weights allinone] [--config configs/allinone.yaml] [SPEC ...]

For each degradation spec (image k seeded config seed + k, as in training), the mean over the images of the
detected probability of every task (what `sirestore restore --explain` prints, on the same tiles) and of
the detected noise level; the spec's own tasks are in bold.
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
from sirestore.degrade.mixture import task_labels  # noqa: E402
from sirestore.nn.taskenc import SIGMA_SCALE  # noqa: E402
from sirestore.restore import Restorer  # noqa: E402
from sirestore.tasks import TASKS  # noqa: E402
from sirestore.train import load_data  # noqa: E402

SPECS = [
    "clean",
    "awgn:sigma=5",
    "awgn:sigma=25",
    "jpeg:quality=20",
    "gaussian_blur:sigma=1.5",
    "motion_blur:kernel=levin3+awgn:sigma=2.55",
    "inpaint:ratio=0.3",
    "rain",
    "rain:density=0.002,length=30,width=0.6,intensity=0.6",
    "haze",
    "low_light",
    "sr:scale=4",
    "speckle:looks=4",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("specs", nargs="*", default=SPECS, help="degradation specs (default: one per task)")
    p.add_argument("--weights", default="allinone", help="weights with a detector (file or shipped name)")
    p.add_argument("--config", type=Path, default=ROOT / "configs/allinone.yaml", help="its validation images")
    args = p.parse_args()
    cfg = TrainConfig.from_yaml(args.config)
    images = load_data(cfg)[1]
    restorer = Restorer(weights=args.weights)
    if not restorer.has_detector:
        raise SystemExit(f"{args.weights} has no degradation detector")
    print(f"{len(images)} validation images of {args.config.name}, {args.weights}: mean detected probability")
    print("| degradation | " + " | ".join(TASKS) + " | noise level |")
    print("|---|" + "---|" * (len(TASKS) + 1))
    for spec in args.specs:
        rows = []
        for k, x in enumerate(images):
            y, params = parse_spec(spec)(x, torch.Generator().manual_seed(cfg.seed + k))
            rows.append(restorer.condition(y)[0])
        labels = task_labels(params)  # the spec's tasks: the same for every image
        mean = torch.stack(rows).mean(0)
        cells = [f"**{v:.2f}**" if labels[i] else f"{v:.2f}" for i, v in enumerate(mean[:-1].tolist())]
        print(f"| `{spec}` | " + " | ".join(cells) + f" | {mean[-1].item() * SIGMA_SCALE:.1f} |", flush=True)


if __name__ == "__main__":
    main()
