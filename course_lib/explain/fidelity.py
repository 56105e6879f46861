"""Fidelity: does the map point at what the model uses? Take the pixels away (or put them back) in the map's order
and watch the class score.

* :func:`deletion_auc`, :func:`insertion_auc`  (Petsiuk, Das & Saenko, RISE, BMVC 2018)
* :func:`selectivity`  how much of the map's mass its top pixels hold (the concentration deletion rewards)
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .._blur import gaussian_blur
from .._validate import check_in
from ._common import prepare_target

__all__ = ["deletion_auc", "insertion_auc", "selectivity", "first_crossing"]


def _pixel_scores(attribution, x: torch.Tensor) -> torch.Tensor:
    """Attribution as one score per pixel (B, H*W): (B, H, W) as is, (B, C, H, W) summed over channels."""
    b, _, h, w = x.shape
    if not isinstance(attribution, torch.Tensor):
        raise TypeError(f"attribution must be a tensor (B, H, W) or (B, C, H, W), got {type(attribution).__name__}")
    a = attribution.detach()
    if a.dim() == 4:
        a = a.sum(1)
    if a.dim() != 3 or tuple(a.shape) != (b, h, w):
        raise ValueError(f"attribution must have shape ({b}, {h}, {w}) or ({b}, C, {h}, {w}) to match x "
                         f"{tuple(x.shape)}, got {tuple(attribution.shape)}")
    if not torch.isfinite(a).all():
        raise ValueError("attribution contains NaN or infinite values")
    # the map's own dtype (no float64 on the device: MPS has none); only the order of the scores matters
    a = a.reshape(b, h * w).to(x.device)
    return a if a.is_floating_point() else a.long()


def _fill(value, x: torch.Tensor, name: str, blur_sigma: float) -> torch.Tensor:
    """The image that replaces (deletion) or starts (insertion): a float, a tensor broadcastable to x, or "blur"."""
    if isinstance(value, str):
        check_in(value, {"blur"}, name)
        return gaussian_blur(x, blur_sigma, truncate=2.0, border="replicate")
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise TypeError(f"{name} must be a float, a tensor or 'blur', got {type(value).__name__}")
    v = torch.as_tensor(value, dtype=x.dtype).to(x.device)  # dtype first: MPS has no float64
    try:
        v = torch.broadcast_to(v, x.shape)
    except RuntimeError:
        raise ValueError(f"{name} must broadcast to x's shape {tuple(x.shape)}, got shape {tuple(v.shape)}") from None
    if not torch.isfinite(v).all() or float(v.min()) < 0 or float(v.max()) > 1:
        raise ValueError(f"{name} must have values in [0, 1] (the model's input range)")
    return v


def _perturbation_curve(model, x, attribution, target, steps, fill, insert, output, batch_size, blur_sigma,
                        return_curves):
    target = prepare_target(model, x, target)
    check_in(output, {"probability", "logit"}, "output")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    scores = _pixel_scores(attribution, x)
    b, c, h, w = x.shape
    n = h * w
    other = _fill(fill, x, "start" if insert else "baseline", blur_sigma)
    # rank[b, p] = position of pixel p in the order "most important first"; a stable sort of -score breaks
    # ties by pixel index (row-major), so the result never depends on the sorting algorithm
    order = torch.sort(-scores, dim=1, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n, device=x.device).expand(b, n))
    # stage k changes the first round(k n / steps) pixels of the order: steps equal stages
    counts = torch.tensor([round(k * n / steps) for k in range(steps + 1)], device=x.device)

    curves = torch.empty(b * (steps + 1), dtype=x.dtype, device=x.device)
    with torch.no_grad():
        for start in range(0, b * (steps + 1), batch_size):
            idx = torch.arange(start, min(start + batch_size, b * (steps + 1)), device=x.device)
            img, stage = idx // (steps + 1), idx % (steps + 1)
            changed = (rank[img] < counts[stage][:, None]).view(-1, 1, h, w)  # True = already deleted/inserted
            if insert:
                batch = torch.where(changed, x[img], other[img])
            else:
                batch = torch.where(changed, other[img], x[img])
            logits = model(batch)
            values = logits.softmax(1) if output == "probability" else logits
            curves[idx] = values.gather(1, target[img][:, None]).squeeze(1).to(x.dtype)
    curves = curves.view(b, steps + 1)
    auc = torch.trapezoid(curves, dx=1.0 / steps, dim=1)
    return (auc, curves) if return_curves else auc


def deletion_auc(model: nn.Module, x: torch.Tensor, attribution: torch.Tensor, target=None, steps: int = 25, *,
                 baseline=0.0, output: str = "probability", batch_size: int = 64, blur_sigma: float = 5.0,
                 return_curves: bool = False):
    """Deletion metric of RISE (Petsiuk, Das & Saenko, BMVC 2018): lower is better.

    Pixels are ranked by the attribution (most important first). Stage k = 0..steps sets the first
    n_k = round(k N / steps) of the N pixels (all channels) to the baseline, and records
    p_k = softmax(model(x_k))[target]. With fractions f_k = k / steps::

        AUC = sum_k (f_{k+1} - f_k) (p_k + p_{k+1}) / 2        (trapezoid rule over [0, 1])

    A faithful map removes the evidence first, so the score drops fast and the area is small.

    Args:
        model: classifier in eval mode taking [0, 1] images.
        x: images (B, C, H, W) in [0, 1].
        attribution: (B, H, W) or (B, C, H, W) (summed over channels, signed), larger = more important.
            Ties are broken by pixel index (row-major), deterministically.
        target: class per image; None = the class the model predicts for x.
        steps: number of equal stages (default 25: 4% of the pixels each); the curve has steps + 1 points.
        baseline: what deleted pixels become: a float (default 0: black), a tensor broadcastable to x, or
            ``"blur"`` (a Gaussian-blurred copy of x with ``blur_sigma``).
        output: ``"probability"`` (softmax of the target, default, as in RISE) or ``"logit"``.
        batch_size: perturbed images per forward pass (default 64). No gradients are computed.
        blur_sigma: sigma in pixels of the ``"blur"`` image (default 5, as in RISE at 224 x 224).
        return_curves: also return the curves (B, steps + 1), point k at fraction k / steps.

    Returns:
        AUC (B,) detached on x's device, or ``(auc, curves)``. The curve starts at the score of x itself.
    """
    return _perturbation_curve(model, x, attribution, target, steps, baseline, False, output, batch_size,
                               blur_sigma, return_curves)


def insertion_auc(model: nn.Module, x: torch.Tensor, attribution: torch.Tensor, target=None, steps: int = 25, *,
                  start="blur", output: str = "probability", batch_size: int = 64, blur_sigma: float = 5.0,
                  return_curves: bool = False):
    """Insertion metric of RISE (Petsiuk, Das & Saenko, BMVC 2018): higher is better.

    The mirror of :func:`deletion_auc`: stage k = 0..steps starts from ``start`` (default: a blurred copy of x,
    so the image does not start out of distribution) and puts back the first n_k = round(k N / steps) pixels
    of x in order of importance; p_k = softmax(model(x_k))[target]; AUC by the trapezoid rule over
    f_k = k / steps in [0, 1]. A faithful map restores the evidence first, so the score rises fast.

    Args: as :func:`deletion_auc`, with ``start`` (a float, a tensor broadcastable to x, or ``"blur"``,
    the default) in place of ``baseline``.

    Returns:
        AUC (B,) detached on x's device, or ``(auc, curves)``. The curve ends at the score of x itself.
    """
    return _perturbation_curve(model, x, attribution, target, steps, start, True, output, batch_size,
                               blur_sigma, return_curves)


def selectivity(attribution: torch.Tensor, top: float = 0.05) -> torch.Tensor:
    """Fraction of the attribution mass in the most important pixels::

        S = sum of the k largest |a_p|  /  sum_p |a_p|,   k = ceil(top * N),  N pixels

    where a_p is the attribution of pixel p (channels summed first for (B, C, H, W)). 1: all mass in the
    top pixels (a focused map); ``top``: spread evenly. NaN for an all-zero map.

    Args:
        attribution: (B, ...) maps: (B, H, W), (B, C, H, W) (summed over channels), or any (B, N).
        top: fraction of the pixels counted (default 0.05), in (0, 1].

    Returns:
        (B,) detached on the attribution's device.
    """
    if not isinstance(attribution, torch.Tensor) or attribution.dim() < 2:
        raise ValueError("attribution must be a tensor (B, ...) such as (B, H, W) or (B, C, H, W)")
    if not (isinstance(top, (int, float)) and 0 < top <= 1):
        raise ValueError(f"top must be a fraction in (0, 1], got {top!r}")
    a = attribution.detach()
    a = a.sum(1) if a.dim() == 4 else a
    mass = a.reshape(a.shape[0], -1).abs().cpu().double()  # float64 on the CPU (MPS has no float64)
    k = max(1, math.ceil(top * mass.shape[1] - 1e-9))
    s = mass.topk(k, dim=1).values.sum(1) / mass.sum(1)
    return s.to(a.dtype if a.is_floating_point() else torch.float32).to(a.device)


def first_crossing(curve, fractions, threshold: float = 0.5, below: bool = True) -> float | None:
    """The first fraction at which a deletion (or insertion) curve has crossed ``threshold``: the smallest
    ``fractions[k]`` with ``curve[k] < threshold`` (``below=True``, deletion: the prediction is lost) or
    ``curve[k] > threshold`` (``below=False``, insertion: it is back); ``None`` if the curve never crosses."""
    curve, fractions = torch.as_tensor(curve).detach().cpu(), torch.as_tensor(fractions).detach().cpu()
    if curve.dim() != 1 or curve.shape != fractions.shape:
        raise ValueError(f"curve and fractions must be 1-D of the same length, got shapes {tuple(curve.shape)} "
                         f"and {tuple(fractions.shape)}")
    hit = ((curve < threshold) if below else (curve > threshold)).nonzero().flatten()
    return float(fractions[hit[0]]) if len(hit) else None
