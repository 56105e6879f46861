"""Lesson 05's checks accept right answers and reject the plausible wrong ones with the intended message."""
import itertools
import math

import pytest
import torch

from course_lib import homework as hw


# --------------------------------------------------------------------------- exact Shapley values
def _value_of(value, n, players):
    mask = torch.zeros(1, n, dtype=torch.bool)
    mask[0, list(players)] = True
    return float(value(mask)[0])


def _marginal_sum(value, n, weight):
    """sum over S not containing i of weight(|S|) (v(S ∪ {i}) - v(S)), one coalition evaluated at a time."""
    phi = torch.zeros(n, dtype=torch.float64)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for s in range(n):
            for S in itertools.combinations(others, s):
                phi[i] += weight(n, s) * (_value_of(value, n, S + (i,)) - _value_of(value, n, S))
    return phi


def shapley_by_coalitions(value, n):
    return _marginal_sum(value, n, lambda n, s: math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n))


def shapley_by_orderings(value, n):  # a different correct route: the average over all n! orderings
    phi = torch.zeros(n, dtype=torch.float64)
    orders = list(itertools.permutations(range(n)))
    for order in orders:
        before = []
        for i in order:
            phi[i] += _value_of(value, n, before + [i]) - _value_of(value, n, before)
            before.append(i)
    return (phi / len(orders)).tolist()  # a list is accepted too


def shapley_banzhaf(value, n):
    return _marginal_sum(value, n, lambda n, s: 1 / 2 ** (n - 1))


def shapley_off_by_one(value, n):
    return _marginal_sum(value, n, lambda n, s: math.factorial(s) * math.factorial(n - s) / math.factorial(n))


def shapley_leave_one_out(value, n):
    full = _value_of(value, n, range(n))
    return torch.tensor([full - _value_of(value, n, [j for j in range(n) if j != i]) for i in range(n)])


def shapley_alone(value, n):
    empty = _value_of(value, n, [])
    return torch.tensor([_value_of(value, n, [i]) - empty for i in range(n)])


def shapley_sign(value, n):
    return -shapley_by_coalitions(value, n)


def shapley_no_empty_set(value, n):  # skips S = ∅
    return _marginal_sum(value, n, lambda n, s: 0.0 if s == 0 else
                         math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n))


@pytest.mark.parametrize("fn", [shapley_by_coalitions, shapley_by_orderings])
def test_exact_shapley_accepts_both_definitions(fn, capsys):
    hw.check_exact_shapley(fn)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, message", [
    (shapley_banzhaf, "Banzhaf"),
    (shapley_off_by_one, "off by one"),
    (shapley_leave_one_out, "marginal contribution to the full set"),
    (shapley_alone, "player alone"),
    (shapley_sign, "wrong sign"),
    (shapley_no_empty_set, "efficiency fails"),
    (lambda value, n: torch.zeros(n + 1), "one value per player"),
])
def test_exact_shapley_rejects(fn, message):
    with pytest.raises(AssertionError, match=message):
        hw.check_exact_shapley(fn)


# --------------------------------------------------------------------------- permutation sampling
def _orderings_estimate(value, n, n_evals, gen, per_order=None):
    full, empty = torch.ones(1, n, dtype=torch.bool), torch.zeros(1, n, dtype=torch.bool)
    v0, vn = float(value(empty)[0]), float(value(full)[0])
    m = per_order if per_order is not None else (n_evals - 2) // (n - 1)
    phi = torch.zeros(n, dtype=torch.float64)
    for _ in range(m):
        order = torch.randperm(n, generator=gen)
        masks = torch.zeros(n - 1, n, dtype=torch.bool)
        for k in range(1, n):
            masks[k - 1, order[:k]] = True
        chain = torch.cat([torch.tensor([v0]), value(masks).double(), torch.tensor([vn])])
        phi[order] += chain.diff()
    return phi / m


def permutation_right(value, n, n_evals, seed):
    return _orderings_estimate(value, n, n_evals, torch.Generator().manual_seed(seed))


