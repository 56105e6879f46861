"""Plumbing shared by the explanation methods: targets, layers by name, hooks that are always removed."""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from .._batches import check_batch_size  # noqa: F401 (the explain modules import it from here)
from .._validate import check_images, check_model


def prepare(model: nn.Module, x: torch.Tensor, target=None, **image_checks):
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
def capture(module: nn.Module, keep_grad: bool = False):
    """Record ``module``'s output in ``store["out"]`` during the block; the hook is removed on exit, also on
    error. With ``keep_grad`` the output's gradient is kept too (``store["grad"]`` after backward)."""
    store: dict = {}

    def hook(_mod, _inp, out):
        store["out"] = out
        if keep_grad and out.requires_grad:
            out.register_hook(lambda g: store.__setitem__("grad", g))

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def input_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d y_target / d x, y_target)`` for every image of the batch, without touching parameter ``.grad``.

    Works under ``torch.no_grad()`` callers and on models whose parameters are frozen.
    """
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        logits = model(xg)
        score = logits.gather(1, target[:, None]).squeeze(1)
        (grad,) = torch.autograd.grad(score.sum(), xg)
    return grad.detach(), score.detach()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur every channel of ``x`` (B, C, H, W) with a Gaussian of standard deviation ``sigma`` pixels.

    The kernel is truncated at ``2 sigma`` and the border replicated (works for any image size); ``sigma <= 0``
    returns ``x`` unchanged. Differentiable, so it can sit inside an optimisation.
    """
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(2 * sigma)))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    # separable: a row pass then a column pass, one depthwise convolution each
    out = F.pad(x, (radius, radius, 0, 0), mode="replicate")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = F.pad(out, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


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


def check_logits(logits, x: torch.Tensor) -> torch.Tensor:
    """Check that a model's output is a ``(B, K)`` tensor of class scores for the batch ``x``."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != x.shape[0]:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model must return logits of shape ({x.shape[0]}, num_classes), got {got}")
    return logits


def as_baseline(baseline, x: torch.Tensor, name: str = "baseline") -> torch.Tensor:
    """``baseline`` (a float, or a tensor broadcastable to ``x``) as a tensor of ``x``'s shape, dtype and device.

    A baseline is an image the model could see, so its values must lie in ``[0, 1]`` like ``x``.
    """
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float, torch.Tensor)):
        raise TypeError(f"{name} must be a float or a tensor broadcastable to x {tuple(x.shape)}, "
                        f"got {type(baseline).__name__}")
    b = torch.as_tensor(baseline).to(device=x.device, dtype=x.dtype)
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

    ``module``'s output is replaced by a detached copy that requires grad (``store["out"]``), and the layers
    before it run without a graph; so ``torch.autograd.grad(score, store["out"])`` is one cheap backward pass
    through the head of the network. This works for frozen models and inside ``torch.no_grad()``; the hook is
    removed and the caller's grad mode restored on exit, also on error. If ``module`` runs twice in one
    forward pass, ``store["out"]`` is its last output.
    """
    store: dict = {}

    def hook(mod, _inp, out):
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the layer's output must be a tensor (B, C, h, w), got {type(out).__name__} "
                            f"from {type(mod).__name__}")
        torch.set_grad_enabled(True)  # the layers after this one build a graph, those before did not
        store["out"] = out.detach().requires_grad_(True)
        return store["out"]

    previous = torch.is_grad_enabled()
    handle = module.register_forward_hook(hook)
    torch.set_grad_enabled(False)
    try:
        yield store
    finally:
        handle.remove()
        torch.set_grad_enabled(previous)
