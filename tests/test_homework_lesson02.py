"""Lesson 02's checks accept the right answer and reject each plausible wrong one with its own message."""
import pytest
import torch

from course_lib import homework as hw
from course_lib.models import load_model


@pytest.fixture(scope="module")
def setting(mnist_test):
    return load_model("mnist_cnn"), mnist_test[0][:120]


def feature_maps(model, x, layer):
    """The named module's output, read with a forward hook: the answers below are built on it, not on
    course_lib.explain.feature_maps, which the check uses as its reference (a bug there must make the check
    reject the right answer, not agree with it)."""
    store = {}
    h = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: store.__setitem__("a", o.clone()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        h.remove()
    return store["a"]


def right(model, x, layer, channel, k):
    return feature_maps(model, x, layer)[:, channel].mean((1, 2)).topk(k).indices


def right_argsort(model, x, layer, channel, k):
    return feature_maps(model, x, layer)[:, channel].mean((1, 2)).argsort(descending=True)[:k]


def right_sum(model, x, layer, channel, k):  # the sum ranks like the mean: accepted
    return feature_maps(model, x, layer)[:, channel].sum((1, 2)).topk(k).indices


def least(model, x, layer, channel, k):
    return feature_maps(model, x, layer)[:, channel].mean((1, 2)).argsort()[:k]


def unordered(model, x, layer, channel, k):
    return right(model, x, layer, channel, k).flip(0)


def by_max(model, x, layer, channel, k):
    return feature_maps(model, x, layer)[:, channel].amax((1, 2)).topk(k).indices


def all_channels(model, x, layer, channel, k):
    return feature_maps(model, x, layer).mean((1, 2, 3)).topk(k).indices


def channels_of_one_image(model, x, layer, channel, k):
    return feature_maps(model, x, layer)[0].mean((1, 2)).topk(k).indices


def flat_positions(model, x, layer, channel, k):
    return feature_maps(model, x, layer)[:, channel].flatten().topk(k).indices


def values(model, x, layer, channel, k):
    return feature_maps(model, x, layer)[:, channel].mean((1, 2)).topk(k).values


def test_top_activating_accepts(setting, capsys):
    model, x = setting
    for fn in (right, right_argsort, right_sum):
        hw.check_top_activating(fn, model, x, "features.relu5", channel=3, k=8)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, match", [
    (least, "least"), (unordered, "not in order"), (by_max, "maximum over positions"),
    (all_channels, "all channels"), (channels_of_one_image, "wrong axis"), (flat_positions, "flattened"),
    (values, "indices"), (lambda m, x, l, c, k: right(m, x, l, c, k)[:-1], "exactly k"),
    (lambda m, x, l, c, k: torch.zeros(k, dtype=torch.long), "twice"),
])
def test_top_activating_rejects(setting, fn, match):
    model, x = setting
    with pytest.raises(AssertionError, match=match):
        hw.check_top_activating(fn, model, x, "features.relu5", channel=3, k=8)


def tv(x):
    return (x[..., 1:, :] - x[..., :-1, :]).abs().sum((1, 2, 3)) + (x[..., :, 1:] - x[..., :, :-1]).abs().sum((1, 2, 3))


def tv_diff(x):  # written with torch.diff: accepted
    return x.diff(dim=-2).abs().flatten(1).sum(1) + x.diff(dim=-1).abs().flatten(1).sum(1)


def test_total_variation_accepts(capsys):
    hw.check_total_variation(tv)
    hw.check_total_variation(tv_diff)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, match", [
    (lambda x: (x.diff(dim=-2) ** 2).sum((1, 2, 3)) + (x.diff(dim=-1) ** 2).sum((1, 2, 3)), "squared"),
    (lambda x: x.diff(dim=-2).abs().sum((1, 2, 3)), "only the vertical"),
    (lambda x: x.diff(dim=-1).abs().sum((1, 2, 3)), "only the horizontal"),
    (lambda x: x.diff(dim=-2).abs().mean((1, 2, 3)) + x.diff(dim=-1).abs().mean((1, 2, 3)), "averaged"),
    (lambda x: (x - x.roll(1, -2)).abs().sum((1, 2, 3)) + (x - x.roll(1, -1)).abs().sum((1, 2, 3)), "wrap around"),
    (lambda x: (x.diff(dim=-2)[..., :-1] ** 2 + x.diff(dim=-1)[..., :-1, :] ** 2).sqrt().sum((1, 2, 3)),
     "isotropic"),
    (lambda x: tv(x).sum(), "one number for the whole batch"),
    (lambda x: tv(x)[:, None], "one value per image"),
    (lambda x: x.transpose(-1, -2).diff(dim=-2).abs().sum((1, 2, 3)), "only the horizontal"),
    (lambda x: tv(x) + 1.0, "not right"),
    (lambda x: tv(x.clamp_(0, 0.5)), "in place"),
])
def test_total_variation_rejects(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_total_variation(fn)


# ---- Exercise: one step of activation maximisation with jitter
def _obj(model, layer, channel, images):  # mean activation of one channel, from a forward hook
    store = {}
    h = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        model(images)
    finally:
        h.remove()
    return store["a"][:, channel].flatten(1).mean(1)


def step_right(model, layer, channel, x, lr, shift):
    xg = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_obj(model, layer, channel, torch.roll(xg, shift, dims=(-2, -1))).sum(), xg)
    return (x + lr * g / (g.abs().mean((1, 2, 3), keepdim=True) + 1e-8)).clamp(0, 1).detach()


