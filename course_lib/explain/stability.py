"""Stability: does the map stay put when nothing that matters changes?

* :func:`max_sensitivity`  the largest change of the map over tiny random changes of x (Yeh et al., NeurIPS 2019)
* :func:`rank_correlation` Spearman's correlation of two maps, per image: the same map from another model, seed or
  perturbation (consistency); :mod:`.sanity` uses it to compare maps before and after randomising the weights
"""
from __future__ import annotations

import math

import torch

from .._rng import generator, uniform
from .._validate import check_images

__all__ = ["max_sensitivity", "rank_correlation", "spearman"]


def max_sensitivity(explain_fn, x: torch.Tensor, radius: float = 0.02, n_samples: int = 10, seed=None):
    """Max-sensitivity (Yeh, Hsieh, Suggala, Inouye & Ravikumar, NeurIPS 2019), normalised::

        SENS_max(x) = max_{j=1..n_samples} || Phi(x + d_j) - Phi(x) ||_2 / || Phi(x) ||_2,
        d_j ~ Uniform[-radius, radius]^(C x H x W), x + d_j clipped to [0, 1]

    Lower is more stable. Dividing by ||Phi(x)|| makes methods with maps of different scale comparable; Yeh et
    al. define the unnormalised change, Captum's ``sensitivity_max`` divides by the clean map's norm as here
    (it does not clip ``x + d_j``, and divides by 1 where ``Phi(x) = 0``). Here 0/0 counts as 0 and c/0 (c > 0)
    as inf.

    Args:
        explain_fn: ``explain_fn(images) -> attribution`` of shape (B, ...). It is called on perturbed images,
            so fix the target to the clean image's class yourself, e.g.
            ``t = model(x).argmax(1); explain_fn = lambda z: saliency(model, z, target=t)``;
            otherwise a perturbation that flips the prediction explains another class.
        x: images (B, C, H, W) in [0, 1].
        radius: half-width of the L-infinity ball of perturbations (default 0.02, about 5/255).
        n_samples: number of random perturbations, each one call of explain_fn on the whole batch (default 10).
        seed: the perturbations' randomness: ``None`` (fresh, from torch's global RNG), an int or a
            ``torch.Generator`` (see :mod:`course_lib._rng`); the same seed gives the same perturbations.

    Returns:
        (B,) detached on x's device.
    """
    check_images(x)
    if not (isinstance(radius, (int, float)) and radius >= 0):
        raise ValueError(f"radius must be a non-negative number, got {radius!r}")
    if not isinstance(n_samples, int) or isinstance(n_samples, bool) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    gen = generator(seed)
    b = x.shape[0]

    def explain(z):
        a = explain_fn(z)
        if not isinstance(a, torch.Tensor) or a.dim() < 1 or a.shape[0] != b:
            raise ValueError(f"explain_fn must return a tensor (B, ...) with B = {b}, got "
                             f"{tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__}")
        return a.detach().reshape(b, -1).cpu().double()  # the statistics in float64 on the CPU (MPS has none)

    phi = explain(x.clone())
    norm = phi.norm(dim=1)
    worst = torch.zeros(b, dtype=torch.float64)
    for _ in range(n_samples):
        # drawn on the CPU so the same seed gives the same perturbations on every device
        delta = (2 * uniform(x.shape, gen, dtype=torch.float64) - 1) * radius
        z = (x + delta.to(x.dtype).to(x.device)).clamp(0, 1)
        diff = explain(z)
        if diff.shape != phi.shape:
            raise ValueError(f"explain_fn returned shape {tuple(diff.shape)} on a perturbed x but "
                             f"{tuple(phi.shape)} on x")
        diff = (diff - phi).norm(dim=1)
        ratio = torch.where(norm > 0, diff / norm.clamp_min(1e-300),
                            torch.where(diff > 0, torch.full_like(diff, math.inf), torch.zeros_like(diff)))
        worst = torch.maximum(worst, ratio)
    return worst.to(x.dtype).to(x.device)


# --------------------------------------------------------------------------- rank statistics
def _average_ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 1..N of each row of ``v`` (B, N), tied values sharing the average of their ranks (as scipy)."""
    b, n = v.shape
    sorted_v, order = torch.sort(v, dim=1, stable=True)
    new_group = torch.ones_like(sorted_v, dtype=torch.bool)
    new_group[:, 1:] = sorted_v[:, 1:] != sorted_v[:, :-1]
    group = new_group.cumsum(1) - 1 + torch.arange(b, device=v.device)[:, None] * n  # unique id per row
    pos = torch.arange(1, n + 1, device=v.device, dtype=torch.float64).expand(b, n).reshape(-1)
    # a group of ties occupies consecutive positions first..last: each gets (first + last) / 2
    first = torch.full((b * n,), math.inf, dtype=torch.float64, device=v.device)
    last = torch.full((b * n,), -math.inf, dtype=torch.float64, device=v.device)
    first.scatter_reduce_(0, group.reshape(-1), pos, reduce="amin")
    last.scatter_reduce_(0, group.reshape(-1), pos, reduce="amax")
    avg = ((first + last) / 2)[group.reshape(-1)].view(b, n)
    ranks = torch.empty_like(avg)
    ranks.scatter_(1, order, avg)
    return ranks


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation per image between two maps of equal shape (B, ...) (Spearman, 1904)::

        rho = Pearson(rank(a), rank(b)),   ties get the average of their ranks

    as ``scipy.stats.spearmanr``. 1: same order of importance; 0: unrelated; NaN where a map is constant
    (its ranks have no variance), as scipy.

    Returns:
        (B,) detached on a's device, dtype float64 arithmetic cast to a's float dtype (float32 for integers).
    """
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor) or t.dim() < 2:
            raise ValueError(f"{name} must be a tensor (B, ...) with at least one value per image, got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.device != b.device:
        raise ValueError(f"a is on {a.device} and b on {b.device}: put both on one device")
    if a[0].numel() < 2:
        raise ValueError("a rank correlation needs at least 2 values per image")
    # ranks and correlation in float64 on the CPU (some devices, MPS, have no float64)
    ra = _average_ranks(a.detach().reshape(a.shape[0], -1).cpu().double())
    rb = _average_ranks(b.detach().reshape(b.shape[0], -1).cpu().double())
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    rho = (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))
    return rho.to(a.dtype if a.is_floating_point() else torch.float32).to(a.device)


def spearman(a: torch.Tensor, b: torch.Tensor, keep=None) -> float:
    """Spearman's rho between two vectors of values (e.g. the players' values of two explanations), as a float:
    :func:`rank_correlation` of ``a`` and ``b`` flattened, on the entries where the bool ``keep`` is True if
    given (e.g. only the patches with ink)."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise TypeError("a and b must be tensors")
    a, b = a.flatten(), b.flatten()
    if keep is not None:
        keep = torch.as_tensor(keep, device=a.device).flatten()
        if keep.dtype != torch.bool or keep.shape != a.shape:
            raise ValueError(f"keep must be a bool tensor with one entry per value ({a.numel()}), got "
                             f"{keep.dtype} of shape {tuple(keep.shape)}")
        a, b = a[keep], b[keep.to(b.device)]
    return float(rank_correlation(a[None], b[None])[0])
