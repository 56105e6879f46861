"""The helpers that lessons 05 and 06 import instead of defining them in notebook cells: coalition tables and
lookup games, explainers from game estimators, LIME's sampling, kernel and weighted fit, the first crossing of a
curve, a timed call, Spearman on two vectors, a one-line summary of a column, an interval's text, and two plots
(region borders, values written on regions). Each is checked against values computed by hand."""
import math
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from course_lib.explain import (  # noqa: E402
    all_coalitions,
    as_game,
    coalition,
    coalition_table,
    first_crossing,
    lime,
    lime_kernel,
    lime_samples,
    lookup_game,
    patch_segments,
    region_explainer,
    shapley_exact,
    spearman,
    timed_call,
)
from course_lib.explain.lime import weighted_ridge  # noqa: E402
from course_lib.plot import annotate_regions, outline_segments  # noqa: E402
from course_lib.stats import Interval, summarize  # noqa: E402


# --------------------------------------------------------------------------- coalitions, tables, lookup games
def test_all_coalitions_binary_order():
    m = all_coalitions(3)
    assert m.dtype == torch.bool and m.shape == (8, 3)
    assert m[0].tolist() == [False, False, False] and m[-1].tolist() == [True, True, True]
    assert m[5].tolist() == [True, False, True]          # 5 = 0b101: players 0 and 2
    with pytest.raises(ValueError, match="n_players"):
        all_coalitions(0)


def test_coalition_mask():
    assert coalition(4, [0, 2]).tolist() == [[True, False, True, False]]
    assert coalition(3, torch.tensor([1])).tolist() == [[False, True, False]]
    with pytest.raises(ValueError, match="players must be in 0..2"):
        coalition(3, [3])


def test_coalition_table_and_lookup_game_replay_the_game():
    game = as_game(lambda m: m.double() @ torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64) + 0.5, 3)
    table = coalition_table(game)
    assert game.evaluations == 8
    # by hand: v(S) = 0.5 + sum of 1, 10, 100 over the players in S, bit i = player i
    assert table.tolist() == [0.5, 1.5, 10.5, 11.5, 100.5, 101.5, 110.5, 111.5]
    replay = lookup_game(table)
    assert replay.n_players == 3
    assert replay(torch.tensor([[True, False, True], [False, True, False]])).tolist() == [101.5, 10.5]
    assert replay.evaluations == 2
    table[0] = -1.0                                   # the lookup game keeps its own copy
    assert float(replay(torch.zeros(1, 3, dtype=torch.bool))[0]) == 0.5
    with pytest.raises(ValueError, match="2\\^n"):
        lookup_game(torch.zeros(6))


class _PixelSum(nn.Module):
    """Two logits: the sum of the pixels and minus it (so the image game of class 0 is additive over patches)."""

    def forward(self, x):
        s = x.flatten(1).sum(1)
        return torch.stack([s, -s], 1)


def test_region_explainer_paints_each_players_value():
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4) / 16
    x = torch.cat([x, x.flip(-1)])
    seg = patch_segments(4, 2)                        # four 2x2 patches
    explain = region_explainer(lambda game: shapley_exact(game, 4), seg)
    maps = explain(_PixelSum().eval(), x, torch.tensor([0, 1]))
    assert maps.shape == (2, 4, 4)
    # additive game, black baseline: a patch's Shapley value is the sum of its pixels (class 1: minus it)
    for b, sign in [(0, 1.0), (1, -1.0)]:
        for p in range(4):
            expected = sign * float(x[b, 0][seg == p].sum())
            assert torch.allclose(maps[b][seg == p], torch.tensor(expected), atol=1e-5)


# --------------------------------------------------------------------------- LIME's pieces
def test_lime_samples_are_the_ones_lime_uses():
    z = lime_samples(5, 50, seed=2)
    assert z.shape == (50, 5) and z[0].all() and not z[1:].all(1).any()    # row 0 intact, the others lose >= 1
    seen = []
    game = as_game(lambda m: (seen.append(m.clone()), m.double().sum(1))[1], 5)
    lime(game, 5, 50, seed=2)
    assert torch.equal(torch.cat(seen), z)


def test_lime_kernel_by_hand():
    z = torch.tensor([[True, True, True, True], [True, False, False, False], [False] * 4])
    w = lime_kernel(z, 0.5)
    # d = 1 - sqrt(|z| / n): 0, 1 - 1/2 = 1/2, 1;  pi = exp(-d^2 / 0.25)
    torch.testing.assert_close(w, torch.tensor([1.0, math.exp(-1.0), math.exp(-4.0)], dtype=torch.float64))


