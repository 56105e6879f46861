"""Class activation maps: where in the image are the features that the target class's score adds up?

* :func:`cam`       CAM (Zhou et al., CVPR 2016): for networks ending in global average pooling + one linear
                    layer, the logit is an average over positions, so its summand at each position is a map.
* :func:`grad_cam`  Grad-CAM (Selvaraju et al., ICCV 2017): weights the feature maps of any convolutional
                    layer by the spatially averaged gradient of the logit, so it needs no special architecture.

For a GAP + linear head both agree: ``d y_c / d A^k_ij = w^c_k / Z``, so ``grad_cam = ReLU(cam) / Z``.
Maps are computed at the layer's resolution ``h x w`` and then upsampled bilinearly to the input's size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_images, check_logits, check_model
from ._common import capture, get_layer, graph_from, target_from_logits

__all__ = ["cam", "grad_cam", "grad_cam_ingredients", "final_linear", "peak_distance"]


def final_linear(model: nn.Module) -> nn.Linear:
    """The classifier's last linear layer: ``model.fc`` if it is an ``nn.Linear``, else the last ``nn.Linear``."""
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):
        return fc
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("cam needs a model that ends in global average pooling + one nn.Linear; "
                         f"{type(model).__name__} has no nn.Linear (use grad_cam, which works for any model)")
    return linears[-1]


def _feature_maps(store: dict, model: nn.Module, layer) -> torch.Tensor:
    layer = getattr(model, "cam_layer", None) if layer is None else layer
    layer = layer if isinstance(layer, str) else type(layer).__name__
    a = store.get("out")
    if a is None:
        raise ValueError(f"layer {layer!r} was not called in the model's forward pass")
    if not isinstance(a, torch.Tensor) or a.dim() != 4:
        got = tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
        raise ValueError(f"layer {layer!r} must output feature maps (B, K, h, w), got {got}")
    return a


def _upsample(maps: torch.Tensor, size) -> torch.Tensor:
    """``(B, h, w)`` -> ``(B, H, W)``, bilinear with ``align_corners=False`` (pixel centres line up)."""
    return F.interpolate(maps.unsqueeze(1), size=tuple(size), mode="bilinear", align_corners=False).squeeze(1)


def cam(model: nn.Module, x: torch.Tensor, target=None, layer=None, relu: bool = False,
        upsample: bool = True) -> torch.Tensor:
    """Class activation map (Zhou, Khosla, Lapedriza, Oliva & Torralba, CVPR 2016)::

        y_c = sum_k w^c_k * (1/Z) sum_ij A^k_ij + b_c        (global average pooling + linear layer)
        CAM_c(i, j) = sum_k w^c_k A^k_ij                     (the part of y_c contributed at position (i, j))

    so ``y_c = mean_ij CAM_c(i, j) + b_c``. The bias ``b_c`` is left out: it belongs to no position.

    Args:
        model: classifier in eval mode whose logits are ``fc(GAP(A))``, ``A`` = ``layer``'s output, ``fc`` =
            ``model.fc`` or its last ``nn.Linear``. This is checked on ``x``: a model with anything else
            between ``A`` and the logits gets a ``ValueError`` (use :func:`grad_cam` there).
        x: images ``(B, C, H, W)``, float in ``[0, 1]``.
        target: class ``c``: ``None`` (default) = the predicted class, an int, or a LongTensor ``(B,)``.
        layer: name or module of the feature maps before pooling; ``None`` (default) = ``model.cam_layer``.
        relu: apply ReLU at the layer's resolution, before upsampling (default ``False``: CAM is signed).
        upsample: ``True`` (default) = bilinear (``align_corners=False``) to ``x``'s ``H x W``; ``False`` =
            the raw ``h x w`` map.

    Returns:
        ``(B, H, W)`` maps (or ``(B, h, w)``), detached, on ``x``'s device, not rescaled.
    """
    check_images(x)
    check_model(model, x)
    module = get_layer(model, layer)
    fc = final_linear(model)
    with torch.no_grad(), capture(module) as store:
        logits = check_logits(model(x), x.shape[0])
        target = target_from_logits(logits, target)
        a = _feature_maps(store, model, layer)
        if fc.in_features != a.shape[1]:
            raise ValueError(f"cam needs the layer feeding global average pooling + the final linear layer: "
                             f"the layer has {a.shape[1]} channels but the linear layer takes {fc.in_features} "
                             "features (use grad_cam for other layers)")
        if fc.out_features != logits.shape[1]:
            raise ValueError(f"cam needs the logits to come straight from the final linear layer, but it has "
                             f"{fc.out_features} outputs and the model {logits.shape[1]} (a wrapper such as "
                             "contrastive(model, a, b)? CAM is linear in the class: use "
                             "cam(model, x, a) - cam(model, x, b), or grad_cam on the wrapper)")
        # the defining property of a GAP + linear head: the logits are fc(mean of A over positions)
        pooled = fc(a.mean((2, 3)))
        tol = max(1e-4, 100 * torch.finfo(x.dtype).eps) * (1.0 + float(logits.abs().max()))
        err = float((pooled - logits).abs().max())
        if err > tol:
            raise ValueError("cam needs a model whose logits are fc(global average pool of the layer's output), "
                             f"but fc(mean(A)) differs from the logits by up to {err:.3g} "
                             "(is there a layer between the feature maps and the pooling? use grad_cam)")
        w = fc.weight[target].to(a.dtype)  # (B, K): w^c_k for each image's target class
        maps = torch.einsum("bk,bkij->bij", w, a)
    if relu:
        maps = maps.clamp_min(0)
    return _upsample(maps, x.shape[-2:]) if upsample else maps


