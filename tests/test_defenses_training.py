"""course_lib.defenses.training: the distillation loss by hand, distillation reproduces a teacher without changing
it, adversarial training ramps eps as documented and buys exact worst-case robustness on a linear model (measured
with the closed form of attacks.linear_worst_case, not with the attack it was trained against)."""
import pytest
import torch
from torch import nn

from course_lib.attacks import linear_worst_case
from course_lib.data import make_loader
from course_lib.defenses import adversarial_training, distill, distillation_loss
from course_lib.training import accuracy, train


def test_distillation_loss_by_hand():
    s = torch.tensor([[1.0, 0.0, -1.0]])
    t = torch.tensor([[2.0, 0.0, 0.0]])
    T = 2.0
    soft = torch.exp(t / T) / torch.exp(t / T).sum()
    log_p = s / T - torch.logsumexp(s / T, dim=1, keepdim=True)
    expected = T ** 2 * -(soft * log_p).sum()
    assert distillation_loss(s, t, T).item() == pytest.approx(expected.item(), rel=1e-6)
    # the T^2 factor keeps the gradient's size: at large T the student's gradient is ~ (s - t) / K, not / T^2
    sg = s.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(distillation_loss(sg, t, 100.0), sg)
    assert g.abs().max() > 0.1
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(s, t, 0)


def linear(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()


@pytest.fixture(scope="module")
def digits(mnist_test):
    return mnist_test[0][:1200], mnist_test[1][:1200]


@pytest.mark.usefixtures("one_thread")
def test_distill_copies_the_teacher_and_leaves_it_alone(digits):
    x, y = digits
    teacher = linear(0)
    train(teacher, make_loader(x[:1000], y[:1000], seed=0), 3, lr=1e-2, progress=False)
    before = [p.detach().clone() for p in teacher.parameters()]
    student = distill(teacher, make_loader(x[:1000], y[:1000], seed=1), temperature=5.0, epochs=4, lr=1e-2,
                      progress=False)
    assert student is not teacher and not student.training and not teacher.training
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters(), strict=True))
    with torch.no_grad():
        agree = (student(x[1000:]).argmax(1) == teacher(x[1000:]).argmax(1)).float().mean()
    assert agree > 0.9
    with pytest.raises(ValueError, match="training mode"):
        distill(teacher.train(), make_loader(x[:64], y[:64]), 5.0, 1, progress=False)


@pytest.mark.usefixtures("one_thread")
def test_adversarial_training_ramps_eps_and_buys_worst_case_robustness(digits):
    x, y = digits
    loader = lambda: make_loader(x[:1000], y[:1000], batch_size=100, seed=0)  # noqa: E731
    standard, robust = linear(0), linear(0)
    train(standard, loader(), 4, lr=1e-2, progress=False)
    hist = {}
    adversarial_training(robust, loader(), eps=0.1, alpha=0.04, steps=5, epochs=4, ramp_epochs=1, lr=1e-2,
                         seed=0, progress=False, history=hist)
    assert len(hist["eps"]) == 40 and hist["eps"][0] == pytest.approx(0.01) and hist["eps"][9:] == [0.1] * 31
    assert not robust.training

    def worst_case_accuracy(m, eps):
        return accuracy(m, linear_worst_case(m[1].weight, m[1].bias, x[1000:], y[1000:], eps), y[1000:])

    assert worst_case_accuracy(robust, 0.1) > worst_case_accuracy(standard, 0.1) + 0.2
    again = linear(0)
    adversarial_training(again, loader(), eps=0.1, alpha=0.04, steps=5, epochs=4, ramp_epochs=1, lr=1e-2, seed=0,
                         progress=False)
    assert all(torch.equal(a, b) for a, b in zip(robust.parameters(), again.parameters(), strict=True))


@pytest.mark.usefixtures("one_thread")
def test_fast_adversarial_training_takes_one_step(digits, monkeypatch):
    import course_lib.defenses.training as T

    x, y = digits
    seen = []
    real = T.pgd

    def spy(*args, **kw):
        seen.append((args[5], kw["keep_best"], kw["random_start"]))
        return real(*args, **kw)

    monkeypatch.setattr(T, "pgd", spy)
    adversarial_training(linear(0), make_loader(x[:200], y[:200], batch_size=100), eps=0.1, alpha=0.125, steps=7,
                         epochs=1, fast=True, progress=False)
    assert seen == [(1, False, True)] * 2
    with pytest.raises(ValueError, match="eps"):
        adversarial_training(linear(0), make_loader(x[:100], y[:100]), eps=-1, alpha=0.1, steps=1, epochs=1)


@pytest.mark.usefixtures("one_thread")
def test_augmentation_comes_before_the_attack(digits, monkeypatch):
    import course_lib.defenses.training as T

    x, y = digits
    started_from = []
    real = T.pgd

    def spy(model, xb, *args, **kw):
        started_from.append(xb.clone())
        return real(model, xb, *args, **kw)

    monkeypatch.setattr(T, "pgd", spy)
    flipped = []

    def flip(model, xb, yb):
        flipped.append(xb.clone())
        return xb.flip(-1)

    adversarial_training(linear(0), make_loader(x[:200], y[:200], batch_size=100, shuffle=False), eps=0.1,
                         alpha=0.05, steps=2, epochs=1, augment=flip, progress=False)
    assert len(flipped) == 2 and all(torch.equal(s, f.flip(-1)) for s, f in zip(started_from, flipped, strict=True))
    with pytest.raises(TypeError, match="augment"):
        adversarial_training(linear(0), make_loader(x[:100], y[:100]), eps=0.1, alpha=0.1, steps=1, epochs=1,
                             augment="shift")
