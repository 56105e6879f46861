"""Checks for lesson 05 (Shapley values and LIME)."""
from __future__ import annotations

import math

import torch

from ._common import _close, _ok, _require

__all__ = ["check_exact_shapley", "check_permutation_shapley", "check_weighted_fit"]


# --------------------------------------------------------------------------- games the checks play
def _table_game(table: torch.Tensor, n: int):
    """A game whose value of coalition S is ``table[sum_{i in S} 2^i]`` (bit i = player i), counting evaluations."""
    from ..explain import lookup_game

    assert table.numel() == 2 ** n
    return lookup_game(table)


def _random_table(n: int, seed: int) -> torch.Tensor:
    """Any game at all: an independent random value for every coalition (so v(∅) != 0 and every interaction)."""
    gen = torch.Generator().manual_seed(seed)
    return 1.0 + 2.0 * torch.randn(2 ** n, generator=gen, dtype=torch.float64)


def _masks(n: int) -> torch.Tensor:
    from ..explain import all_coalitions

    return all_coalitions(n)


def _as_vector(out, n: int, what: str) -> torch.Tensor:
    if isinstance(out, (list, tuple)):
        out = torch.as_tensor(out, dtype=torch.float64)
    elif not isinstance(out, torch.Tensor):
        try:  # numpy arrays
            out = torch.as_tensor(out, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise AssertionError(f"return the {what} as a tensor of shape ({n},), got {type(out).__name__}") from None
    _require(out.numel() == n, f"return one value per player: shape ({n},), got shape {tuple(out.shape)}")
    out = out.detach().reshape(n).to("cpu", torch.float64)
    _require(bool(torch.isfinite(out).all()), f"your {what} contain NaN or infinite values")
    return out


def _wrong_answers(table: torch.Tensor, n: int) -> dict:
    """The plausible wrong answers, computed from the definition of each, for one game given as a table."""
    masks = _masks(n)
    size = masks.sum(1)
    full, empty = 2 ** n - 1, 0
    out = {}
    banzhaf, one_off, loo, alone = (torch.zeros(n, dtype=torch.float64) for _ in range(4))
    for i in range(n):
        without = ~masks[:, i]                                     # coalitions S with i not in S
        idx = torch.arange(2 ** n)[without]
        gain = table[idx | (1 << i)] - table[idx]                  # v(S ∪ {i}) - v(S)
        s = size[without]
        banzhaf[i] = gain.mean()                                   # all coalitions weighted alike
        # |S| off by one: |S|+1 players before i, or (n - |S|)! for the ones after
        w_off = torch.tensor([math.factorial(k) * math.factorial(n - k) / math.factorial(n) for k in s.tolist()],
                             dtype=torch.float64)
        one_off[i] = (w_off * gain).sum()
        loo[i] = table[full] - table[full & ~(1 << i)]              # leave one out of the full set
        alone[i] = table[1 << i] - table[empty]                    # the player alone
    out["banzhaf"] = banzhaf
    out["off_by_one"] = one_off
    out["leave_one_out"] = loo
    out["alone"] = alone
    return out


# --------------------------------------------------------------------------- exercise 1
def check_exact_shapley(fn) -> None:
    """Lesson 05: ``fn(value, n_players)`` must return the exact Shapley values ``(n_players,)`` of any game.

    The game is called as ``value(masks)`` with ``masks`` a bool tensor ``(K, n_players)``. Tested on random
    games of 1 to 5 players (every coalition has its own random value, so every interaction is present)
    against :func:`course_lib.explain.shapley_exact`.

    Rejected, each with its own message: the plain average of the marginal contributions over all coalitions
    (the Banzhaf value: the combinatorial weights forgotten), weights with ``|S|`` off by one
    (``(|S|+1)!`` or ``(n-|S|)!``), the marginal contribution to the full set ``v(N) - v(N \\ {i})`` (leave one
    out), the player alone ``v({i}) - v(∅)``, the sign reversed, and anything else that breaks efficiency.
    """
    from ..explain import shapley_exact

    for n, seed in [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4), (5, 5)]:
        table = _random_table(n, seed)
        game = _table_game(table, n)
        out = _as_vector(fn(game, n), n, "Shapley values")
        truth = shapley_exact(_table_game(table, n), n).double()
        if _close(out, truth, rtol=1e-6):
            continue
        wrong = _wrong_answers(table, n)
        if _close(out, -truth, rtol=1e-6):
            raise AssertionError("your values have the wrong sign: the marginal contribution of i to S is "
                                 "v(S ∪ {i}) - v(S), what the coalition gains when i joins")
        if _close(out, wrong["banzhaf"], rtol=1e-6):
            raise AssertionError(f"on a {n}-player game you returned the plain average of v(S ∪ {{i}}) - v(S) over "
                                 "all coalitions S (the Banzhaf value). The Shapley value weights each S by "
                                 "|S|! (n - |S| - 1)! / n!, the fraction of the n! orderings in which exactly the "
                                 "players of S come before i: small and large coalitions count more")
        if _close(out, wrong["off_by_one"], rtol=1e-6):
            raise AssertionError("your weights are off by one: with |S| players before i and n - |S| - 1 after "
                                 "it, the weight is |S|! (n - |S| - 1)! / n!, not |S|! (n - |S|)! / n!")
        if _close(out, wrong["leave_one_out"], rtol=1e-6):
            raise AssertionError("you returned v(N) - v(N \\ {i}), the marginal contribution to the full set "
                                 "(what occlusion measures). That is one coalition out of 2^(n-1); the Shapley "
                                 "value averages the contribution of i over all of them")
        if _close(out, wrong["alone"], rtol=1e-6) and n > 1:
            raise AssertionError("you returned v({i}) - v(∅), the value of each player alone: that ignores every "
                                 "interaction. Average v(S ∪ {i}) - v(S) over all coalitions S without i, with the "
                                 "Shapley weights")
        total, delta = float(out.sum()), float(table[-1] - table[0])
        if abs(total - delta) > 1e-6 * (1 + abs(delta)):
            raise AssertionError(f"on a {n}-player game your values sum to {total:.6f}, but v(N) - v(∅) = "
                                 f"{delta:.6f}: efficiency fails. Check the weights (for each player they must sum "
                                 "to 1 over the coalitions S without i) and that S = ∅ and S = N \\ {i} are "
                                 "included")
        raise AssertionError(f"on a {n}-player game your values {[round(v, 4) for v in out.tolist()]} differ from "
                             f"the Shapley values {[round(v, 4) for v in truth.tolist()]} although they add up "
                             "correctly: check which coalitions you pair (S and S ∪ {i}, for the same S)")
    _ok("exact Shapley values on random games of 1 to 5 players: each player's marginal contributions, weighted by "
        "the fraction of orderings in which its predecessors are exactly S.")


