"""Plumbing shared by the attacks: boundary checks, the loss an attack climbs, its gradient, success.

Every attack *ascends* one objective ``J``: for an untargeted attack ``J = L(f(x), y)`` (push the true class
away), for a targeted one ``J = -L(f(x), t)`` (pull the target class in). So the update rule is written once,
with a plus sign, and ``targeted`` only flips the objective.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._grad import input_gradient
from .._validate import check_images, check_in, check_labels, check_logits, check_model

LOSSES = ("ce", "margin")


def check_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str = "y",
                 probe: bool = True) -> int | None:
    """Check the model, the images and the labels; return the number of classes K.

    ``probe=True`` runs one forward pass on a single image to learn K, so that a label ``>= K`` is an error here
    and not an index error deep inside the attack. An attack whose first step is a forward pass on the whole
    batch passes ``probe=False`` (and gets ``None``) and checks the logits of that pass instead with
    :func:`check_classes` (``loss_gradient(..., check=True)``): one forward pass less.
    """
    check_images(x)
    check_model(model, x)
    check_labels(y, x.shape[0], name=name, device=x.device)
    if not probe:
        return None
    with torch.no_grad():
        logits = model(x[:1])
    return check_classes(logits, 1, y, name=name)


def check_classes(logits, n: int, y: torch.Tensor, name: str = "y") -> int:
    """``logits`` must be ``(n, K)`` (:func:`check_logits`) and the labels ``y`` must lie in ``[0, K)``. Returns K."""
    k = check_logits(logits, n).shape[1]
    check_labels(y, y.shape[0], name=name, num_classes=k)
    return k


def check_eps(eps, name: str = "eps") -> float:
    """``eps`` as a float, which must be finite and ``>= 0``."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {eps!r}")
    return float(eps)


def check_positive(value, name: str) -> float:
    """``value`` as a float, which must be finite and ``> 0``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_loss(loss: str) -> str:
    return check_in(loss, set(LOSSES), "loss")


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``Z_y - max_{i != y} Z_i`` per image ``(B,)``: positive while the model still says ``y``."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return z_y - others.amax(1)


def objective(logits: torch.Tensor, y: torch.Tensor, targeted: bool, loss: str = "ce") -> torch.Tensor:
    """The objective ``J`` per image ``(B,)`` that an attack ascends.

    ``loss="ce"``: cross-entropy ``L = -log softmax(Z)_y``; ``loss="margin"``: ``L = -(Z_y - max_{i!=y} Z_i)``
    (the logit margin of Carlini & Wagner, unclipped). Untargeted: ``J = L(Z, y)``; targeted: ``J = -L(Z, t)``.
    """
    per_image = F.cross_entropy(logits, y, reduction="none") if loss == "ce" else -margin(logits, y)
    return -per_image if targeted else per_image


def loss_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, targeted: bool, loss: str = "ce",
                  check: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dJ/dx, logits)`` for the whole batch in one forward and one backward pass (:func:`.._grad.input_gradient`
    with the objective ``J`` above). ``check=True`` also checks the labels against this pass's logits (for
    callers that skipped :func:`check_inputs`' probe)."""
    def j(logits):
        if check:
            check_classes(logits, x.shape[0], y)
        return objective(logits, y, targeted, loss)

    return input_gradient(model, x, j)


def is_success(logits: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Bool ``(B,)``: misclassified (untargeted, ``y`` = true label) or classified as ``y`` (targeted)."""
    pred = logits.argmax(1)
    return pred == y if targeted else pred != y


def per_image_norm(t: torch.Tensor) -> torch.Tensor:
    """L2 norm of each image ``(B,)`` (over channels and pixels)."""
    return t.flatten(1).norm(dim=1)


def expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-image ``(B,)`` tensor viewed as ``(B, 1, 1, 1)`` to broadcast against images."""
    return v.view(-1, *([1] * (like.dim() - 1)))
