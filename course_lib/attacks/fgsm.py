"""The Fast Gradient Sign Method (Goodfellow, Shlens & Szegedy, ICLR 2015): one step of size eps along the
sign of the loss gradient, the largest first-order increase of the loss inside the L-infinity ball."""
from __future__ import annotations

import torch
from torch import nn

from ._common import check_eps, check_inputs, check_loss, loss_gradient

__all__ = ["fgsm"]


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, targeted: bool = False,
         loss: str = "ce") -> torch.Tensor:
    """Fast Gradient Sign Method (Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial
    Examples", ICLR 2015)::

        untargeted:  x' = clip_[0,1]( x + eps * sign( grad_x L(f(x), y) ) )
        targeted:    x' = clip_[0,1]( x - eps * sign( grad_x L(f(x), t) ) )

    A linear model's loss changes by ``eps * ||grad||_1`` along the sign, the most any ``||delta||_inf <= eps``
    can achieve to first order: so one step already fools models that behave linearly near ``x``.

    Args:
        model: classifier mapping ``[0, 1]`` images to logits, in eval mode, on ``x``'s device.
        x: images ``(B, C, H, W)``, float in ``[0, 1]``.
        y: LongTensor ``(B,)``: the true labels (untargeted) or the target labels ``t`` (``targeted=True``).
        eps: the L-infinity budget, a finite number ``>= 0`` (pixels are in ``[0, 1]``: 0.3 is large on MNIST).
        targeted: ``False`` (default) pushes away from ``y``; ``True`` pulls towards ``y``.
        loss: ``"ce"`` (default) cross-entropy on the logits, as in the paper; ``"margin"`` the logit margin
            ``-(Z_y - max_{i != y} Z_i)`` (Carlini & Wagner), which does not saturate when softmax is confident.

    Returns:
        ``x'`` ``(B, C, H, W)``, detached, on ``x``'s device, with ``||x' - x||_inf <= eps`` and values in ``[0, 1]``.
        Where the gradient is exactly zero a pixel does not move (``sign(0) = 0``).
    """
    check_inputs(model, x, y, probe=False)  # the labels are checked against the logits of the one forward pass
    eps = check_eps(eps)
    check_loss(loss)
    # loss_gradient climbs J = L(f(x), y), or J = -L(f(x), t) when targeted: so the step is always "+"
    grad, _ = loss_gradient(model, x, y, targeted, loss, check=True)
    return (x + eps * grad.sign()).clamp(0.0, 1.0).detach()
