"""Defenses by training, through the course's one training loop (:func:`course_lib.training.train`).

* :func:`adversarial_training` (Madry et al., ICLR 2018): ``min_theta E[ max_{||delta|| <= eps} L(f(x + delta), y) ]``,
  the inner maximisation by PGD (the last iterate, as in the paper), eps ramped up over the first epochs;
  ``fast=True`` is "fast is better than free" (Wong, Rice & Kolter, ICLR 2020): one FGSM step from a random start.
* :func:`distillation_loss` and :func:`distill` (Papernot et al., IEEE S&P 2016): a student trained on the
  teacher's soft labels at temperature T and deployed at T = 1.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .._rng import generator
from .._validate import check_count, check_in
from ..attacks._common import check_eps
from ..attacks.pgd import pgd
from ..training import train

__all__ = ["adversarial_training", "distillation_loss", "distill"]


def adversarial_training(model: nn.Module, loader, eps: float, alpha: float, steps: int, epochs: int,
                         norm: str = "linf", ramp_epochs: float = 0.0, fast: bool = False, lr: float = 1e-3,
                         seed=0, progress: bool = True, history: dict | None = None, augment=None,
                         **train_kw) -> nn.Module:
    """Madry et al.'s adversarial training: every batch is replaced by PGD adversarial examples of the current
    model before the step::

        x' = PGD_{eps_t}(model, x, y)    (random start, ``steps`` steps of size ``alpha_t``, the LAST iterate)
        theta <- theta - lr * grad_theta  mean_i L(f(x'_i), y_i)

    The inner attack returns its last iterate, not the best-so-far one that an evaluation keeps: training needs
    the point the maximisation reached, including on images it did not fool. ``eps_t`` grows linearly from 0 to
    ``eps`` over the first ``ramp_epochs`` epochs (``alpha_t = alpha * eps_t / eps``): large budgets from the first
    step can stall training on MNIST at eps 0.3. ``fast=True``: one step of size ``alpha`` from a random start
    (Wong, Rice & Kolter, 2020, who use ``alpha = 1.25 eps``); with large ``alpha`` it can overfit
    catastrophically (robustness to PGD collapses within an epoch while FGSM accuracy rises).

    Args:
        model: trained in place (and returned), in eval mode at the end; its parameters must require grad.
        loader: batches ``(x, y)``, images in [0, 1].
        eps, alpha, steps: the inner PGD (``steps`` is ignored when ``fast=True``); norm ``"linf"`` or ``"l2"``.
        epochs, lr, **train_kw: passed to :func:`course_lib.training.train` (one-cycle AdamW by default;
            ``val_data=(x, y)`` records clean accuracy per epoch). In short runs the default one-cycle schedule can
            cost robust accuracy, and ``scheduler=None`` gives a constant lr (benchmarks/defenses.py, part 2, seed
            0: after 10 epochs on 2,000 MNIST digits at lr 3e-3, PGD-40 accuracy at eps 0.3 was 0.752 with the
            schedule and 0.844 without).
        seed: the random starts (int, ``torch.Generator`` or ``None``, see :mod:`course_lib._rng`).
        augment: optional ``augment(model, x, y) -> x`` (e.g. random shifts) applied to each batch before the
            attack, which then starts from the augmented images.
        history: a dict to fill with the training history (``loss``, ``val_acc``, ``seconds``) and ``eps``, the
            budget used at each step.
    Returns:
        ``model``.
    """
    eps = check_eps(eps)
    alpha = check_eps(alpha)
    steps = check_count(steps, "steps", minimum=1)
    check_in(norm, {"linf", "l2"}, "norm")
    if not isinstance(ramp_epochs, (int, float)) or isinstance(ramp_epochs, bool) or ramp_epochs < 0:
        raise ValueError(f"ramp_epochs must be a number >= 0, got {ramp_epochs!r}")
    gen = generator(seed)
    ramp_steps = ramp_epochs * len(loader)
    used: list[float] = []

    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be callable augment(model, x, y) -> x, got {type(augment).__name__}")

    def inner(m, x, y):
        if augment is not None:
            x = augment(m, x, y)
        t = len(used)
        eps_t = eps if ramp_steps == 0 else eps * min(1.0, (t + 1) / ramp_steps)
        used.append(eps_t)
        if eps_t == 0:
            return x
        a = alpha * eps_t / eps
        return pgd(m, x, y, eps_t, a, 1 if fast else steps, norm=norm, random_start=True, seed=gen,
                   keep_best=False)

    hist = train(model, loader, epochs, lr=lr, transform=inner, progress=progress, **train_kw)
    if history is not None:
        history.update(hist)
        history["eps"] = used
    return model


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The cross-entropy of the student's softened prediction against the teacher's soft labels, times T^2::

        L = T^2 * mean_i  sum_k  -softmax(t_i / T)_k * log softmax(s_i / T)_k

    (Hinton et al., 2015: the T^2 keeps the gradient's size independent of T; Papernot et al. train on this
    loss, without the factor, which only rescales the learning rate.) Both sides are softened by T."""
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not temperature > 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(f"student and teacher logits must both be (B, K), got {tuple(student_logits.shape)} and "
                         f"{tuple(teacher_logits.shape)}")
    soft = F.softmax(teacher_logits.detach() / temperature, dim=1)
    return temperature ** 2 * -(soft * F.log_softmax(student_logits / temperature, dim=1)).sum(1).mean()


def _fresh_copy(model: nn.Module) -> nn.Module:
    """The teacher's architecture with new random parameters (every submodule's ``reset_parameters``)."""
    student = copy.deepcopy(model)
    for m in student.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    for p in student.parameters():
        p.requires_grad_(True)
    return student


def distill(teacher: nn.Module, loader, temperature: float, epochs: int, student: nn.Module | None = None,
            lr: float = 1e-3, seed: int = 0, progress: bool = True, history: dict | None = None,
            **train_kw) -> nn.Module:
    """Defensive distillation (Papernot, McDaniel, Wu, Jha & Swami, IEEE S&P 2016): train ``student`` on the soft
    labels ``softmax(teacher(x) / T)`` with its own logits divided by ``T`` (:func:`distillation_loss`), and deploy
    it at ``T = 1``.

    The student learns ``s ~ t + const``: the teacher's logit scale. The masking of the paper therefore needs a
    teacher that was itself trained at temperature ``T`` (``train(teacher, loader, epochs, loss_fn=lambda z, y, x:
    F.cross_entropy(z / T, y))``), whose logits are about ``T`` times larger than a normal network's: deployed at
    ``T = 1`` the student's softmax saturates and the gradients of the cross-entropy vanish (masking, not
    robustness: C&W on the logits breaks it, Carlini & Wagner, 2016). With a teacher trained at ``T = 1`` the
    student masks nothing (benchmarks/defenses.py, part 3); ``scripts/train_models.py`` trains ``mnist_distilled``
    the paper's way.

    Args:
        teacher: a trained classifier in eval mode; it is not changed.
        loader: batches ``(x, y)`` (the labels are not used: the soft labels replace them).
        temperature: ``T > 0`` (Papernot et al. use 100 on MNIST).
        student: the model to train in place; ``None`` (default) = the teacher's architecture with fresh
            parameters (seeded with ``seed``).
        epochs, lr, **train_kw: passed to :func:`course_lib.training.train`.
        history: a dict to fill with the training history.
    Returns:
        the trained student, in eval mode.
    """
    if not isinstance(teacher, nn.Module):
        raise TypeError(f"teacher must be an nn.Module, got {type(teacher).__name__}")
    if teacher.training:
        raise ValueError("teacher is in training mode: call teacher.eval() first (its soft labels must not depend "
                         "on the batch)")
    if student is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            student = _fresh_copy(teacher)
    if student is teacher:
        raise ValueError("student must be a different model from the teacher")

    def loss_fn(logits, y, x):
        with torch.no_grad():
            t = teacher(x)
        return distillation_loss(logits, t, temperature)

    hist = train(student, loader, epochs, lr=lr, loss_fn=loss_fn, progress=progress, **train_kw)
    if history is not None:
        history.update(hist)
    return student
