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

__all__ = ["train", "accuracy", "predict", "predict_labels", "calibration", "count_images"]


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


def calibration(probs: torch.Tensor, y: torch.Tensor, n_bins: int = 10) -> dict:
    """How far confidence is from accuracy (Guo et al., 2017): the data of a reliability diagram.

    The confidence of a prediction is its largest probability, ``c_i = max_k p_ik``, the prediction
    ``argmax_k p_ik``. The interval [0, 1] is cut into ``n_bins`` equal bins (the first closed, the others
    half-open on the left, ``(a, b]``); in each bin ``B_m``::

        conf_m = mean_{i in B_m} c_i          acc_m = mean_{i in B_m} [argmax_k p_ik == y_i]
        ECE    = sum_m |B_m| / N * |acc_m - conf_m|          (expected calibration error)

    ``probs``: ``(N, K)`` probabilities (rows summing to 1, e.g. ``softmax(logits)``); ``y``: ``(N,)`` labels.
    Returns a dict of CPU tensors ``edges`` ``(n_bins + 1,)``, ``confidence``, ``accuracy`` (NaN in empty bins)
    and ``count`` ``(n_bins,)``, and the floats ``ece``, ``mean_confidence`` and ``overall_accuracy``.
    """
    if not isinstance(probs, torch.Tensor) or probs.dim() != 2 or not probs.is_floating_point():
        raise ValueError(f"probs must be a float tensor (N, K) of probabilities, got "
                         f"{getattr(probs, 'shape', type(probs).__name__)}")
    p = probs.detach().cpu().double()
    if bool((p < 0).any()) or not torch.allclose(p.sum(1), torch.ones(len(p), dtype=p.dtype), atol=1e-4):
        raise ValueError("probs must be probabilities: non-negative rows that sum to 1 (apply softmax to logits)")
    check_labels(y, len(p), device=probs.device)
    if not isinstance(n_bins, int) or isinstance(n_bins, bool) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
    conf, pred = p.max(1)
    correct = (pred == y.cpu()).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    # bin m holds (edges[m], edges[m + 1]]; a confidence of exactly 0 cannot occur (max of K >= 1 probabilities)
    which = (torch.bucketize(conf, edges[1:-1], right=False)).clamp(0, n_bins - 1)
    count = torch.bincount(which, minlength=n_bins)
    conf_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, which, conf)
    acc_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, which, correct)
    nonzero = count > 0
    mean_conf = torch.where(nonzero, conf_sum / count.clamp_min(1), torch.tensor(float("nan"), dtype=torch.float64))
    mean_acc = torch.where(nonzero, acc_sum / count.clamp_min(1), torch.tensor(float("nan"), dtype=torch.float64))
    ece = float((count[nonzero] / len(p) * (mean_acc[nonzero] - mean_conf[nonzero]).abs()).sum())
    return {"edges": edges, "confidence": mean_conf, "accuracy": mean_acc, "count": count, "ece": ece,
            "mean_confidence": float(conf.mean()), "overall_accuracy": float(correct.mean())}


def count_images(model: nn.Module, fn: Callable):
    """Run ``fn()`` and count the images that pass through ``model``'s forward pass meanwhile (a forward
    pre-hook adds the batch size of every call; the hook is removed afterwards, also on an error).

    Returns ``(fn(), count)``: e.g. ``count_images(model, lambda: saliency(model, x))`` gives the map and 1 for
    one image. The cost of an explanation or an attack in forward passes, counted rather than believed."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not callable(fn):
        raise TypeError("fn must be a callable without arguments, e.g. lambda: saliency(model, x)")
    seen = [0]

    def hook(module, inputs):
        seen[0] += int(inputs[0].shape[0]) if inputs and isinstance(inputs[0], torch.Tensor) else 0

    handle = model.register_forward_pre_hook(hook)
    try:
        result = fn()
    finally:
        handle.remove()
    return result, seen[0]
