"""Checks for lesson 09 (black-box attacks: the oracle, ZOO's symmetric difference, the Boundary attack's step, a
query budget)."""
from __future__ import annotations

import math

import torch
from torch import nn

from ._common import _fresh_model, _ok, _require

__all__ = ["check_symmetric_difference", "check_boundary_step", "check_budget_attack", "budget_digits",
           "BUDGET_QUERIES", "BUDGET_MEDIAN", "QUESTIONS"]

#: Exercise 3: queries per digit, and the median L2 distance to beat on :func:`budget_digits`. The start of a
#: decision-based attack alone (noise, then bisection) gives about 1.5 there; HopSkipJump with its defaults about
#: 1.05, the Boundary attack about 1.2 (measured when the check was written).
BUDGET_QUERIES = 1000
BUDGET_MEDIAN = 1.25
_BUDGET_INDEX = (14, 21, 20, 4, 1, 38)  # the second held-out digit of the classes 0, 2, 3, 4, 6 and 7


def _margin(logp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """ZOO's untargeted margin before the clamp: ``log p_y - max_{j != y} log p_j`` per row."""
    own = logp.gather(1, y[:, None]).squeeze(1)
    other = logp.scatter(1, y[:, None], float("-inf")).amax(1)
    return own - other


# --------------------------------------------------------------------------- exercise 1: two queries
class _Curved(nn.Module):
    """A small classifier (3 classes on 1 x 4 x 4 images) with strongly curved logits, in float64: one-sided and
    symmetric differences differ clearly, and nothing is lost to rounding."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(9)
        self.register_buffer("w", torch.randn(3, 16, generator=g, dtype=torch.float64))

    def forward(self, x):
        v = x.flatten(1) @ self.w.T                                           # (B, 3)
        return torch.stack([4 + 3 * torch.sin(2 * v[:, 0]), v[:, 1] ** 2, 2 * torch.cos(3 * v[:, 2])], 1)


def _exact_difference(model, x, y, i, h, kind="two"):
    """The reference values on ``model`` (no oracle): symmetric, forward or backward difference of the margin, or
    the same on probabilities (``kind="prob"``) or with the max over all classes (``kind="all"``)."""
    e = torch.zeros_like(x)
    e.view(-1)[i] = h
    with torch.no_grad():
        rows = torch.cat([x + e, x - e, x])
        logp = model(rows).log_softmax(1)
    yy = y.repeat(3)
    if kind == "prob":
        f = _margin(logp.exp(), yy)
    elif kind == "all":
        f = logp.gather(1, yy[:, None]).squeeze(1) - logp.amax(1)
    else:
        f = _margin(logp, yy)
    fp, fm, f0 = (float(v) for v in f)
    return {"two": (fp - fm) / (2 * h), "prob": (fp - fm) / (2 * h), "all": (fp - fm) / (2 * h),
            "forward": (fp - f0) / h, "backward": (f0 - fm) / h, "by_h": (fp - fm) / h,
            "flipped": (fm - fp) / (2 * h)}[kind]


def _call_estimate(fn, oracle, x, y, i, h) -> float:
    x_before, y_before = x.clone(), y.clone()
    out = fn(oracle, x, y, i, h)
    _require(torch.equal(x, x_before) and torch.equal(y, y_before),
             "your function changed x in place (e.g. x.view(-1)[i] += h): every later query, and the attack's "
             "next step, would start from a moved image. Build the two probes as new tensors, e.g. "
             "e = torch.zeros_like(x); e.view(-1)[i] = h; then x + e and x - e")
    _require(oracle.total > 0,
             "your function never asked the oracle: a black-box attacker has no model to call, only the oracle "
             "it was given. Query it: oracle(x_probe, log=True) returns the log-probabilities")
    _require(oracle.total <= 2,
             f"your function spent {oracle.total} queries: the symmetric difference needs exactly two, "
             "f(x + h e_i) and f(x - h e_i) (f(x) itself is not needed, and each row you send is one query). ZOO "
             "pays 2 queries per coordinate: at 784 coordinates per digit, every extra query per coordinate costs "
             "another 784")
    if isinstance(out, torch.Tensor):
        _require(out.numel() == 1, f"return one number (the estimate of df/dx_i), got a tensor of shape "
                 f"{tuple(out.shape)}")
        out = out.detach().double().item()
    _require(isinstance(out, (int, float)) and not isinstance(out, bool),
             f"return a number (a float or a one-element tensor), got {type(out).__name__}")
    _require(math.isfinite(out), f"your estimate is {out}: not a finite number")
    return float(out)


def check_symmetric_difference(fn) -> None:
    """Lesson 09: ``fn(oracle, x, y, i, h)`` must estimate the partial derivative of ZOO's margin

        f(x) = log p_y(x) - max_{j != y} log p_j(x)        (read from oracle(x, log=True))

    along the flat pixel index ``i`` of the single image ``x`` ``(1, C, H, W)`` by the symmetric difference

        g_i = (f(x + h e_i) - f(x - h e_i)) / (2h)

    with exactly two queries, without changing ``x``. Checked on a small classifier with strongly curved logits in
    float64 (exact values) and on ``mnist_cnn`` with a digit (float32, a loose tolerance), each through a fresh
    :class:`~course_lib.attacks.Oracle`. Rejected, each with its own message: changing ``x`` in place; never
    asking the oracle (using a model instead); more than two queries; dividing by ``h`` instead of ``2h``; a
    one-sided difference (forward or backward); the sign flipped; probabilities instead of log-probabilities;
    the max taken over all classes (``y`` included, so ``f`` is 0 while ``y`` wins).
    """
    from ..attacks import Oracle

    g = torch.Generator().manual_seed(90)
    toy = _Curved().eval()
    x = (0.2 + 0.6 * torch.rand(1, 1, 4, 4, generator=g, dtype=torch.float64))
    with torch.no_grad():
        y = toy(x).argmax(1)  # the class the model gives: the margin is positive, as for an image to attack
    cases = [(5, 0.05), (11, 0.02), (0, 0.1)]
    for i, h in cases:
        oracle = Oracle(toy, access="scores")
        got = _call_estimate(fn, oracle, x, y, i, h)
        ref = _exact_difference(toy, x, y, i, h)
        if math.isclose(got, ref, rel_tol=1e-6, abs_tol=1e-9):
            continue
        wrong = [
            ("by_h", "you divided by h: the two probes are 2h apart (x + h e_i and x - h e_i), so the difference "
                     "quotient divides by 2h. Your estimate is twice the slope"),
            ("forward", "that is a one-sided (forward) difference (f(x + h e_i) - f(x)) / h: its error shrinks "
                        "like h, the symmetric one's like h^2 (the curvature terms cancel). Use f(x + h e_i) and "
                        "f(x - h e_i), divided by 2h"),
            ("backward", "that is a one-sided (backward) difference (f(x) - f(x - h e_i)) / h: its error shrinks "
                         "like h, the symmetric one's like h^2. Use f(x + h e_i) and f(x - h e_i), divided by 2h"),
            ("flipped", "the sign is flipped: (f(x + h e_i) - f(x - h e_i)) / (2h), the probe with + h first"),
            ("prob", "you used probabilities (oracle(x) without log=True): ZOO's f is on the log-probabilities, "
                     "log p_y - max_{j != y} log p_j. Probabilities saturate near 0 and 1, where their differences "
                     "vanish (and a confident digit's p_y is 0.99999...), while the log keeps the margin's scale"),
            ("all", "your margin takes the max over all classes, y included: while y wins, max_j log p_j is "
                    "log p_y itself and f is 0 everywhere nearby, so its slope is 0. Exclude y, e.g. "
                    "logp.scatter(1, y[:, None], float('-inf')).amax(1)"),
        ]
        for kind, message in wrong:
            if math.isclose(got, _exact_difference(toy, x, y, i, h, kind), rel_tol=1e-6, abs_tol=1e-9):
                raise AssertionError(message)
        raise AssertionError(f"for pixel {i} and h = {h} your estimate is {got:.6g}, the symmetric difference "
                             f"(f(x + h e_i) - f(x - h e_i)) / (2h) of f = log p_y - max_(j != y) log p_j gives "
                             f"{ref:.6g}")

    # the real thing: a digit, mnist_cnn, float32 (rounding makes the reference agree only to about 1e-3)
    from ..data import load_mnist

    model = _fresh_model("mnist_cnn")
    xs, ys = load_mnist("test")
    xd, yd = xs[:1].clone(), ys[:1].clone()
    i = int((xd.flatten() - 0.5).abs().argmin())  # a pixel on the edge of the stroke: both probes stay in [0, 1]
    oracle = Oracle(model, access="scores")
    got = _call_estimate(fn, oracle, xd, yd, i, 1e-2)
    ref = _exact_difference(model, xd, yd, i, 1e-2)
    _require(math.isclose(got, ref, rel_tol=2e-2, abs_tol=2e-3),
             f"on a digit and mnist_cnn (pixel {i}, h = 0.01) your estimate is {got:.4g}, the symmetric "
             f"difference gives {ref:.4g}. Does your function work for any image shape (1, C, H, W) and flat index "
             "i, e.g. with e.view(-1)[i] = h?")
    _ok(f"two queries, (f(x + h e_i) - f(x - h e_i)) / (2h) on the log-probability margin; on the digit the "
        f"estimate at pixel {i} is {got:.4f}. A full gradient this way costs 2 x 784 = 1,568 queries per digit.")


# --------------------------------------------------------------------------- exercise 2: one Boundary step
def _step_inputs(b: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Originals in [0.3, 0.7] and adversarial points at L2 distances 0.4, 1.2, 2.5, ... (one per image), so that
    no clip to [0, 1] is needed and a norm over the whole batch differs from the per-image norms."""
    g = torch.Generator().manual_seed(91 + b)
    x = 0.3 + 0.4 * torch.rand(b, 1, 28, 28, generator=g, dtype=dtype)
    d = torch.tensor([0.4, 1.2, 2.5, 0.8][:b], dtype=dtype)
    v = torch.randn(b, 1, 28, 28, generator=g, dtype=dtype)
    v = v / v.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * d.view(-1, 1, 1, 1)
    return x, x + v


def _norms(t: torch.Tensor) -> torch.Tensor:
    return t.detach().double().flatten(1).norm(dim=1)


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.detach().double().flatten(1), b.detach().double().flatten(1)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-300)


