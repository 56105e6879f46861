"""Checks for lesson 03 (saliency maps: gradients, SmoothGrad, Integrated Gradients)."""
from __future__ import annotations

import torch
from torch import nn

from ._common import _check_input_gradient_hygiene, _close, _fresh_model, _ok, _require

__all__ = ["check_saliency", "check_riemann_ig"]


def _digits(n: int = 6) -> torch.Tensor:
    from ..data import load_mnist

    x, y = load_mnist("test")
    # one digit of each of the first n classes, so the predicted classes differ
    idx = [int((y == c).nonzero()[0]) for c in range(n)]
    return x[idx].clone()


def _input_grad(model: nn.Module, x: torch.Tensor, target: torch.Tensor, score: str = "logit") -> torch.Tensor:
    """d s_t / d x for s = logit, softmax probability or log-probability (the check's own reference)."""
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        out = model(xg)
        if score == "probability":
            out = out.softmax(1)
        elif score == "log_probability":
            out = out.log_softmax(1)
        (g,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), xg)
    return g


def _call_saliency(fn, model, x, **kw):
    before = x.clone()
    out = fn(model, x, **kw)
    _require(isinstance(out, torch.Tensor), f"return a torch.Tensor, got {type(out).__name__}")
    _require(tuple(out.shape) == tuple(x.shape),
             f"the saliency map has one value per pixel and channel: shape {tuple(x.shape)} like x, "
             f"got {tuple(out.shape)}")
    _require(torch.equal(x, before), "your function changed x in place: differentiate with respect to a copy, "
             "xg = x.detach().clone().requires_grad_(True)")
    _check_input_gradient_hygiene(model, x, out, "score")
    return out.detach()


def check_saliency(fn) -> None:
    """Lesson 03: ``fn(model, x, target=None)`` must return ``|d y_c / d x|`` (y = logits), ``c`` = ``target``
    or the predicted class, without leaving gradients in the model.

    Rejects: the signed gradient (no abs), the gradient of the softmax probability or log-probability
    instead of the logit, ignoring ``target`` (always the predicted class), ``backward()`` leaving ``.grad``
    in the parameters, changing ``x`` in place.
    """
    from ..explain import saliency

    x = _digits()
    model = _fresh_model()
    with torch.no_grad():
        logits = model(x)
    pred = logits.argmax(1)
    second = logits.topk(2, dim=1).indices[:, 1]

    out = _call_saliency(fn, model, x)
    expected = saliency(model, x)
    if not _close(out, expected):
        _require(float(out.min()) >= 0, "the map has negative values: the saliency is the absolute value "
                 "|d y_c / d x| (Simonyan et al. take the magnitude: how much a pixel matters, not in which "
                 "direction)")
        for score, why in [("probability", "the softmax probability"), ("log_probability", "the log-probability")]:
            if _close(out, _input_grad(model, x, pred, score).abs()):
                raise AssertionError(
                    f"you differentiated {why} of the class, not its logit y_c. The softmax couples all "
                    "classes (its gradient also says 'make the others smaller') and saturates: for a confident "
                    "prediction p_c is close to 1 and its gradient close to 0. Use model(x)[:, c] directly")
        raise AssertionError("the map is not |d y_c / d x| for the predicted class c: take the logit of the "
                             "predicted class (model(x).argmax(1)) for each image, sum over the batch, and "
                             "differentiate with respect to the input")

    out2 = _call_saliency(fn, model, x, target=second)
    expected2 = saliency(model, x, target=second)
    if not _close(out2, expected2):
        _require(not _close(out2, expected), "with target given you still explained the predicted class: when "
                 "target is not None, differentiate the logit of the target class (a saliency map answers "
                 "'why this class?', so the class is part of the question)")
        raise AssertionError("with a target class the map is not |d y_target / d x|: pick each image's target "
                             "logit with logits.gather(1, target[:, None])")
    _ok("|d y_c / d x| of the logit, for the predicted or the given class, with no gradients left in the model.")


