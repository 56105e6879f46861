"""Certified training with interval bound propagation (Gowal et al., 2018), through the course's training loop."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_count
from ..training import train
from .bounds import _chain, _ibp_margin

__all__ = ["certified_training"]


def certified_training(model: nn.Module, loader, eps: float, epochs: int, eps_train: float | None = None,
                       warmup_epochs: float = 1.0, ramp_epochs: float | None = None, kappa_end: float = 0.5,
                       lr: float = 1e-3, progress: bool = True, history: dict | None = None,
                       **train_kw) -> nn.Module:
    """IBP training (Gowal, Dvijotham, Stanforth, Bunel, Qin, Uesato, Arandjelovic, Mann & Kohli, "On the
    Effectiveness of Interval Bound Propagation for Training Verifiably Robust Models", 2018)::

        L = kappa * CE(z(x), y) + (1 - kappa) * CE(-m(x, eps_t), y)
        m_k(x, eps) = IBP lower bound of z_y - z_k over the ball   (:func:`margin_bounds`, 0 at k = y)

    ``-m`` are the worst-case logits the bounds allow, so the second term is small only when every margin is
    certified with room. The schedule: ``warmup_epochs`` of clean training (``eps_t = 0``, ``kappa = 1``), then
    over ``ramp_epochs`` (default: half of the rest) ``eps_t`` grows linearly to ``eps_train`` (default ``1.1 *
    eps``: training a little beyond the target leaves a margin) and ``kappa`` falls to ``kappa_end``; then both
    stay. Large budgets from the first step make IBP training collapse to a constant classifier.

    Args:
        model: a network :func:`interval_bounds` accepts in training mode (no batch norm or dropout); trained in
            place and returned in eval mode.
        loader: batches ``(x, y)``, images in [0, 1].
        eps: the L-inf radius to certify; epochs, lr, **train_kw: passed to :func:`course_lib.training.train`
            (one-cycle AdamW by default).
        history: a dict to fill with the training history and ``eps`` / ``kappa`` per step.
    Returns:
        ``model``.
    """
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps <= 0:
        raise ValueError(f"eps must be a positive number (the L-inf radius to certify), got {eps!r}")
    epochs = check_count(epochs, "epochs", minimum=1)
    eps_train = 1.1 * eps if eps_train is None else float(eps_train)
    if not 0.0 <= kappa_end <= 1.0:
        raise ValueError(f"kappa_end must be in [0, 1], got {kappa_end!r}")
    if warmup_epochs < 0 or (ramp_epochs is not None and ramp_epochs <= 0):
        raise ValueError("warmup_epochs must be >= 0 and ramp_epochs > 0")
    per_epoch = len(loader)
    warm = warmup_epochs * per_epoch
    ramp = (ramp_epochs if ramp_epochs is not None else max(epochs - warmup_epochs, 1) / 2) * per_epoch
    state: dict = {"t": 0, "steps": None, "eps": [], "kappa": []}

    def loss_fn(logits, y, x):
        t = state["t"]
        state["t"] += 1
        frac = min(max((t - warm) / ramp, 0.0), 1.0) if t >= warm else 0.0
        eps_t = frac * eps_train
        kappa = 1.0 - frac * (1.0 - kappa_end)
        state["eps"].append(eps_t)
        state["kappa"].append(kappa)
        clean = F.cross_entropy(logits, y)
        if eps_t == 0.0:
            return clean
        if state["steps"] is None:                       # trace once; the steps read the weights at call time
            with torch.no_grad():
                state["steps"], _ = _chain(model, x[:1])
        margin = _ibp_margin(state["steps"], x, y, eps_t, create_graph=True)
        return kappa * clean + (1.0 - kappa) * F.cross_entropy(-margin, y)

    hist = train(model, loader, epochs, lr=lr, loss_fn=loss_fn, progress=progress, **train_kw)
    if history is not None:
        history.update(hist)
        history["eps"], history["kappa"] = state["eps"], state["kappa"]
    model.eval()
    return model