def test_weighted_ridge_by_hand():
    # one player, coalitions z = 0, 1, 1 with values 1, 3, 5 and weights 1, 1, 2: b = v(0) = 1 exactly, and the
    # weighted mean of the z = 1 values is (3 + 2 * 5) / 3 = 13 / 3, so c = 10 / 3 (alpha 0)
    z = torch.tensor([[False], [True], [True]])
    b, c = weighted_ridge(z, torch.tensor([1.0, 3.0, 5.0]), torch.tensor([1.0, 1.0, 2.0]), alpha=0.0)
    assert float(b) == pytest.approx(1.0) and float(c[0]) == pytest.approx(10 / 3)
    # alpha shrinks c only: minimise sum w (v - b - c z)^2 + alpha c^2; centred: c = Szy / (Szz + alpha)
    _, c1 = weighted_ridge(z, torch.tensor([1.0, 3.0, 5.0]), torch.tensor([1.0, 1.0, 2.0]), alpha=1.0)
    # weighted means: z 3/4, v (1 + 3 + 10) / 4 = 3.5; Szz = 1*(9/16) + 3*(1/16) = 3/4;
    # Szy = (-3/4)(-2.5) + (1/4)(-0.5) + 2(1/4)(1.5) = 2.5
    assert float(c1[0]) == pytest.approx(2.5 / 1.75)


# --------------------------------------------------------------------------- lesson 06's small helpers
def test_first_crossing():
    f = torch.linspace(0, 1, 5)
    assert first_crossing(torch.tensor([0.9, 0.7, 0.4, 0.6, 0.1]), f) == pytest.approx(0.5)
    assert first_crossing(torch.tensor([0.1, 0.2, 0.6, 0.9, 1.0]), f, below=False) == pytest.approx(0.5)
    assert first_crossing(torch.tensor([0.9, 0.8, 0.7, 0.6, 0.55]), f) is None
    with pytest.raises(ValueError, match="same length"):
        first_crossing(torch.zeros(3), f)


def test_timed_call_keeps_the_result_and_divides_by_the_batch():
    x = torch.zeros(4, 2)
    out, seconds = timed_call(lambda z: (time.sleep(0.2), z + 1)[1], x)
    assert torch.equal(out, x + 1)
    assert 0.2 / 4 <= seconds < 0.2        # 0.2 s for 4 images: at least 0.05 s each


def test_spearman_with_and_without_keep():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert spearman(a, torch.tensor([10.0, 20.0, 30.0, 40.0])) == pytest.approx(1.0)
    # by hand: ranks (1,2,3,4) vs (1,3,2,4): 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman(a, torch.tensor([1.0, 3.0, 2.0, 4.0])) == pytest.approx(0.8)
    # on the first three only: (1,2,3) vs (1,3,2): 1 - 6 * 2 / (3 * 8) = 0.5
    assert spearman(a, torch.tensor([1.0, 3.0, 2.0, 4.0]), keep=torch.tensor([True, True, True, False])) \
        == pytest.approx(0.5)
    with pytest.raises(ValueError, match="keep"):
        spearman(a, a, keep=torch.ones(3, dtype=torch.bool))


def test_summarize_mean_and_median_ignore_nan():
    v = torch.tensor([1.0, float("nan"), 2.0, 10.0, 3.0])
    assert summarize(v) == pytest.approx(4.0)
    assert summarize(v, "median") == pytest.approx(2.5)      # midpoint of 2 and 3
    with pytest.raises(ValueError, match="statistic"):
        summarize(v, "mode")


def test_interval_describe():
    assert Interval(0.0371, -0.0071, 0.0912, 20).describe() == "+0.037 [-0.007, +0.091] ≈"
    assert Interval(-0.5, -0.6, -0.4, 20).describe() == "-0.500 [-0.600, -0.400]  "


# --------------------------------------------------------------------------- plots
def test_outline_segments_draws_borders_only():
    x = torch.full((1, 1, 4, 4), 0.25)
    seg = torch.zeros(4, 4, dtype=torch.long)
    seg[:, 2:] = 1                                   # two regions, left and right halves
    img = outline_segments(x, seg, color=(1, 1, 0), upscale=1)
    assert img.shape == (4, 4, 3)
    yellow = np.all(np.isclose(img, [1, 1, 0]), axis=-1)
    assert yellow[:, 1:3].all()                      # the pixels on both sides of the border
    assert np.allclose(img[:, 0], 0.25) and np.allclose(img[:, 3], 0.25)   # the rest: the grey image as RGB
    assert outline_segments(x, seg).shape == (32, 32, 3)                   # small images are enlarged 8 times


def test_annotate_regions_writes_at_centres():
    seg = torch.tensor([[0, 0, 1], [0, 0, 1]])
    fig, ax = plt.subplots()
    texts = annotate_regions(ax, torch.tensor([1.234, -5.0]), seg)
    assert [t.get_text() for t in texts] == ["1.23", "-5.00"]
    assert texts[0].get_position() == pytest.approx((0.5, 0.5)) and texts[1].get_position() == pytest.approx((2, 0.5))
    with pytest.raises(ValueError, match="one value per region"):
        annotate_regions(ax, torch.zeros(3), seg)
    plt.close(fig)
