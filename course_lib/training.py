"""One training loop for the whole course, and batched accuracy.

Standard training, adversarial training and defensive distillation all call :func:`train`: adversarial
training passes ``transform`` (replace each batch by adversarial examples), distillation passes ``loss_fn``
(soft targets). The loop restores nothing silently: it puts the model in train mode while training and
returns it in eval mode.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ._batches import logits_in_batches
from ._validate import check_images, check_labels, check_model

__all__ = ["train", "accuracy", "predict", "predict_labels"]


def train(model: nn.Module, loader, epochs: int, lr: float = 1e-3, weight_decay: float = 0.0,
          optimizer: torch.optim.Optimizer | None = None,
          transform: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
          loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
          scheduler: str | None = "onecycle", device=None, progress: bool = True,
          val_data: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """Train ``model`` in place for ``epochs`` passes over ``loader``; returns a history dict.

    Minimises the mean of ``loss_fn(logits, y, x)`` (default cross-entropy) with Adam(W) and, by default,
    a one-cycle learning-rate schedule peaking at ``lr``.

    Args:
        transform: optional ``transform(model, x, y) -> x'`` applied to each batch before the step, with the
            model in eval mode (e.g. PGD for adversarial training, augmentation). Its result is detached.
        loss_fn: optional ``loss_fn(logits, y, x) -> scalar`` (e.g. distillation against soft labels).
        val_data: optional ``(x, y)`` whose accuracy is recorded after each epoch.

    Returns ``{"loss": [...per epoch], "val_acc": [...], "seconds": float}``; the model ends in eval mode.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if device is None:
        p = next(iter(model.parameters()))
        device = p.device
    model.to(device)
    opt = optimizer or torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = None
    if scheduler == "onecycle" and optimizer is None:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * len(loader),
                                                    pct_start=0.25)
    history = {"loss": [], "val_acc": [], "seconds": 0.0}
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc="epochs", disable=not progress)
    for _ in bar:
        total, count = 0.0, 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            if transform is not None:
                model.eval()
                x = transform(model, x, y).detach()
            model.train()
            logits = model(x)
            loss = loss_fn(logits, y, x) if loss_fn is not None else F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += float(loss.detach()) * len(x)
            count += len(x)
        model.eval()
        history["loss"].append(total / max(count, 1))
        postfix = {"loss": f"{history['loss'][-1]:.4f}"}
        if val_data is not None:
            history["val_acc"].append(accuracy(model, val_data[0].to(device), val_data[1].to(device)))
            postfix["val_acc"] = f"{history['val_acc'][-1]:.4f}"
        bar.set_postfix(postfix)
    model.eval()
    history["seconds"] = time.perf_counter() - start
    return history


def predict(model: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in batches (no gradients), on ``x``'s device. ``batch_size``: images per
    forward pass; ``None`` (default) = about 2^20 input values (1,337 digits, 6 photos: big images are faster
    per image in small batches on a CPU)."""
    check_images(x)
    check_model(model, x)
    return logits_in_batches(model, x, batch_size)


def predict_labels(model: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """The predicted classes ``argmax_k f(x)_k`` ``(B,)`` (a LongTensor on ``x``'s device): :func:`predict`'s logits,
    arg-maxed."""
    return predict(model, x, batch_size).argmax(1)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None) -> float:
    """Fraction of images whose arg-max logit equals the label: ``mean(argmax f(x_i) == y_i)``."""
    check_images(x)
    check_labels(y, len(x), device=x.device)
    check_model(model, x)
    return float((logits_in_batches(model, x, batch_size).argmax(1) == y).float().mean())
