"""Randomised smoothing (Cohen, Rosenfeld & Kolter, 2019) checked against closed forms and definitions: a constant
classifier, a threshold classifier whose vote is a known Bernoulli, scripted votes at the binomial test's edge,
seeds and invariants, and soundness of the certificates on the shipped mnist_cnn."""
import math

import pytest
import torch
from scipy.stats import binom, binomtest, norm
from torch import nn

from course_lib.certify import smoothed_certify, smoothed_predict
from course_lib.certify.smoothing import binomial_pvalue, lower_confidence_bound

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- hand-made base classifiers
class Constant(nn.Module):
    """Returns the same logits for every input: all votes go to ``cls``."""

    def __init__(self, cls, k=4, dtype=torch.float32):
        super().__init__()
        self.register_buffer("logits", (torch.arange(k) == cls).to(dtype))
        self.eval()

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1)


class Threshold(nn.Module):
    """Class 0 if the first pixel exceeds ``t``, else class 1. Under noise N(0, sigma^2) the vote for class 0 is a
    Bernoulli with ``p = Phi((x_0 - t) / sigma)``, and the smoothed classifier is ``x_0 > t``: its exact L2 robustness
    radius at ``x`` is ``x_0 - t = sigma Phi^-1(p)`` (randomised smoothing is tight for linear classifiers)."""

    def __init__(self, t):
        super().__init__()
        self.t = t
        self.scale = nn.Parameter(torch.ones(()))  # a parameter, to check that requires_grad is left alone
        self.eval()

    def forward(self, x):
        v = x[:, 0, 0, 0]
        return self.scale * torch.stack([v - self.t, self.t - v], 1)


class Scripted(nn.Module):
    """Votes in a fixed order, whatever the input: the i-th noisy image seen gets class ``votes[i]`` (for one image,
    the i-th noise sample). Controls the vote counts exactly."""

    def __init__(self, votes, k=10):
        super().__init__()
        self.votes, self.k, self.seen = torch.as_tensor(votes), k, 0
        self.eval()

    def forward(self, x):
        idx = torch.arange(self.seen, self.seen + x.shape[0]) % len(self.votes)
        self.seen += x.shape[0]
        return nn.functional.one_hot(self.votes[idx], self.k).to(x.dtype)


def pixels(values, size=2, dtype=torch.float32):
    """Images ``(B, 1, size, size)`` whose first pixel holds ``values`` (the rest 0.5)."""
    x = torch.full((len(values), 1, size, size), 0.5, dtype=dtype)
    x[:, 0, 0, 0] = torch.tensor(values, dtype=dtype)
    return x


def spread(counts):
    """A vote list with ``counts[c]`` votes for class c, interleaved (so no class owns a contiguous block)."""
    votes = [c for c, k in enumerate(counts) for _ in range(k)]
    g = torch.Generator().manual_seed(0)
    return torch.tensor(votes)[torch.randperm(len(votes), generator=g)]


# --------------------------------------------------------------------------- the statistics
def test_clopper_pearson_lower_bound_is_its_definition():
    # P(Binomial(n, p_low) >= k) = alpha: the largest p that the observed k rejects at level alpha
    for k, n, alpha in [(1, 10, 0.05), (73, 100, 0.001), (9_990, 10_000, 0.01)]:
        p = lower_confidence_bound(k, n, alpha)
        assert binom.sf(k - 1, n, p) == pytest.approx(alpha, rel=1e-6)
    assert lower_confidence_bound(0, 50, 0.001) == 0.0
    assert lower_confidence_bound(1000, 1000, 0.001) == pytest.approx(0.001 ** (1 / 1000), rel=1e-12)


def test_binomial_pvalue_is_scipys_two_sided_test():
    assert binomial_pvalue(61, 39) == pytest.approx(binomtest(61, 100, 0.5, alternative="two-sided").pvalue)
    assert binomial_pvalue(50, 50) == pytest.approx(1.0)
    assert binomial_pvalue(0, 0) == 1.0