# --------------------------------------------------------------------------- exercise 2
def _test_table(n: int = 8) -> torch.Tensor:
    """A game with main effects, pairwise and one three-way interaction (fixed, so the threshold is fixed)."""
    gen = torch.Generator().manual_seed(123)
    z = _masks(n).double()
    a = torch.randn(n, generator=gen, dtype=torch.float64)
    b = torch.randn(n, n, generator=gen, dtype=torch.float64).triu(1)
    v = 0.5 + z @ a + ((z @ b) * z).sum(1) + 3.0 * z[:, 0] * z[:, 1] * z[:, 2]
    return v


def _call_estimator(fn, table, n, n_evals, seed):
    game = _table_game(table, n)
    out = fn(game, n, n_evals, seed)
    est = _as_vector(out, n, "estimates")
    _require(game.evaluations <= n_evals,
             f"with n_evals={n_evals} your estimator evaluated the game {game.evaluations} times: the budget is a "
             f"promise. Evaluate v(∅) and v(N) once, then each ordering costs n - 1 = {n - 1} new evaluations, so "
             f"m = (n_evals - 2) // (n - 1) orderings fit")
    return est, game.evaluations


def _rel_error(est: torch.Tensor, truth: torch.Tensor) -> float:
    return float((est - truth).norm() / truth.norm())


