"""Checks for lesson 08 (the Carlini & Wagner attack: the objective f, the tanh change of variables, c and kappa)."""
from __future__ import annotations

import math

import torch

from ._common import _ok, _require

__all__ = ["check_cw_objective", "check_tanh_box", "check_c_update", "QUESTIONS"]


def _reference_f(z: torch.Tensor, t: torch.Tensor, kappa: float) -> torch.Tensor:
    """The targeted f of Carlini & Wagner: ``max(max_{i != t} Z_i - Z_t, -kappa)`` per row."""
    z_t = z.gather(1, t[:, None]).squeeze(1)
    others = z.scatter(1, t[:, None], float("-inf")).amax(1)
    return (others - z_t).clamp(min=-kappa)


def _logit_cases() -> list:
    """Random logits that separate the plausible wrong answers.

    Every row kind matters for one wrong answer: rows where the target already wins (the max over *all* classes
    then picks the target itself), rows where every logit is negative (masking the target with 0 instead of
    -inf then picks the 0), wide logits (the softmax saturates, so probabilities differ from logits by far), and
    both kappa = 0 and kappa > 0 with some rows past -kappa and some not.
    """
    g = torch.Generator().manual_seed(8)
    cases = []
    for kappa in (0.0, 2.0, 5.0):
        z = 4 * torch.randn(48, 10, generator=g)
        t = torch.randint(0, 10, (48,), generator=g)
        win = torch.arange(48) % 3 == 0  # a third of the rows: the target wins by a random margin in [0, 8)
        top = z.amax(1)
        z[win, t[win]] = top[win] + 8 * torch.rand(int(win.sum()), generator=g)
        neg = torch.arange(48) % 4 == 1  # a quarter: every logit negative
        z[neg] = -z[neg].abs() - 0.5
        cases.append((z, t, kappa))
    return cases


