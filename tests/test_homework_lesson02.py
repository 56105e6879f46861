"""Lesson 02's checks accept the right answer and reject each plausible wrong one with its own message."""
import pytest
import torch

from course_lib import homework as hw
from course_lib.explain import feature_maps
from course_lib.models import load_model


@pytest.fixture(scope="module")
def setting(mnist_test):
    return load_model("mnist_cnn"), mnist_test[0][:120]


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
