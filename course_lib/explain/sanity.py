"""Sanity: does the map depend on the model at all?

* :func:`randomization_check`  cascading randomisation of the weights (Adebayo et al., NeurIPS 2018)
* :func:`edge_map`  the reference row: an "explanation" that never looks at the model (it passes any such check
  by construction, and many saliency maps look like it)
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from .._rng import generator, uniform
from .._validate import check_images
from ._common import get_layer, prepare_target
from .stability import rank_correlation

__all__ = ["randomization_check", "edge_map"]


def _layer_groups(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """Modules with their own parameters in registration order (the forward order of the course's models),
    a normalisation layer grouped with the conv or linear layer before it: [(name of that layer, [modules])]."""
    norms = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    groups: list[tuple[str, list[nn.Module]]] = []
    for name, mod in model.named_modules():
        if not any(True for _ in mod.parameters(recurse=False)):
            continue
        if isinstance(mod, norms) and groups:
            groups[-1][1].append(mod)
        else:
            groups.append((name, [mod]))
    return groups


def _reinitialise(module: nn.Module, gen: torch.Generator) -> None:
    """Fresh weights for one module, from ``gen`` (the global RNG is left alone).

    Normalisation layers are reset (scale 1, shift 0, running mean 0, variance 1); other parameters are drawn
    from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default scale for conv and linear layers.
    """
    norms = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    with torch.no_grad():
        if isinstance(module, norms):
            module.reset_parameters()
            return
        weight = getattr(module, "weight", None)
        for p in module.parameters(recurse=False):
            ref = weight if isinstance(weight, torch.Tensor) and weight.dim() >= 2 else p
            fan_in = ref[0].numel() if ref.dim() >= 2 else ref.numel()
            bound = 1.0 / math.sqrt(max(fan_in, 1))
            fresh = (2 * uniform(p.shape, gen, dtype=torch.float64) - 1) * bound
            p.copy_(fresh.to(p.dtype).to(p.device))  # drawn in float64 on the CPU: the same weights on any device


def randomization_check(model: nn.Module, x: torch.Tensor, explain_fn, target=None, layers=None, seed: int = 0,
                        *, absolute: bool = True, return_maps: bool = False) -> dict:
    """Cascading model-parameter randomisation test (Adebayo et al., "Sanity Checks for Saliency Maps",
    NeurIPS 2018).

    Starting from the output, one more layer of a copy of the model gets fresh random weights at each step
    l = 1..L, and the map is recomputed for the same images and the same target classes::

        rho_l = Spearman( |E(model, x)|, |E(model with layers 1..l randomised, x)| )    per image

    A map that explains the model must change: rho falls toward 0. A map that stays (rho near 1) shows
    the input, not what the model learnt (an edge detector passes this "test" of looking plausible).

    Args:
        model: classifier in eval mode; never modified (the randomised models are deep copies).
        x: images (B, C, H, W) in [0, 1].
        explain_fn: ``explain_fn(model, x, target=t) -> (B, ...)`` with t a LongTensor (B,); the
            library's methods fit directly, e.g. ``saliency`` or ``lambda m, x, target: grad_cam(m, x, target,
            layer="features")``. The target is held fixed at the original model's classes, as in the paper.
        target: class per image; None = the class the original model predicts.
        layers: names (or modules) to randomise, in order, each with all its parameters; None = every module
            with parameters, a batch-norm grouped with the conv or linear layer before it, from the output
            back (for SmallCNN: fc, features.conv5 (+bn5), ..., features.conv1 (+bn1)).
        seed: the fresh weights' randomness (default 0; ``None`` or a ``torch.Generator`` too, see
            :mod:`course_lib._rng`); drawn on the CPU, so the same seed gives the same weights on every device.
        absolute: correlate |maps| (default True, as in the paper: the sign of a gradient is unstable).
        return_maps: also return the maps themselves (default False), to look at the cascade: under ``"maps"``
            a list of L + 1 tensors, ``maps[0]`` for the original model and ``maps[l]`` with layers 1..l
            randomised, each as ``explain_fn`` returned it (detached, before any ``abs``).

    Returns:
        ``{"layers": [names in the order randomised], "correlation": (L, B) tensor on x's device}``, plus
        ``"maps"`` with ``return_maps=True``.
    """
    target = prepare_target(model, x, target)
    if layers is None:
        steps = [(name, mods) for name, mods in reversed(_layer_groups(model))]
    else:
        if isinstance(layers, (str, nn.Module)):
            layers = [layers]
        steps = []
        for layer in layers:
            mod = get_layer(model, layer)
            name = layer if isinstance(layer, str) else next(n for n, m in model.named_modules() if m is mod)
            steps.append((name, [m for m in mod.modules() if any(True for _ in m.parameters(recurse=False))]))
    if not steps:
        raise ValueError("the model has no layers with parameters to randomise")

    maps = []

    def explain(m):
        a = explain_fn(m, x.clone(), target=target)
        if not isinstance(a, torch.Tensor) or a.dim() < 2 or a.shape[0] != x.shape[0]:
            raise ValueError(f"explain_fn must return a tensor (B, ...) with B = {x.shape[0]}")
        a = a.detach()
        if return_maps:
            maps.append(a)
        return a.abs() if absolute else a

    reference = explain(model)
    randomised = copy.deepcopy(model)
    name_of = {id(m): n for n, m in model.named_modules()}
    gen = generator(seed)
    rows = []
    for _name, mods in steps:
        for mod in mods:
            _reinitialise(randomised.get_submodule(name_of[id(mod)]), gen)
        rows.append(rank_correlation(reference, explain(randomised)).to(x.device))
    result = {"layers": [name for name, _ in steps], "correlation": torch.stack(rows)}
    if return_maps:
        result["maps"] = maps
    return result


# --------------------------------------------------------------------------- a reference that ignores the model
def edge_map(model, x: torch.Tensor, target=None) -> torch.Tensor:
    """Sobel edge magnitude of the *image*, per channel (the edge-detector reference of Adebayo et al., 2018)::

        E = sqrt( (K_x * x)^2 + (K_y * x)^2 ),   K_x = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],  K_y = K_x^T

    (``*`` = 2-D cross-correlation, zero padding of 1). ``model`` and ``target`` are accepted and ignored, so it
    plugs in wherever an ``explain(model, x, target)`` goes: a map that scores well on a metric although it knows
    nothing of the model shows what the metric cannot see (it passes any model-randomisation check, and many
    saliency maps look like it).

    Returns:
        ``(B, C, H, W)``, ``>= 0``, on ``x``'s device.
    """
    check_images(x)
    c = x.shape[1]
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype)
    kernels = torch.stack([kx, kx.T])[:, None].repeat(c, 1, 1, 1)  # (2C, 1, 3, 3): K_x, K_y for each channel
    g = F.conv2d(x.detach(), kernels, padding=1, groups=c)          # (B, 2C, H, W): gx_0, gy_0, gx_1, ...
    return g.view(x.shape[0], c, 2, *x.shape[2:]).pow(2).sum(2).sqrt()