def check_cw_objective(fn) -> None:
    """Lesson 08: ``fn(logits, target, kappa)`` must return the targeted C&W objective per image ``(B,)``::

        f(x') = max( max_{i != t} Z(x')_i - Z(x')_t , -kappa )

    on the logits ``Z`` (not the probabilities). Checked against that definition on random logits. Rejected, each
    with its own message: the sign flipped (``Z_t - max_{i != t} Z_i``, the untargeted form), kappa ignored
    (clamped at 0, or not clamped at all), clamped at ``+kappa``, the max taken over all classes (target included),
    the target masked with 0 instead of ``-inf``, softmax probabilities instead of logits, a batch mean or sum
    instead of one value per image, changing the logits in place.
    """
    for z, t, kappa in _logit_cases():
        z_before, t_before = z.clone(), t.clone()
        out = fn(z, t, kappa)
        _require(torch.equal(z, z_before) and torch.equal(t, t_before),
                 "your function changed the logits (or the targets) in place, e.g. with logits[..., t] = -inf: "
                 "work on a copy (logits.clone(), or logits.scatter(...), which returns a new tensor)")
        _require(isinstance(out, torch.Tensor), f"return a torch.Tensor, got {type(out).__name__}")
        out = out.detach().double()
        _require(out.numel() != 1 or z.shape[0] == 1,
                 f"return one value per image, shape ({z.shape[0]},): you returned a single number (a sum or a "
                 "mean over the batch?). carlini_wagner needs f per image, because each image has its own c")
        _require(tuple(out.shape) == (z.shape[0],),
                 f"return one value per image, shape ({z.shape[0]},), got {tuple(out.shape)}")
        zd = z.double()
        ref = _reference_f(zd, t, kappa)
        if torch.allclose(out, ref, atol=1e-5):
            continue
        z_t = zd.gather(1, t[:, None]).squeeze(1)
        others = zd.scatter(1, t[:, None], float("-inf")).amax(1)
        gap = others - z_t
        wrong = [
            ((z_t - others).clamp(min=-kappa),
             "the sign is flipped: you computed Z_t - max_{i != t} Z_i, which is the *untargeted* f with y = t. "
             "The targeted f must be <= 0 exactly when the target wins, so it is max_{i != t} Z_i - Z_t"),
            (gap.clamp(min=0.0) if kappa > 0 else None,
             f"your f never goes below 0, so it can never reach -kappa = {-kappa}. Either kappa is ignored (you "
             "clamped at 0 instead of -kappa: the attack must keep pushing until the target leads by kappa, the "
             "margin that makes the example confident), or the max includes the target class (max_i Z_i - Z_t is "
             "0 whenever the target wins; exclude t, e.g. logits.scatter(1, t[:, None], float('-inf')))"),
            (gap,
             "nothing is clamped: without max(., -kappa) the objective keeps rewarding an ever larger lead of "
             "the target, so the attack spends distance on confidence it does not need"),
            (gap.clamp(min=kappa) if kappa > 0 else None,
             "you clamped at +kappa: the floor is -kappa (f stops decreasing once the target leads by kappa)"),
            ((((1 - torch.nn.functional.one_hot(t, zd.shape[1])) * zd).amax(1) - z_t).clamp(min=-kappa),
             "you masked the target logit with 0: when every other logit is negative, the max then picks that 0 "
             "instead of the largest other logit. Mask it with -inf (or a very negative number)"),
        ]
        p = zd.softmax(1)
        p_t = p.gather(1, t[:, None]).squeeze(1)
        p_others = p.scatter(1, t[:, None], float("-inf")).amax(1)
        wrong.append(((p_others - p_t).clamp(min=-kappa),
                      "you used softmax probabilities: f is defined on the logits Z. Probabilities saturate (near "
                      "0 and 1 their gradient vanishes), which is one reason Carlini & Wagner's logit objective "
                      "beats the probability-based ones"))
        for value, message in wrong:
            if value is not None and torch.allclose(out, value, atol=1e-5):
                raise AssertionError(message)
        i = int((out - ref).abs().argmax())
        raise AssertionError(f"for kappa = {kappa}, image {i} (target {int(t[i])}, logits "
                             f"{[round(v, 2) for v in z[i].tolist()]}) your f is {float(out[i]):.4f}, the "
                             f"definition gives {float(ref[i]):.4f}: f = max(max_{{i != t}} Z_i - Z_t, -kappa)")
    _ok("f = max(max_{i != t} Z_i - Z_t, -kappa) on the logits, one value per image: <= 0 exactly when the "
        "target wins, and flat once it wins by kappa.")


def _box_inputs() -> torch.Tensor:
    """Pixels in [0, 1] with many exactly 0 and some exactly 1, like MNIST digits."""
    g = torch.Generator().manual_seed(8)
    x = torch.rand(4, 1, 28, 28, generator=g)
    x[x < 0.6] = 0.0
    x[x > 0.95] = 1.0
    return x


