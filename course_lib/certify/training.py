"""Certified training with interval bound propagation (Gowal et al., 2018), through the course's training loop."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_count
from ..training import train
from .bounds import _chain, _ibp_margin

__all__ = ["certified_training", "noise_training"]


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


def noise_training(model: nn.Module, loader, sigma: float, epochs: int, copies: int = 1, consistency: float = 0.0,
                   entropy: float = 0.0, lr: float = 1e-3, seed=0, progress: bool = True,
                   history: dict | None = None, augment=None, **train_kw) -> nn.Module:
    """Train a base classifier for randomised smoothing on Gaussian-noise copies of every image (Cohen, Rosenfeld
    & Kolter, 2019), optionally with the consistency regulariser of Jeong & Shin ("Consistency Regularization for
    Certified Robustness of Smoothed Classifiers", NeurIPS 2020)::

        x_i = x + e_i,   e_i ~ N(0, sigma^2 I),   i = 1..m  (m = copies; not clipped, as at certification)
        L = 1/m sum_i CE(f(x_i), y)  +  consistency * 1/m sum_i KL(p_bar || p_i)  +  entropy * H(p_bar)
        p_i = softmax(f(x_i)),   p_bar = 1/m sum_i p_i

    Plain Gaussian augmentation is ``copies=1`` (the regularisers need ``copies >= 2``). Smoothing certifies a
    radius ``sigma Phi^-1(p_A)``, so what training must raise is the probability of the right class *under noise*;
    the consistency term asks every noisy copy for the same distribution, which is what makes ``p_A`` large.

    Args:
        model: trained in place and returned in eval mode; loader: batches ``(x, y)`` in [0, 1].
        sigma: the noise level, the same as at certification. seed: the noise's seed.
        augment: optional ``augment(model, x, y) -> x`` (e.g. random shifts) applied before the noise.
        epochs, lr, **train_kw: passed to :func:`course_lib.training.train` (one-cycle AdamW by default).
        history: a dict to fill with the training history.
    Returns:
        ``model``.
    """
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or sigma <= 0:
        raise ValueError(f"sigma must be a positive number (the noise's standard deviation), got {sigma!r}")
    copies = check_count(copies, "copies", minimum=1)
    if consistency < 0 or entropy < 0:
        raise ValueError("consistency and entropy must be >= 0")
    if (consistency or entropy) and copies < 2:
        raise ValueError("the consistency and entropy terms compare noisy copies: they need copies >= 2")
    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be callable augment(model, x, y) -> x, got {type(augment).__name__}")
    gen: dict = {}

    def noisy(m, x, y):
        if augment is not None:
            x = augment(m, x, y)
        if x.device not in gen:
            gen[x.device] = torch.Generator(device=x.device).manual_seed(int(seed))
        x = x.repeat(copies, 1, 1, 1)
        return x + sigma * torch.randn(x.shape, generator=gen[x.device], device=x.device, dtype=x.dtype)

    def loss_fn(logits, y, x):
        parts = logits.chunk(copies)
        loss = sum(F.cross_entropy(z, y) for z in parts) / copies
        if consistency or entropy:
            logp = torch.stack([F.log_softmax(z, 1) for z in parts])           # (m, B, K)
            p_bar = logp.exp().mean(0)
            if consistency:
                kl = (p_bar * (p_bar.clamp_min(1e-12).log() - logp)).sum(-1).mean()   # mean over copies and batch
                loss = loss + consistency * kl
            if entropy:
                loss = loss + entropy * -(p_bar * p_bar.clamp_min(1e-12).log()).sum(1).mean()
        return loss

    hist = train(model, loader, epochs, lr=lr, transform=noisy, loss_fn=loss_fn, progress=progress, **train_kw)
    if history is not None:
        history.update(hist)
    model.eval()
    return model
