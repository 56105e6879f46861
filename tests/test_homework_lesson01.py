"""Lesson 01's checks accept the right answer and reject each plausible wrong one with its own message."""
import pytest
import torch
from torch import nn

from course_lib import homework as hw


@pytest.fixture(scope="module")
def linear():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad():
        model[1].bias.normal_(0, 1)  # a visible bias, so forgetting it shows
    return model.eval()


def right(model, x, c):
    return model[1].weight[c].view(28, 28) * x[0, 0], model[1].bias[c]


def right_flat(model, x, c):  # another shape, same numbers: accepted
    w, b = model[1].weight.detach(), model[1].bias.detach()
    return (w[c] * x.flatten()).numpy(), float(b[c])


def right_in_numpy_shape(model, x, c):
    w, b = model[1].weight.detach(), model[1].bias.detach()
    return w[c] * x.reshape(-1), b[c].item()


def predicted_class(model, x, c):
    p = int(model(x).argmax(1))
    return model[1].weight[p] * x.flatten(), model[1].bias[p]


def neighbour_class(model, x, c):
    return model[1].weight[(c + 1) % 10] * x.flatten(), model[1].bias[c]


def weights_only(model, x, c):
    return model[1].weight[c], model[1].bias[c]


def pixels_only(model, x, c):
    return x.flatten(), model[1].bias[c]


def absolute(model, x, c):
    return (model[1].weight[c] * x.flatten()).abs(), model[1].bias[c]


def no_bias(model, x, c):
    return model[1].weight[c] * x.flatten(), 0.0


def other_bias(model, x, c):
    return model[1].weight[c] * x.flatten(), model[1].bias[(c + 1) % 10]


def in_place(model, x, c):
    x.mul_(1.0)
    x[0, 0, 0, 0] = 0.5
    return model[1].weight[c] * x.flatten(), model[1].bias[c]


def not_a_pair(model, x, c):
    return model[1].weight[c] * x.flatten()


def test_accepts_the_definition(linear, capsys):
    for fn in (right, right_flat, right_in_numpy_shape):
        hw.check_linear_contributions(lambda m, x, c, fn=fn: _tensorize(fn(m, x, c)), linear)
    assert "correct" in capsys.readouterr().out


def _tensorize(out):
    phi, b = out
    return (torch.as_tensor(phi), b)


@pytest.mark.parametrize("fn, match", [
    (predicted_class, "contributions of class"), (neighbour_class, "contributions of class"),
    (weights_only, "global"), (pixels_only, "multiply them by the weights"), (absolute, "signs"),
    (no_bias, "forgot the bias"), (other_bias, "bias of another class"), (in_place, "in place"),
    (not_a_pair, "pair"), (lambda m, x, c: (torch.zeros(10), 0.0), "one contribution per pixel"),
])
def test_rejects_wrong_answers(linear, fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_linear_contributions(fn, linear)


def test_choices():
    hw.check_choice("01_occlusion_access", "queries only")
    hw.check_choice("01_cam_portability", "CNNs with GAP")
    hw.check_choice("01_shapley_cost", "2^n")
    for key, wrong in [("01_occlusion_access", "gradients"), ("01_cam_portability", "any model"),
                       ("01_shapley_cost", "n^2")]:
        with pytest.raises(AssertionError, match="not it"):
            hw.check_choice(key, wrong)
