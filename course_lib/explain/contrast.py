"""Contrastive explanations: "why class a and not class b?" (Miller, 2019: people ask for contrasts).

Every method of this package explains one output of a model. Wrap the model so that its only output is the
difference of two logits,

    g(x) = f_a(x) - f_b(x),

and explain ``g`` with any of them (``target=0``). Methods that are linear in the output (saliency's signed
gradient, Integrated Gradients, Shapley values, occlusion) then give exactly ``explain(f_a) - explain(f_b)``:
what speaks for ``a`` *more than* for ``b``; evidence both classes share cancels out.
"""
from __future__ import annotations

import torch
from torch import nn

from .._validate import check_model

__all__ = ["LogitDifference", "contrastive"]


def _check_class(c, name: str) -> int:
    if isinstance(c, bool) or not isinstance(c, int) or c < 0:
        raise ValueError(f"{name} must be a class index, an int >= 0, got {c!r}")
    return c


class LogitDifference(nn.Module):
    """``g(x) = f_a(x) - f_b(x)`` as a model with one output ``(B, 1)``; see :func:`contrastive`."""

    def __init__(self, model: nn.Module, a: int, b: int):
        super().__init__()
        check_model(model)
        self.model, self.a, self.b = model, _check_class(a, "a"), _check_class(b, "b")
        if self.a == self.b:
            raise ValueError(f"a and b must be two different classes, got a = b = {a}")
        self.training = model.training  # a model left in training mode is still caught by every method
        inner = getattr(model, "cam_layer", None)  # CAM / Grad-CAM / feature maps find the same layer by default
        if inner is not None:
            self.cam_layer = f"model.{inner}" if isinstance(inner, str) else inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        k = logits.shape[-1]
        if max(self.a, self.b) >= k:
            raise ValueError(f"classes a={self.a}, b={self.b} must be < the model's {k} classes")
        return (logits[:, self.a] - logits[:, self.b])[:, None]

    def extra_repr(self) -> str:
        return f"a={self.a}, b={self.b}"


def contrastive(model: nn.Module, a: int, b: int) -> LogitDifference:
    """The model ``g(x) = f_a(x) - f_b(x)`` (logits, one output): explain it with ``target=0`` to answer
    "why ``a`` and not ``b``?".

    ``model`` itself is not changed (no copy either: ``g`` calls it). ``g`` is in the same mode as ``model``;
    its layers keep their names under the prefix ``model.`` (``grad_cam(g, x, 0, layer="model.features")``),
    and ``model.cam_layer`` carries over, so CAM-style methods find the same default layer.

    Example::

        g = contrastive(mnist_cnn, 4, 9)
        ig = integrated_gradients(g, x, target=0)   # = IG for class 4 - IG for class 9, by linearity
    """
    return LogitDifference(model, a, b)
