"""Randomised smoothing (Cohen, Rosenfeld & Kolter, "Certified Adversarial Robustness via Randomized Smoothing",
ICML 2019): a certificate in the L2 norm for *any* classifier, obtained by voting over Gaussian noise.

The base classifier ``f`` (the model's arg-max) becomes the smoothed classifier::

    g(x) = argmax_c  P( f(x + e) = c ),        e ~ N(0, sigma^2 I)

If the top class ``c_A`` has probability ``p_A`` and every other class at most ``p_B``, then ``g`` predicts ``c_A``
everywhere in the L2 ball of radius ``R = sigma/2 (Phi^-1(p_A) - Phi^-1(p_B))`` around ``x`` (Theorem 1); with the
bound ``p_B <= 1 - p_A`` this is ``R = sigma Phi^-1(p_A)``. The probabilities are not known exactly, so both
functions here estimate them by Monte Carlo and say how sure they are:

* :func:`smoothed_predict`  PREDICT: the top class if a two-sided binomial test of the top two vote counts rejects
                            "they are equally likely" at level ``alpha``, else abstain (``-1``);
* :func:`smoothed_certify`  CERTIFY: pick ``c_A`` from ``n0`` votes, bound ``p_A`` from below with ``n`` fresh votes
                            (a one-sided Clopper-Pearson bound), certify ``R = sigma Phi^-1(p_A_lower)`` if
                            ``p_A_lower > 1/2``, else abstain.

The noisy images ``x + e`` are *not* clipped to ``[0, 1]``: the theorem is about the Gaussian measure, and clipping
would change it (the paper and its reference code, github.com/locuslab/smoothing, do not clip either).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import beta, binomtest, norm
from torch import nn

from .._batches import check_batch_size
from .._rng import generator, normal
from .._validate import check_count, check_images, check_logits, check_model

__all__ = ["smoothed_predict", "smoothed_certify", "certified_accuracy_at"]

ABSTAIN = -1

#: noisy images per forward pass when ``batch_size=None``, capped further by :func:`check_batch_size`'s 2^20 input
#: values (6 ImageNet photos). On one CPU thread ``mnist_cnn`` votes 1.9x faster in passes of 256 digits than of
#: 1,337 (CERTIFY with n = 10,000: 1.9 s vs 3.6 s per digit; the activations of a large pass leave the caches);
#: on a GPU 256 MNIST digits a pass is still cheap.
NOISY_PER_PASS = 256


# --------------------------------------------------------------------------- checks and statistics
def _check_sigma(sigma) -> float:
    try:
        s = float(sigma)
    except (TypeError, ValueError):
        raise TypeError(f"sigma must be a positive number (noise standard deviation in pixel units), "
                        f"got {sigma!r}") from None
    if not (np.isfinite(s) and s > 0.0):
        raise ValueError(f"sigma must be a positive finite number (noise standard deviation in pixel units), "
                         f"got {sigma!r}")
    return s


def _check_alpha(alpha) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise TypeError(f"alpha must be a number in (0, 1) (the failure probability), got {alpha!r}") from None
    if not 0.0 < a < 1.0:
        raise ValueError(f"alpha must be in (0, 1) (the failure probability), got {alpha!r}")
    return a


def certified_accuracy_at(labels, radii, y, radius: float) -> float:
    """The certified accuracy at L2 radius ``radius`` of CERTIFY's answers (Cohen et al.'s metric): the fraction of
    images classified correctly *and* certified with a radius of at least ``radius``; an abstention (-1) counts as
    an error. ``labels``, ``radii``, ``y``: tensors or sequences of one entry per image."""
    labels, y = torch.as_tensor(labels), torch.as_tensor(y, device=torch.as_tensor(labels).device)
    radii = torch.as_tensor(radii, dtype=torch.float64, device=labels.device)
    if not labels.shape == radii.shape == y.shape or labels.dim() != 1:
        raise ValueError(f"labels, radii and y must be 1-D of the same length, got {tuple(labels.shape)}, "
                         f"{tuple(radii.shape)}, {tuple(y.shape)}")
    return float(((labels == y) & (radii >= radius)).double().mean())


def lower_confidence_bound(k: int, n: int, alpha: float) -> float:
    """One-sided Clopper-Pearson lower bound on a binomial proportion at level ``1 - alpha``::

        p_lower = B(alpha; k, n - k + 1)     (the alpha-quantile of a Beta distribution),   p_lower = 0 if k = 0

    ``P(p_lower <= p) >= 1 - alpha`` for ``k ~ Binomial(n, p)``, whatever ``p`` is. For ``k = n`` it is
    ``alpha^(1/n)``. (The reference code's ``proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]``.)
    """
    return 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))


def binomial_pvalue(n_a: int, n_b: int) -> float:
    """Two-sided p-value of the binomial test of ``n_a`` successes in ``n_a + n_b`` trials against ``p = 1/2``
    (``scipy.stats.binomtest``; the paper's ``BinomPValue``). ``1.0`` when there are no trials."""
    return 1.0 if n_a + n_b == 0 else float(binomtest(n_a, n_a + n_b, 0.5).pvalue)


# --------------------------------------------------------------------------- the votes
def _votes(model: nn.Module, x: torch.Tensor, sigma: float, num: int, gen: torch.Generator, batch_size: int,
           bar=None) -> torch.Tensor:
    """Counts ``(B, K)`` (int64, CPU) of the base classifier's arg-max over ``num`` noisy copies of each image.

    Images are processed together: ``b = min(B, batch_size)`` images at a time with ``batch_size // b`` noisy
    copies of each per forward pass. The noise is drawn on ``gen``'s device (the CPU) and moved to ``x``'s.
    """
    b_all = x.shape[0]
    chunk = min(b_all, batch_size)
    counts = None
    for i in range(0, b_all, chunk):
        xs = x[i:i + chunk]
        b = xs.shape[0]
        per_pass = max(1, batch_size // b)
        part = None
        for start in range(0, num, per_pass):
            k = min(per_pass, num - start)
            noise = normal((k, *xs.shape), gen, x.device, x.dtype)
            noisy = (xs.unsqueeze(0) + sigma * noise).flatten(0, 1)  # no clipping: the theorem needs the Gaussian
            logits = check_logits(model(noisy), k * b)
            pred = logits.argmax(1).view(k, b).T  # (b, k): image-major
            if part is None:
                part = torch.zeros(b, logits.shape[1], dtype=torch.long, device=x.device)
            part.scatter_add_(1, pred, torch.ones_like(pred))
            if bar is not None:
                bar.update(k * b)
        if counts is None:
            counts = torch.zeros(b_all, part.shape[1], dtype=torch.long)
        counts[i:i + b] = part.cpu()
    return counts


def _setup(model, x, sigma, alpha, batch_size):
    check_images(x)
    check_model(model, x)
    auto = batch_size is None
    batch_size = check_batch_size(batch_size, x)
    return _check_sigma(sigma), _check_alpha(alpha), min(batch_size, NOISY_PER_PASS) if auto else batch_size


def _progress_bar(progress: bool, total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", unit_scale=True, disable=not progress, leave=False)


# --------------------------------------------------------------------------- PREDICT and CERTIFY
def smoothed_predict(model: nn.Module, x: torch.Tensor, sigma: float, n: int, alpha: float = 0.001, seed=None, *,
                     batch_size: int | None = None, progress: bool = False, return_counts: bool = False):
    """PREDICT of Cohen, Rosenfeld & Kolter (ICML 2019): the smoothed classifier's class, or abstain.

    For each image, ``n`` noisy copies ``x + e_i``, ``e_i ~ N(0, sigma^2 I)`` (not clipped to ``[0, 1]``), vote
    with the base classifier's arg-max; ``n_A >= n_B`` are the two largest vote counts::

        return c_A   if  BinomPValue(n_A, n_A + n_B, 1/2) <= alpha     (two-sided binomial test)
        return -1    otherwise (abstain)

    With probability at most ``alpha`` the returned class is not ``g(x) = argmax_c P(f(x + e) = c)``
    (Proposition 1 of the paper; the test of the top class of a multinomial is Hung & Fithian, 2019).

    Args:
        model: base classifier mapping ``[0, 1]`` images to logits, in eval mode (its mode and ``requires_grad``
            are left as they are; no gradients are computed).
        x: images ``(B, C, H, W)``, float in ``[0, 1]``; all images are processed together.
        sigma: noise standard deviation in pixel units (> 0); the paper uses 0.12-1.0 on CIFAR-10 and ImageNet.
        n: number of noisy copies per image (int >= 1).
        alpha: failure probability in ``(0, 1)`` (default 0.001, as in the paper).
        seed: the noise's randomness: ``None`` (fresh, from torch's global RNG), an int or a ``torch.Generator``
            (see :mod:`course_lib._rng`). The same seed (and the same ``batch_size``) gives the same answer.
        batch_size: noisy images per forward pass (``b`` images with ``batch_size // b`` copies each; at least
            one copy); ``None`` (default) = 256, or fewer where 256 images exceed 2^20 input values (6 ImageNet
            photos); see :data:`NOISY_PER_PASS`.
        progress: show a ``tqdm`` progress bar over the noisy images (default False).
        return_counts: also return the vote counts ``(B, K)`` (LongTensor on ``x``'s device).

    Returns:
        ``labels``: LongTensor ``(B,)`` on ``x``'s device, ``-1`` where the test abstains; with
        ``return_counts=True``, ``(labels, counts)``.
    """
    sigma, alpha, batch_size = _setup(model, x, sigma, alpha, batch_size)
    n = check_count(n, "n", 1)
    gen = generator(seed)
    with torch.no_grad(), _progress_bar(progress, n * x.shape[0], "smoothed predict") as bar:
        counts = _votes(model, x.detach(), sigma, n, gen, batch_size, bar)
    labels = []
    for row in counts.tolist():
        order = sorted(range(len(row)), key=lambda c: (-row[c], c))  # ties: the lower class index first
        n_a, n_b = row[order[0]], (row[order[1]] if len(row) > 1 else 0)
        labels.append(order[0] if binomial_pvalue(n_a, n_b) <= alpha else ABSTAIN)
    labels = torch.tensor(labels, dtype=torch.long, device=x.device)
    return (labels, counts.to(x.device)) if return_counts else labels


def smoothed_certify(model: nn.Module, x: torch.Tensor, sigma: float, n0: int = 100, n: int = 10_000,
                     alpha: float = 0.001, seed=None, *, batch_size: int | None = None, progress: bool = False,
                     return_counts: bool = False):
    """CERTIFY of Cohen, Rosenfeld & Kolter (ICML 2019): a class and an L2 radius within which the smoothed
    classifier ``g(x) = argmax_c P(f(x + e) = c)``, ``e ~ N(0, sigma^2 I)``, provably keeps that class.

    For each image::

        c_A      = the top class of n0 noisy votes                                      (selection)
        k        = votes for c_A among n fresh noisy copies                             (estimation)
        p_A_low  = B(alpha; k, n - k + 1)     one-sided Clopper-Pearson bound, 0 if k = 0
        return (c_A, sigma * Phi^-1(p_A_low))   if p_A_low > 1/2
        return (-1, 0.0)                        otherwise (abstain)

    ``Phi^-1`` is the standard normal quantile. With probability at least ``1 - alpha`` the returned class is
    ``g(x)`` and ``g(x + delta) = c_A`` for every ``||delta||_2 < radius`` (Proposition 2 of the paper: Theorem 1
    with ``p_B = 1 - p_A``).
    The noisy copies are not clipped to ``[0, 1]``, as in the paper (clipping would change the Gaussian the
    theorem is about). If all ``n`` votes go to ``c_A``, ``p_A_low = alpha^(1/n)``: the largest radius ``n``
    samples can certify (``sigma * 2.46`` for ``n = 1,000``, ``sigma * 3.47`` for ``n = 10,000`` at
    ``alpha = 0.001``).

    Args:
        model: base classifier mapping ``[0, 1]`` images to logits, in eval mode (its mode and ``requires_grad``
            are left as they are; no gradients are computed).
        x: images ``(B, C, H, W)``, float in ``[0, 1]``; all images are processed together.
        sigma: noise standard deviation in pixel units (> 0).
        n0: noisy copies per image to select ``c_A`` (int >= 1; default 100, as in the paper).
        n: fresh noisy copies per image to bound ``p_A`` (int >= 1; default 10,000; the paper uses 100,000).
        alpha: failure probability in ``(0, 1)`` (default 0.001, as in the paper).
        seed: the noise's randomness: ``None`` (fresh, from torch's global RNG), an int or a ``torch.Generator``
            (see :mod:`course_lib._rng`). The same seed (and the same ``batch_size``) gives the same answer.
        batch_size: noisy images per forward pass (``b`` images with ``batch_size // b`` copies each; at least
            one copy); ``None`` (default) = 256, or fewer where 256 images exceed 2^20 input values (6 ImageNet
            photos); see :data:`NOISY_PER_PASS`.
        progress: show a ``tqdm`` progress bar over the noisy images (default False).
        return_counts: also return the estimation vote counts ``(B, K)`` (the ``n`` fresh votes; ``k`` is the
            column of ``c_A``) as a LongTensor on ``x``'s device.

    Returns:
        ``(labels, radii)``: LongTensor ``(B,)`` (``-1`` = abstain) and radii ``(B,)`` in ``x``'s dtype (0 where
        abstaining), both on ``x``'s device; with ``return_counts=True``, ``(labels, radii, counts)``.
    """
    sigma, alpha, batch_size = _setup(model, x, sigma, alpha, batch_size)
    n0 = check_count(n0, "n0", 1)
    n = check_count(n, "n", 1)
    gen = generator(seed)
    x = x.detach()
    with torch.no_grad(), _progress_bar(progress, (n0 + n) * x.shape[0], "smoothed certify") as bar:
        c_a = _votes(model, x, sigma, n0, gen, batch_size, bar).argmax(1)  # ties: the lowest class index
        counts = _votes(model, x, sigma, n, gen, batch_size, bar)
    labels, radii = [], []
    for c, k in zip(c_a.tolist(), counts.gather(1, c_a[:, None]).squeeze(1).tolist(), strict=True):
        p_low = lower_confidence_bound(k, n, alpha)
        if p_low > 0.5:
            labels.append(c)
            radii.append(sigma * float(norm.ppf(p_low)))
        else:
            labels.append(ABSTAIN)
            radii.append(0.0)
    labels = torch.tensor(labels, dtype=torch.long, device=x.device)
    radii = torch.tensor(radii, dtype=x.dtype, device=x.device)
    return (labels, radii, counts.to(x.device)) if return_counts else (labels, radii)
