"""Lesson 06's checks accept right answers and reject the plausible wrong ones with the intended message."""
import pytest
import torch

from course_lib import homework as hw


# --------------------------------------------------------------------------- deletion curve
def _deletion(model, x, attribution, target, steps, *, key=lambda a: a.abs(), descending=True, output="probability",
              fill=0.0, auc="trapezoid", points="all"):
    score = key(attribution.detach()).flatten()
    order = torch.argsort(score, descending=descending, stable=True)
    n = score.numel()
    images = []
    for k in range(steps + 1):
        xk = x.clone().flatten()
        xk[order[: k * n // steps]] = fill
        images.append(xk.view_as(x[0]))
    with torch.no_grad():
        logits = model(torch.stack(images))
    curve = logits.softmax(1)[:, target] if output == "probability" else logits[:, target]
    if points == "no_first":
        curve = curve[1:]
    area = {"trapezoid": lambda c: torch.trapezoid(c, dx=1 / steps),
            "mean": lambda c: c.mean(),
            "left": lambda c: c[:-1].sum() / steps,
            "right": lambda c: c[1:].sum() / steps,
            "no_halves": lambda c: c.sum() / steps}[auc](curve)
    return curve, float(area)


def deletion_right(model, x, attribution, target, steps):
    return _deletion(model, x, attribution, target, steps)


def test_deletion_accepts_the_definition(capsys):
    hw.check_deletion_curve(deletion_right)
    assert "correct" in capsys.readouterr().out


def test_deletion_accepts_the_library(capsys):
    from course_lib.explain import deletion_auc

    def via_library(model, x, attribution, target, steps):
        auc, curves = deletion_auc(model, x, attribution.abs(), target=target, steps=steps, return_curves=True)
        return curves[0], auc[0]

    hw.check_deletion_curve(via_library)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("kw, message", [
    (dict(key=lambda a: a), "signed attribution"),
    (dict(descending=False), "least important pixels first"),
    (dict(output="logit"), "holds logits"),
    (dict(fill=0.5), "grey"),
    (dict(points="no_first"), "starts after the first deletion"),
    (dict(auc="mean"), "mean of the curve"),
    (dict(auc="left"), "left Riemann sum"),
    (dict(auc="right"), "right Riemann sum"),
    (dict(auc="no_halves"), "no half weights"),
])
def test_deletion_rejects(kw, message):
    def wrong(model, x, attribution, target, steps):
        return _deletion(model, x, attribution, target, steps, **kw)

    with pytest.raises(AssertionError, match=message):
        hw.check_deletion_curve(wrong)


def test_deletion_rejects_changing_the_input():
    def in_place(model, x, attribution, target, steps):
        out = _deletion(model, x, attribution, target, steps)
        x.zero_()
        return out

    with pytest.raises(AssertionError, match="in place"):
        hw.check_deletion_curve(in_place)


# --------------------------------------------------------------------------- rank correlation
def _pearson(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def _average_ranks(v):
    v = v.double()
    ranks = torch.empty_like(v)
    for value in v.unique():
        where = (v == value).nonzero().flatten()
        below = int((v < value).sum())
        ranks[where] = below + (len(where) + 1) / 2
    return ranks


def spearman_right(a, b):
    return _pearson(_average_ranks(a), _average_ranks(b))


def spearman_scipy(a, b):
    from scipy import stats  # in requirements-lock.txt: a plain import, so that a missing scipy fails, not skips

    return stats.spearmanr(a.numpy(), b.numpy()).statistic


def spearman_pearson(a, b):
    return _pearson(a.double(), b.double())


def spearman_argsort_once(a, b):
    return _pearson(torch.argsort(a).double(), torch.argsort(b).double())


def spearman_no_ties(a, b):
    return _pearson(torch.argsort(torch.argsort(a, stable=True)).double(),
                    torch.argsort(torch.argsort(b, stable=True)).double())


def spearman_in_place(a, b):
    out = spearman_right(a.clone(), b.clone())
    a.sort()
    a.copy_(a.sort().values)
    return out


@pytest.mark.parametrize("fn", [spearman_right, spearman_scipy])
def test_rank_correlation_accepts(fn, capsys):
    hw.check_rank_correlation(fn)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, message", [
    (spearman_pearson, "Pearson correlation of the values"),
    (spearman_argsort_once, "argsort gives the \\*order\\*"),
    (spearman_no_ties, "average of the ranks"),
    (spearman_in_place, "in place"),
    (lambda a, b: torch.tensor([0.1, 0.2]), "one number"),
])
def test_rank_correlation_rejects(fn, message):
    with pytest.raises(AssertionError, match=message):
        hw.check_rank_correlation(fn)
