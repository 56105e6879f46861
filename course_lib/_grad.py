"""The gradient of a function of the logits with respect to the input images, the one place that does it.

Saliency maps differentiate the target logit ``y_t``, attacks their loss ``J``; both are ``objective(logits) ->
(B,)`` here, and :func:`input_gradient` does the autograd part for all of them.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def input_gradient(model: nn.Module, x: torch.Tensor,
                   objective: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d objective(model(x))_b / d x_b for every image b, logits)`` in one forward and one backward pass.

    ``objective(logits)`` returns one value per image ``(B,)``; it may also check the logits. The gradient of the
    batch's sum is each image's own gradient, because images do not interact in an eval-mode model.
    ``torch.autograd.grad`` w.r.t. a detached copy of ``x`` only: no parameter's ``.grad`` is written, frozen
    models work, ``x`` is untouched, and grad mode is switched on locally, so callers inside ``torch.no_grad()``
    work too. Both results are detached.
    """
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        logits = model(xg)
        (grad,) = torch.autograd.grad(objective(logits).sum(), xg)
    return grad.detach(), logits.detach()
