"""How good is an explanation? Numbers that can be computed without a ground truth.

* fidelity: :func:`deletion_auc`, :func:`insertion_auc` (Petsiuk et al., RISE, BMVC 2018): remove (or add)
  the pixels the map calls most important first and watch the class score fall (or rise);
* stability: :func:`max_sensitivity` (Yeh et al., NeurIPS 2019): how much the map changes when x barely does;
* sanity: :func:`randomization_check` (Adebayo et al., NeurIPS 2018): a map that does not change when the
  model's weights are destroyed does not explain the model;
* consistency and concentration: :func:`rank_correlation` (Spearman) and :func:`selectivity`;
* cost: :func:`time_per_image`;
* a reference row: :func:`edge_map`, an "explanation" that never looks at the model.
"""
from __future__ import annotations

import copy
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import check_images, check_in
from ._common import gaussian_blur, get_layer, prepare

__all__ = ["deletion_auc", "insertion_auc", "max_sensitivity", "randomization_check", "rank_correlation",
           "selectivity", "time_per_image", "edge_map"]


# --------------------------------------------------------------------------- deletion / insertion
def _pixel_scores(attribution, x: torch.Tensor) -> torch.Tensor:
    """Attribution as one score per pixel (B, H*W): (B, H, W) as is, (B, C, H, W) summed over channels."""
    b, _, h, w = x.shape
    if not isinstance(attribution, torch.Tensor):
        raise TypeError(f"attribution must be a tensor (B, H, W) or (B, C, H, W), got {type(attribution).__name__}")
    a = attribution.detach()
    if a.dim() == 4:
        a = a.sum(1)
    if a.dim() != 3 or tuple(a.shape) != (b, h, w):
        raise ValueError(f"attribution must have shape ({b}, {h}, {w}) or ({b}, C, {h}, {w}) to match x "
                         f"{tuple(x.shape)}, got {tuple(attribution.shape)}")
    if not torch.isfinite(a).all():
        raise ValueError("attribution contains NaN or infinite values")
    return a.reshape(b, h * w).to(device=x.device, dtype=torch.float64)


def _fill(value, x: torch.Tensor, name: str, blur_sigma: float) -> torch.Tensor:
    """The image that replaces (deletion) or starts (insertion): a float, a tensor broadcastable to x, or "blur"."""
    if isinstance(value, str):
        check_in(value, {"blur"}, name)
        return gaussian_blur(x, blur_sigma)
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise TypeError(f"{name} must be a float, a tensor or 'blur', got {type(value).__name__}")
    v = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    try:
        v = torch.broadcast_to(v, x.shape)
    except RuntimeError:
        raise ValueError(f"{name} must broadcast to x's shape {tuple(x.shape)}, got shape {tuple(v.shape)}") from None
    if not torch.isfinite(v).all() or float(v.min()) < 0 or float(v.max()) > 1:
        raise ValueError(f"{name} must have values in [0, 1] (the model's input range)")
    return v


def _perturbation_curve(model, x, attribution, target, steps, fill, insert, output, batch_size, blur_sigma,
                        return_curves):
    target = prepare(model, x, target)
    check_in(output, {"probability", "logit"}, "output")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    scores = _pixel_scores(attribution, x)
    b, c, h, w = x.shape
    n = h * w
    other = _fill(fill, x, "start" if insert else "baseline", blur_sigma)
    # rank[b, p] = position of pixel p in the order "most important first"; a stable sort of -score breaks
    # ties by pixel index (row-major), so the result never depends on the sorting algorithm
    order = torch.sort(-scores, dim=1, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n, device=x.device).expand(b, n))
    # stage k changes the first round(k n / steps) pixels of the order: steps equal stages
    counts = torch.tensor([round(k * n / steps) for k in range(steps + 1)], device=x.device)

    curves = torch.empty(b * (steps + 1), dtype=x.dtype, device=x.device)
    with torch.no_grad():
        for start in range(0, b * (steps + 1), batch_size):
            idx = torch.arange(start, min(start + batch_size, b * (steps + 1)), device=x.device)
            img, stage = idx // (steps + 1), idx % (steps + 1)
            changed = (rank[img] < counts[stage][:, None]).view(-1, 1, h, w)  # True = already deleted/inserted
            if insert:
                batch = torch.where(changed, x[img], other[img])
            else:
                batch = torch.where(changed, other[img], x[img])
            logits = model(batch)
            values = logits.softmax(1) if output == "probability" else logits
            curves[idx] = values.gather(1, target[img][:, None]).squeeze(1).to(x.dtype)
    curves = curves.view(b, steps + 1)
    auc = torch.trapezoid(curves, dx=1.0 / steps, dim=1)
    return (auc, curves) if return_curves else auc


