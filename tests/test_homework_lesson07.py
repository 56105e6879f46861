"""Lesson 07's checks accept right answers and reject the plausible wrong ones with the intended message."""
import pytest
import torch
import torch.nn.functional as F

from course_lib import homework as hw


# --------------------------------------------------------------------------- FGSM by hand
def _grad(model, x, y, reduction="mean"):
    xg = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y, reduction=reduction), xg)
    return g


def fgsm_right(model, x, y, eps, targeted=False):
    step = -eps if targeted else eps
    return (x + step * _grad(model, x, y).sign()).clamp(0, 1)


def fgsm_sum_and_backward_free(model, x, y, eps, targeted=False):  # a different loss scale: the sign is the same
    g = _grad(model, x, y, reduction="sum")
    return (x + (-1 if targeted else 1) * eps * g.sign()).clamp(0, 1).detach()


def fgsm_no_clamp(model, x, y, eps, targeted=False):
    step = -eps if targeted else eps
    return x + step * _grad(model, x, y).sign()


def fgsm_against_gradient(model, x, y, eps, targeted=False):
    step = eps if targeted else -eps
    return (x + step * _grad(model, x, y).sign()).clamp(0, 1)


def fgsm_forgot_eps(model, x, y, eps, targeted=False):
    return (x + (-1 if targeted else 1) * _grad(model, x, y).sign()).clamp(0, 1)


def fgsm_gradient_not_sign(model, x, y, eps, targeted=False):  # summed loss
    step = -eps if targeted else eps
    return (x + step * _grad(model, x, y, reduction="sum")).clamp(0, 1)


def fgsm_gradient_not_sign_mean(model, x, y, eps, targeted=False):  # mean loss: tiny steps, inside the ball
    step = -eps if targeted else eps
    return (x + step * _grad(model, x, y)).clamp(0, 1)


def fgsm_targeted_sign_error(model, x, y, eps, targeted=False):
    return (x + eps * _grad(model, x, y).sign()).clamp(0, 1)


def fgsm_in_place(model, x, y, eps, targeted=False):
    g = _grad(model, x, y)
    return x.add_((-eps if targeted else eps) * g.sign()).clamp_(0, 1)


def fgsm_train_mode(model, x, y, eps, targeted=False):
    model.train()
    return fgsm_right(model, x, y, eps, targeted)


def fgsm_backward(model, x, y, eps, targeted=False):
    xg = x.detach().clone().requires_grad_(True)
    F.cross_entropy(model(xg), y).backward()
    return (x + (-eps if targeted else eps) * xg.grad.sign()).clamp(0, 1)


def fgsm_attached(model, x, y, eps, targeted=False):
    xg = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg, create_graph=True)
    return (xg + (-eps if targeted else eps) * g.sign()).clamp(0, 1)


def fgsm_margin_loss(model, x, y, eps, targeted=False):  # the right shape of step, on another loss
    xg = x.detach().clone().requires_grad_(True)
    z = model(xg)
    other = z.scatter(1, y[:, None], float("-inf")).amax(1)
    loss = (other - z.gather(1, y[:, None])[:, 0]).sum()
    (g,) = torch.autograd.grad(loss, xg)
    return (x + (-eps if targeted else eps) * g.sign()).clamp(0, 1)


def test_fgsm_step_accepts_the_definition(capsys):
    hw.check_fgsm_step(fgsm_right)
    assert "correct" in capsys.readouterr().out
    hw.check_fgsm_step(fgsm_sum_and_backward_free)


@pytest.mark.parametrize("fn, match", [
    (fgsm_no_clamp, r"clamp\(0, 1\)"),
    (fgsm_against_gradient, "against the gradient"),
    (fgsm_forgot_eps, "left the eps-ball.*sign"),
    # the raw gradient times eps: on mnist_cnn_aug some entries exceed 1, so it leaves the ball; either message
    # names the sign
    (fgsm_gradient_not_sign, "(less than eps|left the eps-ball).*sign"),
    (fgsm_gradient_not_sign_mean, "less than eps.*sign"),
    (fgsm_targeted_sign_error, "targeted step has the wrong sign"),
    (fgsm_in_place, "in place"),
    (fgsm_train_mode, "training mode"),
    (fgsm_backward, r"\.grad"),
    (fgsm_attached, "detach"),
    (fgsm_margin_loss, "cross-entropy"),
    (lambda m, x, y, eps, targeted=False: fgsm_right(m, x, y, eps, targeted)[:, 0], "shape"),
    (lambda m, x, y, eps, targeted=False: fgsm_right(m, x, y, eps, targeted).tolist(), "torch.Tensor"),
])
def test_fgsm_step_rejects(fn, match):
    with pytest.raises(AssertionError, match=match):
        hw.check_fgsm_step(fn)


