"""Lesson 10's checks accept right answers and reject the plausible wrong ones with the intended message."""
import pytest
import torch

from course_lib import homework as hw
from course_lib.attacks import train_patch
from course_lib.data import load_mnist
from course_lib.models import load_model


# --------------------------------------------------------------------------- paste
def paste_right(x, patch, row, col):
    out = x.clone()
    s = patch.shape[-1]
    out[:, :, row:row + s, col:col + s] = patch
    return out


def paste_in_place(x, patch, row, col):
    s = patch.shape[-1]
    x[:, :, row:row + s, col:col + s] = patch
    return x


def paste_swapped(x, patch, row, col):
    return paste_right(x, patch, col, row)


def paste_off_by_one(x, patch, row, col):
    out = x.clone()
    s = patch.shape[-1]
    out[:, :, row:row + s - 1, col:col + s - 1] = patch[:, :-1, :-1]
    return out


def paste_region_only(x, patch, row, col):
    return patch.expand(x.shape[0], -1, -1, -1)


def test_paste_accepts_the_right_answer(capsys):
    hw.check_paste(paste_right)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, match", [
    (paste_in_place, "changed x"),
    (paste_swapped, "landed at row"),
    (paste_off_by_one, "differs"),
    (paste_region_only, "whole batch"),
])
def test_paste_rejects_wrong_answers(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_paste(fn)


# --------------------------------------------------------------------------- a patch for digits
@pytest.fixture(scope="module")
def digit_patch():
    model = load_model("mnist_cnn")
    x, _ = load_mnist("train")
    return train_patch(model, x[:1000], 3, 10, 60, seed=0, batch_size=64, lr=0.05, progress=False)


def test_digit_patch_accepts_a_trained_patch(digit_patch, capsys):
    hw.check_digit_patch(digit_patch, 3)
    assert "correct" in capsys.readouterr().out


def test_digit_patch_rejects_wrong_answers(digit_patch):
    with pytest.raises(AssertionError, match="at most"):
        hw.check_digit_patch(torch.zeros(1, 12, 12), 3)
    with pytest.raises(AssertionError, match="one channel"):
        hw.check_digit_patch(digit_patch.expand(3, -1, -1), 3)
    with pytest.raises(AssertionError, match=r"\[0, 1\]"):
        hw.check_digit_patch(digit_patch * 2 - 0.5, 3)
    with pytest.raises(AssertionError, match="train longer"):
        hw.check_digit_patch(torch.rand(1, 10, 10, generator=torch.Generator().manual_seed(1)), 3)
    with pytest.raises(AssertionError, match="train longer"):
        hw.check_digit_patch(digit_patch, 5)  # trained for another class


def test_questions_are_registered():
    hw.check_choice("10_threat", "c")
    hw.check_choice("10_eot", "b")
    with pytest.raises(AssertionError):
        hw.check_choice("10_threat", "a")


# --------------------------------------------------------------------------- one EOT step
import torch.nn.functional as F  # noqa: E402

from course_lib.attacks import place_patch  # noqa: E402


def eot_step_right(model, patch, x, target, centres, scales, angles, lr):
    p = patch.detach().clone().requires_grad_(True)
    logits = model(place_patch(x, p, centres, scales, angles))
    loss = F.cross_entropy(logits, torch.full((len(x),), target, dtype=torch.long))
    (grad,) = torch.autograd.grad(loss, p)
    return (p - lr * grad.sign()).clamp(0, 1).detach()


def eot_step_adam(model, patch, x, target, centres, scales, angles, lr):
    """Written differently: one image at a time, summed log-probabilities, and the first step of torch's Adam."""
    p = patch.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=lr)
    total = 0
    for i in range(len(x)):
        placed = place_patch(x[i:i + 1], p, centres[i:i + 1], scales[i:i + 1], angles[i:i + 1])
        total = total - model(placed).log_softmax(1)[0, target]
    (p.grad,) = torch.autograd.grad(total, p)
    opt.step()
    return p.detach().clamp(0, 1)


def eot_step_ascent(model, patch, x, target, centres, scales, angles, lr):
    p = patch.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(place_patch(x, p, centres, scales, angles)),
                           torch.full((len(x),), target, dtype=torch.long))
    (grad,) = torch.autograd.grad(loss, p)
    return (p + lr * grad.sign()).clamp(0, 1).detach()


def eot_step_one_transform(model, patch, x, target, centres, scales, angles, lr):
    n = len(x)
    return eot_step_right(model, patch, x, target, centres[:1].expand(n, 2), scales[:1].expand(n),
                          angles[:1].expand(n), lr)


def eot_step_one_image(model, patch, x, target, centres, scales, angles, lr):
    return eot_step_right(model, patch, x[-1:], target, centres[-1:], scales[-1:], angles[-1:], lr)


def eot_step_no_clamp(model, patch, x, target, centres, scales, angles, lr):
    p = patch.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(place_patch(x, p, centres, scales, angles)),
                           torch.full((len(x),), target, dtype=torch.long))
    (grad,) = torch.autograd.grad(loss, p)
    return (p - lr * grad.sign()).detach()


def eot_step_image_gradient(model, patch, x, target, centres, scales, angles, lr):
    placed = place_patch(x, patch, centres, scales, angles).detach().requires_grad_(True)
    loss = F.cross_entropy(model(placed), torch.full((len(x),), target, dtype=torch.long))
    (grad,) = torch.autograd.grad(loss, placed)
    return (placed - lr * grad.sign()).clamp(0, 1).detach()


def eot_step_in_place(model, patch, x, target, centres, scales, angles, lr):
    new = eot_step_right(model, patch, x, target, centres, scales, angles, lr)
    patch.copy_(new)
    return patch


def eot_step_train_mode(model, patch, x, target, centres, scales, angles, lr):
    model.train()
    return eot_step_right(model, patch, x, target, centres, scales, angles, lr)


def eot_step_backward(model, patch, x, target, centres, scales, angles, lr):
    p = patch.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(place_patch(x, p, centres, scales, angles)),
                           torch.full((len(x),), target, dtype=torch.long))
    loss.backward()
    return (p - lr * p.grad.sign()).clamp(0, 1).detach()


def test_eot_step_accepts_the_lesson_solution(capsys):
    hw.check_eot_step(eot_step_right)
    assert "correct" in capsys.readouterr().out


def test_eot_step_accepts_a_correct_answer_written_differently(capsys):
    hw.check_eot_step(eot_step_adam)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, match", [
    (eot_step_ascent, "went \\*up\\* the target's loss"),
    (eot_step_one_transform, "same transformation"),
    (eot_step_one_image, "one image with one transformation"),
    (eot_step_no_clamp, "clamp the new patch"),
    (eot_step_image_gradient, "with respect to the placed images"),
    (eot_step_in_place, "changed the caller's patch"),
    (eot_step_train_mode, "training mode"),
    (eot_step_backward, "gradients in the model's parameters"),
])
def test_eot_step_rejects_wrong_answers(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_eot_step(fn)


def test_the_digit_check_measures_with_the_lessons_library_function():
    """Lesson 10 measures its digit patch with course_lib.attacks.patch_success; the check must measure the same."""
    from course_lib.attacks import patch_success

    x, y = load_mnist("test")
    p = torch.rand(1, 10, 10, generator=torch.Generator().manual_seed(3))
    lesson = patch_success(load_model("mnist_cnn"), x[y != 8][:500], p, 8, places=3, seed=0)
    assert hw.digit_patch_success(p, 8) == lesson
