"""Lesson 03's checks accept right answers and reject the plausible wrong ones with the intended message."""
import pytest
import torch

from course_lib import homework as hw


# --------------------------------------------------------------------------- saliency
def _grad(model, x, target, score="logit"):
    xg = x.detach().clone().requires_grad_(True)
    out = model(xg)
    if score == "probability":
        out = out.softmax(1)
    if target is None:
        target = out.argmax(1)
    (g,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), xg)
    return g


def saliency_right(model, x, target=None):
    return _grad(model, x, target).abs()


def saliency_signed(model, x, target=None):
    return _grad(model, x, target)


def saliency_softmax(model, x, target=None):
    return _grad(model, x, target, "probability").abs()


def saliency_ignores_target(model, x, target=None):
    return _grad(model, x, None).abs()


def saliency_backward(model, x, target=None):
    xg = x.detach().clone().requires_grad_(True)
    logits = model(xg)
    t = logits.argmax(1) if target is None else target
    logits.gather(1, t[:, None]).sum().backward()
    return xg.grad.abs()


def saliency_in_place(model, x, target=None):
    x.requires_grad_(True)
    logits = model(x)
    t = logits.argmax(1) if target is None else target
    (g,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), x)
    return g.abs()


def saliency_first_class_only(model, x, target=None):  # the logit of class 0 for every image
    return _grad(model, x, torch.zeros(len(x), dtype=torch.long)).abs()


def test_saliency_accepts_the_definition(capsys):
    hw.check_saliency(saliency_right)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, match", [
    (saliency_signed, "absolute value"), (saliency_softmax, "softmax probability"),
    (saliency_ignores_target, "still explained the predicted class"), (saliency_backward, r"\.grad"),
    (saliency_in_place, "requires_grad on the caller's x"), (saliency_first_class_only, "predicted class c"),
    (lambda m, x, target=None: saliency_right(m, x, target)[:, 0], "shape"),
    (lambda m, x, target=None: saliency_right(m, x, target).tolist(), "torch.Tensor"),
])
def test_saliency_rejects(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_saliency(fn)


# --------------------------------------------------------------------------- Integrated Gradients, Riemann sums
def _path_grads(model, x, target, baseline, steps, offset, start=None):
    start = baseline if start is None else start
    total = torch.zeros_like(x)
    for k in range(steps):
        a = (k + offset) / steps
        total += _grad(model, start + a * (x - start), target)
    return total / steps


def ig_right(model, x, target, baseline, steps):
    return (x - baseline) * _path_grads(model, x, target, baseline, steps, 1.0)


def ig_middle(model, x, target, baseline, steps):
    return (x - baseline) * _path_grads(model, x, target, baseline, steps, 0.5)


def ig_trapezoid(model, x, target, baseline, steps):  # steps intervals, steps + 1 points
    total = torch.zeros_like(x)
    for k in range(steps + 1):
        w = 0.5 if k in (0, steps) else 1.0
        total += w * _grad(model, baseline + k / steps * (x - baseline), target)
    return (x - baseline) * total / steps


def ig_no_factor(model, x, target, baseline, steps):
    return _path_grads(model, x, target, baseline, steps, 1.0)


def ig_times_x(model, x, target, baseline, steps):
    return x * _path_grads(model, x, target, baseline, steps, 1.0)


def ig_sum(model, x, target, baseline, steps):
    return steps * ig_right(model, x, target, baseline, steps)


def ig_from_black(model, x, target, baseline, steps):
    return (x - baseline) * _path_grads(model, x, target, baseline, steps, 1.0, start=torch.zeros_like(x))


def ig_predicted(model, x, target, baseline, steps):
    with torch.no_grad():
        pred = model(x).argmax(1)
    return ig_right(model, x, pred, baseline, steps)


def ig_backward(model, x, target, baseline, steps):
    total = torch.zeros_like(x)
    for k in range(1, steps + 1):
        p = (baseline + k / steps * (x - baseline)).detach().requires_grad_(True)
        model(p).gather(1, target[:, None]).sum().backward()
        total += p.grad
    return (x - baseline) * total / steps


def ig_one_point(model, x, target, baseline, steps):  # gradient at x only: "gradient times input"
    return (x - baseline) * _grad(model, x, target)


@pytest.mark.parametrize("fn, rule", [(ig_right, "right endpoints"), (ig_middle, "midpoints"),
                                      (ig_trapezoid, "trapezoid")])
def test_riemann_ig_accepts_riemann_rules(fn, rule, capsys):
    hw.check_riemann_ig(fn)
    out = capsys.readouterr().out
    assert "correct" in out and rule in out


@pytest.mark.parametrize("fn, match", [
    (ig_no_factor, r"without the factor \(x - x'\)"), (ig_times_x, r"multiplied by x, not by \(x - x'\)"),
    (ig_sum, "times too large"), (ig_from_black, "starts at black"), (ig_predicted, "not the given target"),
    (ig_backward, r"\.grad"), (ig_one_point, "matches no Riemann rule"),
    (lambda m, x, t, b, s: ig_right(m, x, t, b, s).sum(1), "shape"),
])
def test_riemann_ig_rejects(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_riemann_ig(fn)