def permutation_naive_cost(value, n, n_evals, seed):
    """Also right: every ordering walks from ∅ to N with its own n + 1 evaluations (wasteful, within budget)."""
    gen = torch.Generator().manual_seed(seed)
    m = n_evals // (n + 1)
    phi = torch.zeros(n, dtype=torch.float64)
    for _ in range(m):
        order = torch.randperm(n, generator=gen)
        masks = torch.zeros(n + 1, n, dtype=torch.bool)
        for k in range(1, n + 1):
            masks[k, order[:k]] = True
        phi[order] += value(masks).double().diff()
    return phi / m


def permutation_over_budget(value, n, n_evals, seed):  # counts orderings, not evaluations
    gen = torch.Generator().manual_seed(seed)
    return _orderings_estimate(value, n, n_evals, gen, per_order=max(1, n_evals // 2))


def permutation_one_ordering(value, n, n_evals, seed):
    return _orderings_estimate(value, n, n_evals, torch.Generator().manual_seed(seed), per_order=1)


def permutation_fixed_count(value, n, n_evals, seed):  # 100 orderings (when affordable), whatever the budget
    m = min(100, (n_evals - 2) // (n - 1))
    return _orderings_estimate(value, n, n_evals, torch.Generator().manual_seed(seed), per_order=m)


def permutation_global_rng(value, n, n_evals, seed):
    return _orderings_estimate(value, n, n_evals, None)


def permutation_random_coalitions(value, n, n_evals, seed):
    """Random coalitions instead of orderings: mean gain of each player over the coalitions where it was absent,
    unbiased only for the Banzhaf value, and its estimates do not add up."""
    gen = torch.Generator().manual_seed(seed)
    k = n_evals // 2
    masks = torch.rand(k, n, generator=gen) < 0.5
    i = torch.randint(0, n, (k,), generator=gen)
    masks[torch.arange(k), i] = False
    with_i = masks.clone()
    with_i[torch.arange(k), i] = True
    gain = (value(with_i) - value(masks)).double()
    phi = torch.zeros(n, dtype=torch.float64).index_add_(0, i, gain)
    return phi / torch.bincount(i, minlength=n).clamp_min(1)


@pytest.mark.parametrize("fn", [permutation_right, permutation_naive_cost])
def test_permutation_accepts_right_estimators(fn, capsys):
    hw.check_permutation_shapley(fn)
    assert "correct" in capsys.readouterr().out


def test_permutation_accepts_the_library():
    from course_lib.explain import shapley_permutation

    hw.check_permutation_shapley(lambda value, n, n_evals, seed: shapley_permutation(value, n, n_evals, seed=seed))


@pytest.mark.parametrize("fn, message", [
    (permutation_over_budget, "the budget is a promise"),
    (permutation_random_coalitions, "telescope"),
    (permutation_global_rng, "same seed"),
    (permutation_one_ordering, "median relative error"),
    (permutation_fixed_count, "grow with n_evals"),
])
def test_permutation_rejects(fn, message):
    with pytest.raises(AssertionError, match=message):
        hw.check_permutation_shapley(fn)


# --------------------------------------------------------------------------- LIME's weighted fit
def _design(masks):
    z = masks.double()
    return torch.cat([torch.ones(len(z), 1, dtype=torch.float64), z], 1)


def _penalty(n, alpha, intercept=False):
    p = alpha * torch.eye(n + 1, dtype=torch.float64)
    if not intercept:
        p[0, 0] = 0
    return p


def fit_normal_equations(masks, values, weights, alpha=1e-3):  # the lesson's solution
    x = _design(masks)
    beta = torch.linalg.solve(x.T @ (weights[:, None] * x) + _penalty(masks.shape[1], alpha),
                              x.T @ (weights * values))
    return beta[0], beta[1:]


def fit_lstsq(masks, values, weights, alpha=1e-3):
    # a different correct route: rows scaled by sqrt(w), the ridge term as extra rows sqrt(alpha) e_i, lstsq
    x, r = _design(masks), weights.sqrt()
    n = masks.shape[1]
    extra = torch.cat([torch.zeros(n, 1, dtype=torch.float64), alpha ** 0.5 * torch.eye(n, dtype=torch.float64)], 1)
    a = torch.cat([r[:, None] * x, extra])
    y = torch.cat([r * values, torch.zeros(n, dtype=torch.float64)])
    beta = torch.linalg.lstsq(a, y[:, None], driver="gelsd").solution[:, 0]
    return float(beta[0]), beta[1:].tolist()           # a float and a list are accepted too


def fit_centred_float32(masks, values, weights, alpha=1e-3):
    # a third route: weighted means, centred data, ridge on the slopes only (as course_lib's lime), in float32
    z, v, w = masks.float(), values.float(), weights.float()
    zm, vm = (w @ z) / w.sum(), (w @ v) / w.sum()
    zc, vc = z - zm, v - vm
    c = torch.linalg.solve(zc.T @ (w[:, None] * zc) + alpha * torch.eye(z.shape[1]), zc.T @ (w * vc))
    return vm - zm @ c, c


def fit_unweighted(masks, values, weights, alpha=1e-3):
    return fit_normal_equations(masks, values, torch.ones_like(weights), alpha)


def fit_rows_times_w(masks, values, weights, alpha=1e-3):
    return fit_lstsq(masks, values, weights ** 2, alpha)   # rows scaled by w: lstsq minimises sum w^2 r^2


def fit_no_intercept(masks, values, weights, alpha=1e-3):
    z = masks.double()
    c = torch.linalg.solve(z.T @ (weights[:, None] * z) + alpha * torch.eye(z.shape[1], dtype=torch.float64),
                           z.T @ (weights * values))
    return 0.0, c


def fit_weights_on_masks(masks, values, weights, alpha=1e-3):
    x = _design(masks)
    x[:, 1:] *= weights[:, None]
    beta = torch.linalg.solve(x.T @ x + _penalty(masks.shape[1], alpha), x.T @ values)
    return beta[0], beta[1:]


def fit_weights_rhs_only(masks, values, weights, alpha=1e-3):
    x = _design(masks)
    beta = torch.linalg.solve(x.T @ x + _penalty(masks.shape[1], alpha), x.T @ (weights * values))
    return beta[0], beta[1:]


def fit_misaligned(masks, values, weights, alpha=1e-3):
    return fit_normal_equations(masks[1:], values[:-1], weights[1:], alpha)   # v[k] paired with masks[k + 1]


def fit_penalised_intercept(masks, values, weights, alpha=1e-3):
    x = _design(masks)
    beta = torch.linalg.solve(x.T @ (weights[:, None] * x) + _penalty(masks.shape[1], alpha, intercept=True),
                              x.T @ (weights * values))
    return beta[0], beta[1:]


def fit_alpha_ignored(masks, values, weights, alpha=1e-3):
    return fit_normal_equations(masks, values, weights, 0.0)


@pytest.mark.parametrize("fn", [fit_normal_equations, fit_lstsq, fit_centred_float32])
def test_weighted_fit_accepts_correct_fits(fn, capsys):
    hw.check_weighted_fit(fn)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, message", [
    (fit_unweighted, "ignores the weights"),
    (fit_rows_times_w, r"instead of sqrt\(w_k\)"),
    (fit_no_intercept, "no intercept"),
    (fit_weights_on_masks, "multiplied the masks by the weights"),
    (fit_weights_rhs_only, "right-hand side"),
    (fit_misaligned, "misaligned"),
    (fit_penalised_intercept, "penalises the intercept"),
    (fit_alpha_ignored, "ignores alpha"),
])
def test_weighted_fit_rejects_with_its_message(fn, message):
    with pytest.raises(AssertionError, match=message):
        hw.check_weighted_fit(fn)


def test_weighted_fit_rejects_swapped_pair():
    with pytest.raises(AssertionError, match=r"intercept|shape"):
        hw.check_weighted_fit(lambda m, v, w, a=1e-3: tuple(reversed(fit_normal_equations(m, v, w, a))))


def test_weighted_fit_matches_lime():
    """The check's definition is what lime fits: the same coalitions, kernel and ridge give lime's (c, b)."""
    from course_lib.explain import lime, lime_kernel, lime_samples, lookup_game

    table = 1.0 + torch.randn(2 ** 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    c, b = lime(lookup_game(table), 6, 200, seed=3, kernel_width=0.5, return_intercept=True)
    z = lime_samples(6, 200, seed=3)
    v = table[(z.long() * (1 << torch.arange(6))).sum(1)]
    mb, mc = fit_normal_equations(z, v, lime_kernel(z, 0.5), 1e-3)
    torch.testing.assert_close(c, mc, rtol=1e-9, atol=1e-9)
    assert float(b) == pytest.approx(float(mb), abs=1e-9)