def check_tanh_box(to_w, from_w) -> None:
    """Lesson 08: ``from_w(w) = (tanh(w) + 1) / 2`` and ``to_w(x)`` its inverse, ``atanh(2x - 1)``, with the
    argument of atanh shrunk (e.g. multiplied by ``1 - 1e-6``) so that pixels at exactly 0 or 1 get a finite ``w``.

    Checked on float32 images with many pixels at exactly 0 and 1. Rejected, each with its own message: changing
    the input in place; an infinite ``w`` at 0 or 1 (no shrinking, or a shrink factor that rounds to 1 in
    float32); ``from_w`` outside ``[0, 1]`` (``tanh(w)`` alone); ``sigmoid(w)`` (another valid box map, not this
    one); a round trip that moves pixels by more than 1e-4 (shrinking too much); a finite but frozen ``w`` at 0
    and 1 (clamping ``w`` after an infinite atanh, where the gradient is exactly 0).
    """
    x = _box_inputs()
    x_before = x.clone()
    w = to_w(x)
    _require(torch.equal(x, x_before), "to_w changed x in place: compute on a copy (2 * x - 1 is already one)")
    _require(isinstance(w, torch.Tensor) and w.shape == x.shape,
             f"to_w must return a tensor of x's shape {tuple(x.shape)}, got "
             f"{tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__}")
    w = w.detach()
    edge = (x == 0) | (x == 1)
    if not torch.isfinite(w).all():
        bad = float(x[~torch.isfinite(w)][0])
        raise AssertionError(f"to_w gives an infinite w at a pixel equal to {bad:g}: atanh(+-1) = +-inf, and at "
                             "w = +-inf tanh has zero gradient, so that pixel can never move. Shrink the argument, "
                             "atanh((2 * x - 1) * (1 - 1e-6)); note that in float32 1 - 1e-8 == 1, so 1e-8 is too "
                             "small a margin")

    probe = torch.cat([10 * torch.randn(200, generator=torch.Generator().manual_seed(1)),
                       torch.tensor([-1e3, -30.0, 0.0, 30.0, 1e3])])
    w_probe_before = probe.clone()
    xp = from_w(probe)
    _require(torch.equal(probe, w_probe_before), "from_w changed w in place: compute on a copy")
    _require(isinstance(xp, torch.Tensor) and xp.shape == probe.shape,
             "from_w must return a tensor of w's shape")
    xp = xp.detach()
    if float(xp.min()) < -0.5:
        raise AssertionError("from_w returns values below 0: tanh(w) lies in [-1, 1]; map it to [0, 1] with "
                             "(tanh(w) + 1) / 2")
    _require(float(xp.min()) >= 0.0 and float(xp.max()) <= 1.0,
             f"from_w must map every real w into [0, 1], got values in [{float(xp.min()):.3f}, {float(xp.max()):.3f}]")
    ref = (torch.tanh(probe) + 1) / 2
    if not torch.allclose(xp, ref, atol=1e-6):
        if torch.allclose(xp, torch.sigmoid(probe), atol=1e-6):
            raise AssertionError("from_w is sigmoid(w) = (tanh(w / 2) + 1) / 2: also a map onto [0, 1], but not "
                                 "the one in the lesson; use (tanh(w) + 1) / 2")
        raise AssertionError("from_w must be (tanh(w) + 1) / 2")

    back = from_w(w).detach()
    err = float((back - x).abs().max())
    _require(err <= 1e-4, f"the round trip from_w(to_w(x)) moves a pixel by {err:.2g}: shrink the atanh argument "
             "only a little (by a factor like 1 - 1e-6), otherwise the attack starts away from x and every pixel "
             "is pulled towards 0.5 before the search begins")
    mid = torch.linspace(0.05, 0.95, 19)
    _require(torch.allclose(to_w(mid).detach(), torch.atanh(2 * mid - 1), atol=1e-4),
             "to_w must be the inverse of from_w: atanh(2x - 1) (up to the small shrink at the edges)")

    wg = to_w(x).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(from_w(wg).sum(), wg)
    frozen = float((g[edge] == 0).double().mean())
    _require(frozen == 0.0, f"{frozen:.0%} of the pixels at exactly 0 or 1 have a zero gradient dx/dw: they are "
             "frozen (Adam moves w by lr * m / sqrt(v), which is 0 when every gradient is 0). Clamping w after an "
             "infinite atanh gives |w| so large that 1 - tanh(w)^2 underflows to 0; shrink the atanh argument "
             "instead, so that |w| stays near 7")
    _ok(f"x = (tanh(w) + 1) / 2 stays in [0, 1] for every w; the round trip is exact to {err:.1g}; pixels at 0 "
        f"and 1 start at |w| <= {float(w[edge].abs().max()):.2f} with a small but nonzero gradient, so they can move.")


