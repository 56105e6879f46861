"""Gradient explanations: how much does the target logit change when one pixel changes?

* :func:`saliency`              ``|d y_c / d x|``                       (Simonyan, Vedaldi & Zisserman, 2014)
* :func:`smoothgrad`            saliency averaged over noisy copies      (Smilkov et al., 2017)
* :func:`integrated_gradients`  gradients integrated along a straight path from a baseline (Sundararajan et al., 2017)

``y_c`` is the logit (pre-softmax score) of the target class ``c``, as in the papers: the softmax couples all
classes, so its gradient also says "make the other classes smaller". ``target=None`` means the predicted class.
All three return ``(B, C, H, W)`` maps, one value per pixel and channel; sum over channels to plot one heat map.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._rng import generator, normal, uniform
from .._validate import check_images, check_in, check_logits, check_model
from ..corruptions import corrupt
from ._common import as_baseline, check_batch_size, target_from_logits, target_gradient

__all__ = ["saliency", "smoothgrad", "integrated_gradients", "quadrature", "QUADRATURE_METHODS", "ig_baselines"]


def saliency(model: nn.Module, x: torch.Tensor, target=None) -> torch.Tensor:
    """Vanilla gradient saliency (Simonyan, Vedaldi & Zisserman, ICLR workshop 2014)::

        S_c(x) = | d y_c(x) / d x |

    Args:
        model: classifier mapping ``[0, 1]`` images to logits, in eval mode.
        x: images ``(B, C, H, W)``, float in ``[0, 1]``.
        target: class ``c`` per image: ``None`` (default) = the predicted class, an int, or a LongTensor ``(B,)``.

    Returns:
        ``(B, C, H, W)`` absolute gradients of the target logit, detached, on ``x``'s device. (The paper takes
        the maximum over colour channels for its pictures; ``.amax(1)`` does that.)
    """
    check_images(x)
    check_model(model, x)
    grad, _, _ = target_gradient(model, x, target)
    return grad.abs()


def smoothgrad(model: nn.Module, x: torch.Tensor, target=None, sigma: float = 0.15, n_samples: int = 50,
               seed=None, batch_size: int | None = None) -> torch.Tensor:
    """SmoothGrad (Smilkov et al., 2017): the saliency map averaged over noisy copies of the image::

        SG_c(x) = 1/n  sum_{i=1..n}  | d y_c / d x (x + e_i) |,      e_i ~ N(0, sigma^2 I)

    The noise cancels the high-frequency ups and downs of the gradient that make plain saliency look speckled.
    The paper's ``M_c`` is the signed gradient, made absolute for display after averaging; like Captum's
    ``NoiseTunnel`` over ``Saliency`` (``abs=True``) we average the absolute values, the saliency map of
    :func:`saliency`.

    Args:
        model: classifier mapping ``[0, 1]`` images to logits, in eval mode.
        x: images ``(B, C, H, W)``, float in ``[0, 1]``.
        target: ``None`` (default) = the class predicted for the clean ``x``; an int; or a LongTensor ``(B,)``.
        sigma: noise standard deviation in pixel units (default 0.15, i.e. 15 % of the ``[0, 1]`` range, the
            paper's recommended 10-20 %). The noisy images are not clipped to ``[0, 1]``.
        n_samples: number of noisy copies per image (default 50, as in the paper).
        seed: the noise's randomness: ``None`` (fresh, from torch's global RNG), an int or a ``torch.Generator``
            (see :mod:`course_lib._rng`). The same seed (and the same ``batch_size``) gives the same result.
        batch_size: images per forward pass, so memory stays bounded whatever ``n_samples`` is (at least the
            ``B`` images of one noise sample); ``None`` (default) = about 2^20 input values per pass.

    Returns:
        ``(B, C, H, W)`` mean absolute gradient, detached, on ``x``'s device.
    """
    check_images(x)
    check_model(model, x)
    batch_size = check_batch_size(batch_size, x)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    if not float(sigma) >= 0.0:
        raise ValueError(f"sigma must be >= 0 (noise standard deviation in pixel units), got {sigma!r}")
    g = generator(seed)
    with torch.no_grad():
        target = target_from_logits(check_logits(model(x), x.shape[0]), target)
    b = x.shape[0]
    per_pass = max(1, batch_size // b)  # noise samples per forward pass
    total = torch.zeros_like(x)
    for start in range(0, n_samples, per_pass):
        k = min(per_pass, n_samples - start)
        noise = normal((k, *x.shape), g, x.device, x.dtype)
        noisy = (x.unsqueeze(0) + sigma * noise).flatten(0, 1)
        grad, _, _ = target_gradient(model, noisy, target.repeat(k))
        total += grad.abs().view(k, *x.shape).sum(0)
    return total / n_samples


# --------------------------------------------------------------------------- Integrated Gradients
QUADRATURE_METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


def quadrature(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points ``a_i`` in ``[0, 1]`` and weights ``w_i`` with ``int_0^1 g(a) da  ~  sum_i w_i g(a_i)``.

    * ``"gausslegendre"``: Gauss-Legendre nodes and weights mapped from ``[-1, 1]`` to ``[0, 1]`` (exact for
      polynomials of degree ``2 steps - 1``; Captum's default).
    * ``"riemann_left"`` / ``"riemann_right"`` / ``"riemann_middle"``: ``a_i = (i + 0, 1 or 1/2) / steps``,
      ``w_i = 1 / steps``, ``i = 0 .. steps - 1`` (the same points and weights as Captum).
    * ``"riemann_trapezoid"``: ``a_i = i / (steps - 1)``, ``w = (1/2, 1, ..., 1, 1/2) / (steps - 1)``: the
      trapezoidal rule, whose weights sum to 1. (Captum uses the same points with weights ``(1/2, 1, ..., 1/2)
      / steps``, which sum to ``1 - 1/steps``: its result is ours times ``(steps - 1) / steps``.)

    Returns float64 numpy arrays ``(alphas, weights)`` of length ``steps``.
    """
    check_in(method, QUADRATURE_METHODS, "method")
    least = 2 if method == "riemann_trapezoid" else 1
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < least:
        raise ValueError(f"steps must be an int >= {least} for method {method!r}, got {steps!r}")
    n = steps
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return 0.5 * (nodes + 1.0), 0.5 * weights
    if method == "riemann_trapezoid":
        weights = np.full(n, 1.0 / (n - 1))
        weights[[0, -1]] /= 2
        return np.arange(n) / (n - 1), weights
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
    return (np.arange(n) + offset) / n, np.full(n, 1.0 / n)


