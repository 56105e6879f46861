"""course_lib.stats.paired_bootstrap against distributions that can be enumerated by hand."""
import pytest
import torch

from course_lib.stats import Interval, paired_bootstrap


def test_mean_interval_of_a_hand_enumerated_distribution():
    # differences d = (1, 1, 1, 3): a resample holds k copies of the 3, k ~ Binomial(4, 1/4), so its mean is
    # 1 + k/2 with P(k) = 81, 108, 54, 12, 1 (/256). Cumulative: 0.316, 0.738, 0.949, 0.996, 1. The 2.5 % quantile
    # is therefore k = 0 (mean 1.0) and the 97.5 % quantile k = 3 (mean 2.5); the estimate is the mean 1.5
    a = torch.tensor([1.0, 1.0, 1.0, 3.0])
    iv = paired_bootstrap(a, torch.zeros(4), n_resamples=20_000, seed=0)
    assert iv == Interval(1.5, 1.0, 2.5, 4)
    assert iv.resolved


def test_median_interval_of_a_hand_enumerated_distribution():
    # a = (0, 1, 2), b = 0: of the 27 resamples, 7 have median 0 (at least two 0s), 13 median 1, 7 median 2
    # (P = 0.26 each end): the 95 % interval is [0, 2], the estimate the median 1
    iv = paired_bootstrap([0.0, 1.0, 2.0], [0.0, 0.0, 0.0], statistic="median", n_resamples=20_000)
    assert (iv.estimate, iv.low, iv.high) == (1.0, 0.0, 2.0)
    assert not iv.resolved
    # an even count: the median is the midpoint of the two middle values, not the lower one (torch.median)
    assert paired_bootstrap([1.0, 2.0, 3.0, 10.0], [0.0] * 4, statistic="median").estimate == 2.5


def test_pairing_cancels_what_the_items_share():
    # the items differ wildly, but a is b + 0.1 on every item: every resample's difference is exactly 0.1,
    # while two unpaired standard errors (about 30 each) would call the difference unresolved
    b = torch.tensor([0.0, 100.0, -50.0, 7.0, 30.0, -80.0, 64.0, 12.0], dtype=torch.float64)
    iv = paired_bootstrap(b + 0.1, b)
    assert iv.estimate == pytest.approx(0.1) and iv.low == pytest.approx(0.1) and iv.high == pytest.approx(0.1)
    assert iv.resolved
    assert float(b.std() / len(b) ** 0.5) > 20


def test_the_interval_narrows_with_a_lower_level_and_the_sign_follows_the_order():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.rand(30, generator=gen), torch.rand(30, generator=gen)
    wide, narrow = paired_bootstrap(a, b, level=0.95), paired_bootstrap(a, b, level=0.5)
    assert wide.low < narrow.low and narrow.high < wide.high
    flipped = paired_bootstrap(b, a)
    assert flipped.estimate == pytest.approx(-wide.estimate)
    assert flipped.low == pytest.approx(-wide.high) and flipped.high == pytest.approx(-wide.low)


def test_seed_and_nan_and_callable():
    a, b = [0.3, 0.9, 0.2, 0.5, 0.8], [0.1, 0.4, 0.4, 0.2, 0.3]
    assert paired_bootstrap(a, b, seed=3) == paired_bootstrap(a, b, seed=3)
    assert paired_bootstrap(a, b, seed=3) != paired_bootstrap(a, b, seed=4)
    # a NaN in either score drops the pair: (1, 3) - (0, 0) has mean 2
    nan = float("nan")
    iv = paired_bootstrap([1.0, nan, 3.0, 5.0], [0.0, 0.0, 0.0, nan])
    assert iv.n == 2 and iv.estimate == 2.0
    # a function of a (R, n) tensor: the maximum
    iv = paired_bootstrap([1.0, 5.0], [0.0, 0.0], statistic=lambda t: t.max(-1).values)
    assert iv.estimate == 5.0 and iv.high == 5.0 and iv.low == 1.0


@pytest.mark.parametrize("kw, message", [
    (dict(a=[1.0, 2.0], b=[1.0, 2.0, 3.0]), "same items"),
    (dict(a=[[1.0, 2.0]], b=[[1.0, 2.0]]), "1-D"),
    (dict(a=[1.0, 2.0], b=[0.0, 0.0], level=95), "level"),
    (dict(a=[1.0, 2.0], b=[0.0, 0.0], statistic="mode"), "statistic"),
    (dict(a=[1.0, float("nan")], b=[0.0, 0.0]), "at least 2"),
    (dict(a=[1.0, 2.0], b=[0.0, 0.0], n_resamples=0), "n_resamples"),
])
def test_rejects_bad_arguments(kw, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(**kw)


def test_paired_bootstrap_seed_means_what_it_means_everywhere():
    from course_lib.stats import paired_bootstrap

    a, b = torch.arange(30.0), torch.arange(30.0).flip(0) * 0.5
    assert paired_bootstrap(a, b, seed=3) == paired_bootstrap(a, b, seed=3)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert paired_bootstrap(a, b, seed=g1) == paired_bootstrap(a, b, seed=g2)
    torch.manual_seed(1)
    first = paired_bootstrap(a, b, n_resamples=200, seed=None)
    torch.manual_seed(1)
    assert paired_bootstrap(a, b, n_resamples=200, seed=None) == first
    assert paired_bootstrap(a, b, n_resamples=200, seed=None) != first     # fresh draws otherwise