def grad_cam(model: nn.Module, x: torch.Tensor, target=None, layer=None, upsample: bool = True) -> torch.Tensor:
    """Grad-CAM (Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra, ICCV 2017)::

        alpha^c_k = (1/Z) sum_ij  d y_c / d A^k_ij          (Z = h * w positions of the layer's maps)
        L^c = ReLU( sum_k alpha^c_k A^k )

    computed at the layer's ``h x w`` resolution, then upsampled bilinearly to the input's size, not rescaled
    (so maps of different images stay comparable; divide by ``.amax((1, 2))`` to plot on ``[0, 1]``).
    One forward and one backward pass for the whole batch; the backward pass starts at ``layer``.

    Args:
        model: classifier mapping ``[0, 1]`` images to logits, in eval mode; any architecture.
        x: images ``(B, C, H, W)``, float in ``[0, 1]``.
        target: class ``c``: ``None`` (default) = the predicted class, an int, or a LongTensor ``(B,)``.
        layer: name (e.g. ``"features.relu3"``) or module whose output ``A`` ``(B, K, h, w)`` is explained;
            ``None`` (default) = ``model.cam_layer``, the last feature maps (the paper's choice).
        upsample: ``True`` (default) = bilinear (``align_corners=False``) to ``x``'s ``H x W``; ``False`` =
            the raw ``h x w`` map.

    Returns:
        ``(B, H, W)`` non-negative maps (or ``(B, h, w)``), detached, on ``x``'s device.
    """
    a, grad = grad_cam_ingredients(model, x, target, layer)
    alpha = grad.mean((2, 3), keepdim=True)  # (B, K, 1, 1)
    maps = (alpha * a).sum(1).clamp_min(0)
    return _upsample(maps, x.shape[-2:]) if upsample else maps


def grad_cam_ingredients(model: nn.Module, x: torch.Tensor, target=None, layer=None):
    """The two ingredients of Grad-CAM at ``layer``: its feature maps and the target logit's gradient there::

        A = layer's output (B, K, h, w),      dA = d y_c / d A   (B, K, h, w)

    (``grad_cam`` is ``ReLU(sum_k mean_ij(dA^k) A^k)``.) One forward pass, and one backward pass that starts at
    ``layer``; no parameter's ``.grad`` is written and the hooks are removed, also on error.

    Args: as :func:`grad_cam` (``target=None`` = the predicted class, ``layer=None`` = ``model.cam_layer``).

    Returns:
        ``(A, dA)``, both detached, on ``x``'s device.
    """
    check_images(x)
    check_model(model, x)
    module = get_layer(model, layer)
    with graph_from(module) as store:
        logits = check_logits(model(x), x.shape[0])
        target = target_from_logits(logits, target)
        a = _feature_maps(store, model, layer)
        score = logits.gather(1, target[:, None]).sum()
        if not score.requires_grad:
            raise ValueError("the logits do not depend on the layer's output: choose a layer on the path to them")
        (grad,) = torch.autograd.grad(score, a)
    return a.detach(), grad.detach()


def peak_distance(maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """How far each map's maximum lies from a given point, in pixels (a distance version of the "pointing game"
    of Zhang et al., ECCV 2016)::

        d_b = || argmax_{(r, c)} maps[b, r, c]  -  points[b] ||_2

    Args:
        maps: ``(B, H, W)`` maps (ties: the first maximum in row-major order, as ``argmax``).
        points: ``(B, 2)`` positions ``(row, col)`` in pixel units, e.g. ``(r + 0.5, c + 0.5)`` for the centre
            of a 2 x 2 block whose top-left pixel is ``(r, c)``.

    Returns:
        ``(B,)`` float distances on ``maps``'s device.
    """
    if not isinstance(maps, torch.Tensor) or maps.dim() != 3:
        raise ValueError(f"maps must be a tensor (B, H, W), got {getattr(maps, 'shape', type(maps).__name__)}")
    points = torch.as_tensor(points)
    if points.shape != (maps.shape[0], 2):
        raise ValueError(f"points must be (B, 2) = ({maps.shape[0]}, 2) positions (row, col), got "
                         f"{tuple(points.shape)}")
    w = maps.shape[2]
    peak = maps.detach().flatten(1).argmax(1)
    rows_cols = torch.stack([peak // w, peak % w], 1).to(torch.float32)
    return (rows_cols - points.to(rows_cols.device, torch.float32)).norm(dim=1)