# --------------------------------------------------------------------------- reading a robustness curve
EPS = [0.0, 0.05, 0.075, 0.15]
KW = {"steps": 5, "seed": 0}


@pytest.fixture(scope="module")
def curve(mnist_test, mnist_cnn):
    """The two robustness curves counted here from the attacks themselves (5 PGD steps of 2.5 eps / 5 from the
    random start of seed 0, as documented), not with attack_sweep, which the check uses as its reference."""
    from course_lib.attacks import fgsm as fgsm_attack
    from course_lib.attacks import pgd as pgd_attack

    x, y = mnist_test[0][:60], mnist_test[1][:60]

    def acc(x_adv):
        with torch.no_grad():
            return float((mnist_cnn(x_adv).argmax(1) == y).double().mean())

    pgd = [acc(pgd_attack(mnist_cnn, x, y, e, 2.5 * e / 5, 5, seed=0) if e > 0 else x) for e in EPS]
    fgsm = [acc(fgsm_attack(mnist_cnn, x, y, e) if e > 0 else x) for e in EPS]
    first = [next(e for e, a in zip(EPS, acc, strict=True) if a < 0.1) for acc in (pgd, fgsm)]
    assert first[0] < first[1], "the test needs a curve where FGSM crosses 10 % later than PGD"
    return x, y, first[0], first[1]


def test_breaking_eps_accepts_the_answer(curve, mnist_cnn, capsys):
    x, y, right, _ = curve
    hw.check_breaking_eps(right, mnist_cnn, x, y, EPS, **KW)
    assert "correct" in capsys.readouterr().out
    hw.check_breaking_eps(torch.tensor(right), mnist_cnn, x, y, EPS, **KW)


def test_breaking_eps_rejects(curve, mnist_cnn):
    x, y, right, fgsm_answer = curve
    before = EPS[EPS.index(right) - 1]
    with pytest.raises(AssertionError, match="not yet below"):
        hw.check_breaking_eps(before, mnist_cnn, x, y, EPS, **KW)
    with pytest.raises(AssertionError, match="smallest.*FGSM curve"):
        hw.check_breaking_eps(fgsm_answer, mnist_cnn, x, y, EPS, **KW)
    with pytest.raises(AssertionError, match=r"pixel units.*you mean"):
        hw.check_breaking_eps(right * 255, mnist_cnn, x, y, EPS, **KW)
    with pytest.raises(AssertionError, match="not one of the eps values"):
        hw.check_breaking_eps(0.08, mnist_cnn, x, y, EPS, **KW)
    with pytest.raises(AssertionError, match="as a number"):
        hw.check_breaking_eps("0.05", mnist_cnn, x, y, EPS, **KW)


def test_threat_model_questions():
    hw.check_choice("07_api_labels", "black box")
    hw.check_choice("07_surrogate", "Grey box")
    hw.check_choice("07_targeted", "targeted")
    with pytest.raises(AssertionError, match="not it"):
        hw.check_choice("07_surrogate", "white box")
    with pytest.raises(AssertionError, match="answer with one of"):
        hw.check_choice("07_api_labels", "black")


# --------------------------------------------------------------------------- one PGD step by hand
def _step_grad(model, x_at, y, reduction="mean"):
    return _grad(model, x_at, y, reduction)


def pgd_step_right(model, x, x_adv, y, eps, alpha):
    """The lesson's solution."""
    stepped = x_adv + alpha * _step_grad(model, x_adv, y).sign()
    return (x + (stepped - x).clamp(-eps, eps)).clamp(0, 1).detach()


def pgd_step_right_other(model, x, x_adv, y, eps, alpha):
    """Also right, written differently: a summed loss, .backward() on a detached copy of the model's input with
    the weights' grads cleared afterwards, and torch.min/max against the box's bounds."""
    xg = x_adv.detach().clone().requires_grad_(True)
    F.cross_entropy(model(xg), y, reduction="sum").backward()
    model.zero_grad(set_to_none=True)
    stepped = x_adv + alpha * xg.grad.sign()
    lower, upper = torch.clamp(x - eps, min=0), torch.clamp(x + eps, max=1)
    return torch.max(torch.min(stepped, upper), lower)


