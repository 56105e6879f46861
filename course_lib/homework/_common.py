"""What every check shares: a confirmation line, an assertion that teaches, a tolerant comparison, a fresh model."""
from __future__ import annotations

import torch
from torch import nn


def _ok(msg: str) -> None:
    print(f"\u2714 correct: {msg}")


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise AssertionError(msg)


def _close(a, b: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """``a`` is a tensor of ``b``'s shape and equal to it within ``rtol``/``atol`` (a wrong type is just 'no')."""
    return isinstance(a, torch.Tensor) and a.shape == b.shape and bool(torch.allclose(a, b, rtol=rtol, atol=atol))


def _fresh_model(name: str = "mnist_cnn") -> nn.Module:
    """A freshly loaded shipped model for a check: a wrong answer may have changed the mode, the weights or the
    gradients of the student's own copy."""
    from ..models import load_model

    return load_model(name)


def _check_input_gradient_hygiene(model: nn.Module, x: torch.Tensor, out, score: str = "score") -> None:
    """What every "differentiate with respect to the input" answer must respect, checked after the call: the
    caller's ``x`` left without ``requires_grad``, the model still in eval mode with no ``.grad`` left in its
    parameters, and a detached result. ``score`` names what the student differentiated (for the message)."""
    _require(not x.requires_grad, "your function switched on requires_grad on the caller's x: work on a copy, "
             "xg = x.detach().clone().requires_grad_(True)")
    _require(not model.training, "your function left the model in training mode: never call model.train() here "
             "(batch norm would use the batch's statistics, dropout would drop: another function is explained)")
    left = [name for name, p in model.named_parameters() if p.grad is not None] + [""]
    _require(not left[0], f"your function left gradients in the model's parameters (e.g. {left[0]}.grad): "
             f"{score}.backward() also differentiates with respect to every weight, and those gradients pile up "
             f"from call to call. Use torch.autograd.grad({score}, xg), which returns the input's gradient only")
    _require(not out.requires_grad, "return a detached tensor (call .detach()), not one that is part of a graph")
