"""Blind baselines: what an attacker gets inside the same budget *without* looking at the model's gradients.

An attack's accuracy-under-attack means something only next to these numbers. If a constant shift of every pixel
by ``+eps`` already breaks the model, a gradient attack at that ``eps`` measures the model's brittleness, not the
attack. Every candidate below is a perturbation inside the attack's ball ``{x' : ||x' - x|| <= eps} ∩ [0, 1]^n``,
chosen without the model:

==================  ==========================================================================================
name                x' (``n`` = number of input values per image, clip = to ``[0, 1]``)
==================  ==========================================================================================
``shift +eps``      clip(x + eps)            L-inf;   clip(x + eps / sqrt(n))  L2 (a uniform shift of L2 norm eps)
``shift -eps``      clip(x - eps)            L-inf;   clip(x - eps / sqrt(n))  L2
``random noise``    clip(x + eps s), s uniform in {-1, +1}^n (L-inf);  clip(x + eps g / ||g||_2), g ~ N(0, I) (L2);
                    the fraction of ``draws`` that leave the image correct (:func:`.noise_success_rate`)
``corruptions``     c(x) from :mod:`course_lib.corruptions` (brightness, contrast, Gaussian noise, Gaussian blur
                    at a few severities) projected onto the ball: x + Pi(c(x) - x), clipped; an image counts as
                    correct only if *every* projected corruption leaves it correct (the best corruption per image)
``best blind``      correct only if every candidate above leaves it correct, every random draw included: a
                    gradient-free "attack" of ``2 + len(corruptions) * len(severities) + draws`` queries per image
==================  ==========================================================================================

The projection ``Pi`` onto the L-inf ball clamps each value of ``delta`` to ``[-eps, eps]``; onto the L2 ball it
rescales ``delta`` to norm ``eps`` when it is longer. Clipping ``x + delta`` to ``[0, 1]`` only shortens ``delta``
(``x`` itself lies in ``[0, 1]``), so the result stays in the ball.

* :func:`project_to_ball`     the projection above
* :func:`blind_baselines`     per image: still correct under each baseline, at one ``eps``
* :func:`baseline_sweep`      accuracy under each baseline for a list of ``eps``: the curves to draw beside an
  attack's robustness curve (``course_lib.plot.plot_curves(..., baselines=...)``)

Compare an attack with its baselines on the same images per image (``per_image=True`` gives the 0/1 values), with
:func:`course_lib.stats.paired_bootstrap`.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .._rng import generator, integers
from .._validate import check_images, check_in, check_labels, check_model
from ..corruptions import CORRUPTIONS, corrupt
from .evaluate import noise_success_rate, success_mask
from .pgd import project_l2, project_linf

__all__ = ["BLIND_CORRUPTIONS", "project_to_ball", "blind_baselines", "baseline_sweep"]

#: the corruptions that :func:`blind_baselines` projects onto the ball by default
BLIND_CORRUPTIONS = ("brightness", "contrast", "gaussian_noise", "gaussian_blur")
#: the severities of each (1 = mildest, 5 = strongest; see :mod:`course_lib.corruptions`)
BLIND_SEVERITIES = (1, 3, 5)


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    return float(eps)


def project_to_ball(x: torch.Tensor, x_other: torch.Tensor, eps: float, norm: str = "linf") -> torch.Tensor:
    """``clip_[0,1](x + Pi(x_other - x))``: the point of the ``eps``-ball around ``x`` (inside ``[0, 1]``) that a
    perturbation ``x_other - x`` is cut down to. ``norm="linf"``: ``Pi`` clamps every value to ``[-eps, eps]``;
    ``norm="l2"``: ``Pi(d) = d * min(1, eps / ||d||_2)`` per image. Returns a new tensor."""
    eps, norm = _check_eps(eps), check_in(norm, {"linf", "l2"}, "norm")
    if x.shape != x_other.shape:
        raise ValueError(f"x and x_other must have the same shape, got {tuple(x.shape)} and {tuple(x_other.shape)}")
    project = project_linf if norm == "linf" else project_l2  # PGD's projections, one home
    return project(x_other.detach(), x.detach(), eps).clone()


def _shift(x: torch.Tensor, eps: float, norm: str, sign: int) -> torch.Tensor:
    step = eps if norm == "linf" else eps / math.sqrt(x[0].numel())
    return (x.detach() + sign * step).clamp(0.0, 1.0)


def blind_baselines(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "linf",
                    draws: int = 20, seed=0, corruptions=BLIND_CORRUPTIONS,
                    severities=BLIND_SEVERITIES) -> dict[str, torch.Tensor]:
    """Per image, whether ``model`` still classifies ``x`` correctly under each blind baseline of size ``eps``
    (the table in the module docstring).

    Args:
        model: classifier mapping ``[0, 1]`` images to logits, in eval mode, on ``x``'s device.
        x: images ``(B, C, H, W)`` in ``[0, 1]``; y: their true labels, LongTensor ``(B,)``.
        eps: the attack's budget (``>= 0``), in pixel units of the ``norm``.
        norm: ``"linf"`` (default) or ``"l2"``.
        draws: random perturbations per image for ``"random noise"`` (default 20).
        seed: for the random draws and the noise corruption: an int (default 0), a ``torch.Generator`` (advanced)
            or ``None`` (fresh randomness from torch's global RNG; see :mod:`course_lib._rng`).
        corruptions: names of :data:`course_lib.corruptions.CORRUPTIONS` to project (default brightness,
            contrast, gaussian_noise, gaussian_blur); ``()`` for none.
        severities: the severities of each corruption (default 1, 3, 5).

    Returns:
        ``{"clean", "shift +eps", "shift -eps", "random noise", "corruptions", "best blind"}``, each a float
        tensor ``(B,)`` on ``x``'s device: 1 where the image is still classified correctly, 0 where the baseline
        fooled the model; for ``"random noise"`` the fraction of the draws that leave it correct. The accuracy
        under a baseline is the mean. Every baseline counts an image the model got wrong on the clean input as
        fooled (the convention of robust accuracy).
    """
    check_images(x)
    check_model(model, x)
    check_labels(y, x.shape[0], device=x.device)
    eps, norm = _check_eps(eps), check_in(norm, {"linf", "l2"}, "norm")
    names = list(corruptions)
    for name in names:
        check_in(name, set(CORRUPTIONS), "corruption")
    if seed is None:  # fresh randomness, as everywhere in course_lib (course_lib._rng): one draw of the global RNG
        seed = int(generator(None).initial_seed())
    if isinstance(seed, torch.Generator):
        corruption_seed = int(integers(0, 2**31 - 1, (1,), seed))
    else:
        corruption_seed = int(seed)
    x = x.detach()

    def correct(x_prime):
        return (~success_mask(model, x_prime, y)).to(x.dtype)

    clean = correct(x)
    out = {"clean": clean,
           "shift +eps": clean * correct(_shift(x, eps, norm, +1)),
           "shift -eps": clean * correct(_shift(x, eps, norm, -1))}
    fooled_by_noise = noise_success_rate(model, x, y, eps, norm=norm, draws=draws, seed=seed)
    out["random noise"] = clean * (1 - fooled_by_noise)
    corr = clean.clone()
    for name in names:
        for s in severities:
            corr = corr * correct(project_to_ball(x, corrupt(x, name, s, seed=corruption_seed), eps, norm))
    out["corruptions"] = corr
    out["best blind"] = out["shift +eps"] * out["shift -eps"] * corr * (fooled_by_noise == 0).to(x.dtype)
    return out


def baseline_sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_values, norm: str = "linf",
                   per_image: bool = False, **kw) -> dict:
    """:func:`blind_baselines` at every ``eps`` of ``eps_values``: the curves beside an attack's robustness curve.

    Returns ``{"eps": [...], name: tensor (E,) of accuracies for each baseline name}``; with ``per_image=True``
    also ``"per_image": {name: tensor (E, B)}``. ``**kw`` goes to :func:`blind_baselines` (``draws``, ``seed``,
    ``corruptions``, ``severities``)."""
    try:
        eps_list = [float(e) for e in eps_values]
    except (TypeError, ValueError):
        raise TypeError(f"eps_values must be a sequence of numbers, got {eps_values!r}") from None
    if not eps_list:
        raise ValueError("eps_values must not be empty")
    rows = [blind_baselines(model, x, y, e, norm=norm, **kw) for e in eps_list]
    out: dict = {"eps": eps_list}
    for name in rows[0]:
        stacked = torch.stack([r[name] for r in rows])
        out[name] = stacked.mean(1)
        if per_image:
            out.setdefault("per_image", {})[name] = stacked
    return out

