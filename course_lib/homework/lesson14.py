"""Checks for lesson 14 (verification): an interval pushed through one Linear + ReLU layer by hand, and the
certified radius of randomised smoothing from vote counts."""
from __future__ import annotations

import math

import torch
from scipy.stats import beta, norm

from ._common import _ok, _require

__all__ = ["check_interval_layer", "check_smoothing_radius"]


def _layer_case(seed: int, batch: int = 6, n_in: int = 7, n_out: int = 5):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n_out, n_in, generator=g, dtype=torch.float64)
    b = 0.5 * torch.randn(n_out, generator=g, dtype=torch.float64)
    mid = torch.randn(batch, n_in, generator=g, dtype=torch.float64)
    rad = 0.3 * torch.rand(batch, n_in, generator=g, dtype=torch.float64)
    return w, b, mid - rad, mid + rad


def _reference_layer(w, b, lo, hi):
    wp, wn = w.clamp(min=0), w.clamp(max=0)
    pre_lo = lo @ wp.T + hi @ wn.T + b
    pre_hi = hi @ wp.T + lo @ wn.T + b
    return pre_lo, pre_hi


def check_interval_layer(fn) -> None:
    """Lesson 14: ``fn(W, b, lower, upper) -> (lower', upper')`` must be interval bound propagation through one
    ``Linear`` layer followed by a ReLU, ``h = ReLU(W x + b)`` for every ``x`` with ``lower <= x <= upper``::

        W+ = max(W, 0),  W- = min(W, 0)
        l' = ReLU(W+ l + W- u + b),    u' = ReLU(W+ u + W- l + b)

    ``W`` is ``(out, in)`` as in ``nn.Linear``, ``lower``/``upper`` are ``(B, in)``. Checked on random layers
    against the formula and against sampled points of the box (the result must contain every ``h``); the usual
    slips are named: ``W l + b`` and ``W u + b`` without splitting ``W`` by sign, the ReLU forgotten, the bias
    forgotten, the two bounds swapped."""
    for seed in range(3):
        w, b, lo, hi = _layer_case(seed)
        keep = [t.clone() for t in (w, b, lo, hi)]
        out = fn(w, b, lo, hi)
        _require(all(torch.equal(a, k) for a, k in zip((w, b, lo, hi), keep, strict=True)),
                 "your function changed its inputs in place (e.g. lower.clamp_(...)): work on new tensors")
        _require(isinstance(out, (tuple, list)) and len(out) == 2,
                 f"return two tensors (lower, upper), got {type(out).__name__}")
        got_lo, got_hi = (torch.as_tensor(t).detach().double() for t in out)
        want_shape = (lo.shape[0], w.shape[0])
        _require(tuple(got_lo.shape) == want_shape and tuple(got_hi.shape) == want_shape,
                 f"each bound must have shape (B, out) = {want_shape} (one interval per output neuron and image), "
                 f"got {tuple(got_lo.shape)} and {tuple(got_hi.shape)}")
        pre_lo, pre_hi = _reference_layer(w, b, lo, hi)
        want_lo, want_hi = pre_lo.clamp(min=0), pre_hi.clamp(min=0)
        if torch.allclose(got_lo, want_lo, atol=1e-6) and torch.allclose(got_hi, want_hi, atol=1e-6):
            continue
        naive_lo, naive_hi = lo @ w.T + b, hi @ w.T + b
        slips = [
            ((naive_lo.clamp(min=0), naive_hi.clamp(min=0)),
             "you multiplied the lower end by W and the upper end by W: where a weight is negative, the SMALLEST "
             "output comes from the LARGEST input. Split W = W+ + W- by sign: l' = W+ l + W- u + b, u' = W+ u + "
             "W- l + b (or with centre and radius: W mid + b -+ |W| rad)"),
            ((naive_lo, naive_hi), "you multiplied the ends by W without splitting it by sign, and forgot the ReLU"),
            ((pre_lo, pre_hi), "these are the bounds before the ReLU: the layer is h = ReLU(W x + b), and the ReLU is "
                               "monotone, so apply it to both ends"),
            (((pre_lo - b).clamp(min=0), (pre_hi - b).clamp(min=0)), "you forgot the bias b"),
            ((want_hi, want_lo), "your bounds are swapped: return (lower, upper), lower <= upper"),
        ]
        for (a, c), msg in slips:
            if torch.allclose(got_lo, a, atol=1e-6) and torch.allclose(got_hi, c, atol=1e-6):
                raise AssertionError(msg)
        g = torch.Generator().manual_seed(100 + seed)
        pts = lo[:, None] + (hi - lo)[:, None] * torch.rand(lo.shape[0], 2000, lo.shape[1], generator=g,
                                                            dtype=torch.float64)
        h = (pts @ w.T + b).clamp(min=0)
        outside = (h < got_lo[:, None] - 1e-9) | (h > got_hi[:, None] + 1e-9)
        _require(not outside.any(), f"your box is not sound: {int(outside.any(1).sum())} of the "
                 f"{lo.shape[0] * w.shape[0]} output intervals miss points of the input box (sampled). Each "
                 "output must be bounded for EVERY x in the box: l' = ReLU(W+ l + W- u + b), u' = ReLU(W+ u + "
                 "W- l + b)")
        raise AssertionError("your bounds contain every sampled point but are looser than interval propagation: "
                             "the tightest box is l' = ReLU(W+ l + W- u + b), u' = ReLU(W+ u + W- l + b) "
                             f"(largest gap {float(torch.maximum(want_lo - got_lo, got_hi - want_hi).max()):.3g})")
    _ok("each output neuron's interval takes, weight by weight, the end of the input interval that pushes it down "
        "(or up), then goes through the ReLU.")


