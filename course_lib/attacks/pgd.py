"""Projected Gradient Descent (Madry et al., ICLR 2018): many small FGSM-like steps, each followed by a
projection back onto the eps-ball around x and onto the valid pixel range [0, 1]."""
from __future__ import annotations

import torch
from torch import nn

from .._validate import check_in
from ._common import (
    check_count,
    check_eps,
    check_loss,
    check_positive,
    expand,
    generator,
    input_gradient,
    is_success,
    objective,
    per_image_norm,
    prepare,
)

__all__ = ["pgd"]


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
        norm: str = "linf", random_start: bool = True, targeted: bool = False, seed=None,
        restarts: int = 1, keep_best: bool = True, loss: str = "ce") -> torch.Tensor:
    """Projected Gradient Descent (Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models
    Resistant to Adversarial Attacks", ICLR 2018). ``J`` is the loss to climb: ``L(f(x), y)`` untargeted,
    ``-L(f(x), t)`` targeted::

        linf:  x^{k+1} = Proj_{B_inf(x, eps) ∩ [0,1]} ( x^k + alpha * sign(grad J(x^k)) )
        l2:    x^{k+1} = clip_[0,1]( x + delta * min(1, eps / ||delta||_2) ),
               delta   = x^k + alpha * grad J / ||grad J||_2 - x

    Both balls are boxes in L-infinity, so the projection is one exact clamp to ``[max(x-eps, 0), min(x+eps, 1)]``.
    In L2 the clip to ``[0, 1]`` after the ball projection only moves pixels towards ``x``, so ``x^k`` stays
    in the ball. The random start is uniform in the ball: in L-infinity each pixel uniform in ``[-eps, eps]``;
    in L2 a Gaussian direction normalised to length ``eps * u^(1/d)``, ``u ~ U(0, 1)``, ``d = C*H*W``.

    Which iterate is returned: Madry et al. return the last one, ``x^steps``. With ``keep_best=True`` (default)
    an image that was fooled at some step stays fooled: per image, the last adversarial iterate among
    ``x^0 .. x^(steps-1)`` (the logits of each step's forward pass tell, at no extra cost), else ``x^steps``.
    The success set is exactly that of "the last iterate, or any earlier one that fooled", without a forward
    pass beyond the ``steps`` of the budget; the attack only reports its best attempt. ``keep_best=False``
    gives the paper's last iterate. (With ``restarts > 1`` one more forward pass per restart scores ``x^steps``.)

    Args:
        model: classifier mapping ``[0, 1]`` images to logits, in eval mode, on ``x``'s device.
        x: images ``(B, C, H, W)``, float in ``[0, 1]``.
        y: LongTensor ``(B,)``: the true labels (untargeted) or the target labels (``targeted=True``).
        eps: the radius of the ball, finite ``>= 0`` (L-infinity: per pixel; L2: of the whole image).
        alpha: the step size, ``> 0`` (rule of thumb: ``2.5 * eps / steps``).
        steps: the number of gradient steps, an int ``>= 0``; each is one forward and one backward pass.
        norm: ``"linf"`` (default) or ``"l2"``.
        random_start: start at a uniformly random point of the ball (default ``True``) or at ``x``.
        targeted: ``False`` (default) pushes away from ``y``; ``True`` pulls towards ``y``.
        seed: int, ``torch.Generator`` or ``None``: the random start's private generator on ``x``'s device
            (same seed, same result; the global RNG is not touched).
        restarts: independent random starts (default 1). Later restarts only run on images not fooled yet;
            per image the result is the first successful restart, else the one with the highest loss ``J``.
        keep_best: keep an image's last adversarial iterate (default ``True``, see above).
        loss: ``"ce"`` (default) cross-entropy on the logits, or ``"margin"`` (the C&W logit margin).

    Returns:
        ``x'`` ``(B, C, H, W)``, detached, on ``x``'s device, inside the ``eps``-ball and ``[0, 1]``.
    """
    prepare(model, x, y, probe=steps == 0)  # with steps, the first step's forward pass checks the labels
    eps, alpha = check_eps(eps), check_positive(alpha, "alpha")
    check_count(steps, "steps")
    check_in(norm, {"linf", "l2"}, "norm")
    check_count(restarts, "restarts", minimum=1)
    check_loss(loss)
    x = x.detach()
    gen = generator(x.device, seed) if random_start else None
    run = dict(eps=eps, alpha=alpha, steps=steps, norm=norm, gen=gen, targeted=targeted, keep_best=keep_best,
               loss=loss, score=restarts > 1)

    result, success, score = _pgd_run(model, x, y, **run)
    for _ in range(restarts - 1):
        todo = (~success).nonzero().squeeze(1)
        if todo.numel() == 0:
            break
        adv, ok, s = _pgd_run(model, x[todo], y[todo], **run)
        better = ok | (s > score[todo])
        pick = todo[better]
        result[pick], success[pick], score[pick] = adv[better], ok[better], s[better]
    return result


def _pgd_run(model, x, y, eps, alpha, steps, norm, gen, targeted, keep_best, loss, score):
    """One PGD run over the batch: ``(x_adv, success (B,), J(x_adv) (B,))``.

    Success and ``J`` cost one extra forward pass (on ``x^steps``) and are computed only for restarts
    (``score=True``); otherwise they are ``None``.
    """
    if norm == "linf":
        lo, hi = (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0)  # the ball ∩ [0, 1], a box

    x_adv = x
    if gen is not None:
        if norm == "linf":
            noise = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
            x_adv = torch.clamp(x + eps * (2 * noise - 1), lo, hi)
        else:
            direction = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
            direction = direction / expand(per_image_norm(direction).clamp_min(1e-12), x)
            u = torch.rand(x.shape[0], generator=gen, device=x.device, dtype=x.dtype)
            radius = eps * u ** (1.0 / x[0].numel())  # uniform in volume: most of it is near the surface
            x_adv = (x + direction * expand(radius, x)).clamp(0.0, 1.0)

    kept, ever = x_adv, torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for i in range(steps):
        grad, logits = input_gradient(model, x_adv, y, targeted, loss, check=i == 0)
        if keep_best:  # the logits of this step's forward pass say whether x_adv (before the step) fools
            fooled = is_success(logits, y, targeted)
            kept = torch.where(expand(fooled, x), x_adv, kept)
            ever |= fooled
        if norm == "linf":
            x_adv = torch.clamp(x_adv + alpha * grad.sign(), lo, hi)
        else:
            x_adv = x_adv + alpha * grad / expand(per_image_norm(grad).clamp_min(1e-12), x)
            delta = x_adv - x
            shrink = (eps / per_image_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
            x_adv = (x + delta * expand(shrink, x)).clamp(0.0, 1.0)

    if keep_best:  # an image fooled on the way returns its last fooled iterate, the others x^steps
        x_adv = torch.where(expand(ever, x), kept, x_adv)
    if not score:
        return x_adv.detach().clone(), None, None
    with torch.no_grad():
        logits = model(x_adv)
    return x_adv.detach().clone(), is_success(logits, y, targeted), objective(logits, y, targeted, loss)