# --------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("sigma, n, alpha", [(0.25, 1_000, 0.001), (0.5, 5_000, 0.01)])
def test_constant_classifier_certifies_the_largest_radius_n_samples_allow(sigma, n, alpha):
    # all n votes for c: p_A_lower = alpha^(1/n), radius = sigma Phi^-1(alpha^(1/n))
    x = pixels([0.2, 0.7, 1.0])
    labels, radii = smoothed_certify(Constant(2), x, sigma, n0=10, n=n, alpha=alpha, seed=0)
    assert labels.tolist() == [2, 2, 2]
    expected = sigma * norm.ppf(alpha ** (1 / n))
    assert radii.tolist() == pytest.approx([expected] * 3, rel=1e-6)
    assert smoothed_predict(Constant(2), x, sigma, n=n, alpha=alpha, seed=0).tolist() == [2, 2, 2]


def test_bernoulli_votes_give_the_clopper_pearson_radius_for_the_counted_k():
    sigma, t, n, alpha = 0.25, 0.3, 2_000, 0.001
    x0 = [0.4, 0.5, 0.7, 0.05]  # p = Phi(0.4), Phi(0.8), Phi(1.6) for class 0; Phi(1.0) for class 1 (x_0 < t)
    labels, radii, counts = smoothed_certify(Threshold(t), pixels(x0), sigma, n=n, alpha=alpha, seed=1,
                                             return_counts=True)
    assert labels.tolist() == [0, 0, 0, 1]
    assert counts.sum(1).tolist() == [n] * 4
    for i, v in enumerate(x0):
        c = labels[i].item()
        k = counts[i, c].item()
        p_true = norm.cdf(abs(v - t) / sigma)
        assert abs(k - n * p_true) < 5 * math.sqrt(n * p_true * (1 - p_true))  # the votes are Binomial(n, p)
        expected = sigma * norm.ppf(lower_confidence_bound(k, n, alpha))
        assert radii[i].item() == pytest.approx(expected, rel=1e-6)
        assert radii[i].item() < abs(v - t)  # below the exact radius sigma Phi^-1(p_true) (w.p. >= 1 - alpha)
    # the same answer without return_counts
    again = smoothed_certify(Threshold(t), pixels(x0), sigma, n=n, alpha=alpha, seed=1)
    assert torch.equal(again[0], labels) and torch.equal(again[1], radii)


def test_bernoulli_radius_stays_below_the_true_radius_on_200_independent_runs():
    sigma, t, n, alpha = 0.25, 0.3, 1_000, 0.001
    true_radius = 0.5 - t  # = sigma Phi^-1(Phi(0.8))
    labels, radii = smoothed_certify(Threshold(t), pixels([0.5] * 200), sigma, n=n, alpha=alpha, seed=2)
    assert (labels == 0).all()
    # each image's certificate fails with probability <= alpha: 3 or more failures in 200 has probability < 0.002
    assert int((radii >= true_radius).sum()) <= 2
    # and the bound is not vacuous: 1,000 votes pin p_A to about +-0.04
    assert 0.7 * true_radius < radii.mean().item() < true_radius


# --------------------------------------------------------------------------- abstention and the binomial test
def test_votes_split_half_and_half_abstain_in_predict_and_certify():
    exact = Scripted(spread([500, 500]), k=3)
    assert smoothed_predict(exact, pixels([0.5]), 0.1, n=1_000).tolist() == [-1]
    labels, radii = smoothed_certify(Scripted(spread([500, 500]), k=3), pixels([0.5]), 0.1, n0=100, n=1_000)
    assert labels.tolist() == [-1] and radii.tolist() == [0.0]
    # the same with real noise: threshold at the pixel's value, p = 1/2 for both classes
    x = pixels([0.5] * 20)
    assert (smoothed_predict(Threshold(0.5), x, 0.25, n=1_000, seed=3) == -1).all()
    labels, radii = smoothed_certify(Threshold(0.5), x, 0.25, n=1_000, seed=3)
    assert (labels == -1).all() and (radii == 0).all()


@pytest.mark.parametrize("n_a, n_b, expected", [(60, 40, -1), (61, 39, 2)])
def test_predict_flips_where_the_two_sided_pvalue_crosses_alpha(n_a, n_b, expected):
    # p-values: 60/40 -> 0.057 > 0.05, 61/39 -> 0.035 <= 0.05
    assert (binomtest(n_a, 100, 0.5).pvalue > 0.05) == (expected == -1)
    votes = spread([0, 0, n_a, 0, 0, n_b])
    assert smoothed_predict(Scripted(votes), pixels([0.5]), 0.1, n=100, alpha=0.05).tolist() == [expected]


