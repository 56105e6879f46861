"""Lesson 11's checks accept correct answers written in different ways and name each plausible slip."""
import pytest
import torch
import torch.nn.functional as F

import course_lib.homework as hw


def st_detach(x, bits):
    q = torch.round(x * (2 ** bits - 1)) / (2 ** bits - 1)
    return x + (q - x).detach()


class _Round(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, levels):
        return torch.round(x * levels) / levels

    @staticmethod
    def backward(ctx, g):
        return g, None


def st_function(x, bits):
    return _Round.apply(x, 2 ** bits - 1)


@pytest.mark.parametrize("fn", [st_detach, st_function])
def test_straight_through_right_answers_pass(fn, capsys):
    hw.check_straight_through(fn)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, match", [
    (lambda x, b: torch.round(x * (2 ** b - 1)) / (2 ** b - 1), "exactly 0"),
    (lambda x, b: x * 1.0, "unchanged"),
    (lambda x, b: x + (torch.floor(x * (2 ** b - 1)) / (2 ** b - 1) - x).detach(), "floor"),
    (lambda x, b: x.detach() + (torch.round(x * (2 ** b - 1)) / (2 ** b - 1) - x.detach()), "exactly 0"),
    (lambda x, b: (torch.round(x * (2 ** b - 1)) / (2 ** b - 1)).detach(), "no gradient"),
    (lambda x, b: torch.round(x * 2 ** b) / 2 ** b, "not the quantised"),
    (lambda x, b: 2 * x - x.detach() + (torch.round(x * (2 ** b - 1)) / (2 ** b - 1) - x).detach(), "identity"),
])
def test_straight_through_slips_are_named(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_straight_through(fn)


def test_straight_through_rejects_in_place_change():
    def inplace(x, bits):
        with torch.no_grad():
            x.mul_(1.0001)
        return st_detach(x, bits)
    with pytest.raises(AssertionError):
        hw.check_straight_through(inplace)


def eot_loop(model, x, y, samples):
    total = torch.zeros_like(x)
    for _ in range(samples):
        xg = x.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model(xg), y, reduction="sum")
        total += torch.autograd.grad(loss, xg)[0]
    return total / samples


def eot_batched(model, x, y, samples):
    xr = x.detach().repeat(samples, 1, 1, 1).requires_grad_(True)
    loss = F.cross_entropy(model(xr), y.repeat(samples), reduction="sum")
    return torch.autograd.grad(loss, xr)[0].view(samples, *x.shape).mean(0)


@pytest.mark.parametrize("fn", [eot_loop, eot_batched])
def test_eot_right_answers_pass(fn, capsys):
    for _ in range(3):  # other random numbers each time: the check must not depend on them
        hw.check_eot_gradient(fn)
    assert "correct" in capsys.readouterr().out


def one_draw(model, x, y, samples):
    return eot_loop(model, x, y, 1)


def fixed_seed(model, x, y, samples):
    total = torch.zeros_like(x)
    for _ in range(samples):
        torch.manual_seed(0)
        xg = x.detach().clone().requires_grad_(True)
        total += torch.autograd.grad(F.cross_entropy(model(xg), y, reduction="sum"), xg)[0]
    return total / samples


@pytest.mark.parametrize("fn, match", [
    (one_draw, "one or a few draws"),
    (fixed_seed, "one or a few draws"),
    (lambda m, x, y, s: eot_loop(m, x, y, s) * s, "summed"),
    (lambda m, x, y, s: eot_loop(m, x, y, s) / len(x), "averaged the loss over the batch"),
    (lambda m, x, y, s: -eot_loop(m, x, y, s), "point"),
])
def test_eot_slips_are_named(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_eot_gradient(fn)


def test_eot_rejects_parameter_gradients():
    def leaves_grads(model, x, y, samples):
        xr = x.detach().repeat(samples, 1, 1, 1).requires_grad_(True)
        F.cross_entropy(model(xr), y.repeat(samples), reduction="sum").backward()
        return xr.grad.view(samples, *x.shape).mean(0)
    with pytest.raises(AssertionError, match="parameters"):
        hw.check_eot_gradient(leaves_grads)
