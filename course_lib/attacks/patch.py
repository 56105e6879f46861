"""Adversarial patches (Brown, Mané, Roy, Abadi & Gilmer, "Adversarial Patch", 2017): instead of a small
change everywhere, a large change in one place. One patch, trained once, works on many images, anywhere
in them, and survives printing: a physical, universal, targeted attack.

The patch ``p`` is trained by *expectation over transformations* (Athalye et al., 2018)::

    p* = argmax_p  E_{x ~ X, l ~ L, t ~ T} [ log Pr( target | A(p, x, l, t) ) ]

where ``A`` pastes ``p`` into the image ``x`` at location ``l`` after a transformation ``t`` (here: a scale
and a rotation). The expectation is estimated by sampling a batch of images and transformations per step;
nothing bounds how much the patch differs from the image beneath it, except that it is an image (``[0, 1]``).

* :func:`train_patch`  the optimisation above, Adam on the patch's pixels, projected to ``[0, 1]``
* :func:`apply_patch`  paste a patch (exact pixel copy) at a chosen, central or random location
* :func:`patch_success`  how often it works: the targeted success rate at random places
* :func:`sample_transforms`  the random places, scales and rotations that one EOT step averages over
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .._batches import check_batch_size, logits_in_batches
from .._rng import generator, integers, uniform
from .._validate import check_count, check_images, check_model
from ._common import check_inputs, check_positive

__all__ = ["train_patch", "apply_patch", "place_patch", "patch_success", "sample_transforms"]


def _check_patch(patch: torch.Tensor, x: torch.Tensor) -> None:
    if not isinstance(patch, torch.Tensor) or patch.dim() != 3 or patch.shape[1] != patch.shape[2]:
        got = tuple(patch.shape) if isinstance(patch, torch.Tensor) else type(patch).__name__
        raise ValueError(f"patch must be a square image (C, s, s), got {got}")
    if patch.shape[0] != x.shape[1]:
        raise ValueError(f"patch has {patch.shape[0]} channels but the images have {x.shape[1]}")
    if patch.shape[1] > min(x.shape[2:]):
        raise ValueError(f"a {patch.shape[1]}x{patch.shape[1]} patch does not fit into {tuple(x.shape[2:])} images")
    if patch.device != x.device or patch.dtype != x.dtype:
        raise ValueError(f"patch is {patch.dtype} on {patch.device}, the images {x.dtype} on {x.device}: "
                         "move it with patch.to(x)")
    if not torch.isfinite(patch).all() or patch.min() < 0 or patch.max() > 1:
        raise ValueError("patch values must be in [0, 1]")


def apply_patch(x: torch.Tensor, patch: torch.Tensor, location=None, seed=None, scale: float = 1.0) -> torch.Tensor:
    """Paste ``patch`` into every image: ``x'[:, :, r:r+s, c:c+s] = patch``, every other pixel unchanged.

    Args:
        x: images ``(B, C, H, W)`` in ``[0, 1]``.
        patch: ``(C, s, s)`` in ``[0, 1]``, same dtype and device as ``x``.
        location: where the patch's top-left pixel goes: ``None`` (default) = the centre of the image,
            ``"random"`` = uniformly random per image with the patch entirely inside, ``(row, col)`` = the
            same place in every image, or a LongTensor ``(B, 2)`` of ``(row, col)`` per image.
        seed: the ``"random"`` locations' randomness: ``None`` (fresh, from torch's global RNG), an int or a
            ``torch.Generator`` (see :mod:`course_lib._rng`).
        scale: resize the patch to ``round(s * scale)`` pixels (bilinear, antialiased) before pasting
            (default 1: the patch as it is): "success rate vs patch size" without retraining.

    Returns:
        ``(B, C, H, W)`` new tensor (``x`` is not modified), detached.
    """
    check_images(x)
    scale = check_positive(scale, "scale")
    if isinstance(patch, torch.Tensor) and scale != 1.0 and patch.dim() == 3:
        side = max(1, round(patch.shape[-1] * scale))
        patch = F.interpolate(patch[None], size=(side, side), mode="bilinear", align_corners=False,
                              antialias=side < patch.shape[-1]).squeeze(0).clamp(0, 1)
    _check_patch(patch, x)
    b, _, h, w = x.shape
    s = patch.shape[-1]
    if location is None:
        rows = torch.full((b,), (h - s) // 2, dtype=torch.long)
        cols = torch.full((b,), (w - s) // 2, dtype=torch.long)
    elif isinstance(location, str):
        if location != "random":
            raise ValueError(f"location must be None, 'random', (row, col) or a (B, 2) tensor, got {location!r}")
        g = generator(seed)
        rows = integers(0, h - s + 1, (b,), g, "cpu")
        cols = integers(0, w - s + 1, (b,), g, "cpu")
    else:
        loc = torch.as_tensor(location).long().cpu()
        if loc.shape == (2,):
            loc = loc.expand(b, 2)
        if loc.shape != (b, 2):
            raise ValueError(f"location must be (row, col) or a ({b}, 2) tensor, got shape {tuple(loc.shape)}")
        rows, cols = loc[:, 0], loc[:, 1]
        if (rows < 0).any() or (cols < 0).any() or (rows > h - s).any() or (cols > w - s).any():
            raise ValueError(f"a {s}x{s} patch at {loc.tolist()} does not lie inside {h}x{w} images")
    out = x.detach().clone()
    for i, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
        out[i, :, r:r + s, c:c + s] = patch.detach()
    return out


def place_patch(x: torch.Tensor, patch: torch.Tensor, centre: torch.Tensor, scale: torch.Tensor,
                angle: torch.Tensor) -> torch.Tensor:
    """Paste ``patch`` scaled by ``scale`` and rotated by ``angle`` (radians) around ``centre`` (``(B, 2)``,
    ``(row, col)`` in pixels), one transformation per image; differentiable in ``patch``.

    Each output pixel ``P`` looks up the patch at ``R(-angle) (P - centre) / scale`` (bilinear, via
    ``affine_grid``/``grid_sample``); the same lookup of an all-ones image gives the patch's coverage ``m``, so
    ``x' = (1 - m) x + m p`` with soft edges. No checks: this is the inner loop of :func:`train_patch`.
    """
    b, c, h, w = x.shape
    s = patch.shape[-1]
    cos, sin = torch.cos(angle), torch.sin(angle)
    k = 2.0 / (scale * s)
    # output coords u in [-1, 1] -> pixels P = (u + 1) * size / 2 (x = column, y = row, as affine_grid wants);
    # patch coords v = k R(-angle) (P - C), with k = 2 / (scale * s)
    dx, dy = w / 2 - centre[:, 1], h / 2 - centre[:, 0]
    row_x = torch.stack([cos * w / 2, sin * h / 2, cos * dx + sin * dy], 1)
    row_y = torch.stack([-sin * w / 2, cos * h / 2, -sin * dx + cos * dy], 1)
    a = torch.stack([row_x, row_y], 1) * k[:, None, None]
    grid = F.affine_grid(a.to(x.dtype), [b, c + 1, h, w], align_corners=False)
    src = torch.cat([patch, torch.ones_like(patch[:1])], 0).expand(b, -1, -1, -1)
    warped = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    painted, mask = warped[:, :c], warped[:, c:]
    return x * (1 - mask) + painted  # painted already carries the coverage weights (zero padding)


def _random_transforms(b: int, h: int, w: int, s: int, scale_range, max_angle: float, g: torch.Generator,
                       device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image: a scale ~ U(scale_range), an angle ~ U(-max_angle, max_angle) and a centre such that the
    rotated, scaled patch lies inside the image (uniform over those centres)."""
    u = uniform((b, 4), g, device)
    scale = scale_range[0] + (scale_range[1] - scale_range[0]) * u[:, 0]
    angle = (2 * u[:, 1] - 1) * max_angle
    half = scale * s / 2 * (angle.cos().abs() + angle.sin().abs())  # half-width of the rotated square's box
    lo_r, hi_r = half, (h - half).clamp(min=half)
    lo_c, hi_c = half, (w - half).clamp(min=half)
    centre = torch.stack([lo_r + (hi_r - lo_r) * u[:, 2], lo_c + (hi_c - lo_c) * u[:, 3]], 1)
    return centre, scale, angle