def check_permutation_shapley(fn) -> None:
    """Lesson 05: ``fn(value, n_players, n_evals, seed)`` must estimate the Shapley values by sampling orderings
    within a budget of ``n_evals`` evaluations of ``value``.

    Tested on a fixed 8-player game with pairwise and three-way interactions (exact values by
    :func:`course_lib.explain.shapley_exact`). Rejected: exceeding the budget (e.g. enumerating all orderings,
    or one coalition per call beyond the count), estimates whose sum is not exactly ``v(N) - v(∅)`` (e.g. random
    coalitions instead of orderings, or dividing by per-player counts), estimates far from the exact values
    (e.g. one ordering only, or the budget left unused), results that ignore ``seed`` or do not use it
    reproducibly (the global random generator).
    """
    from ..explain import shapley_exact, shapley_permutation

    n = 8
    table = _test_table(n)
    truth = shapley_exact(_table_game(table, n), n).double()
    delta = float(table[-1] - table[0])

    # the budget is respected, also when it is small or not a multiple of the cost of an ordering
    for budget in (3 * n, 200, 1001):
        _call_estimator(fn, table, n, budget, seed=0)

    # efficiency holds exactly for every estimate: each ordering's contributions telescope
    for seed in range(3):
        est, _ = _call_estimator(fn, table, n, 500, seed)
        total = float(est.sum())
        _require(abs(total - delta) < 1e-5 * (1 + abs(delta)),
                 f"your estimates sum to {total:.6f}, but v(N) - v(∅) = {delta:.6f}. Along one ordering the marginal "
                 "contributions telescope to v(N) - v(∅), so their average over m orderings (the same m for every "
                 "player) adds up exactly. Sampling coalitions instead of orderings, or dividing each player by its "
                 "own count, loses that")

    # the same seed gives the same estimate, another seed another one
    a, _ = _call_estimator(fn, table, n, 500, seed=7)
    b, _ = _call_estimator(fn, table, n, 500, seed=7)
    c, _ = _call_estimator(fn, table, n, 500, seed=8)
    _require(torch.equal(a, b), "the same seed must give the same estimate: draw the orderings from "
             "gen = torch.Generator().manual_seed(seed), e.g. torch.randperm(n, generator=gen), not from the "
             "global random generator")
    _require(not torch.equal(a, c), "two different seeds gave identical estimates on a game with interactions: "
             "are the orderings random, and drawn from the seeded generator?")

    # accurate for its budget, and more accurate with a larger one. Thresholds: course_lib's plain (not
    # antithetic) sampler has a median relative error (5 seeds) of about 0.06 at 1,000 evaluations and 0.025 at
    # 8,000 on this game; ten orderings give about 0.26, one ordering 0.6 to 1; a fixed 100 orderings whatever
    # the budget about 0.075 at both budgets
    errors = {}
    for budget in (1000, 8000):
        errs = [_rel_error(_call_estimator(fn, table, n, budget, seed)[0], truth) for seed in range(5)]
        errors[budget] = sorted(errs)[2]
    reference = sorted(_rel_error(shapley_permutation(_table_game(table, n), n, 1000, seed=s, antithetic=False)
                                  .double(), truth) for s in range(5))[2]
    _require(errors[1000] < max(0.12, 3 * reference),
             f"with 1,000 evaluations your median relative error is {errors[1000]:.3f} (the library's plain sampler: "
             f"{reference:.3f}): use as many whole orderings as the budget allows, m = (n_evals - 2) // (n - 1), and "
             "average each player's marginal contributions over all of them")
    _require(errors[8000] < 0.05,
             f"8 times the budget should shrink the error by about sqrt(8) ≈ 2.8; yours went from "
             f"{errors[1000]:.3f} to {errors[8000]:.3f}. Does the number of orderings grow with n_evals?")
    _ok(f"efficiency exact, budget respected, median relative error {errors[1000]:.3f} at 1,000 evaluations and "
        f"{errors[8000]:.3f} at 8,000 on an 8-player game with interactions.")



# --------------------------------------------------------------------------- exercise: LIME's weighted fit
def _normal_equations(z, v, w, alpha, *, penalise_intercept=False):
    """The weighted ridge fit from its definition: beta = (b, c) solving (X^T W X + alpha P) beta = X^T W v with
    X = [1, z] and P = diag(0, 1, ..., 1) (the intercept is not penalised; P = I when ``penalise_intercept``)."""
    x = torch.cat([torch.ones(len(z), 1, dtype=torch.float64), z.double()], 1)
    pen = torch.eye(x.shape[1], dtype=torch.float64)
    if not penalise_intercept:
        pen[0, 0] = 0
    beta = torch.linalg.solve(x.T @ (w[:, None] * x) + alpha * pen, x.T @ (w * v))
    return float(beta[0]), beta[1:]


