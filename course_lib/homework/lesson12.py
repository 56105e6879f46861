"""Checks for lesson 12 (adversarial training and defensive distillation). The lesson itself comes with the
defenses unit (issue 11); the checks that do not need its shipped models are here already."""
from __future__ import annotations

import torch

from ._common import _ok, _require

__all__ = ["check_distillation_loss"]


def _grad_wrt_student(fn, s: torch.Tensor, t: torch.Tensor, temperature: float) -> torch.Tensor:
    sg = s.detach().clone().requires_grad_(True)
    out = fn(sg, t.clone(), temperature)
    _require(isinstance(out, torch.Tensor) and out.dim() == 0,
             f"return one number (a 0-dim tensor: the mean over the batch), got "
             f"{getattr(out, 'shape', type(out).__name__)}")
    _require(out.requires_grad, "the loss must depend on the student's logits through autograd (do not detach "
             "them, do not convert to numbers)")
    (g,) = torch.autograd.grad(out, sg, allow_unused=True)
    return torch.zeros_like(sg) if g is None else g


def check_distillation_loss(fn) -> None:
    """Lesson 12: ``fn(student_logits, teacher_logits, T)`` must be the distillation loss of Hinton et al. (2015)
    that defensive distillation trains on (Papernot et al., 2016)::

        L = T^2 * mean_i  sum_k  -softmax(t_i / T)_k * log softmax(s_i / T)_k

    The check compares the *gradient* with respect to the student's logits with the definition's (so the
    cross-entropy and the KL divergence, which differ by a constant, both pass) at T = 1, 4 and 100, and names the
    usual slips: the missing T^2 factor (gradients T^2 times too small), softening only the teacher or only the
    student, the teacher's hard labels instead of its soft ones, the sum over the batch instead of the mean, and
    a loss that lets gradients flow into the teacher's logits.
    """
    from ..defenses import distillation_loss

    g = torch.Generator().manual_seed(0)
    s = 3 * torch.randn(6, 10, generator=g, dtype=torch.float64)
    t = 3 * torch.randn(6, 10, generator=g, dtype=torch.float64)
    for temperature in (1.0, 4.0, 100.0):
        s_scaled = s * (temperature if temperature > 1 else 1)   # logits of the size training at T produces
        t_scaled = t * (temperature if temperature > 1 else 1)
        want = _grad_wrt_student(distillation_loss, s_scaled, t_scaled, temperature)
        got = _grad_wrt_student(fn, s_scaled, t_scaled, temperature)
        tg = t_scaled.detach().clone().requires_grad_(True)
        out = fn(s_scaled.detach(), tg, temperature)
        g_teacher = (torch.autograd.grad(out, tg, allow_unused=True)[0]
                     if isinstance(out, torch.Tensor) and out.requires_grad else None)
        _require(g_teacher is None or not bool(g_teacher.abs().gt(0).any()),
                 "the loss carries gradients into the teacher's logits: the soft labels are fixed targets, take "
                 "softmax(teacher_logits / T) of detached logits (.detach() or torch.no_grad())")
        if torch.allclose(got, want, rtol=1e-5, atol=1e-9):
            continue
        variants = {
            "your loss lacks the factor T^2: the softened softmax's gradient is T^2 times smaller than at T = 1 "
            "(a 1/T from the softmax of s/T and a 1/T from how far soft targets are from each other), so without "
            "it the distillation term all but vanishes at T = 100":
                want / temperature ** 2,
            "you softened only the teacher: the student's logits must also be divided by T, "
            "log_softmax(student_logits / T)": _grad_wrt_student(
                lambda a, b, T: T ** 2 * -(torch.softmax(b / T, 1) * torch.log_softmax(a, 1)).sum(1).mean(),
                s_scaled, t_scaled, temperature),
            "you softened only the student: the teacher's soft labels are softmax(teacher_logits / T)":
                _grad_wrt_student(
                    lambda a, b, T: T ** 2 * -(torch.softmax(b, 1) * torch.log_softmax(a / T, 1)).sum(1).mean(),
                    s_scaled, t_scaled, temperature),
            "you used the teacher's hard labels (its arg-max): distillation learns from the whole softened "
            "distribution, the relative sizes of the wrong classes included": _grad_wrt_student(
                lambda a, b, T: T ** 2 * torch.nn.functional.cross_entropy(a / T, b.argmax(1)),
                s_scaled, t_scaled, temperature),
            "you summed over the batch: take the mean over the images, so that the loss (and the learning rate "
            "that suits it) does not depend on the batch size": want * s.shape[0],
        }
        for msg, value in variants.items():
            if torch.allclose(got, value, rtol=1e-5, atol=1e-9):
                raise AssertionError(msg)
        gap = float((got - want).abs().max())
        raise AssertionError(f"at T = {temperature:g} the gradient of your loss differs from the definition's by up "
                             f"to {gap:.3g}: L = T^2 * mean_i sum_k -softmax(t_i/T)_k log softmax(s_i/T)_k")
    _ok("the distillation loss: both sides softened by T, the factor T^2, the mean over the batch, the teacher's "
        "soft labels as fixed targets.")