def train_patch(model: nn.Module, x: torch.Tensor, target: int, size: int, steps: int, seed=None,
                batch_size: int = 16, lr: float = 0.02, scale_range=(0.8, 1.2), max_angle: float = 22.5,
                init: torch.Tensor | None = None, history: list | None = None,
                progress: bool = True) -> torch.Tensor:
    """Train a universal targeted patch (Brown et al., 2017) by expectation over transformations::

        p  <-  Proj_[0,1]( Adam step on  -(1/n) sum_i log softmax( f( A(p, x_i, l_i, t_i) ) )_target )

    Each step draws ``batch_size`` images from ``x`` (with replacement) and, for each, a scale in
    ``scale_range``, a rotation in ``[-max_angle, max_angle]`` degrees and a location where the whole patch
    fits; :func:`place_patch` pastes the patch differentiably, and only the patch is updated (the model's
    parameters get no gradient).

    Args:
        model: classifier on ``[0, 1]`` images, in eval mode, on ``x``'s device.
        x: training images ``(N, C, H, W)`` in ``[0, 1]`` (the patch should work on other images too: evaluate
            it on held-out ones).
        target: the class the patch should make the model predict.
        size: side ``s`` of the square patch in pixels (before the random scaling).
        steps: number of Adam steps (each: one forward and one backward pass on ``batch_size`` images).
        seed: the initial patch, the images and the transformations drawn: ``None`` (fresh, from torch's global
            RNG), an int or a ``torch.Generator`` (see :mod:`course_lib._rng`).
        batch_size: images (each with its own transformation) per step (default 16).
        lr: Adam's learning rate in pixel units (default 0.02).
        scale_range: ``(low, high)`` factors applied to ``size`` (default ``(0.8, 1.2)``).
        max_angle: largest rotation in degrees (default 22.5).
        init: optional starting patch ``(C, s, s)`` in ``[0, 1]``; default uniform noise from ``seed``.
        history: optional list; one dict per step is appended: ``{"loss": ..., "success": ...}`` (the fraction of
            the step's batch classified as ``target``).
        progress: show a tqdm bar (default ``True``).

    Returns:
        the patch ``(C, s, s)`` in ``[0, 1]``, detached, on ``x``'s device.
    """
    check_images(x)
    check_model(model, x)
    k = check_inputs(model, x[:1], torch.zeros(1, dtype=torch.long, device=x.device))
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < k:
        raise ValueError(f"target must be a class index in [0, {k}), got {target!r}")
    size = check_count(size, "size", minimum=1)
    if size > min(x.shape[2:]):
        raise ValueError(f"a {size}x{size} patch does not fit into {tuple(x.shape[2:])} images")
    steps = check_count(steps, "steps")
    batch_size = check_count(batch_size, "batch_size", minimum=1)
    lr = check_positive(lr, "lr")
    lo, hi = (float(v) for v in scale_range)
    if not 0 < lo <= hi:
        raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range!r}")
    if not math.isfinite(max_angle) or max_angle < 0:
        raise ValueError(f"max_angle must be a finite number of degrees >= 0, got {max_angle!r}")
    n, c, h, w = x.shape
    g = generator(seed)
    if init is None:
        patch = uniform((c, size, size), g).to(x)
    else:
        _check_patch(init, x)
        if init.shape[-1] != size:
            raise ValueError(f"init is {init.shape[-1]}x{init.shape[-1]} but size is {size}")
        patch = init.detach().clone()
    patch.requires_grad_(True)
    opt = torch.optim.Adam([patch], lr=lr)
    labels = torch.full((batch_size,), target, dtype=torch.long, device=x.device)
    bar = tqdm(range(steps), desc=f"patch -> class {target}", disable=not progress, leave=False)
    for _ in bar:
        idx = integers(0, n, (batch_size,), g, x.device)
        centre, scale, angle = _random_transforms(batch_size, h, w, size, (lo, hi), math.radians(max_angle), g,
                                                  x.device)
        with torch.enable_grad():
            logits = model(place_patch(x[idx].detach(), patch, centre.to(x.dtype), scale.to(x.dtype),
                                       angle.to(x.dtype)))
            loss = F.cross_entropy(logits, labels)
            (grad,) = torch.autograd.grad(loss, patch)
        patch.grad = grad
        opt.step()
        with torch.no_grad():
            patch.clamp_(0, 1)  # projection onto the valid images
        hit = (logits.argmax(1) == target).float().mean().item()
        if history is not None:
            history.append({"loss": loss.item(), "success": hit})
        bar.set_postfix(loss=f"{loss.item():.3f}", hit=f"{hit:.2f}")
    return patch.detach()