def _weighted_fit_wrong(z, v, w, alpha) -> dict:
    """The plausible wrong fits, each computed from its own definition, with the message that teaches."""
    n = z.shape[1]
    zf = z.double()
    out = {}
    out["unweighted"] = (_normal_equations(z, v, torch.ones_like(w), alpha),
                         "your fit ignores the weights: every coalition counts alike. LIME minimises "
                         "Σ_k w_k (v_k - b - z_k·c)²: the coalitions close to the original image (large π) must count "
                         "more. With torch.linalg.lstsq, multiply each row of the design [1, z_k] and each v_k by "
                         "sqrt(w_k); or solve the normal equations XᵀWX β = XᵀWv")
    out["squared"] = (_normal_equations(z, v, w ** 2, alpha),
                      "you scaled each row by w_k instead of sqrt(w_k): least squares on the rows w_k·[1, z_k], "
                      "w_k·v_k minimises Σ_k w_k² r_k², the squared weights. To turn Σ_k w_k r_k² into an ordinary "
                      "least-squares problem, scale the rows by sqrt(w_k)")
    gram = zf.T @ (w[:, None] * zf) + alpha * torch.eye(n, dtype=torch.float64)
    out["no_intercept"] = ((0.0, torch.linalg.solve(gram, zf.T @ (w * v))),
                           "your fit has no intercept: it forces g(∅) = 0, so the coefficients must also carry "
                           "v(∅), which is not 0 for an image game. Add a column of ones to the design; its "
                           "coefficient is the intercept b (and the ridge term does not penalise it)")
    x = torch.cat([torch.ones(len(z), 1, dtype=torch.float64), zf], 1)
    pen = torch.eye(n + 1, dtype=torch.float64)
    pen[0, 0] = 0
    xw = torch.cat([torch.ones(len(z), 1, dtype=torch.float64), w[:, None] * zf], 1)
    beta = torch.linalg.solve(xw.T @ xw + alpha * pen, xw.T @ v)
    out["weights_on_masks"] = ((float(beta[0]), beta[1:]),
                               "you multiplied the masks by the weights (the terms of the coefficients, w_k z_k·c) "
                               "but not the rest of the residual: that fits v_k ≈ b + w_k z_k·c, another model. The "
                               "weight multiplies the whole squared residual, w_k (v_k - b - z_k·c)²")
    beta = torch.linalg.solve(x.T @ x + alpha * pen, x.T @ (w * v))
    out["weights_rhs_only"] = ((float(beta[0]), beta[1:]),
                               "you weighted the right-hand side (Xᵀ W v) but not the Gram matrix (you used XᵀX): the "
                               "normal equations of the weighted problem are (XᵀWX + alpha P) β = XᵀWv, with the "
                               "weights on both sides")
    for shift in (1, -1):
        out[f"misaligned{shift}"] = (_normal_equations(z, v.roll(shift), w, alpha),
                                     "your values and masks are misaligned (shifted by one row against each other): "
                                     "row k of masks must meet values[k] and weights[k], the value of that very "
                                     "coalition")
    out["reversed"] = (_normal_equations(z, v.flip(0), w, alpha),
                       "your values and masks are misaligned (the values in reverse order): row k of masks must "
                       "meet values[k] and weights[k]")
    if alpha > 0:
        out["penalised_intercept"] = (_normal_equations(z, v, w, alpha, penalise_intercept=True),
                                      "your ridge term penalises the intercept too: LIME (like sklearn's Ridge) "
                                      "penalises the coefficients only, alpha ||c||², so that adding a constant to "
                                      "every value changes b and leaves c alone")
        out["alpha_ignored"] = (_normal_equations(z, v, w, 0.0),
                                "your fit ignores alpha: add the ridge term alpha ||c||² (alpha on the diagonal of "
                                "the coefficients' block of XᵀWX, not on the intercept's)")
    return out


def _as_fit(out, n: int):
    _require(isinstance(out, (tuple, list)) and len(out) == 2,
             "return the pair (intercept, coefficients): a number b and a tensor of shape (n,)")
    b, c = out
    try:
        b = float(b.detach()) if isinstance(b, torch.Tensor) else float(b)
    except (TypeError, ValueError, RuntimeError):
        raise AssertionError("the first element must be the intercept, one number (return (b, c), in this "
                             "order)") from None
    return b, _as_vector(c, n, "coefficients")