def deletion_auc(model: nn.Module, x: torch.Tensor, attribution: torch.Tensor, target=None, steps: int = 25, *,
                 baseline=0.0, output: str = "probability", batch_size: int = 64, blur_sigma: float = 5.0,
                 return_curves: bool = False):
    """Deletion metric of RISE (Petsiuk, Das & Saenko, BMVC 2018): lower is better.

    Pixels are ranked by the attribution (most important first). Stage k = 0..steps sets the first
    n_k = round(k N / steps) of the N pixels (all channels) to the baseline, and records
    p_k = softmax(model(x_k))[target]. With fractions f_k = k / steps::

        AUC = sum_k (f_{k+1} - f_k) (p_k + p_{k+1}) / 2        (trapezoid rule over [0, 1])

    A faithful map removes the evidence first, so the score drops fast and the area is small.

    Args:
        model: classifier in eval mode taking [0, 1] images.
        x: images (B, C, H, W) in [0, 1].
        attribution: (B, H, W) or (B, C, H, W) (summed over channels, signed), larger = more important.
            Ties are broken by pixel index (row-major), deterministically.
        target: class per image; None = the class the model predicts for x.
        steps: number of equal stages (default 25: 4% of the pixels each); the curve has steps + 1 points.
        baseline: what deleted pixels become: a float (default 0: black), a tensor broadcastable to x, or
            ``"blur"`` (a Gaussian-blurred copy of x with ``blur_sigma``).
        output: ``"probability"`` (softmax of the target, default, as in RISE) or ``"logit"``.
        batch_size: perturbed images per forward pass (default 64). No gradients are computed.
        blur_sigma: sigma in pixels of the ``"blur"`` image (default 5, as in RISE at 224 x 224).
        return_curves: also return the curves (B, steps + 1), point k at fraction k / steps.

    Returns:
        AUC (B,) detached on x's device, or ``(auc, curves)``. The curve starts at the score of x itself.
    """
    return _perturbation_curve(model, x, attribution, target, steps, baseline, False, output, batch_size,
                               blur_sigma, return_curves)


def insertion_auc(model: nn.Module, x: torch.Tensor, attribution: torch.Tensor, target=None, steps: int = 25, *,
                  start="blur", output: str = "probability", batch_size: int = 64, blur_sigma: float = 5.0,
                  return_curves: bool = False):
    """Insertion metric of RISE (Petsiuk, Das & Saenko, BMVC 2018): higher is better.

    The mirror of :func:`deletion_auc`: stage k = 0..steps starts from ``start`` (default: a blurred copy of x,
    so the image does not start out of distribution) and puts back the first n_k = round(k N / steps) pixels
    of x in order of importance; p_k = softmax(model(x_k))[target]; AUC by the trapezoid rule over
    f_k = k / steps in [0, 1]. A faithful map restores the evidence first, so the score rises fast.

    Args: as :func:`deletion_auc`, with ``start`` (a float, a tensor broadcastable to x, or ``"blur"``,
    the default) in place of ``baseline``.

    Returns:
        AUC (B,) detached on x's device, or ``(auc, curves)``. The curve ends at the score of x itself.
    """
    return _perturbation_curve(model, x, attribution, target, steps, start, True, output, batch_size,
                               blur_sigma, return_curves)


