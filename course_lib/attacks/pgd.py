"""Projected Gradient Descent (Madry et al., ICLR 2018): many small FGSM-like steps, each followed by a
projection back onto the eps-ball around x and onto the valid pixel range [0, 1].

The algorithm is three short functions, the formula beside each: :func:`project_linf` and :func:`project_l2`
(the projections), :func:`pgd_step` (one step). :func:`pgd` adds the bookkeeping: the random start, keeping the
iterates that already fool the model, and restarts. :func:`loss_slice` draws the loss along straight lines through
an image (the landscape the attacks climb).
"""
from __future__ import annotations

import torch
from torch import nn

from .._rng import generator, normal, uniform
from .._validate import check_count, check_images, check_in, check_labels, check_model
from ._common import (
    check_eps,
    check_inputs,
    check_loss,
    check_positive,
    expand,
    is_success,
    loss_gradient,
    objective,
    per_image_norm,
)

__all__ = ["pgd", "pgd_step", "project_linf", "project_l2", "random_start_point", "loss_slice"]


def project_linf(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """The projection onto ``B_inf(x, eps) ∩ [0, 1]``, per pixel::

        Proj(x') = clip(x', max(x - eps, 0), min(x + eps, 1))

    Both sets are boxes, so their intersection is a box and the projection one exact clamp.
    """
    return torch.clamp(x_adv, (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0))


def project_l2(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """The projection onto ``B_2(x, eps)``, per image, followed by the clip to ``[0, 1]``::

        Proj(x') = clip_[0,1]( x + delta * min(1, eps / ||delta||_2) ),    delta = x' - x

    The clip after the ball only moves pixels towards ``x``, so the result stays in the ball. (It is not the exact
    projection onto ``B_2 ∩ [0, 1]``, which has no closed form; Madry et al.'s code does the same.)
    """
    delta = x_adv - x
    shrink = (eps / per_image_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
    return (x + delta * expand(shrink, x)).clamp(0.0, 1.0)


def pgd_step(x_adv: torch.Tensor, grad: torch.Tensor, x: torch.Tensor, eps: float, alpha: float,
             norm: str = "linf") -> torch.Tensor:
    """One step of PGD from ``x_adv`` = ``x^t``, with ``grad`` = ``grad_x J(x^t)``, the gradient of the loss to climb::

        linf:  x^{t+1} = Proj_{B_inf(x, eps) ∩ [0,1]}( x^t + alpha * sign(grad) )            (project_linf)
        l2:    x^{t+1} = Proj_{B_2(x, eps)}( x^t + alpha * grad / ||grad||_2 ), clipped      (project_l2)

    ``sign`` is the steepest ascent direction in L-infinity, ``grad / ||grad||`` in L2 (per image).
    """
    if norm == "linf":
        return project_linf(x_adv + alpha * grad.sign(), x, eps)
    return project_l2(x_adv + alpha * grad / expand(per_image_norm(grad).clamp_min(1e-12), x), x, eps)


def random_start_point(x: torch.Tensor, eps: float, norm: str, gen: torch.Generator) -> torch.Tensor:
    """A point drawn uniformly from the ball around ``x`` (then in ``[0, 1]``): in L-infinity each pixel uniform in
    ``[x - eps, x + eps]``; in L2 a Gaussian direction scaled to ``eps * u^(1/d)``, ``u ~ U(0, 1)``, ``d = C*H*W``
    (uniform in volume: most of the ball lies near its surface)."""
    if norm == "linf":
        noise = uniform(x.shape, gen, x.device, x.dtype)
        return project_linf(x + eps * (2 * noise - 1), x, eps)
    direction = normal(x.shape, gen, x.device, x.dtype)
    direction = direction / expand(per_image_norm(direction).clamp_min(1e-12), x)
    radius = eps * uniform(x.shape[0], gen, x.device, x.dtype) ** (1.0 / x[0].numel())
    return (x + direction * expand(radius, x)).clamp(0.0, 1.0)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
        norm: str = "linf", random_start: bool = True, targeted: bool = False, seed=None,
        restarts: int = 1, keep_best: bool = True, loss: str = "ce") -> torch.Tensor:
    """Projected Gradient Descent (Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models
    Resistant to Adversarial Attacks", ICLR 2018). ``J`` is the loss to climb: ``L(f(x), y)`` untargeted,
    ``-L(f(x), t)`` targeted; ``steps`` times, :func:`pgd_step`::

        linf:  x^{t+1} = Proj_{B_inf(x, eps) ∩ [0,1]}( x^t + alpha * sign(grad J(x^t)) )
        l2:    x^{t+1} = clip_[0,1]( x + delta * min(1, eps / ||delta||_2) ),
               delta   = x^t + alpha * grad J / ||grad J||_2 - x

    from ``x^0`` = ``x``, or a point drawn uniformly from the ball (:func:`random_start_point`).

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
        seed: the random start's randomness: ``None`` (fresh, from torch's global RNG), an int or a
            ``torch.Generator`` (see :mod:`course_lib._rng`; the same seed gives the same start on every device).
        restarts: independent random starts (default 1). Later restarts only run on images not fooled yet;
            per image the result is the first successful restart, else the one with the highest loss ``J``.
        keep_best: keep an image's last adversarial iterate (default ``True``, see above).
        loss: ``"ce"`` (default) cross-entropy on the logits, or ``"margin"`` (the C&W logit margin).

    Returns:
        ``x'`` ``(B, C, H, W)``, detached, on ``x``'s device, inside the ``eps``-ball and ``[0, 1]``.
    """
    check_inputs(model, x, y, probe=steps == 0)  # with steps, the first step's forward pass checks the labels
    eps, alpha = check_eps(eps), check_positive(alpha, "alpha")
    check_count(steps, "steps")
    check_in(norm, {"linf", "l2"}, "norm")
    check_count(restarts, "restarts", minimum=1)
    check_loss(loss)
    x = x.detach()
    gen = generator(seed) if random_start else None

    def run(x, y):
        """One PGD run over the batch ``(x, y)``: the steps from the start, keeping fooled iterates."""
        x_adv = random_start_point(x, eps, norm, gen) if random_start else x
        kept, ever = x_adv, torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for t in range(steps):
            grad, logits = loss_gradient(model, x_adv, y, targeted, loss, check=t == 0)
            if keep_best:  # the logits of this step's forward pass say whether x_adv (before the step) fools
                fooled = is_success(logits, y, targeted)
                kept, ever = torch.where(expand(fooled, x), x_adv, kept), ever | fooled
            x_adv = pgd_step(x_adv, grad, x, eps, alpha, norm)
        if keep_best:  # an image fooled on the way returns its last fooled iterate, the others x^steps
            x_adv = torch.where(expand(ever, x), kept, x_adv)
        return x_adv.detach().clone()

    result = run(x, y)
    if restarts == 1:
        return result
    # restarts: score each run's result (one forward pass), rerun the images not fooled yet, keep per image the
    # first success, else the highest J
    success, score = _score(model, result, y, targeted, loss)
    for _ in range(restarts - 1):
        todo = (~success).nonzero().squeeze(1)
        if todo.numel() == 0:
            break
        adv = run(x[todo], y[todo])
        ok, s = _score(model, adv, y[todo], targeted, loss)
        better = ok | (s > score[todo])
        pick = todo[better]
        result[pick], success[pick], score[pick] = adv[better], ok[better], s[better]
    return result


def _score(model, x_adv, y, targeted, loss):
    """``(success (B,), J (B,))`` of a run's result: one forward pass."""
    with torch.no_grad():
        logits = model(x_adv)
    return is_success(logits, y, targeted), objective(logits, y, targeted, loss)


@torch.no_grad()
def loss_slice(model: nn.Module, x: torch.Tensor, y: torch.Tensor, directions: torch.Tensor, ts,
               clip: bool = True) -> torch.Tensor:
    """The cross-entropy along straight lines through each image: a 1-D slice of the loss landscape::

        slice[b, k, j] = L( f( clip_[0,1](x_b + t_j * d_{b,k}) ), y_b )

    Along the FGSM direction ``d = sign(grad_x L)`` the loss climbs almost at once, along random signs of the same
    size it stays flat much longer (Goodfellow et al., 2015, plot the logits along the FGSM direction for their
    linearity argument).

    Args:
        model: classifier mapping ``[0, 1]`` images to logits, in eval mode, on ``x``'s device.
        x: images ``(B, C, H, W)`` in ``[0, 1]``; y: LongTensor ``(B,)``, the labels of the loss.
        directions: ``(B, K, C, H, W)``: ``K`` directions per image (or ``(B, C, H, W)`` for ``K = 1``).
        ts: the step lengths ``t`` (pixel units along ``d``), a sequence or 1-D tensor of ``T`` floats.
        clip: clip each point to ``[0, 1]`` (default ``True``: every point is an image).

    Returns:
        float tensor ``(B, K, T)`` on ``x``'s device (no gradients; inputs and model untouched).
    """
    check_images(x)
    check_model(model, x)
    y = check_labels(y, x.shape[0])
    if not isinstance(directions, torch.Tensor):
        raise ValueError(f"directions must be a tensor (B, K, C, H, W), got {type(directions).__name__}")
    d = directions[:, None] if directions.dim() == 4 else directions
    if d.dim() != 5 or d.shape[0] != x.shape[0] or d.shape[2:] != x.shape[1:]:
        raise ValueError(f"directions must have shape (B, K, C, H, W) = ({x.shape[0]}, K, "
                         f"{', '.join(map(str, x.shape[1:]))}), got {tuple(directions.shape)}")
    ts = torch.as_tensor(ts, dtype=x.dtype, device=x.device).flatten()
    if ts.numel() == 0 or not torch.isfinite(ts).all():
        raise ValueError("ts must be a non-empty sequence of finite step lengths")
    b, k = d.shape[:2]
    out = torch.empty(b, k, ts.numel(), dtype=x.dtype, device=x.device)
    for j, t in enumerate(ts):  # one batch of B*K points per t
        points = (x[:, None] + t * d.to(x.dtype)).flatten(0, 1)
        if clip:
            points = points.clamp(0.0, 1.0)
        logits = model(points)
        out[:, :, j] = torch.nn.functional.cross_entropy(logits, y.repeat_interleave(k), reduction="none").view(b, k)
    return out
