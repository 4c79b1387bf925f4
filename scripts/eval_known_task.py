"""Known-operator restoration with an all-in-one model: conditioned on what its detector reads in the initial
guess, or told the operator's task (what `restore_known` does), on a training config's held-out validation
images (never a test set), PSNR (dB).

    python scripts/eval_known_task.py [--weights allinone] [--config configs/allinone_finetune.yaml]

Cases: bicubic x2 and x4 (`--scale`), Levin kernel 3 + AWGN 2.55 with periodic boundaries (`--kernel`,
`--sigma 2.55`); image k's noise seeded k.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sirestore.config import TrainConfig  # noqa: E402
from sirestore.degrade.blur import levin_kernel  # noqa: E402
from sirestore.known import Known, operator_task, restore_known  # noqa: E402
from sirestore.metrics import psnr  # noqa: E402
from sirestore.restore import Restorer  # noqa: E402
from sirestore.train import load_data  # noqa: E402

CASES = {
    "bicubic x2": Known(scale=2),
    "bicubic x4": Known(scale=4),
    "Levin 3 + 2.55": Known(kernel=levin_kernel(3), sigma=2.55 / 255, boundary="circular"),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default="allinone")
    p.add_argument("--config", type=Path, default=ROOT / "configs/allinone_finetune.yaml")
    args = p.parse_args()
    images = load_data(TrainConfig.from_yaml(args.config))[1]
    detecting = Restorer(weights=args.weights)
    if not detecting.has_detector:
        raise SystemExit(f"{args.weights}: not an all-in-one model (no degradation detector)")
    print(f"{len(images)} validation images of {args.config.name}, PSNR (dB)")
    print("| operator | detected | told the operator's task |")
    print("|---|---|---|")
    for name, known in CASES.items():
        op, scores = known.operator(), [0.0, 0.0]
        for k, x in enumerate(images):
            x = x[..., : x.shape[-2] // 4 * 4, : x.shape[-1] // 4 * 4]
            y = op.A(x)
            y = y + known.sigma * torch.randn(y.shape, generator=torch.Generator().manual_seed(k))
            for i, tell in enumerate((False, True)):
                out = restore_known(detecting, y, known, tell=tell)
                scores[i] += psnr(out.clamp(0, 1), x) / len(images)
        print(f"| {name} (told: {operator_task(known)}) | {scores[0]:.2f} | {scores[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
