"""Checks for lesson 06 (evaluating explanations: fidelity, stability, sanity, consistency, cost)."""
from __future__ import annotations

import functools

import torch

from ._common import _ok, _require

__all__ = ["check_deletion_curve", "check_rank_correlation"]

# held-out digits (a 1, a 3 and an 8) on which ranking by |IG| and by signed IG delete in visibly different orders;
# on them every pixel with ink has a nonzero IG, so ties (the black background, IG = 0) never change a curve. The 1
# comes first: mnist_cnn calls a black image "1", so its curve ends high and the wrong areas differ from each other
_DELETION_CASES = [(41, 28), (46, 16), (54, 28)]


def _to_float(out, what: str) -> float:
    if isinstance(out, torch.Tensor):
        _require(out.numel() == 1, f"return {what} as one number, got a tensor of shape {tuple(out.shape)}")
        return float(out.detach())
    try:
        return float(out)
    except (TypeError, ValueError):
        raise AssertionError(f"return {what} as a number (float), got {type(out).__name__}") from None


@functools.lru_cache(maxsize=1)
def _deletion_data() -> tuple:
    """The check's digits, their predicted classes and IG maps, computed once per session (returned as clones)."""
    from ..data import load_mnist
    from ..explain import integrated_gradients
    from ..models import load_model

    model = load_model("mnist_cnn")
    x_all, _ = load_mnist("test")
    cases = []
    for index, steps in _DELETION_CASES:
        x = x_all[index:index + 1].clone()
        with torch.no_grad():
            target = int(model(x).argmax(1))
        cases.append((x, target, integrated_gradients(model, x, target=target, steps=16), steps))
    return tuple(cases)


def _curves(model, x, a, target, steps, **kw):
    from ..explain import deletion_auc

    auc, curve = deletion_auc(model, x, a, target=target, steps=steps, return_curves=True, **kw)
    return float(auc[0]), curve[0].double()


def check_deletion_curve(fn) -> None:
    """Lesson 06: ``fn(model, x, attribution, target, steps)`` must return ``(curve, auc)``: the deletion curve of
    one image, ranking the pixels by ``|attribution|`` (most important first), deleting ``N / steps`` more pixels
    (set to 0) at each stage, ``curve[k]`` = softmax probability of ``target`` after ``k`` stages (``steps + 1``
    points, the intact image first), and ``auc`` = the trapezoid rule over the fractions ``k / steps``.

    Checked against :func:`course_lib.explain.deletion_auc` (with ``return_curves=True``) on three held-out digits
    and their Integrated Gradients maps. Rejected, each with its own message: ranking by the signed attribution,
    deleting the least important pixels first, logits instead of probabilities, a grey instead of a black
    baseline, a curve without its first point, and areas that are not the trapezoid rule (the mean of the curve,
    left or right Riemann sums, the sum without the half weights at the ends).
    """
    from ..models import load_model

    model = load_model("mnist_cnn")  # a fresh copy: a wrong answer may have changed the last one
    for x0, target, a0, steps in _deletion_data():
        x, a = x0.clone(), a0.clone()
        x_before, a_before = x.clone(), a.clone()
        out = fn(model, x, a, target, steps)
        _require(torch.equal(x, x_before) and torch.equal(a, a_before),
                 "your function changed x or the attribution in place: delete pixels on a copy (x.clone())")
        _require(isinstance(out, (tuple, list)) and len(out) == 2,
                 f"return a pair (curve, auc), got {type(out).__name__}")
        curve, auc = out
        curve = torch.as_tensor(curve).detach().double().flatten().cpu()
        auc = _to_float(auc, "the area under the curve")
        ref_auc, ref = _curves(model, x, a.abs(), target, steps)
        if curve.numel() == steps:
            if torch.allclose(curve, ref[1:], atol=1e-4):
                raise AssertionError(f"your curve has {steps} points and starts after the first deletion: it needs "
                                     f"steps + 1 = {steps + 1}, starting at k = 0 with the score of the intact image")
            if torch.allclose(curve, ref[:-1], atol=1e-4):
                raise AssertionError(f"your curve has {steps} points and misses the last stage: it needs steps + 1 = "
                                     f"{steps + 1}, from k = 0 (intact) to k = steps (every pixel deleted)")
        _require(curve.numel() == steps + 1, f"with steps={steps} the curve has steps + 1 = {steps + 1} points "
                 f"(k = 0, ..., steps), got {curve.numel()}")
        if not torch.allclose(curve, ref, atol=1e-4):
            if torch.allclose(curve, ref.flip(0), atol=1e-4):
                raise AssertionError("your curve is reversed: curve[0] is the intact image, curve[steps] the image "
                                     "with every pixel deleted")
            if torch.allclose(curve, _curves(model, x, a, target, steps)[1], atol=1e-4):
                raise AssertionError("you ranked the pixels by the signed attribution. The exercise ranks them by "
                                     "|attribution|: a pixel with a large negative IG value matters too (it argues "
                                     "against the class), and ranking by sign deletes it last")
            if torch.allclose(curve, _curves(model, x, -a.abs(), target, steps)[1], atol=1e-4):
                raise AssertionError("you deleted the least important pixels first: sort by |attribution| in "
                                     "descending order (torch.argsort(..., descending=True))")
            if torch.allclose(curve, _curves(model, x, a.abs(), target, steps, output="logit")[1], atol=1e-4):
                raise AssertionError("your curve holds logits: the deletion metric of RISE records the softmax "
                                     "probability of the target class, model(x_k).softmax(1)[0, target]")
            if torch.allclose(curve, _curves(model, x, a.abs(), target, steps, baseline=0.5)[1], atol=1e-4):
                raise AssertionError("you set the deleted pixels to grey (0.5): the exercise deletes to black (0)")
            k = int((curve - ref).abs().argmax())
            raise AssertionError(f"your curve differs from the deletion curve at stage k = {k}: {float(curve[k]):.4f} "
                                 f"instead of {float(ref[k]):.4f}. At stage k the first k * N / steps pixels of the "
                                 "ranking (most important first) are set to 0; record the target's probability")
        if abs(auc - ref_auc) > 1e-5:
            c = curve
            wrong = {"the mean of the curve": float(c.mean()),
                     "a left Riemann sum (first point in, last point out)": float(c[:-1].sum() / steps),
                     "a right Riemann sum (first point out, last point in)": float(c[1:].sum() / steps),
                     "the sum of all points divided by steps (no half weights at the ends)": float(c.sum() / steps)}
            for name, value in wrong.items():
                if abs(auc - value) < 1e-5:
                    raise AssertionError(f"your area is {name}. Use the trapezoid rule over the fractions k / steps: "
                                         "(1 / steps) * (c[0] / 2 + c[1] + ... + c[steps - 1] + c[steps] / 2), "
                                         "or torch.trapezoid(curve, dx=1 / steps)")
            raise AssertionError(f"your area {auc:.5f} is not the trapezoid rule over the fractions k / steps "
                                 f"({ref_auc:.5f}): torch.trapezoid(curve, dx=1 / steps)")
    _ok("the deletion curve and its area match deletion_auc on three digits (ranking by |IG|, black baseline).")