# --------------------------------------------------------------------------- Integrated Gradients by Riemann sums
class _Quadratic(nn.Module):
    """f_c(x) = sum_i a_ci x_i^2. Along the path x' + a (x - x') its gradient 2 a_c (x' + a (x - x')) is linear
    in a, so the midpoint and trapezoid rules are exact, while right (left) endpoints overshoot (undershoot)
    completeness by exactly sum_i a_ci (x_i - x'_i)^2 / steps."""

    def __init__(self, a: torch.Tensor):
        super().__init__()
        self.a = nn.Parameter(a)

    def forward(self, x):
        return (x.flatten(1) ** 2) @ self.a.T


def _tiny_problem():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 1, 5, 5, generator=g, dtype=torch.float64)
    base = torch.full_like(x, 0.25)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(25, 4)).double().eval()
    with torch.no_grad():
        lin[1].weight.copy_(torch.randn(4, 25, generator=g, dtype=torch.float64))
        lin[1].bias.copy_(torch.randn(4, generator=g, dtype=torch.float64))
    quad = _Quadratic(torch.randn(4, 25, generator=g, dtype=torch.float64)).eval()
    with torch.no_grad():
        pred = lin(x).argmax(1)
    target = (pred + 1) % 4  # deliberately not the predicted class: the target must be used
    return x, base, lin, quad, target


def _call_ig(fn, model, x, target, baseline, steps):
    xb, bb, tb = x.clone(), baseline.clone(), target.clone()
    out = fn(model, x, target, baseline, steps)
    _require(isinstance(out, torch.Tensor), f"return a torch.Tensor, got {type(out).__name__}")
    _require(tuple(out.shape) == tuple(x.shape),
             f"IG gives one attribution per pixel and channel: shape {tuple(x.shape)}, got {tuple(out.shape)}")
    _require(torch.equal(x, xb) and torch.equal(baseline, bb) and torch.equal(target, tb),
             "your function changed its inputs in place (x, baseline or target): work on copies")
    left = [name for name, p in model.named_parameters() if p.grad is not None] + [""]
    _require(not left[0], f"your function left gradients in the model's parameters ({left[0]}.grad): use "
             "torch.autograd.grad(score, points) instead of score.backward()")
    return out.detach()


#: the Riemann rules a student may write: (name, course_lib method, number of points for `steps` intervals)
_RULES = [("right endpoints", "riemann_right", 0), ("midpoints", "riemann_middle", 0),
          ("left endpoints", "riemann_left", 0), ("the trapezoid rule", "riemann_trapezoid", 1),
          ("the trapezoid rule", "riemann_trapezoid", 0)]


def _path_average_from_black(model, x, base, t, steps):
    """The wrong answer whose path starts at black: (x - x') * mean_k grad y_t(a_k x), a_k = k/steps or midpoints."""
    outs = []
    for offset in (1.0, 0.5):
        total = torch.zeros_like(x)
        for k in range(steps):
            a = (k + offset) / steps
            total += _input_grad(model, a * x, t)
        outs.append((x - base) * total / steps)
    return outs