def _fit_matches(fit, ref, tol=1e-4) -> bool:
    (b, c), (rb, rc) = fit, ref
    scale = 1.0 + abs(rb) + float(rc.abs().max())
    return abs(b - rb) <= tol * scale and float((c - rc).abs().max()) <= tol * scale


def _weighted_fit_cases():
    """(name, masks, values, weights, alpha): a linear game with a known answer, the lesson's toy game with LIME's
    kernel (with and without ridge), and a real image game on the coalitions that lime draws."""
    from ..data import load_mnist
    from ..explain import image_game, lime_kernel, lime_samples, patch_segments
    from ._common import _fresh_model

    gen = torch.Generator().manual_seed(5)
    z = torch.rand(40, 4, generator=gen) < 0.5
    w = 0.1 + torch.rand(40, generator=gen, dtype=torch.float64)
    cases = [("a linear game v(z) = 1.5 + 2 z_0 - z_1 + 0.5 z_2 + 3 z_3 (known answer)", z,
              1.5 + z.double() @ torch.tensor([2.0, -1.0, 0.5, 3.0], dtype=torch.float64), w, 0.0)]
    z = _masks(4)
    zd = z.double()
    toy = 2 * zd[:, 0] + zd[:, 1] + zd[:, 2] + 4 * zd[:, 1] * zd[:, 2]
    cases.append(("the toy game of section 1 on its 16 coalitions, LIME's kernel of width 0.5", z, toy,
                  lime_kernel(z, 0.5), 0.0))
    cases.append(("the same toy game with alpha = 1", z, toy, lime_kernel(z, 0.5), 1.0))
    model = _fresh_model("mnist_cnn")
    x, _ = load_mnist("test")
    game = image_game(model, x[3:4], None, patch_segments(28, (10, 7)))
    z = lime_samples(12, 300, seed=0)
    cases.append(("a held-out 4 (12 patches) on the 300 coalitions lime(..., seed=0) draws", z,
                  game(z).double(), lime_kernel(z, 0.25), 1e-3))
    return cases


def check_weighted_fit(fn) -> None:
    """Lesson 05: ``fn(masks, values, weights, alpha)`` must return ``(b, c)`` minimising

        Σ_k w_k (v_k - b - c·z_k)²  +  alpha ||c||²          (the intercept b not penalised)

    the surrogate fit inside :func:`course_lib.explain.lime` (``masks`` bool ``(K, n)``, ``values`` and ``weights``
    float64 ``(K,)``). The right answer is computed from the normal equations on a linear game with a known answer,
    the lesson's toy game with LIME's kernel (alpha 0 and 1) and an image game of a digit, where it is also what
    ``lime(..., return_intercept=True)`` returns. Rejected, each with its own message: the unweighted fit, rows scaled
    by w instead of sqrt(w), no intercept, the weights on the masks only or on the right-hand side only, masks and
    values misaligned, a penalised intercept, alpha ignored.
    """
    for name, z, v, w, alpha in _weighted_fit_cases():
        n = z.shape[1]
        out = fn(z.clone(), v.clone(), w.clone(), alpha)
        fit = _as_fit(out, n)
        truth = _normal_equations(z, v, w, alpha)
        if _fit_matches(fit, truth):
            continue
        for ref, message in _weighted_fit_wrong(z, v, w, alpha).values():
            if _fit_matches(fit, ref, tol=1e-3):
                raise AssertionError(f"on {name}: {message}")
        raise AssertionError(f"on {name}: your fit b = {fit[0]:.4f}, c = {[round(x, 4) for x in fit[1].tolist()]} "
                             f"differs from the weighted least-squares fit b = {truth[0]:.4f}, "
                             f"c = {[round(x, 4) for x in truth[1].tolist()]}. Minimise Σ_k w_k (v_k - b - z_k·c)² "
                             "+ alpha ||c||²: design X = [1, z], normal equations (XᵀWX + alpha P) β = XᵀWv with "
                             "P = diag(0, 1, ..., 1)")
    _ok("your weighted least-squares fit matches the normal equations on a linear game (known answer), the toy game "
        "with LIME's kernel (alpha 0 and 1) and a digit's image game, where it is what lime() fits.")