def _reference_radius(n_a: int, n: int, sigma: float, alpha: float):
    p = 0.0 if n_a == 0 else float(beta.ppf(alpha, n_a, n - n_a + 1))
    return None if p <= 0.5 else sigma * float(norm.ppf(p))


# (n_A, n, sigma, alpha): a confident vote, every vote, a tight vote, a narrow abstention, a large sigma
_RADIUS_CASES = [(9_800, 10_000, 0.25, 0.001), (10_000, 10_000, 0.25, 0.001), (620, 1_000, 0.5, 0.001),
                 (52, 100, 0.25, 0.001), (990, 1_000, 1.0, 0.01)]


def check_smoothing_radius(fn) -> None:
    """Lesson 14: ``fn(n_a, n, sigma, alpha) -> radius or None`` must be the certified L2 radius of CERTIFY
    (Cohen, Rosenfeld & Kolter 2019) from ``n_a`` votes for the selected class out of ``n``::

        p_lower = the ONE-sided (1 - alpha) Clopper-Pearson lower bound on p_A  (= Beta(alpha; n_a, n - n_a + 1))
        radius  = sigma * Phi^-1(p_lower)      if p_lower > 1/2,    None (abstain) otherwise

    Checked on five vote counts, including all votes for one class and one that must abstain; the usual slips
    are named: the two-sided interval (alpha / 2), the estimate ``n_a / n`` without a bound, sigma forgotten,
    ``sigma / 2``, and a radius returned where CERTIFY abstains."""
    for n_a, n, sigma, alpha in _RADIUS_CASES:
        want = _reference_radius(n_a, n, sigma, alpha)
        got = fn(n_a, n, sigma, alpha)
        if want is None:
            _require(got is None, f"with n_A = {n_a} of n = {n} votes the lower bound on p_A is "
                     f"{float(beta.ppf(alpha, n_a, n - n_a + 1)):.3f} <= 1/2: CERTIFY abstains, return None (you "
                     f"returned {got!r}; a radius from p_A <= 1/2 would be negative or zero, and the theorem needs "
                     f"p_A > 1/2)")
            continue
        _require(got is not None, f"with n_A = {n_a} of n = {n} votes the lower bound on p_A is above 1/2: return "
                 "the radius, not None")
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise AssertionError(f"return the radius as a number, got {type(got).__name__}") from None
        if math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
            continue
        p_two = float(beta.ppf(alpha / 2, n_a, n - n_a + 1))
        p_one = float(beta.ppf(alpha, n_a, n - n_a + 1))
        hat = min(n_a / n, 1 - 1e-12)
        slips = {
            "you used the two-sided interval (alpha / 2 on each side): CERTIFY needs only a LOWER bound on p_A, so "
            "the one-sided bound at level 1 - alpha, Beta(alpha; n_a, n - n_a + 1)": sigma * norm.ppf(p_two),
            "you used the estimate n_a / n itself: the radius must come from a lower confidence bound on p_A "
            "(with n_a / n the certificate fails about half the time)": sigma * norm.ppf(hat),
            "you forgot sigma: the radius is sigma * Phi^-1(p_lower)": float(norm.ppf(p_one)),
            "the radius is sigma * Phi^-1(p_lower), not sigma / 2 * Phi^-1(p_lower): with p_B = 1 - p_A, "
            "sigma / 2 (Phi^-1(p_A) - Phi^-1(p_B)) = sigma Phi^-1(p_A)": sigma / 2 * float(norm.ppf(p_one)),
            "you used the upper end of the interval: the certificate needs the LOWER bound on p_A, "
            "Beta(alpha; n_a, n - n_a + 1)": sigma * norm.ppf(float(beta.ppf(1 - alpha, n_a + 1, n - n_a))),
        }
        for msg, value in slips.items():
            if math.isfinite(value) and math.isclose(got, value, rel_tol=1e-6, abs_tol=1e-9):
                raise AssertionError(msg)
        raise AssertionError(f"for n_A = {n_a}, n = {n}, sigma = {sigma}, alpha = {alpha}: expected radius "
                             f"{want:.5f}, got {got:.5f}. p_lower = Beta(alpha; n_a, n - n_a + 1) "
                             "(scipy.stats.beta.ppf), radius = sigma * Phi^-1(p_lower) (scipy.stats.norm.ppf)")
    best = _reference_radius(10_000, 10_000, 0.25, 0.001)
    _ok(f"the radius from a one-sided Clopper-Pearson bound; even 10,000 of 10,000 votes certify only "
        f"{best:.3f} at sigma = 0.25: the sample size caps the radius.")


QUESTIONS = {
    "14_bounds_order": (
        ("a", "b", "c", "d"), "b",
        "PGD finds inputs that break the model, so its accuracy is an upper bound on the true robust accuracy; the "
        "exact MILP answer is the true value; CROWN and IBP certify only what their relaxations prove, so they are "
        "lower bounds, and IBP, whose boxes ignore how neurons depend on each other, is the loosest."),
    "14_smoothing_n": (
        ("a", "b", "c", "d"), "c",
        "Even if all n votes agree, the one-sided lower bound on p_A is alpha^(1/n) < 1, so the radius is at most "
        "sigma Phi^-1(alpha^(1/n)): a larger radius needs more samples (the bound grows only like the square root "
        "of log n) or a larger sigma (which costs accuracy)."),
}
