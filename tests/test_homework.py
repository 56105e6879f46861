"""Each check accepts a right answer and rejects the plausible wrong ones with a helpful message."""
import pytest
import torch

from course_lib import homework as hw
from course_lib.corruptions import corrupt
from course_lib.models import load_model


def right(x, sigma, generator):
    return (x + sigma * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def uniform(x, sigma, generator):
    return (x + sigma * torch.rand(x.shape, generator=generator)).clamp(0, 1)


def variance_not_std(x, sigma, generator):
    return (x + sigma**2 * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def no_clip(x, sigma, generator):
    return x + sigma * torch.randn(x.shape, generator=generator)


def in_place(x, sigma, generator):
    return x.add_(sigma * torch.randn(x.shape, generator=generator)).clamp_(0, 1)


def unseeded(x, sigma, generator):
    return (x + sigma * torch.randn(x.shape)).clamp(0, 1)


def one_per_image(x, sigma, generator):
    return (x + sigma * torch.randn(x.shape[0], 1, 1, 1, generator=generator)).clamp(0, 1)


def same_for_every_image(x, sigma, generator):  # one (1, C, H, W) draw, broadcast over the batch
    return (x + sigma * torch.randn((1, *x.shape[1:]), generator=generator)).clamp(0, 1)


def other_random_numbers(x, sigma, generator):  # right, with another recipe: a Box-Muller normal
    u1, u2 = torch.rand(x.shape, generator=generator), torch.rand(x.shape, generator=generator)
    z = (-2 * torch.log1p(-u1)).sqrt() * torch.cos(2 * torch.pi * u2)
    return torch.clamp(x + sigma * z, 0.0, 1.0)


def centred_uniform(x, sigma, generator):  # right mean and std, wrong distribution
    return (x + sigma * 3**0.5 * (2 * torch.rand(x.shape, generator=generator) - 1)).clamp(0, 1)


@pytest.mark.parametrize("fn", [right, other_random_numbers])
def test_gaussian_noise_accepts_the_definition(fn, capsys):
    hw.check_gaussian_noise(fn)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, match", [
    (uniform, "mean 0"), (variance_not_std, "standard deviation 0.1"), (no_clip, r"\[0, 1\]"),
    (in_place, "in place"), (unseeded, "same generator seed"), (one_per_image, "constant within each image"),
    (same_for_every_image, "same noise pattern"),
    (centred_uniform, "does not look Gaussian"), (lambda x, s, g: x, "no noise"),
    (lambda x, s, g: right(x, s, g)[0], "shape"),
])
def test_gaussian_noise_rejects_wrong_answers(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_gaussian_noise(fn)


@pytest.fixture(scope="module")
def setting(mnist_test):
    x, y = mnist_test[0][:300], mnist_test[1][:300]
    return load_model("mnist_cnn"), x, y


def hits(model, x, y):
    """The accuracy counted here, not with course_lib's accuracy, which the check uses as its reference."""
    with torch.no_grad():
        return int((model(x).argmax(1) == y).sum()) / len(y)


def test_corrupted_accuracy(setting, capsys):
    model, x, y = setting
    answer = hits(model, corrupt(x, "rotation", 4, seed=0), y)
    assert 0.2 < answer < 0.9  # rotated by 45 degrees: far from the clean accuracy, far from chance
    hw.check_corrupted_accuracy(answer, model, x, y, "rotation", 4, seed=0)
    assert "correct" in capsys.readouterr().out
    hw.check_corrupted_accuracy(torch.tensor(answer), model, x, y, "rotation", 4, seed=0)


def test_corrupted_accuracy_rejects(setting):
    model, x, y = setting
    answer = hits(model, corrupt(x, "rotation", 4, seed=0), y)
    with pytest.raises(AssertionError, match="fraction"):
        hw.check_corrupted_accuracy(100 * answer, model, x, y, "rotation", 4, seed=0)
    with pytest.raises(AssertionError, match="clean images"):
        hw.check_corrupted_accuracy(hits(model, x, y), model, x, y, "rotation", 4, seed=0)
    wrong_severity = hits(model, corrupt(x, "rotation", 2, seed=0), y)
    with pytest.raises(AssertionError, match="not the accuracy"):
        hw.check_corrupted_accuracy(wrong_severity, model, x, y, "rotation", 4, seed=0)
    with pytest.raises(AssertionError, match="as a number"):
        hw.check_corrupted_accuracy("0.9", model, x, y, "rotation", 4, seed=0)


def test_check_choice(capsys):
    hw.check_choice("00_noise_confidence", "plausibility")
    hw.check_choice("00_rotation", " Generalisation ")
    hw.check_choice("00_rotation", "generalisation")              # a right answer may be checked again
    with pytest.raises(AssertionError, match="one of"):             # a typo costs no attempt ...
        hw.check_choice("07_targeted", "overfitting")
    with pytest.raises(AssertionError, match="is not it. The answer is 'targeted'"):   # ... a wrong option does
        hw.check_choice("07_targeted", "untargeted")
    with pytest.raises(AssertionError, match="already answered with 'untargeted'.*You have it now"):
        hw.check_choice("07_targeted", "targeted")                  # no second try: guessing would always win
    with pytest.raises(KeyError):
        hw.check_choice("99_nothing", "a")
