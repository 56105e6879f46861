"""The exact worst case of a linear classifier inside the L-infinity ball: the closed form that FGSM and PGD
approximate for a deep network.

For logits ``z(x) = W x + b`` the margin of class ``k`` over the label ``c`` is linear in the image,
``z_k - z_c = d^T x + (b_k - b_c)`` with ``d = w_k - w_c``, so its maximum over the box
``{x' : ||x' - x||_inf <= eps, 0 <= x' <= 1}`` separates pixel by pixel: each pixel moves to the end of its own
interval ``[max(x_j - eps, 0), min(x_j + eps, 1)]`` that the sign of ``d_j`` points to. Without the clip to
[0, 1] the margin grows by exactly ``eps * ||w_k - w_c||_1`` (Goodfellow, Shlens & Szegedy, 2015).
"""
from __future__ import annotations

import torch

from ._common import check_eps

__all__ = ["linear_worst_case"]


def linear_worst_case(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                      eps: float) -> torch.Tensor:
    """The image in the eps-ball (L-infinity, intersected with [0, 1]) that maximises, over the classes
    ``k != y``, the margin ``z_k(x') - z_y(x')`` of the linear classifier ``z(x) = weight @ x.flatten() + bias``::

        x'_j = min(x_j + eps, 1)  if (w_k - w_y)_j > 0,    max(x_j - eps, 0)  if (w_k - w_y)_j < 0,   x_j otherwise

    for the class ``k`` whose best margin is largest. This is exact, not a search: the linear classifier
    misclassifies some image of the ball if and only if it misclassifies ``x'`` (ties aside).

    Args:
        weight: ``(K, n)`` with ``n = C * H * W``; bias: ``(K,)`` (e.g. ``model[1].weight``, ``model[1].bias`` of
            ``nn.Sequential(nn.Flatten(), nn.Linear(n, K))``).
        x: images ``(B, C, H, W)`` in [0, 1]; y: true labels ``(B,)``; eps: the budget ``>= 0``.
    Returns:
        ``x'`` ``(B, C, H, W)``, detached, on ``x``'s device; the inputs are not changed.
    """
    eps = check_eps(eps)
    if not (isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor)) or weight.dim() != 2 \
            or bias.shape != weight.shape[:1]:
        raise ValueError(f"weight must be (K, n) and bias (K,), got {getattr(weight, 'shape', weight)} and "
                         f"{getattr(bias, 'shape', bias)}")
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x[0].numel() != weight.shape[1]:
        raise ValueError(f"x must be images (B, C, H, W) with C * H * W = {weight.shape[1]}, got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError("x must be in [0, 1]")
    if not isinstance(y, torch.Tensor) or y.shape != x.shape[:1] or y.dtype != torch.long:
        raise ValueError(f"y must be a LongTensor ({x.shape[0]},) of labels")
    w, b = weight.detach().to(x.device, x.dtype), bias.detach().to(x.device, x.dtype)
    flat = x.detach().flatten(1)                                          # (B, n)
    up, down = (flat + eps).clamp(max=1.0), (flat - eps).clamp(min=0.0)
    d = w[None, :, :] - w[y][:, None, :]                                  # (B, K, n): w_k - w_y
    best = torch.where(d > 0, up[:, None], torch.where(d < 0, down[:, None], flat[:, None]))   # (B, K, n)
    margin = (d * best).sum(-1) + (b[None] - b[y][:, None])              # z_k - z_y at each class's best image
    margin[torch.arange(len(y), device=x.device), y] = float("-inf")    # k = y is no attack
    k = margin.argmax(1)
    return best[torch.arange(len(y), device=x.device), k].view_as(x).clone()