# --------------------------------------------------------------------------- one step of the search over c
def _search_states() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eight images in states the search can reach (``lower < c < upper``): four with no upper bound yet
    (``upper = inf``: never succeeded, ``c`` still growing by 10), four bisecting between finite bounds."""
    inf = math.inf
    c = torch.tensor([0.01, 0.1, 1.0, 10.0, 0.55, 0.3, 2.0, 0.075], dtype=torch.float64)
    lower = torch.tensor([0.0, 0.01, 0.1, 1.0, 0.1, 0.2, 1.0, 0.05], dtype=torch.float64)
    upper = torch.tensor([inf, inf, inf, inf, 1.0, 0.4, 3.0, 0.1], dtype=torch.float64)
    return c, lower, upper


def _library_update(c, lower, upper, success):
    """course_lib's rule: :class:`course_lib.attacks._search.ConstantSearch`'s ``update``, on copies."""
    from ..attacks._search import ConstantSearch

    search = ConstantSearch(1.0, c.shape[0], dtype=c.dtype, device=c.device)
    search.c, search.lower, search.upper = c.clone(), lower.clone(), upper.clone()
    search.update(success.clone())
    return search.c, search.lower, search.upper


def _diagnose_c_update(got, ref, c, lower, upper, success) -> None:
    """Why ``got`` = (c', lower', upper') is not the library's update: the messages name the usual slips."""
    new_c, new_lo, new_hi = got
    ref_c, ref_lo, ref_hi = ref
    free = torch.isinf(upper)
    for alike in (success.all().expand_as(success), success.any().expand_as(success)):
        if not torch.equal(alike, success):
            cand = _library_update(c, lower, upper, alike)
            if all(torch.allclose(a, b, equal_nan=True) for a, b in zip(got, cand, strict=True)):
                raise AssertionError(
                    "you updated every image alike (as if all had succeeded, or all had failed): success is one "
                    "bool per image, and each image keeps its own c, lower and upper bound. Use torch.where(success, "
                    "..., ...), which chooses per image")
    if not torch.isfinite(new_c).all():
        raise AssertionError(
            "your new c is inf or nan for images that have never succeeded: their upper bound is still inf, so "
            "(lower + upper) / 2 is inf. While no upper bound is known (torch.isinf(upper)), the search does not "
            "bisect but grows c tenfold: c * 10")
    wrong_way = (success & (new_c > c + 1e-12)) | (~success & ~free & (new_c < c - 1e-12))
    if bool(wrong_way.any()):
        raise AssertionError(
            "the bisection runs the wrong way round: after a success your c went *up* (or after a failure down). "
            "A success means c was large enough, so c becomes the new upper bound and the next c is smaller, "
            "(lower + c) / 2; a failure makes c the new lower bound and the next c larger")
    if not torch.allclose(new_lo, ref_lo) or not torch.equal(torch.isinf(new_hi), torch.isinf(ref_hi)) or \
            not torch.allclose(new_hi[torch.isfinite(ref_hi)], ref_hi[torch.isfinite(ref_hi)]):
        raise AssertionError(
            "your bounds are not the library's: after a success, upper = min(upper, c) and lower stays; after a "
            "failure, lower = max(lower, c) and upper stays (inf while no success has been seen)")
    stays_free = free & ~success
    if bool(stays_free.any()) and not torch.allclose(new_c[stays_free], 10 * c[stays_free]):
        ratio = float((new_c[stays_free] / c[stays_free]).median())
        raise AssertionError(
            f"an image that has never succeeded (upper = inf) got c * {ratio:.3g}: course_lib's search, like "
            "Carlini & Wagner's code, multiplies c by 10 until the first success (it has no upper bound to bisect "
            "towards yet)")
    bounded = ~free & ~success
    if bool(bounded.any()) and torch.allclose(new_c[bounded], 10 * c[bounded]):
        raise AssertionError(
            "a failure of an image that already has an upper bound must bisect, c = (lower + upper) / 2, not grow "
            "c tenfold: the 10x growth is only for images with no success yet (upper = inf)")
    raise AssertionError(
        "your new c differs from the library's: with an upper bound known (finite upper) the new c is the midpoint "
        "(lower + upper) / 2 of the *updated* bounds; without one, c * 10")


def check_c_update(fn) -> None:
    """Lesson 08: ``fn(c, lower, upper, success)`` must return ``(c, lower, upper)`` after one outer step of Carlini
    & Wagner's per-image search over ``c`` (``carlini_wagner`` runs it through ``ConstantSearch``), batched::

        success:  upper = min(upper, c)                  failure:  lower = max(lower, c)
        then:     c = (lower + upper) / 2   where upper is finite (an image that has succeeded once)
                  c = 10 c                  where upper = inf     (no success yet)

    ``c``, ``lower``, ``upper`` float ``(B,)`` (``upper = inf`` while none known), ``success`` bool ``(B,)``.
    Compared with the library on hand-made states (with and without an upper bound, success and failure in every
    combination), and by running it for six steps against hidden per-image thresholds. Rejects, each with its own
    message: the bisection the wrong way round (raising c after a success); the no-upper-bound case forgotten
    (``(lower + inf) / 2 = inf``), or a factor other than 10; growing tenfold after a failure although an upper
    bound exists; every image updated alike; changing the inputs in place.
    """
    c, lower, upper = _search_states()
    patterns = [torch.tensor(p, dtype=torch.bool) for p in
                ([1, 0, 1, 0, 1, 0, 1, 0], [0, 1, 0, 1, 0, 1, 0, 1], [1, 1, 0, 0, 0, 0, 1, 1])]
    for success in patterns:
        before = (c.clone(), lower.clone(), upper.clone(), success.clone())
        got = fn(c, lower, upper, success)
        _require(all(torch.equal(a, b) for a, b in zip((c, lower, upper, success), before, strict=True)),
                 "your function changed c, lower, upper (or success) in place (e.g. c[success] = ... or "
                 "upper.clamp_(...)): return new tensors; torch.where(success, a, b) builds one without touching "
                 "its inputs")
        _require(isinstance(got, tuple) and len(got) == 3 and all(isinstance(t, torch.Tensor) for t in got),
                 f"return a tuple of three tensors (c, lower, upper), got {type(got).__name__}")
        _require(all(tuple(t.shape) == tuple(c.shape) for t in got),
                 f"return one value per image, shape {tuple(c.shape)}, for each of c, lower and upper; got "
                 f"{[tuple(t.shape) for t in got]}")
        got = tuple(t.detach().to(c.dtype) for t in got)
        ref = _library_update(c, lower, upper, success)
        if all(torch.allclose(a, b) for a, b in zip(got, ref, strict=True)):
            continue
        _diagnose_c_update(got, ref, c, lower, upper, success)

    # a whole search: image i succeeds exactly when c >= threshold[i]; six steps from c = 0.01
    threshold = torch.tensor([0.003, 0.02, 0.2, 0.5, 3.0, 40.0, 7.0, 0.09], dtype=torch.float64)
    state = (torch.full_like(threshold, 0.01), torch.zeros_like(threshold), torch.full_like(threshold, math.inf))
    ref = tuple(t.clone() for t in state)
    for _ in range(6):
        state = tuple(t.detach().to(threshold.dtype) for t in fn(*state, state[0] >= threshold))
        ref = _library_update(*ref, ref[0] >= threshold)
        _require(all(torch.allclose(a, b) for a, b in zip(state, ref, strict=True)),
                 f"over a six-step search your c drifts from the library's: got {state[0].tolist()}, expected "
                 f"{ref[0].tolist()}")
    ratio = ref[0] / threshold
    gap = float(torch.maximum(ratio, 1 / ratio).max())
    _ok("one step of the search over c, per image: a success lowers the upper bound, a failure raises the lower "
        "one; c grows tenfold until the first success, then bisects. After six steps every image's c is within "
        f"a factor {gap:.2f} of its hidden smallest successful c.")


#: Multiple-choice questions of lesson 08: key -> (options, correct option, explanation shown on success).
QUESTIONS = {
    "08_larger_c": (
        ("a", "b", "c", "d"), "b",
        "c weighs the misclassification term against the distance: a larger c makes success worth more than "
        "distance, so more images are fooled, but the optimum sits further from x (larger L2). A small c keeps "
        "x' close to x and may never cross the boundary. Hence the binary search: per image, the smallest c that "
        "still succeeds."),
    "08_kappa_transfer": (
        ("a", "b", "c", "d"), "c",
        "kappa asks for a margin: the adversarial image must sit kappa logits deep inside the wrong class, not on "
        "the boundary. An independently trained model has a similar but not identical boundary; a point just "
        "across mnist_cnn_aug's boundary is often still on the right side of mnist_cnn_aug_b's, a point far across "
        "it much less often. The price is a larger perturbation."),
}
