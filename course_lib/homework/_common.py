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
