"""Checks for lesson 07 (adversarial examples: threat models, FGSM, PGD, robustness curves, transfer)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._common import _check_input_gradient_hygiene, _fresh_model, _ok, _require

__all__ = ["check_fgsm_step", "check_breaking_eps", "QUESTIONS"]


def _digits(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` held-out digits (a held-out part of the official MNIST training set), all classes mixed."""
    from ..data import load_mnist

    x, y = load_mnist("test")
    return x[:n].clone(), y[:n].clone()


def _ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


def _call_attack(fn, model, x, y, eps, targeted):
    xb, yb = x.clone(), y.clone()
    out = fn(model, x, y, eps, targeted=targeted)
    _require(isinstance(out, torch.Tensor), f"return a torch.Tensor (the adversarial images), got {type(out).__name__}")
    _require(tuple(out.shape) == tuple(x.shape),
             f"return adversarial images of the input's shape {tuple(x.shape)}, got {tuple(out.shape)}")
    _require(torch.equal(x, xb) and torch.equal(y, yb),
             "your function changed x (or y) in place: differentiate with respect to a copy, "
             "xg = x.detach().clone().requires_grad_(True), and return a new tensor")
    _check_input_gradient_hygiene(model, x, out, "loss")
    return out.detach()


def _diagnose_moves(out, x, eps, reference, targeted):
    """Why ``out`` is not FGSM although it is inside the ball and in [0, 1]: the messages name the usual slips."""
    delta = out - x
    # pixels whose move the clip to [0, 1] cannot shorten: x + eps and x - eps both lie inside [0, 1]
    free = (x >= eps) & (x <= 1 - eps)
    moved = delta[free].abs()
    if moved.numel() and float((moved - eps).abs().le(1e-5).double().mean()) < 0.5:
        raise AssertionError(
            f"most pixels moved by less than eps = {eps} (median |delta| {float(moved.median()):.2g}): FGSM "
            "moves every pixel by exactly eps in the direction of the *sign* of the gradient, "
            "x + eps * grad.sign(). The sign is what makes the step the largest first-order increase of the loss "
            "inside the L-infinity ball; the raw gradient, scaled by eps, barely moves most pixels")
    what = "targeted " if targeted else ""
    agree = float((out - reference).abs().le(1e-5).double().mean())
    raise AssertionError(
        f"your {what}step agrees with course_lib's FGSM on only {agree:.1%} "
        "of the pixels: take the sign of the gradient of the cross-entropy of the logits, "
        "F.cross_entropy(model(xg), y), with respect to the input, and clip the result to [0, 1]")


def check_fgsm_step(fn) -> None:
    """Lesson 07: ``fn(model, x, y, eps, targeted=False)`` must be the Fast Gradient Sign Method::

        untargeted:  x' = clip_[0,1]( x + eps * sign( grad_x L(f(x), y) ) )
        targeted:    x' = clip_[0,1]( x - eps * sign( grad_x L(f(x), t) ) )       (y = the targets t)

    Tested on 40 held-out digits and ``mnist_cnn_aug`` (the model of lesson 07) at ``eps = 0.1``: the result must
    stay in the eps-ball and in ``[0, 1]``, raise the loss of the true label (untargeted) or lower the loss of the
    target (targeted) on most digits, and agree with :func:`course_lib.attacks.fgsm` pixel by pixel.
    Rejects: no clip to ``[0, 1]``; a step against the gradient (``x - eps * sign``, i.e. gradient *descent*);
    the gradient instead of its sign (leaves the ball, or barely moves); the targeted step with the wrong sign
    (or ``targeted`` ignored); changing ``x`` in place; leaving the model in training mode or gradients in its
    weights; a result still attached to the graph.
    """
    from ..attacks import fgsm

    x, y = _digits()
    model = _fresh_model("mnist_cnn_aug")
    eps = 0.1

    for targeted in (False, True):
        labels = (y + 1) % 10 if targeted else y  # the target: the next digit
        out = _call_attack(fn, model, x, labels, eps, targeted)
        linf = float((out - x).abs().max())
        _require(linf <= eps + 1e-5,
                 f"a pixel moved by {linf:.3g} > eps = {eps}: the result left the eps-ball. FGSM moves each pixel by "
                 "eps times the *sign* of the gradient (each entry -1, 0 or +1): x + eps * grad.sign(). Neither the "
                 "gradient itself (its entries can exceed 1) nor a step without eps stays in the ball")
        lo, hi = float(out.min()), float(out.max())
        _require(lo >= 0.0 and hi <= 1.0,
                 f"values in [{lo:.3g}, {hi:.3g}] left [0, 1]: clip the result with .clamp(0, 1). On MNIST most "
                 "pixels are exactly 0, so half of the signs push them to -eps, which is not an image")
        reference = fgsm(model, x, labels, eps, targeted=targeted)
        # the same step with the other sign: gradient descent (untargeted) or a push away from the target (targeted)
        flipped = (2 * x - reference).clamp(0.0, 1.0)
        free = (x >= eps) & (x <= 1 - eps)  # pixels whose step no clip can shorten, so the flip is exact there
        if bool(free.any()) and float((out - flipped)[free].abs().le(1e-5).double().mean()) > 0.9:
            _require(not targeted,
                     "your targeted step has the wrong sign: a targeted attack pulls the image towards the target "
                     "t, so it steps *down* the loss L(f(x), t): x - eps * sign(grad). With a '+' you push the "
                     "image away from t (an untargeted attack against the target label)")
            raise AssertionError("you stepped against the gradient (x - eps * sign(grad)): that is gradient descent "
                                 "and makes the model *more* sure of the true class. An untargeted attack climbs "
                                 "the loss: x + eps * sign(grad L(f(x), y))")
        before, after = _ce(model, x, labels), _ce(model, out, labels)
        if targeted:
            down = float((after < before).double().mean())
            _require(down > 0.5,
                     f"the loss to the target went *up* on {1 - down:.0%} of the digits: a targeted attack pulls the "
                     "image towards the target t, so it steps *down* the loss L(f(x), t): x - eps * sign(grad)")
        else:
            up = float((after > before).double().mean())
            _require(up > 0.5,
                     f"the loss went *down* on {1 - up:.0%} of the digits: an untargeted attack must climb the loss "
                     "of the true label, x + eps * sign(grad L(f(x), y))")
        agree = float((out - reference).abs().le(1e-5).double().mean())
        if agree < 0.995:
            _diagnose_moves(out, x, eps, reference, targeted)
        with torch.no_grad():
            pred = model(out).argmax(1)
        if targeted:
            hits = float((pred == labels).double().mean())
        else:
            fooled = float((pred != labels).double().mean())
    _ok(f"FGSM, untargeted and targeted: inside the eps-ball, in [0, 1], equal to course_lib's fgsm. At eps = {eps} "
        f"on these 40 digits it fools mnist_cnn_aug on {fooled:.0%} of them, but reaches the target on only "
        f"{hits:.0%}.")


