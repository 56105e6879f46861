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
