"""Cooperative games over image regions, Shapley values and LIME (course_lib.explain.games, .shapley, .lime).

The estimators are checked against the Shapley axioms, hand-computed games, a brute-force average over all
orders written here, and exactness properties of paired sampling; the image game against images built by hand.
"""
import itertools
import math

import numpy as np
import pytest
import torch

from course_lib.data import load_photo
from course_lib.explain import (
    image_game,
    kernel_shap,
    lime,
    patch_segments,
    shapley_exact,
    shapley_permutation,
    superpixel_segments,
)
from course_lib.explain.games import as_game
from course_lib.models import load_model

# --------------------------------------------------------------------------- hand-made games

def table_game(table, n):
    """The game whose value for coalition S is table[sum_{i in S} 2^i]."""
    powers = 2 ** torch.arange(n)
    return as_game(lambda m: table[(m.long() * powers).sum(1)], n)


def random_table(n, seed):
    return torch.randn(2 ** n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def brute_force_shapley(table, n):
    """Average marginal contribution over all n! orders: the definition, independent of the code under test."""
    phi = torch.zeros(n, dtype=torch.float64)
    for order in itertools.permutations(range(n)):
        coalition = 0
        for i in order:
            phi[i] += table[coalition | (1 << i)] - table[coalition]
            coalition |= 1 << i
    return phi / math.factorial(n)


def interaction_game(n, seed, third_order=0.0):
    """v(z) = a·z + z^T B z (+ third-order terms): Shapley value a_i + sum_j (B_ij + B_ji) / 2 without them."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, generator=g, dtype=torch.float64)
    b = torch.randn(n, n, generator=g, dtype=torch.float64) * 0.5
    c = torch.randn(n, n, n, generator=g, dtype=torch.float64) * third_order

    def v(m):
        z = m.double()
        out = z @ a + torch.einsum("ki,ij,kj->k", z, b, z)
        if third_order:
            out = out + torch.einsum("ki,kj,kl,ijl->k", z, z, z, c)
        return out

    b_sym = b + b.T
    return as_game(v, n), a + b.diagonal() + (b_sym.sum(1) - 2 * b.diagonal()) / 2


def rel_err(est, ref):
    return float((est - ref).norm() / ref.norm())


ESTIMATORS = {
    "permutation": lambda v, n, budget, seed=0: shapley_permutation(v, n, budget, seed=seed),
    "permutation-plain": lambda v, n, budget, seed=0: shapley_permutation(v, n, budget, seed=seed, antithetic=False),
    "kernel": lambda v, n, budget, seed=0: kernel_shap(v, n, budget, seed=seed),
}


# --------------------------------------------------------------------------- shapley_exact

def test_glove_game_by_hand():
    # Player 0 owns a left glove, players 1 and 2 a right glove each; a pair is worth 1: v(S) = 1 iff S holds
    # player 0 and at least one of 1, 2. Over the 6 orders, player 0 completes a pair whenever it does not come
    # first (4 orders): phi_0 = 4/6. Player 1 completes a pair only in the order (0, 1, 2): phi_1 = 1/6 = phi_2.
    table = torch.tensor([0, 0, 0, 1, 0, 1, 0, 1], dtype=torch.float64)   # index = bits of {0, 1, 2}
    phi = shapley_exact(table_game(table, 3), 3)
    torch.testing.assert_close(phi, torch.tensor([4 / 6, 1 / 6, 1 / 6], dtype=torch.float64), rtol=0, atol=1e-12)


def test_weighted_majority_game_by_hand():
    # Weights (2, 1, 1, 1), quota 3 (a coalition wins if its weight is >= 3). Player 0 is pivotal when it joins
    # after exactly 1 or 2 of the others: positions 2 and 3 of 4, so phi_0 = 2/4 = 1/2. By efficiency and
    # symmetry the three small players share the rest: 1/6 each.
    w = torch.tensor([2, 1, 1, 1])
    game = as_game(lambda m: ((m.long() * w).sum(1) >= 3).double(), 4)
    torch.testing.assert_close(shapley_exact(game, 4), torch.tensor([1 / 2, 1 / 6, 1 / 6, 1 / 6],
                                                                   dtype=torch.float64), rtol=0, atol=1e-12)


def test_exact_equals_the_average_over_all_orders():
    for seed in range(3):
        table = random_table(5, seed)
        torch.testing.assert_close(shapley_exact(table_game(table, 5), 5), brute_force_shapley(table, 5),
                                   rtol=0, atol=1e-12)


def test_exact_on_an_additive_game_gives_the_coefficients():
    c = torch.tensor([3.0, -1.0, 0.5, 2.0, 0.0, -4.0], dtype=torch.float64)
    game = as_game(lambda m: 7.0 + m.double() @ c, 6)      # the constant is v(∅): nobody's contribution
    torch.testing.assert_close(shapley_exact(game, 6), c, rtol=0, atol=1e-12)
    assert game.evaluations == 2 ** 6


def test_shapley_axioms():
    n = 6
    table = random_table(n, 0)
    idx = torch.arange(2 ** n)
    bit = lambda i: (idx >> i) & 1          # noqa: E731
    # symmetry: players 1 and 2 interchangeable (average the game with its 1 <-> 2 swap)
    swapped = idx - bit(1) * 2 - bit(2) * 4 + bit(1) * 4 + bit(2) * 2
    sym = (table + table[swapped]) / 2
    # null player: player 3 never changes the value
    null = sym[idx & ~(1 << 3)]
    phi = shapley_exact(table_game(null, n), n)
    assert abs(float(phi.sum()) - float(null[-1] - null[0])) < 1e-12, "efficiency"
    assert abs(float(phi[1] - phi[2])) < 1e-12, "symmetry"
    assert abs(float(phi[3])) < 1e-12, "null player"
    assert abs(float(phi[0] - phi[1])) > 1e-3, "a random game must not make every player look alike"
    # linearity: phi(2 v - 3 w) = 2 phi(v) - 3 phi(w)
    other = random_table(n, 1)
    lhs = shapley_exact(table_game(2 * table - 3 * other, n), n)
    rhs = 2 * shapley_exact(table_game(table, n), n) - 3 * shapley_exact(table_game(other, n), n)
    torch.testing.assert_close(lhs, rhs, rtol=0, atol=1e-12)


def test_exact_refuses_more_than_20_players_before_evaluating():
    game = as_game(lambda m: m.double().sum(1), 21)
    with pytest.raises(ValueError, match=r"2\^n = 2,097,152 evaluations.*n_players <= 20"):
        shapley_exact(game, 21)
    assert game.evaluations == 0


# --------------------------------------------------------------------------- estimators

@pytest.mark.parametrize("n", [2, 5, 7])
def test_kernel_shap_with_every_coalition_is_exact(n):
    table = random_table(n, n)
    exact = shapley_exact(table_game(table, n), n)
    for budget in (2 ** n, 2 ** n + 100):
        game = table_game(table, n)
        torch.testing.assert_close(kernel_shap(game, n, budget, seed=0), exact, rtol=0, atol=1e-8)
        assert game.evaluations == 2 ** n


def test_paired_estimators_are_exact_on_games_with_pairwise_interactions():
    # For v(z) = a·z + z^T B z the marginal contributions of i after S and after N \ (S ∪ {i}) average to
    # phi_i, so antithetic permutations and complementary coalitions remove all sampling error.
    n = 8
    game, phi = interaction_game(n, 0)
    torch.testing.assert_close(shapley_exact(game, n), phi, rtol=0, atol=1e-12)
    torch.testing.assert_close(shapley_permutation(game, n, 2 + 4 * (n - 1), seed=1), phi, rtol=0, atol=1e-10)
    torch.testing.assert_close(kernel_shap(game, n, 40, seed=1), phi, rtol=0, atol=1e-10)
    # the same budget without pairing leaves sampling error
    assert rel_err(shapley_permutation(game, n, 2 + 4 * (n - 1), seed=1, antithetic=False), phi) > 1e-3


@pytest.mark.parametrize("name, budget, tol", [("kernel", 200, 0.05), ("permutation", 200, 0.15),
                                               ("kernel", 1000, 0.01), ("permutation", 1000, 0.08)])
def test_estimators_approach_the_exact_values(name, budget, tol):
    n = 8
    game, _ = interaction_game(n, 1, third_order=0.1)
    exact = shapley_exact(game, n)
    errors = [rel_err(ESTIMATORS[name](game, n, budget, seed), exact) for seed in range(3)]
    assert max(errors) < tol, errors


def test_more_evaluations_give_smaller_errors():
    n = 8
    table = random_table(n, 3)
    exact = shapley_exact(table_game(table, n), n)
    for est in ESTIMATORS.values():
        small = np.mean([rel_err(est(table_game(table, n), n, 40, s), exact) for s in range(4)])
        large = np.mean([rel_err(est(table_game(table, n), n, 230, s), exact) for s in range(4)])
        assert large < small / 2


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_efficiency_holds_exactly_for_every_estimate(name):
    n = 9
    table = random_table(n, 4)
    for budget, seed in [(n + 1, 0), (57, 1), (300, 2)]:
        phi = ESTIMATORS[name](table_game(table, n), n, budget, seed)
        assert abs(float(phi.sum() - (table[-1] - table[0]))) < 1e-10


@pytest.mark.parametrize("name", list(ESTIMATORS))
@pytest.mark.parametrize("n, budget", [(1, 2), (1, 50), (2, 4), (3, 4), (3, 7), (3, 100), (6, 8), (6, 64),
                                       (10, 12), (10, 13), (10, 333), (12, 500)])
def test_budgets_are_never_exceeded(name, n, budget):
    game = table_game(random_table(n, 0), n)
    ESTIMATORS[name](game, n, budget, seed=0)
    assert game.evaluations <= budget
    assert game.evaluations >= min(budget, 2 ** n) - n      # and most of the budget is used


def test_permutation_sampling_spends_n_minus_1_evaluations_per_order():
    game = table_game(random_table(6, 0), 6)
    shapley_permutation(game, 6, 2 + 5 * 7 + 4, seed=0)
    assert game.evaluations == 2 + 5 * 7


def test_one_player_gets_everything():
    game = as_game(lambda m: 3.0 + 2.0 * m.double()[:, 0], 1)
    for est in ESTIMATORS.values():
        assert float(est(game, 1, 2)) == pytest.approx(2.0)
    assert float(shapley_exact(game, 1)) == pytest.approx(2.0)


@pytest.mark.parametrize("name", list(ESTIMATORS) + ["lime"])
def test_seeds_reproduce_and_differ(name):
    n = 8
    table = random_table(n, 5)
    run = (lambda s: lime(table_game(table, n), n, 100, seed=s)) if name == "lime" else \
        (lambda s: ESTIMATORS[name](table_game(table, n), n, 100, s))
    state = torch.get_rng_state()
    torch.testing.assert_close(run(3), run(3), rtol=0, atol=0)
    assert not torch.equal(run(3), run(4))
    torch.testing.assert_close(run(torch.Generator().manual_seed(3)), run(3), rtol=0, atol=0)
    assert torch.equal(torch.get_rng_state(), state), "an int seed must not touch the global RNG"
    # seed=None draws from the global RNG (course_lib._rng), so torch.manual_seed reproduces it
    torch.manual_seed(11)
    first = run(None)
    torch.manual_seed(11)
    torch.testing.assert_close(run(None), first, rtol=0, atol=0)
    torch.set_rng_state(state)


def test_estimators_return_the_games_dtype():
    table = random_table(5, 0)
    game32 = as_game(lambda m: table_game(table, 5)(m).float(), 5)
    for est in list(ESTIMATORS.values()) + [lambda v, n, b, s=0: lime(v, n, b, seed=s)]:
        assert est(game32, 5, 20).dtype == torch.float32
        assert est(table_game(table, 5), 5, 20).dtype == torch.float64


# --------------------------------------------------------------------------- LIME

@pytest.mark.parametrize("sampling", ["size", "bernoulli"])
def test_lime_recovers_a_linear_game(sampling):
    c = torch.tensor([1.5, -2.0, 0.25, 0.0, 3.0, -0.75], dtype=torch.float64)
    game = as_game(lambda m: 0.5 + m.double() @ c, 6)
    coef, intercept = lime(game, 6, 500, seed=0, sampling=sampling, return_intercept=True)
    torch.testing.assert_close(coef, c, rtol=0, atol=1e-3)
    assert float(intercept) == pytest.approx(0.5, abs=1e-3)
    assert game.evaluations == 500
    torch.testing.assert_close(lime(game, 6, 500, seed=0, sampling=sampling, alpha=0.0), c, rtol=0, atol=1e-9)


def test_lime_is_the_weighted_ridge_regression_of_the_paper():
    from sklearn.linear_model import Ridge

    n, width, alpha = 7, 0.4, 0.3
    table = random_table(n, 6)
    seen = []
    recorder = as_game(lambda m: seen.append(m.clone()) or table_game(table, n)(m), n)
    coef, intercept = lime(recorder, n, 300, kernel_width=width, seed=2, alpha=alpha, return_intercept=True)
    z = torch.cat(seen)
    assert z.shape == (300, n) and bool(z[0].all()), "the first sample is the original (all players)"
    assert z[1:].sum(1).max() < n, "size sampling switches at least one player off"
    zf = z.double().numpy()
    cosine = zf.sum(1) / (np.linalg.norm(zf, axis=1) * math.sqrt(n) + 1e-300)
    weights = np.exp(-(1 - cosine) ** 2 / width ** 2)
    y = table_game(table, n)(z).numpy()
    ref = Ridge(alpha=alpha).fit(zf, y, sample_weight=weights)
    np.testing.assert_allclose(coef.numpy(), ref.coef_, rtol=0, atol=1e-8)
    assert float(intercept) == pytest.approx(ref.intercept_, abs=1e-8)


def test_lime_size_sampling_covers_every_size_evenly():
    n = 5
    seen = []
    lime(as_game(lambda m: seen.append(m.clone()) or m.double().sum(1), n), n, 5001, seed=0)
    sizes = torch.cat(seen)[1:].sum(1)
    counts = torch.bincount(sizes, minlength=n + 1)
    assert counts[n] == 0 and (counts[:n] - 1000).abs().max() < 120


# --------------------------------------------------------------------------- segments

def test_patch_segments():
    seg = patch_segments(28, 4)
    assert seg.shape == (28, 28) and seg.dtype == torch.long
    h, w = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    assert torch.equal(seg, (h // 4) * 7 + w // 4)
    assert torch.equal(torch.bincount(seg.flatten()), torch.full((49,), 16))
    grid = patch_segments(torch.rand(1, 1, 28, 28), (10, 7))
    assert int(grid.max()) + 1 == 12 and grid[0, 27] == 3 and grid[27, 0] == 8 and grid[20, 7] == 9
    ragged = patch_segments((5, 7), 3)                       # partial patches at the right and bottom edges
    assert torch.equal(ragged, torch.tensor([[0] * 3 + [1] * 3 + [2]] * 3 + [[3] * 3 + [4] * 3 + [5]] * 2))


def _check_labels(seg, shape):
    assert seg.shape == shape and seg.dtype == torch.long
    labels = torch.unique(seg)
    assert torch.equal(labels, torch.arange(len(labels))), "labels must be 0..n-1, each present"


def test_superpixel_segments_grey_and_rgb(mnist_test):
    x = mnist_test[0][:1]
    seg = superpixel_segments(x, n_segments=16)
    _check_labels(seg, (28, 28))
    assert 8 <= int(seg.max()) + 1 <= 24
    assert torch.equal(superpixel_segments(x[0], n_segments=16), seg), "(C,H,W) and (1,C,H,W) agree"
    photo = load_photo("cat", size=48)
    seg_rgb = superpixel_segments(photo, n_segments=20)
    _check_labels(seg_rgb, (48, 48))
    assert int(seg_rgb.max()) + 1 >= 5


# --------------------------------------------------------------------------- the image game

@pytest.fixture(scope="module")
def mnist(mnist_test):
    return load_model("mnist_cnn"), mnist_test[0][:1].clone()


def test_image_game_by_hand(mnist):
    model, x = mnist
    seg = patch_segments(x, 7)                               # 16 players
    baseline = torch.full_like(x, 0.25)
    baseline[..., :14, :] = 0.75                             # a baseline that is not constant
    game = image_game(model, x, 3, seg, baseline)
    assert game.n_players == 16 and game.target == 3 and game.evaluations == 0
    one = torch.zeros(1, 16, dtype=torch.bool)
    one[0, 5] = True                                         # patch (row 1, column 1): pixels 7..13 x 7..13
    masks = torch.cat([torch.ones(1, 16, dtype=torch.bool), torch.zeros(1, 16, dtype=torch.bool), one])
    values = game(masks)
    hand = baseline.clone()
    hand[..., 7:14, 7:14] = x[..., 7:14, 7:14]
    with torch.no_grad():
        expected = model(torch.cat([x, baseline, hand]))[:, 3]
    torch.testing.assert_close(values, expected)
    assert game.evaluations == 3
    game(masks.long())                                       # 0/1 integers are accepted
    assert game.evaluations == 6


def test_image_game_target_batches_and_probabilities(mnist):
    model, x = mnist
    seg = patch_segments(x, 7)
    masks = torch.rand(10, 16, generator=torch.Generator().manual_seed(0)) < 0.5
    with torch.no_grad():
        predicted = int(model(x).argmax())
    game = image_game(model, x, None, seg)
    assert game.target == predicted
    small = image_game(model, x, None, seg, batch_size=3)
    torch.testing.assert_close(small(masks), game(masks), rtol=1e-5, atol=1e-5)
    prob = image_game(model, x, None, seg, output="probability")
    # the coalitions' images built by hand, not with the game's own images(): player p is the 7x7 patch in row
    # p // 4, column p % 4; a player left out shows the default baseline, black
    hand = torch.zeros(10, 1, 28, 28)
    for k in range(10):
        for p in masks[k].nonzero().flatten().tolist():
            r, c = divmod(p, 4)
            hand[k, :, 7 * r:7 * r + 7, 7 * c:7 * c + 7] = x[0, :, 7 * r:7 * r + 7, 7 * c:7 * c + 7]
    assert torch.equal(prob.images(masks), hand)
    with torch.no_grad():
        expected = model(hand).softmax(1)[:, predicted]
    torch.testing.assert_close(prob(masks), expected)
    torch.testing.assert_close(game(masks), model(hand)[:, predicted].detach())
    assert prob(masks).max() <= 1


def test_image_game_with_the_estimators(mnist):
    model, x = mnist
    game = image_game(model, x, None, patch_segments(x, (7, 14)), 0.0)       # 4 x 2 patches
    exact = shapley_exact(game, 8)
    assert game.evaluations == 256 and exact.dtype == x.dtype
    with torch.no_grad():
        logits = model(torch.cat([x, torch.zeros_like(x)]))[:, game.target]
    assert float(exact.sum()) == pytest.approx(float(logits[0] - logits[1]), rel=1e-4)
    phi = kernel_shap(game, 8, 100, seed=0)
    assert rel_err(phi.double(), exact.double()) < 0.1


def test_no_side_effects(mnist):
    model, x = mnist
    frozen = load_model("mnist_cnn")
    for p in frozen.parameters():
        p.requires_grad_(False)
    seg = patch_segments(x, 14)
    for m in (model, frozen):
        flags = [p.requires_grad for p in m.parameters()]
        x0, seg0 = x.clone(), seg.clone()
        with torch.no_grad():
            a = kernel_shap(image_game(m, x, None, seg), 4, 16)
        b = lime(image_game(m, x, None, seg), 4, 20, seed=0)
        c = shapley_permutation(image_game(m, x, 1, seg, torch.rand_like(x)), 4, 12, seed=0)
        assert not any(t.requires_grad for t in (a, b, c))
        assert not m.training
        assert [p.requires_grad for p in m.parameters()] == flags
        assert all(p.grad is None for p in m.parameters())
        assert torch.equal(x, x0) and torch.equal(seg, seg0)
        assert all(not mod._forward_hooks and not mod._backward_hooks for mod in m.modules())


def test_the_game_keeps_its_own_copy_of_the_image_and_segments(mnist):
    model, x = mnist
    x, seg = x.clone(), patch_segments(x, 14)
    game = image_game(model, x, 0, seg)
    masks = torch.tensor([[True, False, False, False], [True, True, True, True]])
    before = game(masks)
    x.zero_()
    seg.fill_(0)
    torch.testing.assert_close(game(masks), before)
    assert game(masks[:0]).shape == (0,)


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("masks, err, match", [
    (torch.ones(16, dtype=torch.bool), ValueError, r"shape \(K, 16\).*masks\[None\]"),
    (torch.ones(2, 15, dtype=torch.bool), ValueError, r"shape \(K, 16\)"),
    (torch.full((2, 16), 0.5), ValueError, "bool, or hold only the values 0 and 1"),
    (np.ones((2, 16), dtype=bool), TypeError, "bool tensor"),
])
def test_bad_masks(mnist, masks, err, match):
    model, x = mnist
    game = image_game(model, x, 0, patch_segments(x, 7))
    with pytest.raises(err, match=match):
        game(masks)
    assert game.evaluations == 0


@pytest.mark.parametrize("segments, err, match", [
    (torch.zeros(28, 28, dtype=torch.long).index_fill_(0, torch.tensor([0]), 2), ValueError, r"missing e.g. \[1\]"),
    (torch.zeros(27, 28, dtype=torch.long), ValueError, r"shape \(H, W\) = \(28, 28\)"),
    (torch.zeros(1, 28, 28, dtype=torch.long), ValueError, r"shape \(H, W\)"),
    (torch.zeros(28, 28), TypeError, "integer labels"),
    (torch.full((28, 28), -1), ValueError, "every label 0..n-1"),
    ([[0]], TypeError, "LongTensor"),
])
def test_bad_segments(mnist, segments, err, match):
    model, x = mnist
    with pytest.raises(err, match=match):
        image_game(model, x, 0, segments)


def test_bad_image_game_arguments(mnist):
    model, x = mnist
    seg = patch_segments(x, 7)
    with pytest.raises(ValueError, match=r"one image.*batch size 2"):
        image_game(model, torch.cat([x, x]), 0, seg)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        image_game(model, x * 2, 0, seg)
    with pytest.raises(ValueError, match=r"baseline must hold values in \[0, 1\]"):
        image_game(model, x, 0, seg, baseline=-1.0)
    with pytest.raises(ValueError, match="baseline must be broadcastable"):
        image_game(model, x, 0, seg, baseline=torch.zeros(3, 28, 28))
    with pytest.raises(ValueError, match="output must be one of"):
        image_game(model, x, 0, seg, output="logits")
    with pytest.raises(ValueError, match=r"class index in \[0, 10\)"):
        image_game(model, x, 10, seg)
    with pytest.raises(ValueError, match="batch_size"):
        image_game(model, x, 0, seg, batch_size=0)
    trained = load_model("mnist_cnn").train()
    with pytest.raises(ValueError, match="training mode"):
        image_game(trained, x, 0, seg)
    assert trained.training


def test_bad_estimator_arguments():
    game = table_game(random_table(6, 0), 6)
    with pytest.raises(ValueError, match="n_players=5 does not match the game, which has 6 players"):
        kernel_shap(game, 5, 100)
    with pytest.raises(ValueError, match="n_players=7 does not match"):
        shapley_exact(game, 7)
    with pytest.raises(ValueError, match="n_evals must be an int >= 7"):
        shapley_permutation(game, 6, 6)
    with pytest.raises(ValueError, match="n_evals must be an int >= 8"):
        kernel_shap(game, 6, 7)                              # n + 1 = 7, rounded up to whole pairs
    with pytest.raises(TypeError, match="n_evals must be an int"):
        kernel_shap(game, 6, 100.0)
    with pytest.raises(ValueError, match="n_samples must be an int >= 2"):
        lime(game, 6, 1)
    with pytest.raises(ValueError, match="kernel_width must be a positive number"):
        lime(game, 6, 100, kernel_width=0)
    with pytest.raises(ValueError, match="sampling must be one of"):
        lime(game, 6, 100, sampling="uniform")
    with pytest.raises(TypeError, match="seed must be None, an int or a torch.Generator"):
        kernel_shap(game, 6, 100, seed=1.5)
    with pytest.raises(ValueError, match=r"one value per coalition, got \(4, 1\)"):
        shapley_exact(lambda m: m.double()[:, :1], 2)
    with pytest.raises(ValueError, match="NaN"):
        kernel_shap(lambda m: torch.full((len(m),), float("nan")), 3, 8)
    with pytest.raises(TypeError, match="value must be a callable"):
        shapley_permutation("game", 3, 10)
    assert game.evaluations == 0


def test_kernel_design_gives_each_size_its_kernel_weight():
    """Whatever is enumerated or sampled, the regression weights of the coalitions of size s or n - s add up to
    the Shapley kernel's total weight on those sizes, W_s = (n - 1) / (s (n - s)) for each of the two sizes."""
    from course_lib.explain.shapley import _kernel_design

    n = 10
    masks, weights = _kernel_design(n, 198, torch.Generator().manual_seed(0))
    assert masks.shape[0] == weights.shape[0] <= 198
    sizes = masks.sum(1)
    for s in range(1, n // 2 + 1):
        pair = (sizes == s) | (sizes == n - s)
        expected = (n - 1) / (s * (n - s)) * (1 if 2 * s == n else 2)
        assert float(weights[pair].sum()) == pytest.approx(expected, rel=1e-9), s