# --------------------------------------------------------------------------- stability
def max_sensitivity(explain_fn, x: torch.Tensor, radius: float = 0.02, n_samples: int = 10, seed=None):
    """Max-sensitivity (Yeh, Hsieh, Suggala, Inouye & Ravikumar, NeurIPS 2019), normalised::

        SENS_max(x) = max_{j=1..n_samples} || Phi(x + d_j) - Phi(x) ||_2 / || Phi(x) ||_2,
        d_j ~ Uniform[-radius, radius]^(C x H x W), x + d_j clipped to [0, 1]

    Lower is more stable. Dividing by ||Phi(x)|| makes methods with maps of different scale comparable; Yeh et
    al. define the unnormalised change, Captum's ``sensitivity_max`` divides by the clean map's norm as here
    (it does not clip ``x + d_j``, and divides by 1 where ``Phi(x) = 0``). Here 0/0 counts as 0 and c/0 (c > 0)
    as inf.

    Args:
        explain_fn: ``explain_fn(images) -> attribution`` of shape (B, ...). It is called on perturbed images,
            so fix the target to the clean image's class yourself, e.g.
            ``t = model(x).argmax(1); explain_fn = lambda z: saliency(model, z, target=t)``;
            otherwise a perturbation that flips the prediction explains another class.
        x: images (B, C, H, W) in [0, 1].
        radius: half-width of the L-infinity ball of perturbations (default 0.02, about 5/255).
        n_samples: number of random perturbations, each one call of explain_fn on the whole batch (default 10).
        seed: seeds a private generator (same seed, same perturbations); None draws a fresh one.

    Returns:
        (B,) detached on x's device.
    """
    check_images(x)
    if not (isinstance(radius, (int, float)) and radius >= 0):
        raise ValueError(f"radius must be a non-negative number, got {radius!r}")
    if not isinstance(n_samples, int) or isinstance(n_samples, bool) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    gen = torch.Generator().manual_seed(int(seed) if seed is not None else int(torch.Generator().seed()))
    b = x.shape[0]

    def explain(z):
        a = explain_fn(z)
        if not isinstance(a, torch.Tensor) or a.dim() < 1 or a.shape[0] != b:
            raise ValueError(f"explain_fn must return a tensor (B, ...) with B = {b}, got "
                             f"{tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__}")
        return a.detach().reshape(b, -1).double()

    phi = explain(x.clone())
    norm = phi.norm(dim=1)
    worst = torch.zeros(b, dtype=torch.float64, device=phi.device)
    for _ in range(n_samples):
        # drawn on the CPU so the same seed gives the same perturbations on every device
        delta = (2 * torch.rand(x.shape, generator=gen, dtype=torch.float64) - 1) * radius
        z = (x + delta.to(device=x.device, dtype=x.dtype)).clamp(0, 1)
        diff = explain(z)
        if diff.shape != phi.shape:
            raise ValueError(f"explain_fn returned shape {tuple(diff.shape)} on a perturbed x but "
                             f"{tuple(phi.shape)} on x")
        diff = (diff - phi).norm(dim=1)
        ratio = torch.where(norm > 0, diff / norm.clamp_min(1e-300),
                            torch.where(diff > 0, torch.full_like(diff, math.inf), torch.zeros_like(diff)))
        worst = torch.maximum(worst, ratio)
    return worst.to(device=x.device, dtype=x.dtype)


# --------------------------------------------------------------------------- rank statistics
def _average_ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 1..N of each row of ``v`` (B, N), tied values sharing the average of their ranks (as scipy)."""
    b, n = v.shape
    sorted_v, order = torch.sort(v, dim=1, stable=True)
    new_group = torch.ones_like(sorted_v, dtype=torch.bool)
    new_group[:, 1:] = sorted_v[:, 1:] != sorted_v[:, :-1]
    group = new_group.cumsum(1) - 1 + torch.arange(b, device=v.device)[:, None] * n  # unique id per row
    pos = torch.arange(1, n + 1, device=v.device, dtype=torch.float64).expand(b, n).reshape(-1)
    # a group of ties occupies consecutive positions first..last: each gets (first + last) / 2
    first = torch.full((b * n,), math.inf, dtype=torch.float64, device=v.device)
    last = torch.full((b * n,), -math.inf, dtype=torch.float64, device=v.device)
    first.scatter_reduce_(0, group.reshape(-1), pos, reduce="amin")
    last.scatter_reduce_(0, group.reshape(-1), pos, reduce="amax")
    avg = ((first + last) / 2)[group.reshape(-1)].view(b, n)
    ranks = torch.empty_like(avg)
    ranks.scatter_(1, order, avg)
    return ranks


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation per image between two maps of equal shape (B, ...) (Spearman, 1904)::

        rho = Pearson(rank(a), rank(b)),   ties get the average of their ranks

    as ``scipy.stats.spearmanr``. 1: same order of importance; 0: unrelated; NaN where a map is constant
    (its ranks have no variance), as scipy.

    Returns:
        (B,) detached on a's device, dtype float64 arithmetic cast to a's float dtype (float32 for integers).
    """
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor) or t.dim() < 2:
            raise ValueError(f"{name} must be a tensor (B, ...) with at least one value per image, got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.device != b.device:
        raise ValueError(f"a is on {a.device} and b on {b.device}: put both on one device")
    if a[0].numel() < 2:
        raise ValueError("a rank correlation needs at least 2 values per image")
    ra = _average_ranks(a.detach().reshape(a.shape[0], -1).double())
    rb = _average_ranks(b.detach().reshape(b.shape[0], -1).double())
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    rho = (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))
    return rho.to(a.dtype if a.is_floating_point() else torch.float32)


