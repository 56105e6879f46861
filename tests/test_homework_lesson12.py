"""check_distillation_loss accepts the definition written as a cross-entropy or as a KL divergence, and names each
plausible slip."""
import pytest
import torch
import torch.nn.functional as F

import course_lib.homework as hw


def right_ce(s, t, T):
    return T ** 2 * -(F.softmax(t.detach() / T, 1) * F.log_softmax(s / T, 1)).sum(1).mean()


def right_kl(s, t, T):  # differs from the cross-entropy by the teacher's entropy: the same gradient
    return T ** 2 * F.kl_div(F.log_softmax(s / T, 1), F.softmax(t.detach() / T, 1), reduction="batchmean")


@pytest.mark.parametrize("fn", [right_ce, right_kl])
def test_right_answers_pass(fn, capsys):
    hw.check_distillation_loss(fn)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, match", [
    (lambda s, t, T: -(F.softmax(t.detach() / T, 1) * F.log_softmax(s / T, 1)).sum(1).mean(), "T\\^2"),
    (lambda s, t, T: T ** 2 * -(F.softmax(t.detach() / T, 1) * F.log_softmax(s, 1)).sum(1).mean(), "only the teacher"),
    (lambda s, t, T: T ** 2 * -(F.softmax(t.detach(), 1) * F.log_softmax(s / T, 1)).sum(1).mean(), "only the student"),
    (lambda s, t, T: T ** 2 * F.cross_entropy(s / T, t.argmax(1)), "hard labels"),
    (lambda s, t, T: T ** 2 * -(F.softmax(t.detach() / T, 1) * F.log_softmax(s / T, 1)).sum(), "summed"),
    (lambda s, t, T: T ** 2 * -(F.softmax(t / T, 1) * F.log_softmax(s / T, 1)).sum(1).mean(), "teacher's logits"),
    (lambda s, t, T: torch.tensor(0.0, requires_grad=True) * 1, "differs"),
    (lambda s, t, T: right_ce(s, t, T).item(), "0-dim tensor"),
])
def test_slips_are_named(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_distillation_loss(fn)


from course_lib.attacks import pgd_step, project_linf  # noqa: E402


def inner_right(model, x, y, eps, alpha, steps):
    x_adv = project_linf(x + eps * (2 * torch.rand_like(x) - 1), x, eps)
    for _ in range(steps):
        xg = x_adv.clone().requires_grad_(True)
        grad = torch.autograd.grad(F.cross_entropy(model(xg), y), xg)[0]
        x_adv = pgd_step(x_adv, grad, x, eps, alpha)
    return x_adv.detach()


def inner_library(model, x, y, eps, alpha, steps):
    from course_lib.attacks import pgd
    if steps == 0:
        return project_linf(x + eps * (2 * torch.rand_like(x) - 1), x, eps)
    return pgd(model, x, y, eps, alpha, steps, random_start=True, keep_best=False, seed=None)


@pytest.mark.parametrize("fn", [inner_right, inner_library])
def test_inner_max_right_answers_pass(fn, capsys):
    hw.check_inner_max(fn)
    assert "correct" in capsys.readouterr().out


def no_start(model, x, y, eps, alpha, steps):
    return inner_right(model, x, y, eps, alpha, steps) if steps else x.clone()


def fixed_start(model, x, y, eps, alpha, steps):
    g = torch.Generator().manual_seed(0)
    x_adv = project_linf(x + eps * (2 * torch.rand(x.shape, generator=g) - 1), x, eps)
    return x_adv if steps == 0 else inner_right(model, x, y, eps, alpha, steps)


def corner_start(model, x, y, eps, alpha, steps):
    x_adv = project_linf(x + eps * torch.sign(torch.randn_like(x)), x, eps)
    return x_adv if steps == 0 else inner_right(model, x, y, eps, alpha, steps)


def descend(model, x, y, eps, alpha, steps):
    return inner_right(model, x, y, eps, -alpha, steps)


def no_projection(model, x, y, eps, alpha, steps):
    x_adv = (x + eps * (2 * torch.rand_like(x) - 1)).clamp(0, 1)
    for _ in range(steps):
        xg = x_adv.clone().requires_grad_(True)
        x_adv = (x_adv + alpha * torch.autograd.grad(F.cross_entropy(model(xg), y), xg)[0].sign()).clamp(0, 1)
    return x_adv.detach()


def raw_gradient(model, x, y, eps, alpha, steps):
    x_adv = project_linf(x + eps * (2 * torch.rand_like(x) - 1), x, eps)
    for _ in range(steps):
        xg = x_adv.clone().requires_grad_(True)
        x_adv = project_linf(x_adv + alpha * torch.autograd.grad(F.cross_entropy(model(xg), y), xg)[0], x, eps)
    return x_adv.detach()


@pytest.mark.parametrize("fn, match", [
    (no_start, "returns x itself"), (fixed_start, "same random start"), (corner_start, "uniformly"),
    (descend, "descended"), (no_projection, "more than eps"), (raw_gradient, "SIGN"),
])
def test_inner_max_slips_are_named(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_inner_max(fn)
