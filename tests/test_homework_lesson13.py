"""Lesson 13's checks: each accepts correct answers written differently and names the plausible slips (L2 instead
of L1, no maximum over squeezers, a threshold set on the fitting or on adversarial images, an interpolated
quantile, a loss that ignores the detector or keeps pushing a fooled margin)."""
import pytest
import torch
import torch.nn.functional as F

import course_lib.homework as hw
from course_lib.data import load_mnist
from course_lib.defenses import BitDepth, MedianFilter, PCADetector

pytestmark = pytest.mark.usefixtures("one_thread")
SQUEEZERS = (BitDepth(1), MedianFilter(2))


def squeeze(model, x, dist=lambda d: d.abs().sum(1), reduce=lambda d: d.amax(1)):
    p = F.softmax(model(x), 1)
    return reduce(torch.stack([dist(p - F.softmax(model(s(x)), 1)) for s in SQUEEZERS], 1))


def squeeze_other_way(model, x):  # the same score, written with a loop and numpy-free maxima
    p = F.softmax(model(x), 1)
    best = torch.zeros(len(x))
    for s in SQUEEZERS:
        best = torch.maximum(best, torch.linalg.vector_norm(p - F.softmax(model(s(x)), 1), ord=1, dim=1))
    return best


@pytest.mark.parametrize("fn", [squeeze, squeeze_other_way])
def test_squeeze_score_accepts(fn, capsys):
    hw.check_squeeze_score(fn)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, match", [
    (lambda m, x: squeeze(m, x, dist=lambda d: d.norm(dim=1)), "L2 distance"),
    (lambda m, x: squeeze(m, x, reduce=lambda d: d.mean(1)), "averaged"),
    (lambda m, x: squeeze(m, x, reduce=lambda d: d.sum(1)), "added"),
    (lambda m, x: squeeze(m, x, reduce=lambda d: d[:, 0]), "bit-depth squeezer only"),
    (lambda m, x: torch.stack([(m(x) - m(s(x))).abs().sum(1) for s in SQUEEZERS], 1).amax(1), "logits"),
    (lambda m, x: squeeze(m, x)[:3], "one score per image"),
])
def test_squeeze_score_rejects(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_squeeze_score(fn)


def threshold_sorted(scores, fpr):
    s = scores.flatten().sort(descending=True).values
    return float(s[min(int(fpr * len(s)), len(s) - 1)])


def threshold_kth(scores, fpr):  # the (n - k)-th smallest: the same order statistic
    n = scores.numel()
    return float(scores.flatten().kthvalue(n - int(fpr * n)).values)


@pytest.fixture(scope="module")
def pca():
    xt, _ = load_mnist("train")
    xe, _ = load_mnist("test")
    det = PCADetector().fit(xt[:1000])
    return det, xe[:500], xt[:1000], (xe[500:600] * 0.5 + 0.5)


@pytest.mark.parametrize("rule", [threshold_sorted, threshold_kth])
def test_threshold_accepts(rule, pca, capsys):
    det, x_cal, x_fit, x_adv = pca
    hw.check_threshold(rule, rule(det.score(x_cal), 0.05), det, x_cal, x_fit, x_adv)
    assert "correct" in capsys.readouterr().out


def test_threshold_rejects(pca):
    det, x_cal, x_fit, x_adv = pca
    with pytest.raises(AssertionError, match="fitted on"):
        hw.check_threshold(threshold_sorted, threshold_sorted(det.score(x_fit), 0.05), det, x_cal, x_fit, x_adv)
    with pytest.raises(AssertionError, match="adversarial images"):
        hw.check_threshold(threshold_sorted, threshold_sorted(det.score(x_adv), 0.05), det, x_cal, x_fit, x_adv)
    with pytest.raises(AssertionError, match="low end"):
        hw.check_threshold(lambda s, f: float(s.sort().values[int(f * len(s))]), 0.0, det, x_cal, x_fit, x_adv)
    with pytest.raises(AssertionError, match="interpolated quantile"):
        hw.check_threshold(lambda s, f: float(torch.quantile(s, 1 - f)), 0.0, det, x_cal, x_fit, x_adv)


def adaptive_right(m, s, thr, kappa, c):
    return m.clamp(min=-kappa) + c * (s - thr).clamp(min=0)


def adaptive_relu(m, s, thr, kappa, c):  # the same loss written with relu and a shift
    return F.relu(m + kappa) - kappa + c * F.relu(s - thr)


@pytest.mark.parametrize("fn", [adaptive_right, adaptive_relu])
def test_adaptive_loss_accepts(fn, capsys):
    hw.check_adaptive_loss(fn)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, match", [
    (lambda m, s, thr, k, c: m.clamp(min=-k), "ignores the detector"),
    (lambda m, s, thr, k, c: m.clamp(min=-k) - c * (s - thr).clamp(min=0), "HIGHER score"),
    (lambda m, s, thr, k, c: m.clamp(min=-k) + (s - thr).clamp(min=0), "weight the detector term by c"),
    (lambda m, s, thr, k, c: m.clamp(min=-k) + c * (s - thr), "hinge"),
    (lambda m, s, thr, k, c: m + c * (s - thr).clamp(min=0), "clamp it"),
    (lambda m, s, thr, k, c: m.clamp(min=0) + c * (s - thr).clamp(min=0), "only just"),
    (lambda m, s, thr, k, c: c * (s - thr).clamp(min=0), "margin"),
])
def test_adaptive_loss_rejects(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_adaptive_loss(fn)