def check_boundary_step(fn) -> None:
    """Lesson 09: ``fn(x, x_adv, delta, epsilon)`` must make one proposal of the Boundary attack for each image of
    ``x`` ``(B, C, H, W)`` and its adversarial point ``x_adv``, and return ``(eta, x_s, x_new)``: with
    ``d = ||x_adv - x||_2`` per image,

        eta   ~ N(0, I), minus its component along x_adv - x, scaled to ||eta|| = delta * d
        x_s   = x + (x_adv + eta - x) * d / ||x_adv + eta - x||          (back onto the sphere of radius d)
        x_new = x_s + epsilon * (x - x_s)                                 (so ||x_new - x|| = (1 - epsilon) d)

    The check compares with this definition for whatever noise ``fn`` draws (it never needs the same random
    numbers), on points where no clip to ``[0, 1]`` is needed (a clip is allowed). Rejected, each with its own
    message: changing the inputs in place; the component along ``x_adv - x`` not removed; ``eta`` not scaled to
    ``delta * d`` (e.g. to ``delta``); norms over the whole batch instead of per image; the same noise every call;
    ``x_s`` not rescaled onto the sphere; a step away from ``x``; epsilon applied to the wrong point (the source
    step from ``x_adv`` instead of ``x_s``, along ``x_adv - x``, or to ``epsilon * d`` instead of
    ``(1 - epsilon) d``).
    """
    seen = []
    for b, delta, epsilon in [(1, 0.2, 0.1), (3, 0.05, 0.3), (4, 0.5, 0.02)]:
        x, xa = _step_inputs(b)
        x_before, xa_before = x.clone(), xa.clone()
        out = fn(x, xa, delta, epsilon)
        _require(torch.equal(x, x_before) and torch.equal(xa, xa_before),
                 "your function changed x or x_adv in place: the attack keeps both (x_adv is replaced only if the "
                 "candidate is adversarial), so compute new tensors")
        _require(isinstance(out, (tuple, list)) and len(out) == 3,
                 "return three tensors: (eta, x_s, x_new), the orthogonal noise, the candidate on the sphere and "
                 "the candidate after the step towards x")
        _require(all(isinstance(t, torch.Tensor) and t.shape == x.shape for t in out),
                 f"each of eta, x_s, x_new must be a tensor of x's shape {tuple(x.shape)}, got "
                 f"{[tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__ for t in out]}")
        eta, xs, xn = (t.detach() for t in out)
        d = _norms(xa - x)
        u = (xa - x).double().flatten(1) / d[:, None]
        # 1. the orthogonal noise
        par = (eta.double().flatten(1) * u).sum(1)
        n_eta = _norms(eta)
        _require(bool((n_eta > 0).all()), "eta is zero for some image: draw Gaussian noise, torch.randn_like(x)")
        _require(bool((par.abs() <= 1e-3 * n_eta).all()),
                 f"eta is not orthogonal to x_adv - x (its component along it is {float(par.abs().max()):.3g}, "
                 f"against a norm of {float(n_eta.max()):.3g}): remove it, eta - <eta, u> u with u = (x_adv - x) "
                 "/ d, per image. Only then is the orthogonal step a move *along* the sphere, neither towards x nor "
                 "away from it")
        if not torch.allclose(n_eta, delta * d, rtol=1e-3):
            if torch.allclose(n_eta, torch.full_like(n_eta, delta), rtol=1e-3):
                raise AssertionError(f"||eta|| is delta = {delta} for every image: scale it to delta * d, relative "
                                     "to the current distance d = ||x_adv - x||, so that the step shrinks as the "
                                     "walk approaches x")
            whole = float((xa - x).double().norm())  # d over the whole batch
            if b > 1 and (torch.allclose(n_eta, torch.full_like(n_eta, delta * whole), rtol=1e-3)
                          or math.isclose(float(n_eta.square().sum().sqrt()), delta * whole, rel_tol=1e-3)):
                raise AssertionError("your norms are taken over the whole batch: d and ||eta|| are per image, e.g. "
                                     "(x_adv - x).flatten(1).norm(dim=1) reshaped to (B, 1, 1, 1)")
            raise AssertionError(f"||eta|| must be delta * d per image ({[round(v, 4) for v in (delta * d).tolist()]})"
                                 f", got {[round(v, 4) for v in n_eta.tolist()]}")
        seen.append(eta.flatten()[:50].clone())
        # 2. the candidate on the sphere
        r_s = _norms(xs - x)
        if not torch.allclose(r_s, d, rtol=1e-4):
            if torch.allclose(r_s, d * math.sqrt(1 + delta ** 2), rtol=1e-4):
                raise AssertionError("x_s is at distance d * sqrt(1 + delta^2) from x: x_adv + eta is off the "
                                     "sphere (eta is orthogonal, so Pythagoras adds it). Rescale onto the sphere: "
                                     "x_s = x + (x_adv + eta - x) * d / ||x_adv + eta - x||")
            raise AssertionError(f"x_s must lie on the sphere of radius d = ||x_adv - x|| around x: distances "
                                 f"{[round(v, 4) for v in r_s.tolist()]}, expected {[round(v, 4) for v in d.tolist()]}")
        _require(bool((_cos(xs - x, xa - x + eta) > 1 - 1e-6).all()),
                 "x_s must be x + (x_adv + eta - x) * d / ||x_adv + eta - x||: it is on the sphere, but not in the "
                 "direction of x_adv + eta - x (did you use the eta you returned?)")
        # 3. the step towards x: first its direction, then its length
        if not bool((_cos(xn - x, xs - x) > 1 - 1e-6).all()):
            if bool((_cos(xn - x, xa - x) > 1 - 1e-6).all()):
                raise AssertionError("x_new lies on the line from x to x_adv: you applied the step towards x to "
                                     "x_adv instead of x_s, so the orthogonal step is lost and the walk can only "
                                     "slide straight towards x (it gets stuck at the first bump of the boundary)")
            raise AssertionError("x_new must lie on the segment from x_s to x (x_new = x_s + epsilon (x - x_s)): "
                                 "move from x_s straight towards x, not along x_adv - x or another direction")
        r_n = _norms(xn - x)
        if not torch.allclose(r_n, (1 - epsilon) * d, rtol=1e-4):
            if torch.allclose(r_n, (1 + epsilon) * d, rtol=1e-4):
                raise AssertionError("x_new is at (1 + epsilon) d: you stepped away from x. The source step moves "
                                     "towards the original: x_new = x_s + epsilon * (x - x_s)")
            if torch.allclose(r_n, epsilon * d, rtol=1e-4):
                raise AssertionError("x_new is at epsilon * d from x: epsilon is the fraction of the way to go "
                                     "towards x, not the fraction left. x_new = x_s + epsilon * (x - x_s) lands at "
                                     "(1 - epsilon) d")
            raise AssertionError(f"x_new must be at (1 - epsilon) d from x: distances "
                                 f"{[round(v, 4) for v in r_n.tolist()]}, expected "
                                 f"{[round(v, 4) for v in ((1 - epsilon) * d).tolist()]}")
    _require(not torch.equal(seen[-1], _second_call(fn)),
             "two calls with the same inputs gave the same eta: draw fresh noise at every step (torch.randn_like "
             "without re-seeding), or the walk keeps trying one direction")
    _ok("eta is orthogonal to x_adv - x with norm delta d, x_s is back on the sphere of radius d, and x_new is "
        "(1 - epsilon) d from x on the way from x_s to x: the Boundary attack's proposal.")


