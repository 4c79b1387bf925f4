"""Plug-and-play restoration (half-quadratic splitting, as in DPIR) with our network as the denoiser,
for non-blind deblurring and super-resolution with a given kernel, and its kernel-error variant.

HQS for min_x ||A x - y||^2 / (2 sigma^2) + prior(x), with a prior level s_k that decreases geometrically
from `start` (49/255, DPIR's) to `end` (default: sigma, at least 1/255) over the iterations:

    x_{k+1} = argmin_x ||A x - y||^2 / (2 sigma^2) + ||x - z_k||^2 / (2 rho_k^2),  rho_k = s_k / sqrt(lam)
    z_{k+1} = D(x_{k+1} + s_k e_k),  e_k ~ N(0, I) from the seeded generator

`lam` = 0.23 is DPIR's weight for deblurring; sigma is floored at 0.5/255 (uint8 quantisation) so the data
step stays a regularised solve. The network D is blind: it has no noise-level input and estimates the noise
from its input. DPIR tells its denoiser the level s_k; here, as in DiffPIR, the data-step output is re-noised
to level s_k with fresh Gaussian noise, which then dominates the structured error left by the data step, so
D removes noise of about level s_k: strong smoothing in the first iterations, little at the end. The noise
comes from `gen`, so a seed fixes the result.

Kernel-error variant (`refine_kernel`): the given kernel k0 is off by an unknown error h, y = A_{k0 + h} x.
After each denoising step the kernel is re-estimated from the current image z by regularised least squares
on k0's support, with the residual weighted in the gradient domain (D = horizontal and vertical differences):
    k = argmin_k ||D (A_k z - y)||^2 + beta ||k - k0||^2,
then projected onto non-negative kernels summing to 1 (small values cut). A_k z is linear in k and is computed with the
operator's FFTs (valid or circular, blur or blur + downsampling); its adjoint comes from autograd and the
normal equations are solved by conjugate gradients (`update_kernel`). The support constraint matters: a
per-frequency closed form (every Fourier coefficient free) fits the noise of y and drifts on real photos.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from sirestore.consistency import proximal
from sirestore.degrade.boundary import pcg
from sirestore.degrade.operators import LinearOperator

Denoiser = Callable[[torch.Tensor], torch.Tensor]
SIGMA_FLOOR = 0.5 / 255  # uint8 quantisation noise is about 0.29 / 255


@dataclass
class PnPResult:
    """What `pnp_hqs` returns."""

    x: torch.Tensor  # the restoration z_N on the operator's x grid (B, C, H', W')
    kernel: torch.Tensor | None  # the kernel of the last iteration (refined or as given)
    residuals: list[float] = field(default_factory=list)  # RMS of A x_k - y after each data step


def noise_levels(iters: int, start: float, end: float) -> list[float]:
    """Prior levels s_1 > ... > s_N, geometric from start to end: (iters,)."""
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    if iters == 1:
        return [end]
    return [start * (end / start) ** (i / (iters - 1)) for i in range(iters)]


def laplacian(u: torch.Tensor) -> torch.Tensor:
    """D^T D u for the circular horizontal and vertical first differences D (the 5-point -Laplacian)."""
    return 4 * u - u.roll(1, -1) - u.roll(-1, -1) - u.roll(1, -2) - u.roll(-1, -2)


def update_kernel(
    make_op: Callable[[torch.Tensor], LinearOperator],
    z: torch.Tensor,
    y: torch.Tensor,
    k0: torch.Tensor,
    reg: float = 1e-3,
    iters: int = 50,
    cut: float = 0.05,
) -> torch.Tensor:
    """The kernel step: argmin over kernels k on k0's support of ||D (A_k z - y)||^2 + beta ||k - k0||^2,
    then projected onto non-negative kernels summing to 1, values below `cut` times the peak set to 0 (as in
    Cho & Lee 2009; noise otherwise spreads small positive mass over the support); k0 (kh, kw) or (B, kh, kw).

    A_k z is linear in k; its adjoint is the gradient by autograd through the operator's FFTs. The normal
    equations for h = k - k0 are solved by conjugate gradients; beta = reg * the diagonal of L^T D^T D L."""
    z = z.detach()

    def forward(k: torch.Tensor) -> torch.Tensor:
        return make_op(k).A(z)

    def adjoint(u: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            k = torch.zeros_like(k0, requires_grad=True)
            return torch.autograd.grad(forward(k), k, u)[0]

    delta = torch.zeros_like(k0)
    delta[..., k0.shape[-2] // 2, k0.shape[-1] // 2] = 1
    a_delta = forward(delta)
    beta = reg * float((a_delta * laplacian(a_delta)).sum()) / (1 if k0.dim() == 2 else k0.shape[0])
    rhs = adjoint(laplacian(y.to(z.dtype) - forward(k0)))
    h = pcg(lambda v: adjoint(laplacian(forward(v))) + beta * v, rhs, lambda v: v, iters)
    k = (k0 + h).clamp_min(0)
    k = torch.where(k >= cut * k.amax(dim=(-2, -1), keepdim=True), k, 0)
    total = k.sum(dim=(-2, -1), keepdim=True)
    return torch.where(total > 0, k / total.clamp_min(1e-30), k0)


def pnp_hqs(
    denoise: Denoiser,
    make_op: Callable[[torch.Tensor | None], LinearOperator],
    y: torch.Tensor,
    x_init: torch.Tensor,
    kernel: torch.Tensor | None = None,
    iters: int = 8,
    sigma: float = 0.0,
    gen: torch.Generator | None = None,
    start: float = 49 / 255,
    end: float | None = None,
    lam: float = 0.23,
    refine_kernel: bool = False,
    kernel_reg: float = 1e-3,
) -> PnPResult:
    """Run `iters` HQS iterations from x_init (B, C, H', W') for y (B, C, H, W); see the module docstring.

    `make_op(kernel)` builds the operator (the kernel changes when refined); sigma, start and end are in
    [0, 1] units. Returns z_N, the last kernel and the data residuals."""
    if refine_kernel and kernel is None:
        raise ValueError("kernel refinement needs a kernel")
    sigma_eff = max(sigma, SIGMA_FLOOR)
    levels = noise_levels(iters, start, max(sigma, 1 / 255) if end is None else end)
    z, k, residuals = x_init, kernel, []
    for level in levels:
        op = make_op(k)
        x = proximal(op, y, sigma_eff, level / math.sqrt(lam))(z)
        residuals.append(float((op.A(x) - y).pow(2).mean().sqrt()))
        noise = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        z = denoise(x + level * noise)
        if refine_kernel:
            k = update_kernel(make_op, z, y, kernel, kernel_reg)
    return PnPResult(x=z, kernel=k, residuals=residuals)