def check_riemann_ig(fn) -> None:
    """Lesson 03: ``fn(model, x, target, baseline, steps)`` must be a Riemann-sum approximation of Integrated
    Gradients, ``(x - x') * (1/steps) sum_k d y_t(x' + a_k (x - x')) / d x`` with right endpoints
    ``a_k = k / steps`` or midpoints ``a_k = (k - 1/2) / steps`` (left endpoints and the trapezoid rule pass too).

    Tested on a hand-made linear model (IG = (x - x') w_t exactly, whatever the rule), a quadratic model (the
    rules differ there in a known way; completeness is reported) and mnist_cnn (equal to course_lib's
    ``integrated_gradients`` with the same rule, and close to a 64-step Gauss-Legendre IG).
    Rejects: forgetting the (x - x') factor, multiplying by x instead of (x - x'), a sum without 1/steps,
    a path that starts at black instead of the baseline, ignoring ``target``, gradients left in the model,
    changing the inputs in place.
    """
    from ..explain import integrated_gradients

    x, base, lin, quad, t = _tiny_problem()
    steps = 8
    w = lin[1].weight.detach()[t].view(-1, 1, 5, 5)
    out = _call_ig(fn, lin, x, t, base, steps)
    exact = (x - base) * w

    def same(a, b):
        return _close(a, b, rtol=1e-6, atol=1e-9)

    if not same(out, exact):
        # wrong answers named in the messages below, each computed here
        _require(not same(out, w.expand_as(x)),
                 "you returned the average gradient along the path without the factor (x - x'): IG multiplies it "
                 "by (x_i - x'_i), which is what makes the attributions add up to f(x) - f(x') (completeness)")
        _require(not same(out, x * w),
                 "you multiplied by x, not by (x - x'): the two agree only for the black baseline x' = 0 "
                 "(here the baseline is 0.25 grey)")
        _require(not same(out, steps * exact),
                 f"your result is {steps} (= steps) times too large: a Riemann sum approximates the integral "
                 "over [0, 1] by the *average* of the gradients, (1/steps) * sum_k")
        with torch.no_grad():
            pred = lin(x).argmax(1)
        _require(not same(out, (x - base) * lin[1].weight.detach()[pred].view(-1, 1, 5, 5)),
                 "you explained the predicted class, not the given target: differentiate "
                 "model(points).gather(1, target[:, None])")
        raise AssertionError("on a linear model f(x) = w.x + b every rule must give IG = (x - x') * w_target "
                             "exactly, and yours does not")

    out_q = _call_ig(fn, quad, x, t, base, steps)
    rules = [(name, method, steps + extra) for name, method, extra in _RULES
             if same(out_q, integrated_gradients(quad, x, t, baseline=base, steps=steps + extra, method=method))]
    if not rules:
        for wrong in _path_average_from_black(quad, x, base, t, steps):
            _require(not _close(out_q, wrong, rtol=1e-5, atol=1e-8),
                     "your path starts at black (a * x) instead of at the baseline: the points are "
                     "x' + a (x - x'), a in (0, 1]")
        raise AssertionError("on the quadratic model f(x) = sum_i a_i x_i^2 your result matches no Riemann rule "
                             "(right a_k = k/steps, k = 1..steps; midpoint a_k = (k - 1/2)/steps): check the points "
                             "on the path and that the gradient is taken at each point")
    with torch.no_grad():
        gap_q = (quad(x) - quad(base)).gather(1, t[:, None]).squeeze(1)
    miss_q = float((out_q.flatten(1).sum(1) - gap_q).abs().max())

    # a real network: the same numbers as course_lib's rule, and close to its default (Gauss-Legendre)
    model = _fresh_model()
    xd = _digits(4)
    with torch.no_grad():
        td = model(xd).argmax(1)
    zeros = torch.zeros_like(xd)
    n = 32
    mine = _call_ig(fn, model, xd, td, zeros, n)
    match = [name for name, method, k in rules
             if _close(mine, integrated_gradients(model, xd, td, baseline=zeros, steps=n + k - steps, method=method),
                       rtol=1e-3, atol=1e-5)]
    _require(bool(match), f"on mnist_cnn your result does not match course_lib's integrated_gradients with "
             f"{rules[0][0]} (method={rules[0][1]!r}): does your function handle a batch of images, each with "
             "its own target?")
    fine = integrated_gradients(model, xd, td, steps=64)
    rel = float((mine - fine).norm() / fine.norm())
    _require(rel < 0.25, f"on mnist_cnn your IG differs from a 64-step Gauss-Legendre IG by {rel:.0%} "
             "(relative L2): too far for 32 steps")
    _ok(f"a Riemann IG with {match[0]}: exact on the linear model, completeness gap {miss_q:.2g} on the quadratic "
        f"one, {rel:.1%} from a 64-step Gauss-Legendre IG on mnist_cnn (32 steps).")
