"""Checks for lesson 12 (adversarial training and defensive distillation): the inner maximisation of one
training step, the distillation loss at temperature T, and reading the diagnostics."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._common import _check_input_gradient_hygiene, _fresh_model, _ok, _require

__all__ = ["check_distillation_loss", "check_inner_max"]


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


def check_inner_max(fn) -> None:
    """Lesson 12: ``fn(model, x, y, eps, alpha, steps)`` must be the inner maximisation of one step of Madry et al.'s
    adversarial training: L-inf PGD on the cross-entropy from a uniformly random start in the ball, ``steps``
    steps of size ``alpha``, returning the LAST iterate::

        x^0 = clip_[0,1](x + U[-eps, eps]^n),   x^{t+1} = clip_[0,1](x + clip_[-eps,eps](x^t + alpha sign(grad L) - x))

    Checked on 64 held-out digits and ``mnist_cnn_aug`` at eps 0.1: with ``steps = 0`` the result must be the
    random start (not ``x``, spread over the ball, other numbers at every call); with ``steps = 10`` and
    ``alpha = 0.025`` it must stay in the ball and in [0, 1] and reach a mean loss at least 90 % of course_lib's
    ``pgd(..., keep_best=False)`` (descending the loss, stepping with the raw gradient or forgetting the random
    start fall far short or are named); inputs, the model's mode and its parameters' gradients left alone."""
    from ..attacks import pgd
    from ..data import load_mnist

    xa, ya = load_mnist("test")
    x, y = xa[:64].clone(), ya[:64].clone()
    eps = 0.1
    model = _fresh_model("mnist_cnn_aug")

    def call(steps, alpha):
        xb, yb = x.clone(), y.clone()
        out = fn(model, x, y, eps, alpha, steps)
        _require(isinstance(out, torch.Tensor) and out.shape == x.shape,
                 f"return the adversarial batch, a tensor of the images' shape {tuple(x.shape)}, got "
                 f"{getattr(out, 'shape', type(out).__name__)}")
        _require(torch.equal(x, xb) and torch.equal(y, yb), "your function changed x or y in place: work on copies")
        _check_input_gradient_hygiene(model, x, out, "loss")
        out = out.detach()
        lo, hi = float(out.min()), float(out.max())
        _require(lo >= -1e-6 and hi <= 1 + 1e-6, f"values in [{lo:.3g}, {hi:.3g}] left [0, 1]: clip to the pixel range")
        far = float((out - x).abs().max())
        _require(far <= eps + 1e-5, f"a pixel moved {far:.3g} from x, more than eps = {eps}: project onto the ball "
                 "after every step (and after the random start)")
        return out

    start_a, start_b = call(0, 0.025), call(0, 0.025)
    _require(not torch.equal(start_a, x), "with steps = 0 your function returns x itself: adversarial training starts "
             "from a random point in the ball, x + uniform noise in [-eps, eps] (clipped to [0, 1]); without it the "
             "first step is FGSM's and the model can learn to mask that one direction")
    _require(not torch.equal(start_a, start_b), "two calls returned the same random start: draw new noise at every "
             "call (do not reseed inside the function)")
    inner = (x > eps) & (x < 1 - eps)          # pixels whose random start no clip can touch
    spread = float((start_a - x)[inner].abs().mean())
    _require(abs(spread / (eps / 2) - 1) < 0.2, f"the random start moves a pixel by {spread:.3g} on average where a "
             f"uniform draw from [-eps, eps] moves it by eps / 2 = {eps / 2:g}: draw uniformly in the whole ball "
             "(e.g. eps * (2 * torch.rand_like(x) - 1)), not only its corners or a small part of it")
    out = call(10, 0.025)
    ref = pgd(model, x, y, eps, 0.025, 10, random_start=True, keep_best=False, seed=0)
    with torch.no_grad():
        mine, want, base = (float(F.cross_entropy(model(v), y)) for v in (out, ref, x))
    _require(mine > base, f"your batch has a lower loss ({mine:.3f}) than the clean digits ({base:.3f}): you descended "
             "the loss; the attack steps along +sign(grad)")
    _require(mine >= 0.9 * want, f"your batch reaches a mean cross-entropy of {mine:.3f}, course_lib's PGD from a "
             f"random start {want:.3f}: step along the SIGN of the gradient at the current iterate (not at x), "
             "project after every step, and return the last iterate")
    _ok(f"the inner maximisation: random start, {10} signed steps, each projected; mean loss {mine:.2f} "
        f"(course_lib's PGD {want:.2f}, clean {base:.2f}). Training on these batches is Madry et al.'s min-max.")


#: Multiple-choice questions of lesson 12: key -> (options, correct option, explanation shown on success).
QUESTIONS = {
    "12_diagnostics": (
        ("a", "b", "c", "d"), "b",
        "A quiet checklist on mnist_pgd means none of the symptoms of masking appeared: its gradients are usable, "
        "so PGD's difficulty reflects the model, not a blinded attack. That is not a certificate (only verification "
        "is), and the ensemble still finds digits that PGD-40 misses. The distilled model shows the symptoms: zero "
        "gradients and an attack without gradients doing better, so its PGD number measures the attack's blindness."),
    "12_cost": (
        ("a", "b", "c", "d"), "d",
        "Adversarial training needs capacity (a small network cannot become robust), multiplies the training time "
        "by about the number of attack steps plus one, protects only against the perturbations it was trained on, "
        "and on harder data it costs clean accuracy too. It does not hide the "
        "gradient: mnist_pgd's gradients are large and meaningful (they look like digits), which is why its "
        "robustness can be measured with gradient attacks at all."),
}
