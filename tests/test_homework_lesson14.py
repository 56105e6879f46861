"""Lesson 14's checks: each accepts correct answers written differently (W+/W- or centre and radius; scipy's beta
quantile or statsmodels-style interval) and names the plausible slips (W without its sign split, the ReLU or the
bias forgotten, swapped bounds; a two-sided interval, no confidence bound, sigma forgotten, sigma / 2, a radius
where CERTIFY abstains)."""
import pytest
import torch
from scipy.stats import beta, binomtest, norm

import course_lib.homework as hw
from course_lib.certify.smoothing import lower_confidence_bound


def split(W, b, lo, hi):
    wp, wn = W.clamp(min=0), W.clamp(max=0)
    return (lo @ wp.T + hi @ wn.T + b).relu(), (hi @ wp.T + lo @ wn.T + b).relu()


def centre_radius(W, b, lo, hi):
    c, r = (lo + hi) / 2 @ W.T + b, (hi - lo) / 2 @ W.abs().T
    return torch.relu(c - r), torch.relu(c + r)


def per_neuron_loop(W, b, lo, hi):   # a student's loop over output neurons, numpy-free
    outs_lo, outs_hi = [], []
    for j in range(W.shape[0]):
        w = W[j]
        outs_lo.append(torch.where(w >= 0, lo, hi) @ w + b[j])
        outs_hi.append(torch.where(w >= 0, hi, lo) @ w + b[j])
    return torch.stack(outs_lo, 1).clamp(min=0), torch.stack(outs_hi, 1).clamp(min=0)


@pytest.mark.parametrize("fn", [split, centre_radius, per_neuron_loop])
def test_interval_layer_accepts(fn, capsys):
    hw.check_interval_layer(fn)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, match", [
    (lambda W, b, lo, hi: ((lo @ W.T + b).relu(), (hi @ W.T + b).relu()), "multiplied the lower end by W"),
    (lambda W, b, lo, hi: (lo @ W.T + b, hi @ W.T + b), "without splitting"),
    (lambda W, b, lo, hi: (lo @ W.clamp(min=0).T + hi @ W.clamp(max=0).T + b,
                           hi @ W.clamp(min=0).T + lo @ W.clamp(max=0).T + b), "before the ReLU"),
    (lambda W, b, lo, hi: split(W, torch.zeros_like(b), lo, hi), "forgot the bias"),
    (lambda W, b, lo, hi: split(W, b, lo, hi)[::-1], "swapped"),
    (lambda W, b, lo, hi: (split(W, b, lo, hi)[0] - 0.1, split(W, b, lo, hi)[1]), "looser"),
    (lambda W, b, lo, hi: (split(W, b, lo, hi)[0] + 0.5, split(W, b, lo, hi)[1]), "not sound"),
    (lambda W, b, lo, hi: split(W, b, lo, hi)[0], "two tensors"),
    (lambda W, b, lo, hi: (split(W, b, lo, hi)[0].T, split(W, b, lo, hi)[1].T), "shape"),
])
def test_interval_layer_rejects(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_interval_layer(fn)


def test_interval_layer_rejects_changing_the_inputs():
    def in_place(W, b, lo, hi):
        out = split(W, b, lo, hi)
        lo.zero_()
        return out
    with pytest.raises(AssertionError, match="changed its inputs"):
        hw.check_interval_layer(in_place)


def radius(n_a, n, sigma, alpha):
    p = beta.ppf(alpha, n_a, n - n_a + 1) if n_a else 0.0
    return sigma * norm.ppf(p) if p > 0.5 else None


def radius_binomtest(n_a, n, sigma, alpha):
    # the same one-sided bound as the lower end of scipy's exact two-sided interval at level 1 - 2 alpha
    p = binomtest(n_a, n).proportion_ci(confidence_level=1 - 2 * alpha, method="exact").low
    return float(sigma * norm.ppf(p)) if p > 0.5 else None


def radius_library(n_a, n, sigma, alpha):
    p = lower_confidence_bound(n_a, n, alpha)
    return sigma * norm.ppf(p) if p > 0.5 else None


@pytest.mark.parametrize("fn", [radius, radius_binomtest, radius_library])
def test_smoothing_radius_accepts(fn, capsys):
    hw.check_smoothing_radius(fn)
    assert "correct" in capsys.readouterr().out


def _p(n_a, n, alpha):
    return beta.ppf(alpha, n_a, n - n_a + 1)


@pytest.mark.parametrize("fn, match", [
    (lambda n_a, n, s, a: s * norm.ppf(_p(n_a, n, a / 2)) if _p(n_a, n, a / 2) > 0.5 else None, "two-sided"),
    (lambda n_a, n, s, a: s * norm.ppf(min(n_a / n, 1 - 1e-12)) if n_a / n > 0.5 else None, "estimate n_a / n"),
    (lambda n_a, n, s, a: norm.ppf(_p(n_a, n, a)) if _p(n_a, n, a) > 0.5 else None, "forgot sigma"),
    (lambda n_a, n, s, a: s / 2 * norm.ppf(_p(n_a, n, a)) if _p(n_a, n, a) > 0.5 else None, "sigma / 2"),
    (lambda n_a, n, s, a: s * norm.ppf(_p(n_a, n, a)), "abstains"),
    (lambda n_a, n, s, a: 0.0 if _p(n_a, n, a) <= 0.5 else s * norm.ppf(_p(n_a, n, a)), "abstains"),
    (lambda n_a, n, s, a: None, "not None"),
    (lambda n_a, n, s, a: s * norm.ppf(_p(n_a, n, a)) * 1.01 if _p(n_a, n, a) > 0.5 else None, "expected radius"),
])
def test_smoothing_radius_rejects(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_smoothing_radius(fn)


def test_questions_have_their_answers():
    for key, right in (("14_bounds_order", "b"), ("14_smoothing_n", "c")):
        hw.check_choice(key, right)
        with pytest.raises(AssertionError):
            hw.check_choice(key, "a")