def _second_call(fn) -> torch.Tensor:
    x, xa = _step_inputs(4)
    return fn(x, xa, 0.5, 0.02)[0].detach().flatten()[:50]


# --------------------------------------------------------------------------- exercise 3: a query budget
def budget_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The six held-out digits of exercise 3 (the second of the classes 0, 2, 3, 4, 6 and 7; a held-out part of
    the official MNIST training set): ``(x (6, 1, 28, 28), y (6,))``."""
    from ..data import load_mnist

    x, y = load_mnist("test")
    idx = torch.tensor(_BUDGET_INDEX)
    return x[idx].clone(), y[idx].clone()


def _counting_oracle(model, budget: int, x: torch.Tensor, y: torch.Tensor):
    """An :class:`Oracle` (attacks accept it) that also keeps the check's own record: queries per digit, and the
    L2 distance of the closest adversarial query per digit, whatever the attack does with ``watch`` or ``reset``."""
    from ..attacks.oracle import Oracle, QueryBudgetExceeded

    class CountingOracle(Oracle):
        def __init__(self):
            super().__init__(model, access="scores", max_queries=budget)
            self.reset(x.shape[0])
            self.asked = torch.zeros(x.shape[0], dtype=torch.long)
            self.closest = torch.full((x.shape[0],), math.inf, dtype=torch.float64)

        def __call__(self, rows, owner=None, *, log=False):
            own = torch.arange(rows.shape[0]) if owner is None else torch.as_tensor(owner).cpu().long()
            if own.numel() == rows.shape[0] and own.numel() and int(own.min()) >= 0 and int(own.max()) < x.shape[0]:
                asked = self.asked + torch.bincount(own, minlength=x.shape[0])
                if bool((asked > budget).any()):
                    i = int((asked > budget).nonzero()[0])
                    raise QueryBudgetExceeded(f"image {i} would need {int(asked[i])} queries; the budget is "
                                              f"{budget} per image")
            out = super().__call__(rows, owner, log=log)
            self.asked += torch.bincount(own, minlength=x.shape[0])
            labels = out if out.dim() == 1 else out.argmax(1)
            hit = labels.cpu() != y[own]
            if bool(hit.any()):
                dist = (rows.detach()[hit] - x[own[hit]]).flatten(1).norm(dim=1).double().cpu()
                self.closest = self.closest.scatter_reduce(0, own[hit], dist, "amin")
            return out

    return CountingOracle()


def check_budget_attack(attack) -> None:
    """Lesson 09: ``attack(oracle, x, y)`` must return adversarial images for the six digits of
    :func:`budget_digits`, spending at most ``BUDGET_QUERIES`` (1,000) queries per digit through the oracle it is
    given (scores and labels: ``oracle(x, owner=...)`` returns probabilities), with a median L2 distance (a digit
    not fooled counts as infinitely far) below ``BUDGET_MEDIAN`` (1.25). Any black-box attack and settings.

    The check builds the oracle itself (``mnist_cnn``, ``max_queries=1000``) and keeps its own record of the
    queries. Rejected, each with its own message: more queries than the budget; never asking the oracle (a model
    of one's own, white box or another); changing ``x`` in place; images outside ``[0, 1]`` or of the wrong
    shape; a returned image closer than every adversarial image asked (it was not found through the oracle:
    white-box help, or edited after the attack); digits not fooled; a median above the target.
    """
    from ..attacks.oracle import QueryBudgetExceeded

    x, y = budget_digits()
    model = _fresh_model("mnist_cnn")
    oracle = _counting_oracle(model, BUDGET_QUERIES, x, y)
    x_before = x.clone()
    try:
        out = attack(oracle, x, y)
    except QueryBudgetExceeded as err:
        raise AssertionError(f"your attack asked for more than {BUDGET_QUERIES} queries for a digit ({err}). The "
                             f"budget is {BUDGET_QUERIES} per digit: pass max_queries={BUDGET_QUERIES} to a course_lib "
                             "attack (it also stops at what the oracle has left), or count in your own loop") from None
    _require(torch.equal(x, x_before), "your attack changed x in place: the distances are measured from the "
             "original digits, so keep them as they were")
    _require(isinstance(out, torch.Tensor) and out.shape == x.shape,
             f"return the adversarial images, a tensor of x's shape {tuple(x.shape)}, got "
             f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    out = out.detach().to(x.dtype)
    _require(bool(torch.isfinite(out).all()) and float(out.min()) >= 0 and float(out.max()) <= 1,
             "your images must be valid images: finite, with every pixel in [0, 1]")
    _require(int(oracle.asked.sum()) > 0,
             "your attack never asked the oracle it was given: a black-box attacker has no model of its own to "
             "call (not mnist_cnn's weights, not another model). Run the attack through `oracle`")
    with torch.no_grad():
        fooled = model(out).argmax(1) != y
    dist = (out - x).flatten(1).norm(dim=1).double()
    unseen = fooled & (dist < oracle.closest * (1 - 1e-4) - 1e-6)
    if bool(unseen.any()):
        i = int(unseen.nonzero()[0])
        seen = float(oracle.closest[i])
        raise AssertionError(f"digit {i}: your image is adversarial at L2 {float(dist[i]):.3f}, but the closest "
                             f"adversarial image the oracle was asked about is at "
                             f"{'none' if math.isinf(seen) else f'{seen:.3f}'}: this image was not found through "
                             "the oracle. A black-box attacker learns that an image fools the model only by asking; "
                             "did you use the model itself (white box), another oracle, or edit the images after "
                             "the attack?")
    d = torch.where(fooled, dist, torch.full_like(dist, math.inf))
    med = float(d.median())
    spent = oracle.asked.tolist()
    _require(bool(fooled.any()), f"none of the six digits is fooled (queries spent per digit: {spent}): does your "
             "attack return its adversarial images, not the last probe or x itself?")
    _require(med < BUDGET_MEDIAN,
             f"median L2 {med:.3f} ({int(fooled.sum())} of 6 digits fooled, a failure counting as infinitely far; "
             f"queries per digit: {spent}): the target is below {BUDGET_MEDIAN}. Spend the budget on what "
             "minimises L2 at few queries: a decision-based attack that estimates the boundary's normal "
             "(hop_skip_jump) or walks along the boundary (boundary_attack). ZOO needs more than 1,000 queries "
             "per digit on MNIST, and square_attack minimises nothing: it stops at its first success inside the "
             "L-infinity ball, far away in L2")
    _ok(f"median L2 {med:.3f} < {BUDGET_MEDIAN} over the six digits ({int(fooled.sum())} fooled), with at most "
        f"{max(spent)} queries per digit (budget {BUDGET_QUERIES}); every image was found through the oracle.")


#: Multiple-choice questions of lesson 09: key -> (options, correct option, explanation shown on success).
QUESTIONS = {
    "09_noise_baseline": (
        ("a", "b", "c", "d"), "b",
        "random sign noise of size 0.1 already fools 9 of the 10 digits (mnist_cnn calls noisy digits '8'), so "
        "the Square attack's first query, its stripes, succeeds too: at that budget no attack is needed. A success "
        "rate means something only next to a blind baseline of the same size; at eps = 0.05, where noise fools "
        "few digits, the attack has work to do."),
    "09_eights": (
        ("a", "b", "c", "d"), "c",
        "the decision-based attacks start from an image that is already adversarial, and their usual start is "
        "random noise. mnist_cnn calls noise '8', which fools every digit except an 8: for the 8s the start must "
        "come from rarer draws (dimmed noise), and the model calls almost every blend of the 8 with that noise an "
        "'8', so the bisection stops far out and the walk begins there. White-box C&W follows the model's "
        "gradient from the digit itself and needs no start."),
}