def pgd_step_library(model, x, x_adv, y, eps, alpha):
    from course_lib.attacks import pgd_step
    return pgd_step(x_adv, _step_grad(model, x_adv, y), x, eps, alpha)


def pgd_step_no_clip01(model, x, x_adv, y, eps, alpha):
    stepped = x_adv + alpha * _step_grad(model, x_adv, y).sign()
    return x + (stepped - x).clamp(-eps, eps)


def pgd_step_project_first(model, x, x_adv, y, eps, alpha):
    projected = (x + (x_adv - x).clamp(-eps, eps)).clamp(0, 1)
    return (projected + alpha * _step_grad(model, x_adv, y).sign()).clamp(0, 1)


def pgd_step_no_projection(model, x, x_adv, y, eps, alpha):
    return (x_adv + alpha * _step_grad(model, x_adv, y).sign()).clamp(0, 1)


def pgd_step_l2_projection(model, x, x_adv, y, eps, alpha):
    delta = x_adv + alpha * _step_grad(model, x_adv, y).sign() - x
    norm = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    return (x + delta * (eps / norm).clamp(max=1)).clamp(0, 1)


def pgd_step_rescale_linf(model, x, x_adv, y, eps, alpha):
    delta = x_adv + alpha * _step_grad(model, x_adv, y).sign() - x
    top = delta.flatten(1).abs().amax(1).view(-1, 1, 1, 1)
    return (x + delta * (eps / top).clamp(max=1)).clamp(0, 1)


def pgd_step_gradient_not_sign(model, x, x_adv, y, eps, alpha):
    stepped = x_adv + alpha * _step_grad(model, x_adv, y)
    return (x + (stepped - x).clamp(-eps, eps)).clamp(0, 1)


def pgd_step_descent(model, x, x_adv, y, eps, alpha):
    stepped = x_adv - alpha * _step_grad(model, x_adv, y).sign()
    return (x + (stepped - x).clamp(-eps, eps)).clamp(0, 1)


def pgd_step_grad_at_x(model, x, x_adv, y, eps, alpha):
    stepped = x_adv + alpha * _step_grad(model, x, y).sign()
    return (x + (stepped - x).clamp(-eps, eps)).clamp(0, 1)


def pgd_step_in_place(model, x, x_adv, y, eps, alpha):
    g = _step_grad(model, x_adv, y)
    x_adv += alpha * g.sign()
    return (x + (x_adv - x).clamp(-eps, eps)).clamp(0, 1)


def pgd_step_train_mode(model, x, x_adv, y, eps, alpha):
    model.train()
    return pgd_step_right(model, x, x_adv, y, eps, alpha)


def pgd_step_backward_leaves_grads(model, x, x_adv, y, eps, alpha):
    xg = x_adv.detach().clone().requires_grad_(True)
    F.cross_entropy(model(xg), y).backward()
    stepped = x_adv + alpha * xg.grad.sign()
    return (x + (stepped - x).clamp(-eps, eps)).clamp(0, 1)


def pgd_step_attached(model, x, x_adv, y, eps, alpha):
    xg = x_adv.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg)
    return (x + (xg + alpha * g.sign() - x).clamp(-eps, eps)).clamp(0, 1)


@pytest.mark.parametrize("fn", [pgd_step_right, pgd_step_right_other, pgd_step_library])
def test_pgd_step_accepts_right_answers(fn, capsys):
    hw.check_pgd_step(fn)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, message", [
    (pgd_step_no_clip01, r"left \[0, 1\]: after clamping delta"),
    (pgd_step_project_first, "projection must come \\*after\\* the step"),
    (pgd_step_no_projection, "projection must come \\*after\\* the step"),
    (pgd_step_l2_projection, "L2 projection"),
    (pgd_step_rescale_linf, "largest pixel is eps"),
    (pgd_step_gradient_not_sign, "gradient itself, not its sign"),
    (pgd_step_descent, r"\*down\* the loss"),
    (pgd_step_grad_at_x, "gradient at the clean image x"),
    (pgd_step_in_place, "in place"),
    (pgd_step_train_mode, "training mode"),
    (pgd_step_backward_leaves_grads, "gradients in the model's parameters"),
    (pgd_step_attached, "detached"),
])
def test_pgd_step_rejects_wrong_answers(fn, message):
    with pytest.raises(AssertionError, match=message):
        hw.check_pgd_step(fn)
