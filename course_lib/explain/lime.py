"""LIME (Ribeiro, Singh & Guestrin, KDD 2016): explain one prediction by a linear model fitted around it.

Perturb the input by switching players (superpixels, patches) off, ask the model, and fit a linear model
``g(z) = b + sum_i c_i z_i`` to the answers, weighting each perturbation by how close it is to the original:

    c = argmin_{b, c}  sum_k π(z_k) ( v(z_k) - b - c·z_k )^2  +  alpha ||c||^2,
    π(z) = exp( -d(z, 1)^2 / kernel_width^2 ),   d(z, 1) = 1 - cos(z, 1) = 1 - sqrt(|z| / n)   (d(0, 1) = 1).

The coefficients ``c_i`` are the explanation. Unlike Shapley values they depend on the sampling distribution,
the kernel and the regularisation, and they need not add up to ``v(N) - v(∅)``.

The pieces are public so that a lesson can take them apart: :func:`lime_samples` (the coalitions), :func:`lime_kernel`
(their weights π) and :func:`weighted_ridge` (the fit above); :func:`lime` is the three in a row.
"""
from __future__ import annotations

import numpy as np
import torch

from .._rng import generator, integers, uniform
from .._validate import check_count, check_in
from ._estimators import Evaluator, check_players, random_orders, weighted_gram

__all__ = ["lime", "lime_samples", "lime_kernel", "weighted_ridge"]


def lime(value, n_players: int, n_samples: int = 1000, kernel_width: float = 0.25, seed=None, *,
         alpha: float = 1e-3, sampling: str = "size", return_intercept: bool = False):
    """LIME weights of a local linear model around the all-players coalition (Ribeiro et al., KDD 2016).

    Draws ``n_samples`` coalitions ``z ∈ {0, 1}^n``: the first is all ones (the original image), the others
    (``sampling="size"``, as the lime package does for text) switch off a number of players drawn uniformly from
    ``1..n`` and then which ones uniformly, so every coalition size ``0..n-1`` is equally likely;
    ``sampling="bernoulli"`` keeps each player with probability 1/2 as lime's image explainer does. Each sample
    is weighted by ``π(z) = exp(-d(z, 1)^2 / kernel_width^2)``, ``d`` the cosine distance to the all-ones vector,
    and a weighted ridge regression with an unpenalised intercept is solved in closed form in float64:

        c = (Z_c^T Π Z_c + alpha I)^{-1} Z_c^T Π y_c,   b = ȳ - z̄·c,

    with ``z̄, ȳ`` the π-weighted means and ``Z_c, y_c`` the centred data (what ``sklearn.linear_model.Ridge`` fits
    with ``sample_weight``). Differences from the lime package, chosen so that a linear game ``v(z) = b + c·z``
    is recovered: lime fits ``Ridge(alpha=1)``, which shrinks the weights visibly, and its kernel is
    ``sqrt(exp(-d^2 / w^2)) = exp(-d^2 / (2 w^2))`` (LimeTextExplainer also multiplies cosine distances by 100,
    with width 25); here the kernel is the paper's ``exp(-d^2 / w^2)`` and ``alpha`` is small. To mimic
    ``LimeImageExplainer`` use ``sampling="bernoulli", kernel_width=0.25 * 2 ** 0.5, alpha=1``.

    Args:
        value: value function ``value(masks: bool (K, n)) -> (K,)``, e.g. from :func:`.games.image_game`.
        n_players: the number of players ``n``.
        n_samples: coalitions evaluated, the original included (default 1000); exactly this many evaluations.
        kernel_width: width ``w`` of the exponential kernel on the cosine distance (default 0.25).
        seed: the coalitions' randomness: ``None`` (fresh, from torch's global RNG), an int or a
            ``torch.Generator`` (see :mod:`course_lib._rng`).
        alpha: ridge penalty on the coefficients (default 1e-3: small enough to recover a linear game, large
            enough to keep the system regular; 0 gives weighted least squares, minimum-norm if underdetermined).
        sampling: ``"size"`` (default) or ``"bernoulli"``, see above.
        return_intercept: also return the intercept ``b`` (a 0-dim tensor).

    Returns:
        the coefficients ``c`` ``(n_players,)`` on the device and in the dtype of the game's values,
        or ``(c, b)`` with ``return_intercept=True``.
    """
    n = check_players(value, n_players)
    n_samples = check_count(n_samples, "n_samples", 2)
    check_in(sampling, {"size", "bernoulli"}, "sampling")
    if not isinstance(kernel_width, (int, float)) or isinstance(kernel_width, bool) or not kernel_width > 0:
        raise ValueError(f"kernel_width must be a positive number, got {kernel_width!r}")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not alpha >= 0:
        raise ValueError(f"alpha must be a number >= 0, got {alpha!r}")
    z = lime_samples(n, n_samples, seed, sampling=sampling)
    evaluate = Evaluator(value, n)
    y = evaluate(z)
    pi = lime_kernel(z, kernel_width).numpy()
    intercept, coef = _ridge(z.numpy().astype(np.float64), y.numpy(), pi, alpha)
    coef_out = evaluate.result(torch.from_numpy(coef))
    if return_intercept:
        return coef_out, evaluate.result(torch.tensor(intercept, dtype=torch.float64))
    return coef_out


