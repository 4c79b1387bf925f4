"""Degradations: seeded, composable operators on (B, C, H, W) images in [0, 1].

Importing the package registers every spec name (see `REGISTRY`); `parse_spec("a:k=v+b")` builds them.
"""

from sirestore.degrade.base import REGISTRY, Compose, Degradation, Params, SpecError, parse_one, parse_spec
from sirestore.degrade.blur import GaussianBlur, MotionBlur
from sirestore.degrade.clean import Clean
from sirestore.degrade.inpaint import Inpaint
from sirestore.degrade.jpeg import JPEG
from sirestore.degrade.kernels import bicubic_kernel, gaussian_kernel, levin_kernel, load_kernel, random_motion_kernel
from sirestore.degrade.noise import AWGN, PoissonGaussian, Speckle
from sirestore.degrade.operators import BlurOperator, DownsampleOperator, Identity, LinearOperator, MaskOperator
from sirestore.degrade.resize import SR
from sirestore.degrade.weather import Haze, LowLight, Rain

__all__ = [
    "AWGN",
    "JPEG",
    "REGISTRY",
    "SR",
    "BlurOperator",
    "Clean",
    "Compose",
    "Degradation",
    "DownsampleOperator",
    "GaussianBlur",
    "Haze",
    "Identity",
    "Inpaint",
    "LinearOperator",
    "LowLight",
    "MaskOperator",
    "MotionBlur",
    "Params",
    "PoissonGaussian",
    "Rain",
    "SpecError",
    "Speckle",
    "bicubic_kernel",
    "gaussian_kernel",
    "levin_kernel",
    "load_kernel",
    "parse_one",
    "parse_spec",
    "random_motion_kernel",
]
