"""Plumbing shared by the explanation methods: targets, the target logit's gradient, layers by name, hooks that
are always removed."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from .._batches import check_batch_size  # noqa: F401 (the explain modules import it from here)
from .._grad import input_gradient
from .._validate import check_images, check_logits, check_model


def prepare_target(model: nn.Module, x: torch.Tensor, target=None, **image_checks) -> torch.Tensor:
    """Validate ``model`` and ``x`` and return ``target`` as a LongTensor ``(B,)`` on ``x``'s device.

    ``target=None`` means the class the model predicts for each image; an int means that class for every
    image; a tensor must be ``(B,)`` class indices.
    """
    check_images(x, **image_checks)
    check_model(model, x)
    return resolve_target(model, x, target)


def resolve_target(model: nn.Module, x: torch.Tensor, target=None) -> torch.Tensor:
    """``target`` as a LongTensor ``(B,)``, checked against the model's number of classes (one forward pass)."""
    with torch.no_grad():  # a given target only needs the number of classes: one image is enough
        logits = model(x if target is None else x[:1])
    return target_from_logits(logits if target is None else logits.expand(x.shape[0], -1), target)


def get_layer(model: nn.Module, layer) -> nn.Module:
    """``layer`` as a module: a module of ``model``, a name such as ``"features"`` or ``"features.relu5"``,
    or ``None`` for ``model.cam_layer`` (the feature maps before global average pooling)."""
    if layer is None:
        layer = getattr(model, "cam_layer", None)
        if layer is None:
            raise ValueError("layer=None needs model.cam_layer (the name of the feature maps before pooling); "
                             "pass layer='name' (see [n for n, _ in model.named_modules()])")
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError("layer is a module that is not part of model")
        return layer
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a module name (str) or an nn.Module, got {type(layer).__name__}")
    try:
        return model.get_submodule(layer)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        raise ValueError(f"model has no layer named {layer!r}; some names: {names[:12]}"
                         f"{' ...' if len(names) > 12 else ''}") from None


@contextlib.contextmanager
def capture(module: nn.Module):
    """Record a copy of ``module``'s output in ``store["out"]`` during the block; the hook is removed on exit, also
    on error. A copy, because a later in-place op (``ReLU(inplace=True)``, a residual ``out += identity``) would
    change the output itself; the copy keeps the autograd graph (``clone`` is differentiable)."""
    store: dict = {}

    def hook(_mod, _inp, out):
        store["out"] = out.clone() if isinstance(out, torch.Tensor) else out

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def target_gradient(model: nn.Module, x: torch.Tensor, target=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(d y_t / d x, y_t, t)`` for a batch ``x`` in one forward and one backward pass
    (:func:`course_lib._grad.input_gradient` with the target logit ``y_t`` as the objective).

    ``target``: ``None`` (the predicted class, resolved from this forward pass's logits), an int or a LongTensor
    ``(B,)``. No parameter's ``.grad`` is touched; works inside ``torch.no_grad()`` and on frozen models.
    """
    box = {}

    def target_logit(logits):
        box["t"] = t = target_from_logits(check_logits(logits, x.shape[0]), target)
        return logits.gather(1, t[:, None]).squeeze(1)

    grad, logits = input_gradient(model, x, target_logit)
    return grad, logits.gather(1, box["t"][:, None]).squeeze(1), box["t"]


def model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where ``model`` lives and in which float dtype (its first parameter or buffer; CPU float32 if none)."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.float32


def target_from_logits(logits: torch.Tensor, target=None) -> torch.Tensor:
    """``target`` as a LongTensor ``(B,)`` checked against ``logits`` ``(B, K)`` that were already computed.

    Like :func:`resolve_target` (``None`` = the class with the largest logit, an int, or a tensor ``(B,)``),
    but it runs no extra forward pass: methods that need the logits anyway resolve the target from them.
    """
    b, k = logits.shape[0], logits.shape[1]
    if target is None:
        return logits.detach().argmax(1)
    if isinstance(target, bool):
        raise TypeError("target must be None, an int or a LongTensor (B,), got a bool")
    if isinstance(target, int):
        target = torch.full((b,), target, dtype=torch.long, device=logits.device)
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be None, an int or a LongTensor (B,), got {type(target).__name__}")
    if target.dim() == 0:
        target = target.expand(b)
    if target.dtype != torch.long:
        raise TypeError(f"target must hold class indices (dtype torch.long), got {target.dtype}")
    if tuple(target.shape) != (b,):
        raise ValueError(f"target must have shape ({b},) to match the batch, got {tuple(target.shape)}")
    target = target.to(logits.device)
    if int(target.min()) < 0 or int(target.max()) >= k:
        raise ValueError(f"target must be a class index in [0, {k}), got values in "
                         f"[{int(target.min())}, {int(target.max())}]")
    return target


def as_baseline(baseline, x: torch.Tensor, name: str = "baseline") -> torch.Tensor:
    """``baseline`` (a float, or a tensor broadcastable to ``x``) as a tensor of ``x``'s shape, dtype and device.

    A baseline is an image the model could see, so its values must lie in ``[0, 1]`` like ``x``.
    """
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float, torch.Tensor)):
        raise TypeError(f"{name} must be a float or a tensor broadcastable to x {tuple(x.shape)}, "
                        f"got {type(baseline).__name__}")
    b = torch.as_tensor(baseline).to(x.dtype).to(x.device)  # dtype first: MPS has no float64
    try:
        b = b.expand_as(x)
    except RuntimeError:
        raise ValueError(f"{name} of shape {tuple(b.shape)} cannot be broadcast to x's shape {tuple(x.shape)}; "
                         "use a float, a (C, 1, 1), (1, C, H, W) or (B, C, H, W) tensor") from None
    if not torch.isfinite(b).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    lo, hi = float(b.min()), float(b.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must have values in [0, 1] like the images, got values in [{lo:.4g}, {hi:.4g}]")
    return b


@contextlib.contextmanager
def graph_from(module: nn.Module):
    """Within the block, a forward pass records the autograd graph from ``module``'s output onwards only.

    ``module``'s output is replaced by a detached copy that requires grad (``store["out"]``; the layers after
    it get a clone of that leaf, so their in-place ops are safe), and the layers before it run without a graph;
    so ``torch.autograd.grad(score, store["out"])`` is one cheap backward pass through the head of the network.
    This works for frozen models and inside ``torch.no_grad()``; the hook is removed and the caller's grad mode
    restored on exit, also on error. If ``module`` runs twice in one forward pass, ``store["out"]`` is its last
    output.
    """
    store: dict = {}

    def hook(mod, _inp, out):
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the layer's output must be a tensor (B, C, h, w), got {type(out).__name__} "
                            f"from {type(mod).__name__}")
        torch.set_grad_enabled(True)  # the layers after this one build a graph, those before did not
        store["out"] = out.detach().requires_grad_(True)
        # the network goes on with a copy: an in-place op after the layer (ReLU(inplace=True), a ResNet's
        # out += identity) would otherwise modify a leaf that requires grad, which autograd refuses
        return store["out"].clone()

    previous = torch.is_grad_enabled()
    handle = module.register_forward_hook(hook)
    torch.set_grad_enabled(False)
    try:
        yield store
    finally:
        handle.remove()
        torch.set_grad_enabled(previous)
