"""Shapley values of a cooperative game: exactly, by sampling permutations, and by KernelSHAP.

For a game ``v`` over players ``N = {1..n}`` the Shapley value (Shapley, 1953) of player ``i`` is its average
marginal contribution over all orders in which the players can join:

    phi_i = sum_{S ⊆ N \\ {i}}  |S|! (n - |S| - 1)! / n!  * ( v(S ∪ {i}) - v(S) ).

It is the only attribution with efficiency (sum_i phi_i = v(N) - v(∅)), symmetry, the null-player property and
linearity. The sum has 2^n terms, so beyond ~20 players it is estimated; every estimator here takes a budget
``n_evals`` of evaluations of ``v`` (= model evaluations for :func:`.games.image_game`) and never exceeds it.

The value function is any ``value(masks: bool (K, n)) -> (K,)``; the arithmetic is done in float64 on the CPU and
the result comes back ``(n,)`` on the device, in the dtype, of the game's values.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from .._rng import generator, permutation
from .._validate import check_count
from ._estimators import Evaluator, check_players, ends, random_orders, weighted_gram

__all__ = ["shapley_exact", "shapley_permutation", "kernel_shap"]

MAX_EXACT_PLAYERS = 20


def _all_coalitions(n: int, start: int, stop: int) -> torch.Tensor:
    """Coalitions ``start..stop-1`` in binary order: row ``k`` holds player ``i`` iff bit ``i`` of ``k`` is set."""
    return (torch.arange(start, stop)[:, None] >> torch.arange(n)) & 1 == 1


def shapley_exact(value, n_players: int, *, chunk_size: int = 1 << 15) -> torch.Tensor:
    """Exact Shapley values from all ``2^n`` coalitions (Shapley, 1953).

        phi_i = sum_{S ⊆ N \\ {i}} |S|! (n-|S|-1)! / n! (v(S ∪ {i}) - v(S))
              = sum_{S ∋ i} v(S) / (n C(n-1, |S|-1))  -  sum_{S ∌ i} v(S) / (n C(n-1, |S|)),

    the second form evaluating each coalition once. Costs exactly ``2^n`` evaluations, so ``n_players`` is
    limited to 20 (about a million evaluations).

    Args:
        value: value function ``value(masks: bool (K, n)) -> (K,)``, e.g. from :func:`.games.image_game`.
        n_players: the number of players ``n`` (at most 20).
        chunk_size: coalitions per call of ``value`` (default 32768; the image game batches further inside).

    Returns:
        ``(n_players,)`` Shapley values on the device and in the dtype of the game's values.
    """
    n = check_players(value, n_players)
    if n > MAX_EXACT_PLAYERS:
        raise ValueError(f"shapley_exact needs 2^n = {2 ** n:,} evaluations for n_players={n}; it is limited to "
                         f"n_players <= {MAX_EXACT_PLAYERS}: use kernel_shap or shapley_permutation with a budget")
    chunk_size = check_count(chunk_size, "chunk_size", 1)
    evaluate = Evaluator(value, n)
    w_in = torch.tensor([0.0] + [1.0 / (n * math.comb(n - 1, s - 1)) for s in range(1, n + 1)], dtype=torch.float64)
    w_out = torch.tensor([1.0 / (n * math.comb(n - 1, s)) for s in range(n)] + [0.0], dtype=torch.float64)
    phi = torch.zeros(n, dtype=torch.float64)
    for start in range(0, 1 << n, chunk_size):
        masks = _all_coalitions(n, start, min(start + chunk_size, 1 << n))
        v = evaluate(masks)
        size = masks.sum(1)
        z = masks.double()
        phi += z.T @ (w_in[size] * v) - (1 - z).T @ (w_out[size] * v)
    return evaluate.result(phi)


def shapley_permutation(value, n_players: int, n_evals: int, seed=None, antithetic: bool = True, *,
                        chunk_size: int = 1 << 15) -> torch.Tensor:
    """Shapley values by sampling permutations (Castro, Gómez & Tejada, 2009), antithetic by default.

    A uniformly random order ``π`` of the players gives the unbiased estimate
    ``phi_i ≈ v(Pre_π(i) ∪ {i}) - v(Pre_π(i))`` (``Pre_π(i)``: the players before ``i``); the mean over ``m``
    orders is returned. Walking one order from ∅ to N visits ``n + 1`` coalitions, but ``v(∅)`` and ``v(N)`` are
    shared by all orders: they are evaluated once, and each order costs ``n - 1`` new evaluations, so
    ``m = (n_evals - 2) // (n - 1)`` whole orders fit the budget. Along each order the contributions telescope
    to ``v(N) - v(∅)``, so efficiency holds exactly for every estimate.

    With ``antithetic=True`` orders come in pairs ``(π, reversed π)`` (Mitchell et al., JMLR 2022): a player
    that joins early in one joins late in the other, which cancels much of the variance for the same cost; for
    games with at most pairwise interactions each pair gives the exact Shapley values.

    Args:
        value: value function ``value(masks: bool (K, n)) -> (K,)``.
        n_players: the number of players ``n``.
        n_evals: budget of evaluations of ``value`` (coalitions), never exceeded; at least ``n + 1``
            (``v(∅)``, ``v(N)`` and one order). Leftover evaluations that do not make a whole order are unused.
        seed: the orders' randomness: ``None`` (fresh, from torch's global RNG), an int or a ``torch.Generator``
            (see :mod:`course_lib._rng`).
        antithetic: pair each order with its reverse (default True); with an odd ``m`` the last order is unpaired.
        chunk_size: coalitions per call of ``value`` (default 32768).

    Returns:
        ``(n_players,)`` estimates on the device and in the dtype of the game's values.
    """
    n = check_players(value, n_players)
    minimum = 2 if n == 1 else n + 1
    n_evals = check_count(n_evals, "n_evals", minimum)
    chunk_size = check_count(chunk_size, "chunk_size", 1)
    gen = generator(seed)
    evaluate = Evaluator(value, n)
    v0, vn = ends(evaluate, n)
    if n == 1:
        return evaluate.result(torch.tensor([vn - v0], dtype=torch.float64))
    m = (n_evals - 2) // (n - 1)
    perms = random_orders(m, n, gen)                            # row p: the order in which players join
    if antithetic:
        perms[1::2] = perms[0:m - 1:2].flip(1)
    rank = perms.argsort(1)                                     # rank[p, i]: when player i joins in order p
    phi = torch.zeros(n, dtype=torch.float64)
    per_chunk = max(1, chunk_size // (n - 1))
    for start in range(0, m, per_chunk):
        r = rank[start:start + per_chunk]
        # prefix k of order p (k = 1..n-1 players) holds the players whose rank is < k
        masks = r[:, None, :] < torch.arange(1, n)[None, :, None]
        v = evaluate(masks.reshape(-1, n)).view(len(r), n - 1)
        chain = torch.cat([torch.full((len(r), 1), v0, dtype=torch.float64), v,
                           torch.full((len(r), 1), vn, dtype=torch.float64)], 1)
        phi.index_add_(0, perms[start:start + per_chunk].reshape(-1), chain.diff(dim=1).reshape(-1))
    return evaluate.result(phi / m)


# --------------------------------------------------------------------------- KernelSHAP

def _combinations(n: int, s: int, rows=None) -> torch.Tensor:
    """All size-``s`` coalitions of ``n`` players as bool masks (or only the ones listed in ``rows``)."""
    combos = list(itertools.combinations(range(n), s))
    idx = torch.tensor(combos, dtype=torch.long).view(len(combos), s)
    if rows is not None:
        idx = idx[rows]
    return torch.zeros(len(idx), n, dtype=torch.bool).scatter_(1, idx, True)


def _sample_coalitions(n: int, s: int, m: int, gen: torch.Generator, contain_first: bool) -> torch.Tensor:
    """``m`` distinct coalitions of size ``s``, uniformly without replacement; with ``contain_first`` only among
    those that hold player 0 (one representative of each pair {S, N \\ S} when ``s = n / 2``)."""
    free, k = (n - 1, s - 1) if contain_first else (n, s)
    if 4 * m >= math.comb(free, k):
        rows = permutation(math.comb(free, k), gen, "cpu")[:m]
        masks = _combinations(free, k, rows)
    else:
        # the draw is sparse in its space: rejecting the rare repeats costs next to nothing
        seen, chosen = set(), []
        while len(chosen) < m:
            cand = random_orders(2 * (m - len(chosen)), free, gen) < k
            for row in cand:
                key = row.numpy().tobytes()
                if key not in seen and len(chosen) < m:
                    seen.add(key)
                    chosen.append(row)
        masks = torch.stack(chosen)
    if contain_first:
        masks = torch.cat([torch.ones(len(masks), 1, dtype=torch.bool), masks], 1)
    return masks


def _largest_remainder(total: int, shares: list[float], caps: list[int]) -> list[int]:
    """Split ``total`` into integers proportional to ``shares`` without exceeding ``caps``."""
    counts = [0] * len(shares)
    left, active = total, [i for i in range(len(shares)) if caps[i] > 0]
    while left > 0 and active:
        weight = sum(shares[i] for i in active)
        ideal = {i: left * shares[i] / weight for i in active}
        add = {i: min(int(ideal[i]), caps[i] - counts[i]) for i in active}
        spare = left - sum(add.values())
        # hand out what rounding left over to the largest remainders
        for i in sorted(active, key=lambda i: ideal[i] - int(ideal[i]), reverse=True):
            if spare == 0:
                break
            if add[i] < caps[i] - counts[i]:
                add[i] += 1
                spare -= 1
        for i in active:
            counts[i] += add[i]
        left = total - sum(counts)
        active = [i for i in active if counts[i] < caps[i]]
        if not any(add.values()):
            break
    return counts


def _kernel_design(n: int, budget: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Coalitions (without ∅ and N) and their regression weights for KernelSHAP, at most ``budget`` of them.

    Sizes come in pairs (s, n - s), the most weighted (1 and n-1) first. The Shapley kernel puts the total weight
    ``W_s = C(n, s) π(s) = (n-1) / (s (n-s))`` on size s. A size pair is enumerated completely while its
    proportional share of the remaining budget covers all its coalitions (as shap's KernelExplainer does); the
    remaining size pairs are stratified: each gets a number of complementary pairs (S, N \\ S) proportional to
    its weight, drawn without repetition, and each drawn coalition carries ``W_s / (number drawn of size s)``.
    """
    groups = []                                                 # (s, cost in evaluations, total kernel weight)
    for s in range(1, n // 2 + 1):
        middle = 2 * s == n
        groups.append((s, math.comb(n, s) * (1 if middle else 2), (n - 1) / (s * (n - s)) * (1 if middle else 2)))
    masks, weights = [], []
    left, weight_left, g = budget, sum(w for _, _, w in groups), 0
    while g < len(groups) and left * groups[g][2] / weight_left >= groups[g][1] * (1 - 1e-9):
        s, cost, w = groups[g]
        z = _combinations(n, s)
        pi = (n - 1) / (math.comb(n, s) * s * (n - s))
        masks += [z] if 2 * s == n else [z, ~z]
        weights.append(torch.full((cost,), pi, dtype=torch.float64))
        left, weight_left, g = left - cost, weight_left - w, g + 1
    rest = groups[g:]
    counts = _largest_remainder(left // 2, [w for _, _, w in rest], [c // 2 for _, c, _ in rest])
    drawn = sum(w for (_, _, w), m in zip(rest, counts, strict=True) if m)
    for (s, _, w), m in zip(rest, counts, strict=True):
        if m == 0:
            continue
        z = _sample_coalitions(n, s, m, gen, contain_first=2 * s == n)
        masks += [z, ~z]
        # strata that got no draw at small budgets pass their weight on, so the sampled part keeps its total
        weights.append(torch.full((2 * m,), w / (2 * m) * weight_left / drawn, dtype=torch.float64))
    if not masks:
        return torch.zeros(0, n, dtype=torch.bool), torch.zeros(0, dtype=torch.float64)
    return torch.cat(masks), torch.cat(weights)


def kernel_shap(value, n_players: int, n_evals: int, seed=None, *, chunk_size: int = 1 << 15) -> torch.Tensor:
    """KernelSHAP (Lundberg & Lee, NeurIPS 2017): Shapley values as a weighted linear regression.

    The Shapley values are the solution of

        min_phi  sum_S π(S) ( v(S) - v(∅) - sum_{i ∈ S} phi_i )^2   subject to  sum_i phi_i = v(N) - v(∅),
        π(S) = (n - 1) / ( C(n, |S|) |S| (n - |S|) ),

    over all coalitions ``0 < |S| < n``; KernelSHAP solves it on a subset. ``v(∅)`` and ``v(N)`` are evaluated
    exactly and the efficiency constraint is enforced exactly: ``phi = Δ/n + u`` with ``u ⟂ 1``, ``u`` the
    least-squares solution (minimum-norm if the sample cannot pin it down).

    The coalitions follow shap's KernelExplainer allocation: size pairs ``(s, n-s)`` from the most weighted
    (1 and n-1) inward are enumerated completely while the budget's proportional share covers them; the
    remaining sizes are sampled in complementary pairs ``(S, N \\ S)``, stratified by size (a fixed number per
    size, proportional to its kernel weight, without repeats), each drawn coalition carrying its size's total
    weight divided by the number drawn. Pairing makes the estimate exact for games with at most pairwise
    interactions, once the sample pins the regression down. With ``n_evals >= 2^n`` every coalition is used
    and the result equals :func:`shapley_exact` up to rounding.

    Args:
        value: value function ``value(masks: bool (K, n)) -> (K,)``.
        n_players: the number of players ``n``.
        n_evals: budget of evaluations of ``value`` (coalitions, ∅ and N included), never exceeded; at least
            ``n + 1`` rounded up to even (or ``2^n`` if smaller). Coalitions come in pairs, so an odd budget
            leaves one evaluation unused.
        seed: ``None`` (fresh, from torch's global RNG), an int or a ``torch.Generator`` (see
            :mod:`course_lib._rng`); unused when everything is enumerated.
        chunk_size: coalitions per call of ``value`` (default 32768).

    Returns:
        ``(n_players,)`` estimates on the device and in the dtype of the game's values.
    """
    n = check_players(value, n_players)
    total = 2 ** n
    # v(∅), v(N) and enough complementary pairs for the n - 1 free parameters
    n_evals = check_count(n_evals, "n_evals", min(2 * ((n + 2) // 2), total))
    chunk_size = check_count(chunk_size, "chunk_size", 1)
    gen = generator(seed)
    evaluate = Evaluator(value, n)
    v0, vn = ends(evaluate, n)
    delta = vn - v0
    if n == 1:
        return evaluate.result(torch.tensor([delta], dtype=torch.float64))
    z, w = _kernel_design(n, min(n_evals, total) - 2, gen)
    y = evaluate(z, chunk_size) - v0
    zf = z.double()
    size = zf.sum(1)
    # phi = delta / n * 1 + u with u ⟂ 1 meets the constraint; z·phi = |S| delta / n + (z - |S| / n)·u
    d = (zf - size[:, None] / n).numpy()
    gram = weighted_gram(d, w.numpy())  # small dense algebra in numpy (see _estimators.weighted_gram)
    rhs = (w * (y - size * delta / n)).numpy() @ d
    # gram·1 = 0 and rhs ⟂ 1. Adding a multiple of 11ᵀ makes the system regular without changing the solution
    # in 1^⊥ (the normal equations are well conditioned: with every coalition gram = (n-1)/n (I - 11ᵀ/n));
    # the pseudo-inverse then gives the minimum-norm u if the sample is too small to pin u down.
    scale = float(gram.diagonal().mean()) or 1.0
    u = np.linalg.pinv(gram + scale / n, rcond=1e-12, hermitian=True) @ rhs
    u = torch.from_numpy(u - u.mean())
    return evaluate.result(delta / n + u)
