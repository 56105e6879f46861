"""Checks for lesson 07 (adversarial examples: threat models, FGSM, PGD, robustness curves, transfer)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._common import _check_input_gradient_hygiene, _fresh_model, _ok, _require

__all__ = ["check_fgsm_step", "check_pgd_step", "check_breaking_eps", "QUESTIONS"]


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


# --------------------------------------------------------------------------- one PGD step
def _pgd_starts(x: torch.Tensor, eps: float) -> list[tuple[str, torch.Tensor]]:
    """Two starting iterates that are not ``x``, so that the projection has work to do: a point drawn uniformly
    from ``B_inf(x, eps) ∩ [0, 1]`` and a point on the boundary of the ball (every pixel at ``x ± eps``, clipped)."""
    from ..attacks import project_linf

    g = torch.Generator().manual_seed(7)
    inside = project_linf(x + eps * (2 * torch.rand(x.shape, generator=g) - 1), x, eps)
    signs = torch.randint(0, 2, x.shape, generator=g).to(x.dtype) * 2 - 1
    edge = project_linf(x + eps * signs, x, eps)
    return [("a random point inside the ball", inside), ("a point on the boundary of the ball", edge)]


def _input_grad(model: nn.Module, x_at: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    xg = x_at.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y, reduction=reduction), xg)
    return g


_NOT_PROJECTED = (
    "the step left the eps-ball (pixels up to eps + alpha away from x): the projection must come *after* the "
    "step. Projecting x_adv first and then stepping changes nothing, since x_adv is already in the ball; PGD "
    "steps, stepped = x_adv + alpha * sign(grad), and then projects: clip_[0,1](x + clip_[-eps,eps](stepped - x))")


def _pgd_step_slips(model, x, x_adv, y, eps, alpha) -> list[tuple[torch.Tensor, str]]:
    """The plausible wrong PGD steps, each computed, with the message that explains it."""
    from ..attacks import project_l2, project_linf

    g = _input_grad(model, x_adv, y)
    g_sum = _input_grad(model, x_adv, y, "sum")
    g_at_x = _input_grad(model, x, y)
    stepped = x_adv + alpha * g.sign()
    delta = stepped - x
    box = torch.clamp(stepped, x - eps, x + eps)  # the ball only
    linf = delta.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return [
        (box, "values left [0, 1]: after clamping delta to [-eps, eps], clip the image to [0, 1] as well, "
              "(x + delta).clamp(0, 1). PGD projects onto the ball *intersected with* the pixel range: near a pixel "
              "at 0 (most of an MNIST digit) x - eps is negative, which is not an image"),
        (project_linf(x_adv, x, eps) + alpha * g.sign(), _NOT_PROJECTED),
        ((project_linf(x_adv, x, eps) + alpha * g.sign()).clamp(0.0, 1.0), _NOT_PROJECTED),
        (project_l2(stepped, x, eps),
         "you rescaled delta to L2 norm eps (the L2 projection, delta * min(1, eps / ||delta||_2)): that shrinks "
         "every pixel by the same factor and far below eps. The L-infinity ball is a box, so its projection clamps "
         "each pixel on its own: delta.clamp(-eps, eps)"),
        ((x + delta * (eps / linf).clamp(max=1.0)).clamp(0.0, 1.0),
         "you rescaled the whole delta so that its largest pixel is eps: that shrinks every other pixel too. The "
         "L-infinity projection clamps each pixel on its own, delta.clamp(-eps, eps), and leaves the pixels "
         "already inside the ball where they are"),
        (project_linf(x_adv + alpha * g, x, eps),
         "you stepped along the gradient itself, not its sign: its entries are tiny (about 1e-3), so most pixels "
         "barely move. The L-infinity steepest-ascent step is alpha * grad.sign(): every pixel by exactly alpha"),
        (project_linf(x_adv + alpha * g_sum, x, eps),
         "you stepped along the gradient itself, not its sign: its entries have all sizes, so some pixels barely "
         "move. The L-infinity steepest-ascent step is alpha * grad.sign(): every pixel by exactly alpha"),
        (project_linf(x_adv - alpha * g.sign(), x, eps),
         "you stepped *down* the loss (x_adv - alpha * sign(grad)): that is gradient descent and makes the model "
         "more sure of the true class. An untargeted attack climbs: x_adv + alpha * sign(grad L(f(x_adv), y))"),
        (project_linf(x_adv + alpha * g_at_x.sign(), x, eps),
         "you took the gradient at the clean image x, not at the current iterate x_adv: then every step goes the "
         "same way and PGD is only FGSM spread over several steps. Differentiate L(f(x_adv), y) with respect to "
         "x_adv: PGD re-linearises the loss at every iterate"),
    ]


def check_pgd_step(fn) -> None:
    """Lesson 07: ``fn(model, x, x_adv, y, eps, alpha)`` must return the next iterate of untargeted L-inf PGD::

        x^{t+1} = clip_[0,1]( x + clip_[-eps,eps]( x^t + alpha * sign(grad_{x^t} L(f(x^t), y)) - x ) )

    with ``x^t`` = ``x_adv`` and ``L`` the cross-entropy of the logits. The reference is course_lib's own
    :func:`course_lib.attacks.pgd_step` (which projects with :func:`~course_lib.attacks.project_linf`), with the
    gradient taken at ``x_adv``. Tested on 16 held-out digits and ``mnist_cnn_aug`` at ``eps = 0.1``,
    ``alpha = 0.05``, from two starts that are not ``x`` (a random point inside the ball, a point on its boundary),
    so that the projection clamps many pixels. Rejects, each with its own message: no clip to ``[0, 1]``; projecting
    before stepping; no projection; the L2 projection (rescaling delta) instead of the per-pixel clamp; the gradient
    instead of its sign; a step down the loss; the gradient at ``x`` instead of at ``x_adv``; changing the inputs
    in place; leaving the model in training mode or gradients in its weights; a result attached to the graph.
    """
    from ..attacks import pgd_step

    x, y = _digits(16)
    eps, alpha = 0.1, 0.05
    reference_model = _fresh_model("mnist_cnn_aug")
    clamped = []
    for where, start in _pgd_starts(x, eps):
        reference = pgd_step(start, _input_grad(reference_model, start, y), x, eps, alpha)
        slips = _pgd_step_slips(reference_model, x, start, y, eps, alpha)
        # how often the projection is active: the plain step would leave the ball or [0, 1]
        clamped.append(float((reference != start + alpha * _input_grad(reference_model, start, y).sign())
                             .double().mean()))

        model = _fresh_model("mnist_cnn_aug")
        xb, sb, yb = x.clone(), start.clone(), y.clone()
        out = fn(model, x, start, y, eps, alpha)
        _require(isinstance(out, torch.Tensor), f"return a torch.Tensor (the next iterate), got {type(out).__name__}")
        _require(tuple(out.shape) == tuple(x.shape),
                 f"return the next iterate with the images' shape {tuple(x.shape)}, got {tuple(out.shape)}")
        _require(torch.equal(x, xb) and torch.equal(start, sb) and torch.equal(y, yb),
                 "your function changed x, x_adv (or y) in place (e.g. x_adv += ... or .clamp_()): pgd calls the step "
                 "again and again with the same x, so work on copies and return a new tensor")
        _check_input_gradient_hygiene(model, start, out, "loss")
        _check_input_gradient_hygiene(model, x, out, "loss")
        out = out.detach()
        if float((out - reference).abs().le(1e-5).double().mean()) >= 0.995:
            continue
        for wrong, message in slips:
            if float((out - wrong).abs().le(1e-5).double().mean()) >= 0.995:
                raise AssertionError(f"from {where}: {message}")
        lo, hi = float(out.min()), float(out.max())
        _require(lo >= -1e-6 and hi <= 1 + 1e-6,
                 f"from {where}: values in [{lo:.3g}, {hi:.3g}] left [0, 1]: clip the result to the pixel range")
        linf = float((out - x).abs().max())
        _require(linf <= eps + 1e-5,
                 f"from {where}: a pixel is {linf:.3g} away from x, more than eps = {eps}: the result left the "
                 "ball. Project after the step: x + (stepped - x).clamp(-eps, eps)")
        agree = float((out - reference).abs().le(1e-5).double().mean())
        raise AssertionError(
            f"from {where}: your step agrees with course_lib's pgd_step on only {agree:.1%} of the pixels. Take "
            "the sign of the gradient of F.cross_entropy(model(xg), y) with respect to a copy xg of x_adv, step "
            "x_adv + alpha * sign, then clamp the step's delta from x to [-eps, eps] and the image to [0, 1]")
    _ok(f"one step of L-inf PGD, from a random point inside the ball and from a point on its boundary: equal to "
        f"course_lib's pgd_step. With eps = {eps} and alpha = {alpha} the projection clamped "
        f"{clamped[0]:.0%} and {clamped[1]:.0%} of the pixels of the plain step.")


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