@torch.no_grad()
def patch_success(model: nn.Module, x: torch.Tensor, patch: torch.Tensor, target: int, places: int = 10,
                  seed: int = 0, scale: float = 1.0, batch_size: int | None = None) -> float:
    """The fraction of (image, place) pairs that ``model`` classifies as ``target`` with ``patch`` pasted::

        (1 / (N * places)) * sum_{i, r} [ argmax f(apply_patch(x_i, patch, "random", seed + r, scale)) == target ]

    ``places`` random places per image, from the seeds ``seed, seed + 1, ...`` (the same places for every patch
    compared with the same seeds). Measure it on images the patch was not trained on, and compare with a random
    patch of the same size: that separates the attack from occlusion. ``batch_size``: images per forward pass,
    ``None`` (default) = about 2^20 input values (6 photos).
    """
    check_model(model, x)
    places = check_count(places, "places", minimum=1)
    check_batch_size(batch_size, x)
    hits = 0
    for r in range(places):
        xp = apply_patch(x, patch, location="random", seed=seed + r, scale=scale)
        hits += int((logits_in_batches(model, xp, batch_size).argmax(1) == target).sum())
    return hits / (x.shape[0] * places)


def sample_transforms(n: int, height: int, width: int, size: int, scale_range=(0.8, 1.2), max_angle: float = 22.5,
                      seed=None, device="cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The random transformations of one EOT step, as :func:`train_patch` draws them, for :func:`place_patch`::

        scale_i ~ U(scale_range),  angle_i ~ U(-max_angle, max_angle) (degrees, returned in radians),
        centre_i ~ uniform over the centres where the rotated, scaled s x s patch lies inside the image

    Args:
        n: how many transformations (one per image).
        height, width: the images' size in pixels.
        size: the patch's side ``s`` in pixels before scaling.
        scale_range: ``(low, high)`` with ``0 < low <= high`` (default ``(0.8, 1.2)``).
        max_angle: largest rotation in degrees, ``>= 0`` (default 22.5).
        seed: ``None`` (fresh, from torch's global RNG), an int or a ``torch.Generator``.
        device: where the tensors go (default ``"cpu"``).

    Returns:
        ``(centres (n, 2) as (row, col) in pixels, scales (n,), angles (n,) in radians)``, float32.
    """
    n = check_count(n, "n", minimum=1)
    height, width, size = (check_count(v, k, minimum=1) for v, k in ((height, "height"), (width, "width"),
                                                                      (size, "size")))
    lo, hi = (float(v) for v in scale_range)
    if not 0 < lo <= hi:
        raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range!r}")
    if not math.isfinite(max_angle) or max_angle < 0:
        raise ValueError(f"max_angle must be a finite number of degrees >= 0, got {max_angle!r}")
    g = generator(seed)
    centre, scale, angle = _random_transforms(n, height, width, size, (lo, hi), math.radians(max_angle), g, "cpu")
    return centre.to(device), scale.to(device), angle.to(device)