def selectivity(attribution: torch.Tensor, top: float = 0.05) -> torch.Tensor:
    """Fraction of the attribution mass in the most important pixels::

        S = sum of the k largest |a_p|  /  sum_p |a_p|,   k = ceil(top * N),  N pixels

    where a_p is the attribution of pixel p (channels summed first for (B, C, H, W)). 1: all mass in the
    top pixels (a focused map); ``top``: spread evenly. NaN for an all-zero map.

    Args:
        attribution: (B, ...) maps: (B, H, W), (B, C, H, W) (summed over channels), or any (B, N).
        top: fraction of the pixels counted (default 0.05), in (0, 1].

    Returns:
        (B,) detached on the attribution's device.
    """
    if not isinstance(attribution, torch.Tensor) or attribution.dim() < 2:
        raise ValueError("attribution must be a tensor (B, ...) such as (B, H, W) or (B, C, H, W)")
    if not (isinstance(top, (int, float)) and 0 < top <= 1):
        raise ValueError(f"top must be a fraction in (0, 1], got {top!r}")
    a = attribution.detach()
    a = a.sum(1) if a.dim() == 4 else a
    mass = a.reshape(a.shape[0], -1).abs().double()
    k = max(1, math.ceil(top * mass.shape[1] - 1e-9))
    s = mass.topk(k, dim=1).values.sum(1) / mass.sum(1)
    return s.to(a.dtype if a.is_floating_point() else torch.float32)


# --------------------------------------------------------------------------- sanity check
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
            fresh = (2 * torch.rand(p.shape, generator=gen, dtype=torch.float64) - 1) * bound
            p.copy_(fresh.to(device=p.device, dtype=p.dtype))


def randomization_check(model: nn.Module, x: torch.Tensor, explain_fn, target=None, layers=None, seed: int = 0,
                        *, absolute: bool = True) -> dict:
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
        seed: seeds the fresh weights (default 0).
        absolute: correlate |maps| (default True, as in the paper: the sign of a gradient is unstable).

    Returns:
        ``{"layers": [names in the order randomised], "correlation": (L, B) tensor on x's device}``.
    """
    target = prepare(model, x, target)
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

    def explain(m):
        a = explain_fn(m, x.clone(), target=target)
        if not isinstance(a, torch.Tensor) or a.dim() < 2 or a.shape[0] != x.shape[0]:
            raise ValueError(f"explain_fn must return a tensor (B, ...) with B = {x.shape[0]}")
        a = a.detach()
        return a.abs() if absolute else a

    reference = explain(model)
    randomised = copy.deepcopy(model)
    name_of = {id(m): n for n, m in model.named_modules()}
    gen = torch.Generator().manual_seed(int(seed))
    rows = []
    for _name, mods in steps:
        for mod in mods:
            _reinitialise(randomised.get_submodule(name_of[id(mod)]), gen)
        rows.append(rank_correlation(reference, explain(randomised)).to(x.device))
    return {"layers": [name for name, _ in steps], "correlation": torch.stack(rows)}


# --------------------------------------------------------------------------- cost
def time_per_image(fn, x: torch.Tensor, repeats: int = 3, warmup: int = 1) -> float:
    """Wall-clock seconds per image of ``fn(x)``: the median over ``repeats`` runs of time(fn(x)) / B.

    ``warmup`` untimed runs come first (one-off costs: caches, lazy initialisation). On CUDA the device is
    synchronised before and after each run, since kernels run asynchronously.
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] == 0:
        raise ValueError("x must be a non-empty batch tensor (B, ...)")
    if not isinstance(repeats, int) or repeats < 1 or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats!r} and {warmup!r}")
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn(x)
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / x.shape[0]


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
