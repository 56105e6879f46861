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