# --------------------------------------------------------------------------- reading a robustness curve
def _accuracy_at(model, x, y, attack, eps, kw) -> float:
    from ..attacks import attack_sweep

    return float(attack_sweep(model, x, y, attack, [eps], progress=False, **kw)["accuracy"][0])


def check_breaking_eps(answer, model, x, y, eps_values, threshold: float = 0.1, **attack_kw) -> None:
    """Lesson 07: ``answer`` must be the smallest ``eps`` in ``eps_values`` at which the accuracy of ``model``
    under PGD (``course_lib.attacks.attack_sweep(model, x, y, "pgd", ..., **attack_kw)``) falls below
    ``threshold``.

    The check recomputes the sweep itself, from the smallest eps up to the answer. Rejects: an eps on the 0-255
    scale, a number that is not one of the swept eps (e.g. an accuracy), an eps where the accuracy is still at or
    above the threshold (one step too early), and a larger eps than necessary, e.g. the one read off the FGSM
    curve, which falls later.
    """
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = float(answer)
    _require(isinstance(answer, (int, float)) and not isinstance(answer, bool) and math.isfinite(answer),
             f"give eps as a number, got {answer!r}")
    grid = sorted(float(e) for e in eps_values)
    if answer > 1:
        near = [e for e in grid if abs(answer / 255 - e) < 1e-6]
        raise AssertionError(f"eps = {answer} is not in [0, 1]: in this course eps is measured in pixel units, "
                             "pixels run from 0 to 1" + (f" (you mean {near[0]:g} = {answer:g}/255)" if near else ""))
    match = [e for e in grid if abs(e - answer) < 1e-6]
    _require(bool(match), f"{answer} is not one of the eps values of the sweep {grid}: give the eps (x-axis) at which "
             "the PGD accuracy first falls below the threshold, not an accuracy (y-axis)")
    answer = match[0]

    for e in grid:
        if e > answer:
            break
        acc = _accuracy_at(model, x, y, "pgd", e, attack_kw)
        if e < answer and acc < threshold:
            fgsm_acc = _accuracy_at(model, x, y, "fgsm", answer, {})
            fgsm_hint = (" (it is where the FGSM curve falls below: PGD, the stronger attack, gets there earlier)"
                         if fgsm_acc < threshold else "")
            raise AssertionError(f"PGD accuracy is already {acc:.1%} < {threshold:.0%} at eps = {e:g}, before your "
                                 f"{answer:g}: give the *smallest* such eps{fgsm_hint}")
        if e == answer:
            _require(acc < threshold,
                     f"at eps = {answer:g} the PGD accuracy is {acc:.1%}, not yet below {threshold:.0%}: the curve "
                     "crosses the threshold at a larger eps")
    _ok(f"PGD accuracy first falls below {threshold:.0%} at eps = {answer:g} ({acc:.1%} there), "
        f"i.e. {answer * 255:.0f}/255 of the pixel range.")


#: Multiple-choice questions of lesson 07: key -> (options, correct option, explanation shown on success).
QUESTIONS = {
    "07_api_labels": (
        ("white box", "grey box", "black box"), "black box",
        "The attacker sees neither weights nor gradients nor scores, only the label the service returns for each "
        "query: a black box, and the hardest one (decision-based). Attacks for it, such as the Boundary attack, "
        "need many queries (lesson 09)."),
    "07_surrogate": (
        ("white box", "grey box", "black box"), "grey box",
        "The attacker knows the task, the training data and the architecture but not the deployed weights: they "
        "train a surrogate, attack it in white box and rely on transfer. Partial knowledge, so grey box."),
    "07_targeted": (
        ("untargeted", "targeted"), "targeted",
        "Any wrong label is not enough: the attacker needs one particular class (the sign read as a speed limit), "
        "so they minimise the loss of that target class. Targeted attacks are harder: they need larger budgets "
        "or more steps than untargeted ones."),
}
