"""Input checks for the public boundary. Each message says what was expected and what came."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def check_images(x, name: str = "x", channels: int | tuple[int, ...] | None = None,
                 size: tuple[int, int] | None = None) -> torch.Tensor:
    """Check that ``x`` is a float image batch ``(B, C, H, W)`` with values in ``[0, 1]``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        hint = " (for one image use x[None])" if x.dim() == 3 else ""
        raise ValueError(f"{name} must have shape (B, C, H, W), got shape {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor with values in [0, 1], got dtype {x.dtype}"
                        " (for uint8 images divide by 255)")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)})")
    if channels is not None:
        allowed = (channels,) if isinstance(channels, int) else tuple(channels)
        if x.shape[1] not in allowed:
            raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} channel(s), "
                             f"got {x.shape[1]} (shape {tuple(x.shape)})")
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        raise ValueError(f"{name} must be {size[0]}x{size[1]} pixels, got {x.shape[-2]}x{x.shape[-1]}")
    v = x.detach()  # a tensor that requires grad is fine as input; reading its values needs no graph
    if not torch.isfinite(v).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    lo, hi = float(v.min()), float(v.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must have values in [0, 1], got values in [{lo:.4g}, {hi:.4g}] "
                         "(models in this course normalise inside themselves: pass raw pixels)")
    return x


def check_labels(y, n: int, name: str = "y", num_classes: int | None = None,
                 device: torch.device | None = None) -> torch.Tensor:
    """Check that ``y`` is a LongTensor ``(n,)`` of class indices."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a LongTensor of shape ({n},), got {type(y).__name__}")
    if y.dtype != torch.long:
        raise TypeError(f"{name} must have dtype torch.long, got {y.dtype}")
    if tuple(y.shape) != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the batch, got {tuple(y.shape)}")
    if device is not None and y.device != device:
        raise ValueError(f"{name} is on {y.device} but the images are on {device}: put both on one device")
    if n and (int(y.min()) < 0 or (num_classes is not None and int(y.max()) >= num_classes)):
        raise ValueError(f"{name} must hold class indices in [0, {num_classes}), "
                         f"got values in [{int(y.min())}, {int(y.max())}]")
    return y


_MODE_DEPENDENT = (nn.modules.batchnorm._NormBase, nn.modules.dropout._DropoutNd)


def check_model(model, x: torch.Tensor | None = None, name: str = "model") -> nn.Module:
    """Check that ``model`` is an ``nn.Module`` in eval mode on the same device as ``x``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        raise ValueError(f"{name} is in training mode: call {name}.eval() first (dropout and batch norm "
                         "behave differently in training mode, so results would be wrong)")
    # eval() on the whole model, then .train() on a part (or a layer added later): batch norm would normalise
    # with the batch's statistics (and update its buffers), dropout would drop; other layers do not care
    inner = next((n for n, m in model.named_modules() if m.training and isinstance(m, _MODE_DEPENDENT)), None)
    if inner is not None:
        raise ValueError(f"{name}.{inner} is in training mode although {name} is not: call {name}.eval() first "
                         "(it sets every submodule; dropout and batch norm behave differently in training mode)")
    if x is not None:
        p = next(iter(model.parameters()), None)
        if p is not None and p.device != x.device:
            raise ValueError(f"{name} is on {p.device} but the images are on {x.device}: "
                             f"move one of them, e.g. x = x.to({str(p.device)!r})")
        if p is not None and p.is_floating_point() and x.is_floating_point() and p.dtype != x.dtype:
            raise TypeError(f"{name}'s parameters are {p.dtype} but the images are {x.dtype}: convert one of them, "
                            f"e.g. x = x.to({p.dtype}) (or {name}.to({x.dtype}) for a model of your own)")
    return model


def check_logits(logits, n: int) -> torch.Tensor:
    """Check that a model's output is a ``(n, K)`` tensor of class scores for a batch of ``n`` images."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != n:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model must return logits of shape ({n}, num_classes) for {n} image(s), got {got}")
    return logits


def check_count(value, name: str, minimum: int = 0) -> int:
    """``value`` (a number of steps, samples, queries...) as an int ``>= minimum``: a ``TypeError`` if it is not an
    int (NumPy integers are fine, bools are not), a ``ValueError`` if it is too small."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_in(value, allowed, name: str):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")
    return value
