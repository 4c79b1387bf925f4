"""A plain model against its sharp one-step fine-tune: PSNR / SSIM / LPIPS-alex at one network evaluation.

    python scripts/bench_sharp.py                       # allinone vs allinone_sharp (README's table)
    python scripts/bench_sharp.py --plain default --sharp sharp --cases noise

Each cell is what `sirestore eval --data ../shared/data/SET --degradation SPEC --weights W --precision fp32`
(image k seeded k, `--border` = the scale for SR) prints; the table is printed as markdown with the LPIPS and
PSNR changes of the sharp weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sirestore.evaluate import Perceptual, evaluate_folder  # noqa: E402
from sirestore.restore import Restorer  # noqa: E402

CASES = {  # name -> [(label, clean set, spec, border)]
    "noise": [
        ("CBSD68, AWGN 15", "CBSD68", "awgn:sigma=15", 0),
        ("CBSD68, AWGN 25", "CBSD68", "awgn:sigma=25", 0),
        ("CBSD68, AWGN 50", "CBSD68", "awgn:sigma=50", 0),
    ],
    "other": [
        ("LIVE1, JPEG q10", "LIVE1", "jpeg:quality=10", 0),
        ("LIVE1, JPEG q20", "LIVE1", "jpeg:quality=20", 0),
        ("CBSD68, Levin kernel 3 + AWGN 2.55", "CBSD68", "motion_blur:kernel=levin3+awgn:sigma=2.55", 0),
        ("Set14, bicubic x4", "Set14", "sr:scale=4", 4),
        ("CBSD68, speckle 4 looks", "CBSD68", "speckle:looks=4", 0),
    ],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plain", default="allinone", help="weights (file or shipped name)")
    p.add_argument("--sharp", default="allinone_sharp", help="their sharp fine-tune")
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    p.add_argument("--limit", type=int, default=None, help="first N images of each set")
    args = p.parse_args()
    restorers = [Restorer(weights=w, precision="fp32") for w in (args.plain, args.sharp)]
    perceptual = Perceptual(scores=True)
    print(f"| set, degradation | `{args.plain}` | **`{args.sharp}`** | LPIPS change | PSNR change |")
    print("|---|---|---|---|---|")
    for label, data, spec, border in (case for name in args.cases for case in CASES[name]):
        a, b = (
            evaluate_folder(r, args.data / data, spec, border=border, limit=args.limit, perceptual=perceptual)
            for r in restorers
        )
        print(
            f"| {label} | {a.psnr:.2f} / {a.ssim:.4f} / {a.lpips:.4f} "
            f"| {b.psnr:.2f} / {b.ssim:.4f} / **{b.lpips:.4f}** "
            f"| {100 * (b.lpips / a.lpips - 1):+.0f} % | {b.psnr - a.psnr:+.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