# --------------------------------------------------------------------------- rank correlation
def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def _ordinal_ranks(v: torch.Tensor) -> torch.Tensor:
    ranks = torch.empty_like(v)
    ranks[torch.argsort(v, stable=True)] = torch.arange(len(v), dtype=v.dtype)
    return ranks


def _rank_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(200, generator=gen, dtype=torch.float64)
    noisy = a + 0.7 * torch.randn(200, generator=gen, dtype=torch.float64)
    sparse_a = torch.randn(300, generator=gen, dtype=torch.float64).clamp(min=0)      # about half exactly 0
    sparse_b = (torch.randn(300, generator=gen, dtype=torch.float64) + 0.8 * sparse_a).clamp(min=0)
    coarse = torch.randint(0, 5, (100,), generator=gen).double()                        # 5 levels: many ties
    return [("two noisy copies of the same map", a, noisy),
            ("b = exp(4 a), the same order as a", a, torch.exp(4 * a)),
            ("maps with many exactly-zero pixels (ties)", sparse_a, sparse_b),
            ("a coarse map with 5 levels (ties) against a noisy one", coarse, coarse + torch.randn(100, generator=gen,
                                                                                                 dtype=torch.float64))]


def check_rank_correlation(fn) -> None:
    """Lesson 06: ``fn(a, b)`` for two 1-D tensors of equal length must return Spearman's rank correlation,
    the Pearson correlation of the ranks, tied values sharing the average of their ranks (as
    :func:`course_lib.explain.rank_correlation` and ``scipy.stats.spearmanr``).

    Rejected, each with its own message: Pearson on the values, ranks by ``argsort`` alone (that is the order,
    not the rank), ranks without tie handling (ties broken by position), and changing the inputs in place.
    """
    from ..explain import rank_correlation

    for name, a, b in _rank_cases():
        a_in, b_in = a.clone(), b.clone()
        out = _to_float(fn(a_in, b_in), "the rank correlation")
        _require(torch.equal(a_in, a) and torch.equal(b_in, b),
                 "your function changed its inputs in place (e.g. a.sort_() or a[...] = ...): work on copies")
        truth = float(rank_correlation(a[None], b[None])[0])
        if abs(out - truth) <= 1e-6:
            continue
        if abs(out - _pearson(a, b)) <= 1e-6:
            raise AssertionError(f"on '{name}' you returned {out:.4f}, the Pearson correlation of the values; "
                                 f"Spearman's is {truth:.4f}. Replace each value by its rank first: the metric asks "
                                 "whether two maps order the pixels alike, whatever their scales")
        if abs(out - _pearson(torch.argsort(a).double(), torch.argsort(b).double())) <= 1e-6:
            raise AssertionError("you correlated torch.argsort(a) with torch.argsort(b): argsort gives the *order* "
                                 "(the index of the smallest value, then of the next, ...), not the rank of each "
                                 "value. The ranks are torch.argsort(torch.argsort(a)), or scatter the positions")
        if abs(out - _pearson(_ordinal_ranks(a), _ordinal_ranks(b))) <= 1e-6 or (a.unique().numel() < a.numel()):
            raise AssertionError(f"on '{name}' you returned {out:.4f} instead of {truth:.4f}: tied values must share "
                                 "the average of the ranks they occupy (three values tied for ranks 4, 5, 6 all "
                                 "get 5). Without that, ties are ranked by their position in the tensor, which is "
                                 "arbitrary; attribution maps have many ties (the zeros of a black background)")
        raise AssertionError(f"on '{name}' you returned {out:.4f}, Spearman's rank correlation is {truth:.4f}: "
                             "rank both maps, then take the Pearson correlation of the ranks")
    _ok("Spearman's rank correlation with average ranks for ties, as course_lib.explain.rank_correlation.")