def integrated_gradients(model: nn.Module, x: torch.Tensor, target=None, baseline=None, steps: int = 50,
                         method: str = "gausslegendre", batch_size: int | None = None,
                         return_delta: bool = False):
    """Integrated Gradients (Sundararajan, Taly & Yan, ICML 2017)::

        IG_i(x) = (x_i - x'_i) * int_0^1  d y_c(x' + a (x - x')) / d x_i  da
                ~ (x_i - x'_i) * sum_k w_k  d y_c(x' + a_k (x - x')) / d x_i

    Completeness: ``sum_i IG_i(x) = y_c(x) - y_c(x')`` up to the quadrature error, so the attributions
    split the change of the target logit between the baseline ``x'`` and ``x`` among the pixels.

    Args:
        model: classifier mapping ``[0, 1]`` images to logits, in eval mode.
        x: images ``(B, C, H, W)``, float in ``[0, 1]``.
        target: ``None`` (default) = the class predicted for ``x``; an int; or a LongTensor ``(B,)``.
        baseline: the reference image ``x'``: ``None`` (default) = black (zeros), a float (a grey level), or a
            tensor broadcastable to ``x`` (e.g. ``(C, 1, 1)`` or ``(B, C, H, W)``), values in ``[0, 1]``.
        steps: number of points on the path (default 50).
        method: the quadrature rule, see :func:`quadrature` (default ``"gausslegendre"``, as Captum's).
        batch_size: path images per forward pass (at least the ``B`` images of one point); ``None`` (default) =
            about 2^20 input values per pass.
        return_delta: also return the completeness gap ``sum_i IG_i - (y_c(x) - y_c(x'))`` per image ``(B,)``.

    Returns:
        ``(B, C, H, W)`` attributions (signed), detached, on ``x``'s device; with ``return_delta`` the pair
        ``(attributions, delta)``.
    """
    check_images(x)
    check_model(model, x)
    batch_size = check_batch_size(batch_size, x)
    alphas, weights = quadrature(method, steps)
    base = as_baseline(0.0 if baseline is None else baseline, x)
    with torch.no_grad():
        if target is None or return_delta:
            logits = check_logits(model(x), x.shape[0])
            target = target_from_logits(logits, target)
        else:  # the target is given: one image's logits suffice to check it (the path costs enough passes)
            one = check_logits(model(x[:1]), 1)
            target = target_from_logits(one.expand(x.shape[0], -1), target)
    # float64 numpy -> x's dtype on the CPU, then to x's device (some devices, MPS, have no float64)
    alphas = torch.as_tensor(alphas).to(x.dtype).to(x.device)
    weights = torch.as_tensor(weights).to(x.dtype).to(x.device)
    diff = x - base
    b = x.shape[0]
    per_pass = max(1, batch_size // b)  # path points per forward pass
    path_grad = torch.zeros_like(x)
    for start in range(0, steps, per_pass):
        a, w = alphas[start:start + per_pass], weights[start:start + per_pass]
        k = len(a)
        points = (base.unsqueeze(0) + a.view(k, 1, 1, 1, 1) * diff.unsqueeze(0)).flatten(0, 1)
        grad, _, _ = target_gradient(model, points, target.repeat(k))
        path_grad += (w.view(k, 1, 1, 1, 1) * grad.view(k, *x.shape)).sum(0)
    attributions = diff * path_grad
    if not return_delta:
        return attributions
    with torch.no_grad():
        gap = logits.gather(1, target[:, None]).squeeze(1) - model(base).gather(1, target[:, None]).squeeze(1)
    return attributions, attributions.flatten(1).sum(1) - gap


def ig_baselines(x: torch.Tensor, blur_severity: int = 5, seed=0) -> dict:
    """Three baselines ``x'`` for Integrated Gradients (compared by Sturmfels, Lundberg & Lee, Distill 2020)::

        "black":          x' = 0
        "blurred":        x' = G_s * x   (course_lib.corruptions.gaussian_blur at ``blur_severity``, default 5)
        "uniform noise":  x' ~ U[0, 1]^{B x C x H x W}   (one draw)

    The black image is the usual "absence of signal"; the blurred copy keeps the coarse layout, so IG attributes
    the detail the blur removed; uniform noise has no structure and no special pixel value.

    Args:
        x: images ``(B, C, H, W)`` in ``[0, 1]``.
        blur_severity: severity 1..5 of the blur (default 5, the strongest).
        seed: the noise's randomness (default 0): an int, ``None`` or a ``torch.Generator`` (see
            :mod:`course_lib._rng`); drawn on the CPU, so the same seed gives the same baseline on every device.

    Returns:
        ``{"black", "blurred", "uniform noise"}`` -> tensors of ``x``'s shape, dtype and device.
    """
    check_images(x)
    noise = uniform(x.shape, generator(seed), dtype=x.dtype).to(x.device)
    return {"black": torch.zeros_like(x), "blurred": corrupt(x.detach(), "gaussian_blur", blur_severity),
            "uniform noise": noise}