@pytest.mark.parametrize("n_a, expected", [(27, -1), (28, 0)])
def test_predict_tests_only_the_top_two_counts(n_a, expected):
    # 14 votes for class 1, the rest (<= 8 each) spread over classes 2..9: the test is on n_A out of n_A + n_B = 41
    # or 42 (p = 0.0596 / 0.0436), not out of n = 100 (where 27 and 28 both reject p = 1/2)
    rest = 100 - n_a - 14
    counts = [n_a, 14] + [rest // 8 + (i < rest % 8) for i in range(8)]
    assert max(counts[2:]) < 14 and sum(counts) == 100
    label = smoothed_predict(Scripted(spread(counts)), pixels([0.5]), 0.1, n=100, alpha=0.05)
    assert label.tolist() == [expected]


def test_certify_selects_with_n0_and_estimates_with_n_fresh_votes():
    # selection sees 10 votes for class 3; estimation sees 990 for class 5 and 10 for class 3: c_A = 3, k = 10
    votes = torch.tensor([3] * 10 + [5] * 990 + [3] * 10)
    labels, radii, counts = smoothed_certify(Scripted(votes), pixels([0.5]), 0.1, n0=10, n=1_000,
                                             return_counts=True)
    assert counts[0, 3].item() == 10 and counts[0, 5].item() == 990
    assert labels.tolist() == [-1] and radii.tolist() == [0.0]  # p_A_lower of 10/1000 < 1/2: abstain


# --------------------------------------------------------------------------- seeds, batching, invariants
def test_same_seed_same_answer_other_seed_other_votes():
    x = pixels([0.35, 0.45, 0.5])

    def run(seed):
        return smoothed_certify(Threshold(0.3), x, 0.25, n=500, seed=seed, return_counts=True)

    a, b = run(4), run(4)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert all(torch.equal(u, v) for u, v in zip(a, run(torch.Generator().manual_seed(4)), strict=True))
    assert not torch.equal(a[2], run(5)[2])
    torch.manual_seed(0)
    c = run(None)
    torch.manual_seed(0)
    assert all(torch.equal(u, v) for u, v in zip(c, run(None), strict=True))
    p1 = smoothed_predict(Threshold(0.3), x, 0.25, n=500, seed=6, return_counts=True)
    p2 = smoothed_predict(Threshold(0.3), x, 0.25, n=500, seed=6, return_counts=True)
    assert torch.equal(p1[0], p2[0]) and torch.equal(p1[1], p2[1])


@pytest.mark.parametrize("batch_size", [1, 2, 7, 5_000])
def test_every_image_gets_exactly_n_votes_whatever_the_batch_size(batch_size):
    x = pixels([0.1, 0.35, 0.5, 0.9, 0.3])
    labels, counts = smoothed_predict(Threshold(0.3), x, 0.25, n=30, seed=0, batch_size=batch_size,
                                      return_counts=True)
    assert counts.sum(1).tolist() == [30] * 5
    _, _, counts = smoothed_certify(Threshold(0.3), x, 0.02, n0=3, n=23, seed=0, batch_size=batch_size,
                                    return_counts=True)
    assert counts.sum(1).tolist() == [23] * 5
    assert counts[0, 1] == 23 and counts[3, 0] == 23  # 10 and 30 sigma from the threshold: every vote the same


def test_inputs_model_mode_and_requires_grad_untouched_results_detached():
    model = Threshold(0.3).double()
    x = pixels([0.4, 0.6], dtype=torch.float64).requires_grad_()
    before = x.detach().clone()
    labels, radii = smoothed_certify(model, x, 0.25, n0=10, n=200, seed=0, progress=True)
    labels_p = smoothed_predict(model, x, 0.25, n=200, seed=0)
    assert torch.equal(x.detach(), before) and x.requires_grad
    assert not model.training and model.scale.requires_grad and model.scale.grad is None
    assert labels.dtype == labels_p.dtype == torch.long and radii.dtype == torch.float64
    assert not radii.requires_grad and labels.device == radii.device == x.device


def test_bad_inputs_raise():
    model, x = Threshold(0.3), pixels([0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        smoothed_certify(model, x + 1.0, 0.25)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        smoothed_predict(model, x - 1.0, 0.25, n=10)
    with pytest.raises(ValueError, match="shape"):
        smoothed_predict(model, x[0], 0.25, n=10)
    with pytest.raises(ValueError, match="training mode"):
        smoothed_certify(Threshold(0.3).train(), x, 0.25)
    for sigma in (0.0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="sigma"):
            smoothed_certify(model, x, sigma)
    with pytest.raises(ValueError, match="n0"):
        smoothed_certify(model, x, 0.25, n0=0)
    with pytest.raises(ValueError, match="n must"):
        smoothed_certify(model, x, 0.25, n=0)
    with pytest.raises(TypeError, match="n must"):
        smoothed_predict(model, x, 0.25, n=10.0)
    for alpha in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="alpha"):
            smoothed_certify(model, x, 0.25, alpha=alpha)
        with pytest.raises(ValueError, match="alpha"):
            smoothed_predict(model, x, 0.25, n=10, alpha=alpha)
    with pytest.raises(ValueError, match="batch_size"):
        smoothed_predict(model, x, 0.25, n=10, batch_size=0)


# --------------------------------------------------------------------------- soundness on the shipped model
@pytest.fixture(scope="module")
def certified(mnist_cnn, mnist_test):
    """Five digits of five classes certified at sigma 0.25 with n = 1,000."""
    x, y = mnist_test
    idx = torch.stack([(y == c).nonzero()[0, 0] for c in range(5)])
    labels, radii = smoothed_certify(mnist_cnn, x[idx], 0.25, n0=100, n=1_000, seed=0)
    return x[idx], labels, radii


def test_mnist_certified_radius_never_exceeds_the_radius_of_a_larger_sample(mnist_cnn, certified):
    x, labels, radii = certified
    assert (labels >= 0).sum() >= 3  # most of them certify: the check below is not vacuous
    # p_A from 3,000 fresh votes: its Clopper-Pearson *upper* bound at 1 - 0.001 is above the true p_A, so the
    # radius it implies is above the true one, which the certificate must not exceed
    _, counts = smoothed_predict(mnist_cnn, x, 0.25, n=3_000, seed=10, return_counts=True)
    for i in (labels >= 0).nonzero()[:, 0].tolist():
        k = counts[i, labels[i]].item()
        p_upper = 1.0 - lower_confidence_bound(3_000 - k, 3_000, 0.001)
        assert radii[i].item() <= 0.25 * norm.ppf(p_upper) + 1e-6


def test_mnist_points_inside_the_certified_ball_keep_the_class(mnist_cnn, certified):
    x, labels, radii = certified
    keep = labels >= 0
    x, labels, radii = x[keep], labels[keep], radii[keep]
    # 4 random directions per digit, at 0.9 r, clipped to [0, 1] (a projection onto a convex set holding x: the
    # point moves no farther from x, so it stays inside the ball)
    g = torch.Generator().manual_seed(11)
    d = torch.randn(4, *x.shape, generator=g)
    d = d / d.flatten(2).norm(dim=2)[..., None, None, None]
    x_near = (x + 0.9 * radii[:, None, None, None] * d).clamp(0, 1).flatten(0, 1)
    dist = (x_near - x.repeat(4, 1, 1, 1)).flatten(1).norm(dim=1)
    assert (dist <= 0.9 * radii.repeat(4) + 1e-5).all()
    pred, counts = smoothed_predict(mnist_cnn, x_near, 0.25, n=500, seed=12, return_counts=True)
    target = labels.repeat(4)
    assert ((pred == target) | (pred == -1)).all()  # never another class
    # Theorem 1: p_A(x + delta) >= Phi(Phi^-1(p_A_lower) - ||delta|| / sigma), checked against the sample's
    # Clopper-Pearson upper bound (fails with probability <= 0.001 per point for a sound certificate)
    for i in range(len(target)):
        k = counts[i, target[i]].item()
        p_upper = 1.0 - lower_confidence_bound(500 - k, 500, 0.001)
        p_low_x = norm.cdf(radii.repeat(4)[i].item() / 0.25)
        assert p_upper >= norm.cdf(norm.ppf(p_low_x) - dist[i].item() / 0.25)


class GaussianNoise(nn.Module):
    """``model(x + sigma * N(0, I))``, one fresh draw per call: the base classifier under the smoothing noise."""

    def __init__(self, model, sigma):
        super().__init__()
        self.model, self.sigma = model, sigma

    def forward(self, x):
        return self.model(x + self.sigma * torch.randn_like(x))


def test_mnist_attacked_points_inside_the_certified_ball_keep_the_class(mnist_cnn, certified):
    """The adaptive check: an L2 PGD that knows the smoothing (the gradient of the logits averaged over 32 noise
    draws, EOT; Salman et al. 2019 attack the smoothed classifier this way) searches the ball of 0.9 r around
    each certified digit; the smoothed prediction at the point it finds is never another class, and the
    Theorem-1 bound on p_A holds there as at the random points."""
    from course_lib.attacks import pgd
    from course_lib.defenses import EOT

    x, labels, radii = certified
    keep = labels >= 0
    x, labels, radii = x[keep], labels[keep], radii[keep]
    torch.manual_seed(5)                       # the noise inside the attack's forward passes
    smoothed = EOT(GaussianNoise(mnist_cnn, 0.25), samples=32).eval()
    x_adv = torch.cat([pgd(smoothed, x[i:i + 1], labels[i:i + 1], 0.9 * radii[i].item(),
                           alpha=2.5 * 0.9 * radii[i].item() / 20, steps=20, norm="l2", seed=i, keep_best=False)
                       for i in range(len(x))])
    dist = (x_adv - x).flatten(1).norm(dim=1)
    assert (dist <= 0.9 * radii + 1e-5).all() and (dist > 0.5 * radii).all()   # it used the ball
    pred, counts = smoothed_predict(mnist_cnn, x_adv, 0.25, n=500, seed=13, return_counts=True)
    assert ((pred == labels) | (pred == -1)).all()
    _, clean_counts = smoothed_predict(mnist_cnn, x, 0.25, n=500, seed=13, return_counts=True)
    rows = torch.arange(len(x))
    assert (counts[rows, labels] <= clean_counts[rows, labels]).all()        # the attack did lower p_A
    for i in range(len(x)):
        k = counts[i, labels[i]].item()
        p_upper = 1.0 - lower_confidence_bound(500 - k, 500, 0.001)
        p_low_x = norm.cdf(radii[i].item() / 0.25)
        assert p_upper >= norm.cdf(norm.ppf(p_low_x) - dist[i].item() / 0.25)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_same_seed_same_votes_on_cpu_and_cuda():
    # the noise is drawn on the CPU and moved: the same numbers on every device
    x = pixels([0.35, 0.5, 0.05])
    cpu = smoothed_certify(Threshold(0.3), x, 0.25, n=300, seed=0, return_counts=True)
    gpu = smoothed_certify(Threshold(0.3).cuda(), x.cuda(), 0.25, n=300, seed=0, return_counts=True)
    assert all(g.device.type == "cuda" for g in gpu)
    assert all(torch.equal(c, g.cpu()) for c, g in zip(cpu, gpu, strict=True))


def test_certified_accuracy_at_counts_correct_and_certified_far_enough():
    from course_lib.certify import certified_accuracy_at

    labels, radii, y = [3, 3, -1, 2, 5], [0.6, 0.2, 0.0, 1.0, 0.9], [3, 3, 3, 1, 5]
    assert certified_accuracy_at(labels, radii, y, 0.0) == pytest.approx(3 / 5)   # abstention and wrong: errors
    assert certified_accuracy_at(labels, radii, y, 0.5) == pytest.approx(2 / 5)   # digit 1's radius is too small
    assert certified_accuracy_at(labels, radii, y, 0.9) == pytest.approx(1 / 5)   # radius >= r counts
    assert certified_accuracy_at(torch.tensor(labels), torch.tensor(radii), torch.tensor(y), 2.0) == 0.0
    with pytest.raises(ValueError, match="same length"):
        certified_accuracy_at(labels, radii[:3], y, 0.5)
