"""How ready an all-in-one model's detector is to read haze: false alarms on undamaged photos against hazy images.

    python scripts/eval_haze_calibration.py WEIGHTS [WEIGHTS ...] [--shifts 0 -1 -2] [--photos 200]

For each weights file and each shift of the haze logit (`scripts/calibrate_detector.py`): among the first
`photos` undamaged training photos (../shared/data/CBSD432, whole images on the detector's tiles, as `restore`
reads them; training images, never a test set), how many read haze above 0.3 and above 0.5; the mean haze read
on the config's validation images hazed (`haze` and `haze:zoom=3`, image k seeded config seed + k); and on a
faded copy of the example photo (0.3 + 0.5 x, the shipped-weights test's), the haze read and the PSNR of its
restoration against itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from calibrate_detector import shift_logit  # noqa: E402

from sirestore.checkpoint import load_weights  # noqa: E402
from sirestore.config import TrainConfig  # noqa: E402
from sirestore.data import list_images, load_uint8  # noqa: E402
from sirestore.degrade import parse_spec  # noqa: E402
from sirestore.metrics import psnr  # noqa: E402
from sirestore.restore import Restorer, resolve_weights  # noqa: E402
from sirestore.train import load_data  # noqa: E402


def faded_example() -> torch.Tensor:
    """The shipped-weights test's faded photo (1, 3, 96, 128): the example crop, denoised, then 0.3 + 0.5 x."""
    photo = np.asarray(Image.open(ROOT / "examples/coffee_noisy.png").convert("RGB"))[:96, :128]
    clean = Restorer(weights="default").restore_tensor(torch.from_numpy(photo.copy()).permute(2, 0, 1)[None] / 255)
    return 0.3 + 0.5 * clean.clamp(0, 1)


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights", nargs="+", help="all-in-one weights (files or shipped names)")
    p.add_argument("--shifts", type=float, nargs="+", default=[0.0, -1.0, -2.0])
    p.add_argument("--photos", type=int, default=200, help="first N undamaged training photos")
    p.add_argument("--config", type=Path, default=ROOT / "configs/allinone_rain.yaml")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/CBSD432")
    args = p.parse_args()
    cfg = TrainConfig.from_yaml(args.config)
    _, val = load_data(cfg)
    hazy = [
        parse_spec(s)(x, torch.Generator().manual_seed(cfg.seed + k))[0]
        for s in ("haze", "haze:zoom=3")
        for k, x in enumerate(val)
    ]
    photos = [load_uint8(f, gray=False)[None].float() / 255 for f in list_images(args.data)[: args.photos]]
    faded = faded_example()
    print(
        "| weights | haze logit shift | photos with haze > 0.3 | > 0.5 | mean haze, hazy validation | "
        "faded photo: haze, PSNR vs itself |"
    )
    print("|---|---|---|---|---|---|")
    for name in args.weights:
        for shift in args.shifts:
            model = shift_logit(load_weights(resolve_weights(name)), "haze", shift)
            restorer = Restorer(model=model, precision="fp32")
            read = torch.tensor([restorer.explain(x)["haze"] for x in photos])
            on_hazy = sum(restorer.explain(y)["haze"] for y in hazy) / len(hazy)
            fade = restorer.explain(faded)["haze"]
            kept = psnr(restorer.restore_tensor(faded).clamp(0, 1), faded)
            print(
                f"| {name} | {shift:+g} | {int((read > 0.3).sum())} / {len(read)} | {int((read > 0.5).sum())} | "
                f"{on_hazy:.2f} | {fade:.2f}, {kept:.1f} dB |",
                flush=True,
            )


if __name__ == "__main__":
    main()
