"""Two degradations at once: does the blind all-in-one model remove both?

    python scripts/eval_mixtures.py [--weights allinone] [--data ../shared/data/CBSD68] [--limit N]

For each mixture spec (image k seeded k, as `sirestore eval`), the PSNR of the degraded input, of the blind
restoration (what `sirestore restore --weights allinone` does) and of the restorations told only one of
the two tasks (`--task`), 1 step, fp32. Told one task, the model is conditioned on that degradation alone; the
blind model beating both says its detector and network handle the pair, not just one part of it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sirestore.evaluate import evaluate_folder  # noqa: E402
from sirestore.restore import Restorer  # noqa: E402

MIXTURES = [  # (spec, its two tasks), pairs the training mixture draws
    ("awgn:sigma=15+jpeg:quality=30", ("noise", "jpeg")),
    ("gaussian_blur:sigma=1.5+awgn:sigma=15", ("blur", "noise")),
    ("low_light+awgn:sigma=10", ("low_light", "noise")),
    ("haze+awgn:sigma=10", ("haze", "noise")),
    ("rain:density=0.004,length=25,width=0.4,intensity=0.7+jpeg:quality=40", ("rain", "jpeg")),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default="allinone", help="all-in-one weights (file or shipped name)")
    p.add_argument("--data", default="../shared/data/CBSD68", help="folder of clean images")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    args = p.parse_args()
    blind = Restorer(weights=args.weights)
    if not blind.has_detector:
        raise SystemExit(f"{args.weights} is not an all-in-one model (no detector)")
    print(f"{Path(args.data).name}, {args.weights}, PSNR (dB), 1 step, fp32, image k seeded k")
    print("| degradation | input | blind | told the first task only | told the second task only |")
    print("|---|---|---|---|---|")
    for spec, (a, b) in MIXTURES:
        restorers = (blind, blind.replace(task=a), blind.replace(task=b))
        runs = [evaluate_folder(r, args.data, spec, limit=args.limit) for r in restorers]
        best = max(r.psnr for r in runs)
        cells = [f"**{r.psnr:.2f}**" if r.psnr == best else f"{r.psnr:.2f}" for r in runs]
        print(f"| `{spec}` | {runs[0].input_psnr:.2f} | {cells[0]} | {a}: {cells[1]} | {b}: {cells[2]} |", flush=True)


if __name__ == "__main__":
    main()