def step_sum_objective(model, layer, channel, x, lr, shift):  # sum instead of mean: same normalised step
    xg = x.detach().clone().requires_grad_(True)
    out = {}
    h = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: out.__setitem__("a", o))
    model(torch.roll(xg, shift, dims=(-2, -1)))
    h.remove()
    (g,) = torch.autograd.grad(out["a"][:, channel].sum(), xg)
    return (x + lr * g / (g.abs().mean((1, 2, 3), keepdim=True) + 1e-8)).clamp(0, 1).detach()


def step_descent(model, layer, channel, x, lr, shift):
    xg = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_obj(model, layer, channel, torch.roll(xg, shift, dims=(-2, -1))).sum(), xg)
    return (x - lr * g / (g.abs().mean((1, 2, 3), keepdim=True) + 1e-8)).clamp(0, 1).detach()


def step_no_roll(model, layer, channel, x, lr, shift):
    return step_right(model, layer, channel, x, lr, (0, 0))


def step_unaligned(model, layer, channel, x, lr, shift):
    xs = torch.roll(x, shift, dims=(-2, -1)).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(_obj(model, layer, channel, xs).sum(), xs)
    return (x + lr * g / (g.abs().mean((1, 2, 3), keepdim=True) + 1e-8)).clamp(0, 1).detach()


def step_no_clamp(model, layer, channel, x, lr, shift):
    xg = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_obj(model, layer, channel, torch.roll(xg, shift, dims=(-2, -1))).sum(), xg)
    return (x + lr * g / (g.abs().mean((1, 2, 3), keepdim=True) + 1e-8)).detach()


def step_batch_norm(model, layer, channel, x, lr, shift):
    xg = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_obj(model, layer, channel, torch.roll(xg, shift, dims=(-2, -1))).sum(), xg)
    return (x + lr * g / (g.abs().mean() + 1e-8)).clamp(0, 1).detach()


def step_backward(model, layer, channel, x, lr, shift):  # leaves .grad in the parameters
    xg = x.detach().clone().requires_grad_(True)
    _obj(model, layer, channel, torch.roll(xg, shift, dims=(-2, -1))).sum().backward()
    g = xg.grad
    return (x + lr * g / (g.abs().mean((1, 2, 3), keepdim=True) + 1e-8)).clamp(0, 1).detach()


def step_in_place(model, layer, channel, x, lr, shift):
    new = step_right(model, layer, channel, x, lr, shift)
    x.copy_(new)
    return new


@pytest.mark.parametrize("fn", [step_right, step_sum_objective])
def test_ascent_step_accepts_right_answers(fn, capsys):
    hw.check_ascent_step(fn)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, match", [
    (step_descent, "stepped down"), (step_no_roll, "ignores the shift"), (step_unaligned, "misaligned"),
    (step_no_clamp, "clamp"), (step_batch_norm, "ITS OWN"), (step_backward, "gradients in the model"),
    (step_in_place, "in place"),
])
def test_ascent_step_rejects_wrong_answers(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_ascent_step(fn)


def test_ascent_step_reference_is_the_definition():
    """The check's right step, against a finite difference of the objective: the step direction must raise it."""
    from course_lib.homework.lesson02 import _ascent_variants, _channel_objective
    model = load_model("mnist_cnn")
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    with torch.no_grad():
        before = _channel_objective(model, "features.bn5", 5, torch.roll(x, (2, -3), dims=(-2, -1)))
        new = _ascent_variants(model, "features.bn5", 5, x, 0.01, (2, -3))["right"]
        after = _channel_objective(model, "features.bn5", 5, torch.roll(new, (2, -3), dims=(-2, -1)))
    assert float(after) > float(before) + 1e-3