def lime_samples(n_players: int, n_samples: int = 1000, seed=None, *, sampling: str = "size") -> torch.Tensor:
    """The coalitions :func:`lime` evaluates: a bool tensor ``(n_samples, n_players)`` on the CPU, row 0 all ones
    (the original image); the others switch off a uniformly drawn number ``1..n`` of uniformly chosen players
    (``sampling="size"``) or keep each player with probability 1/2 (``"bernoulli"``). The same ``seed`` gives the
    coalitions that ``lime(..., seed=seed)`` draws."""
    n = check_count(n_players, "n_players", 1)
    n_samples = check_count(n_samples, "n_samples", 2)
    check_in(sampling, {"size", "bernoulli"}, "sampling")
    gen = generator(seed)
    z = torch.ones(n_samples, n, dtype=torch.bool)
    if sampling == "size":
        n_off = integers(1, n + 1, (n_samples - 1, 1), gen, "cpu")
        z[1:] = random_orders(n_samples - 1, n, gen) >= n_off   # a random n_off players off
    else:
        z[1:] = uniform((n_samples - 1, n), gen, "cpu") < 0.5
    return z


def lime_kernel(masks: torch.Tensor, kernel_width: float = 0.25) -> torch.Tensor:
    """LIME's weight of each coalition, float64 ``(K,)`` on the CPU:

        π(z) = exp( -d(z, 1)^2 / kernel_width^2 ),   d(z, 1) = 1 - sqrt(|z| / n)   (the cosine distance to all ones)

    so the original (all ones) gets 1 and the empty coalition ``exp(-1 / kernel_width^2)``."""
    from .games import check_masks

    if not isinstance(masks, torch.Tensor) or masks.dim() != 2:
        raise ValueError("masks must be a bool tensor (K, n), one coalition per row")
    if not isinstance(kernel_width, (int, float)) or isinstance(kernel_width, bool) or not kernel_width > 0:
        raise ValueError(f"kernel_width must be a positive number, got {kernel_width!r}")
    z = check_masks(masks, masks.shape[1]).cpu().double()
    distance = 1 - torch.sqrt(z.sum(1) / z.shape[1])
    return torch.exp(-distance ** 2 / kernel_width ** 2)


def _ridge(z: np.ndarray, y: np.ndarray, pi: np.ndarray, alpha: float) -> tuple[float, np.ndarray]:
    z_mean = pi @ z / pi.sum()
    y_mean = pi @ y / pi.sum()
    zc, yc = z - z_mean, y - y_mean
    gram = weighted_gram(zc, pi) + alpha * np.eye(z.shape[1])  # small dense algebra in numpy (see weighted_gram)
    rhs = (pi * yc) @ zc
    if alpha > 0:
        coef = np.linalg.solve(gram, rhs)
    else:
        coef = np.linalg.pinv(gram, hermitian=True) @ rhs
    return float(y_mean - z_mean @ coef), coef


def weighted_ridge(masks: torch.Tensor, values: torch.Tensor, weights: torch.Tensor, alpha: float = 1e-3):
    """The surrogate fit inside :func:`lime`: the intercept ``b`` and coefficients ``c`` minimising

        sum_k w_k ( v_k - b - c·z_k )^2  +  alpha ||c||^2          (the intercept is not penalised)

    solved in float64 on the centred data, ``c = (Z_c^T W Z_c + alpha I)^{-1} Z_c^T W v_c``, ``b = v̄ - z̄·c`` with
    ``z̄, v̄`` the w-weighted means. Returns ``(b, c)``: a float64 0-dim tensor and ``(n,)``, on the CPU."""
    if not isinstance(masks, torch.Tensor) or masks.dim() != 2:
        raise ValueError("masks must be a tensor (K, n), one coalition per row")
    k = masks.shape[0]
    for name, t in (("values", values), ("weights", weights)):
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != (k,):
            raise ValueError(f"{name} must be a tensor of shape ({k},), one per coalition")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not alpha >= 0:
        raise ValueError(f"alpha must be a number >= 0, got {alpha!r}")
    w = weights.detach().cpu().double().numpy()
    if not (w >= 0).all() or not w.sum() > 0:
        raise ValueError("weights must be >= 0 and not all 0")
    b, c = _ridge(masks.detach().cpu().double().numpy(), values.detach().cpu().double().numpy(), w, alpha)
    return torch.tensor(b, dtype=torch.float64), torch.from_numpy(c)
