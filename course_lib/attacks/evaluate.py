"""How well does an attack work? Success rates, robustness curves over eps, and transfer between models.

* :func:`success_mask`, :func:`success_rate`  fooled or not, per image and on average
* :func:`perturbation_norm`  the size of each perturbation, ``||x' - x||_2`` or ``||x' - x||_inf`` per image
* :func:`attack_sweep`  accuracy under attack for a list of budgets eps: the robustness curve
* :func:`noise_success_rate`  the blind baseline: how often random noise of the attack's size already succeeds
* :func:`transfer`      craft on one model, test on another: the grey-box threat model (Papernot et al., 2016),
  where the attacker knows the task and the data but not the deployed model's weights
"""
from __future__ import annotations

import math

import torch
from torch import nn
from tqdm.auto import tqdm

from .._rng import generator, integers, normal
from .._validate import check_count, check_images, check_in, check_labels, check_model
from ..training import predict_labels
from ._common import check_eps, check_inputs
from .cw import carlini_wagner
from .fgsm import fgsm
from .pgd import pgd

__all__ = ["success_mask", "success_rate", "perturbation_norm", "noise_success_rate", "attack_sweep", "transfer"]


def _rate(hits: torch.Tensor) -> torch.Tensor:
    """The fraction of True along the last dimension, float64 on the CPU (some devices have no float64)."""
    return hits.cpu().double().mean(-1)


def success_mask(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, targeted: bool = False) -> torch.Tensor:
    """Bool ``(B,)``: ``model`` misclassifies ``x_adv`` (untargeted: ``argmax f(x') != y``, ``y`` the true
    labels) or classifies it as the target (targeted: ``argmax f(x') == y``, ``y`` the targets).

    An image the model already got wrong before the attack counts as a success of an untargeted attack:
    that is the convention of robust accuracy, ``accuracy = 1 - success rate``.
    """
    check_inputs(model, x_adv, y)
    pred = predict_labels(model, x_adv)
    return pred == y if targeted else pred != y


def success_rate(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, targeted: bool = False) -> float:
    """The fraction of images in ``x_adv`` on which the attack succeeds (see :func:`success_mask`)."""
    return _rate(success_mask(model, x_adv, y, targeted)).item()


def perturbation_norm(x_adv: torch.Tensor, x: torch.Tensor, norm: str = "l2") -> torch.Tensor:
    """The size of each perturbation ``delta = x_adv - x``, per image, in pixel units (pixels in [0, 1])::

        l2:   ||delta||_2   = sqrt(sum_i delta_i^2)        (over every channel and pixel of one image)
        linf: ||delta||_inf = max_i |delta_i|

    ``x_adv`` and ``x`` are batches of the same shape ``(B, C, H, W)``. Returns a float tensor ``(B,)`` on their
    device; the inputs are not changed."""
    norm = check_in(norm, {"l2", "linf"}, "norm")
    if not (isinstance(x_adv, torch.Tensor) and isinstance(x, torch.Tensor)) or x_adv.shape != x.shape:
        raise ValueError(f"x_adv and x must be tensors of the same shape, got {getattr(x_adv, 'shape', x_adv)} "
                         f"and {getattr(x, 'shape', x)}")
    if x.dim() != 4:
        raise ValueError(f"expected batches of images (B, C, H, W), got shape {tuple(x.shape)}")
    delta = (x_adv.detach() - x.detach()).flatten(1)
    return delta.norm(dim=1) if norm == "l2" else delta.abs().amax(dim=1)


# --------------------------------------------------------------------------- attacks by name
def noise_success_rate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "linf",
                       draws: int = 20, seed=0) -> torch.Tensor:
    """The blind baseline of an attack of size ``eps``: per image, the fraction of ``draws`` random perturbations
    of that size that already fool the model (untargeted: prediction ``!= y``)::

        linf:  x' = clip(x + eps * s),            s uniform in {-1, +1}^n      (a random vertex of the ball)
        l2:    x' = clip(x + eps * g / ||g||_2),  g ~ N(0, I)                  (a random point of the sphere)

    One forward pass per draw and image. An attack's success rate means something only next to this number: a
    budget at which noise already succeeds measures no attack. ``seed``: an int (default 0), a ``torch.Generator``
    (continued as is, so several calls can share one stream) or ``None`` (see :mod:`course_lib._rng`). Returns a
    float tensor ``(B,)`` on ``x``'s device."""
    check_images(x)
    check_model(model, x)
    check_labels(y, x.shape[0], device=x.device)
    eps, norm = check_eps(eps), check_in(norm, {"linf", "l2"}, "norm")
    draws = check_count(draws, "draws", minimum=1)
    gen = generator(seed)
    x = x.detach()
    if norm == "l2":
        g = normal((draws, *x.shape), gen, x.device, x.dtype)
        noise = eps * g / g.flatten(2).norm(dim=2).clamp_min(1e-12)[..., None, None, None]
    else:
        noise = [eps * (integers(0, 2, x.shape, gen, x.device) * 2 - 1).to(x.dtype) for _ in range(draws)]
    hits = [success_mask(model, (x + n).clamp(0.0, 1.0), y) for n in noise]
    return torch.stack(hits).to(x.dtype).mean(0)


def _run_fgsm(model, x, y, eps, targeted=False, **kw):
    return fgsm(model, x, y, eps, targeted=targeted, **kw)


def _run_pgd(model, x, y, eps, targeted=False, alpha=None, steps=40, **kw):
    """PGD with ``alpha = 2.5 * eps / steps`` unless given (the step size that lets ``steps`` steps cross the
    ball and back, the rule of thumb of Madry's group), so one call serves a whole range of eps."""
    check_count(steps, "steps")
    if eps == 0:  # the ball is the point x: nothing to search
        return x.detach().clone()
    if alpha is None:
        alpha = 2.5 * eps / max(steps, 1)
    return pgd(model, x, y, eps, alpha, steps, targeted=targeted, **kw)


def _run_cw(model, x, y, targeted=False, **kw):
    return carlini_wagner(model, x, y, targeted=targeted, **kw)


_BY_NAME = {"fgsm": _run_fgsm, "pgd": _run_pgd, "cw": _run_cw, "carlini_wagner": _run_cw}
_BY_FUNCTION = {fgsm: _run_fgsm, pgd: _run_pgd, carlini_wagner: _run_cw}


def _resolve(attack, needs_eps: bool):
    """A callable ``run(model, x, y, [eps,] targeted=..., **kw)`` for a name, a course attack or any callable."""
    if isinstance(attack, str):
        if attack not in _BY_NAME:
            raise ValueError(f"attack must be one of {sorted(_BY_NAME)} or a callable, got {attack!r}")
        run = _BY_NAME[attack]
    elif callable(attack):
        run = _BY_FUNCTION.get(attack, attack)
    else:
        raise TypeError(f"attack must be a name such as 'pgd' or a callable, got {type(attack).__name__}")
    if needs_eps and run is _run_cw:
        raise ValueError("carlini_wagner has no budget eps: it searches the smallest perturbation; "
                         "sweep an eps-bounded attack such as 'fgsm' or 'pgd'")
    return run


# --------------------------------------------------------------------------- robustness curves
def attack_sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack, eps_values, targeted: bool = False,
                 y_true: torch.Tensor | None = None, progress: bool = True, return_adv: bool = False, **kw) -> dict:
    """Run ``attack`` at every budget in ``eps_values``: the data of a robustness curve (accuracy against eps).

    For each ``eps``: ``x' = attack(model, x, y, eps, targeted=targeted, **kw)``, then success per image
    (misclassified, or classified as the target when ``targeted``) and the accuracy ``mean(argmax f(x') = y)``.

    Args:
        model: classifier mapping ``[0, 1]`` images to logits, in eval mode, on ``x``'s device.
        x: images ``(B, C, H, W)`` in ``[0, 1]``.
        y: LongTensor ``(B,)``: true labels (untargeted) or targets (``targeted=True``).
        attack: ``"fgsm"``, ``"pgd"`` (``steps=40``, ``alpha = 2.5 * eps / steps`` unless given in ``kw``) or
            any callable ``attack(model, x, y, eps, targeted=..., **kw) -> x_adv`` (``fgsm`` and ``pgd``
            themselves get the same defaults as their names).
        eps_values: the budgets, finite numbers ``>= 0`` (include 0 for the clean accuracy).
        targeted: passed to the attack (default ``False``).
        y_true: the true labels when ``targeted`` (optional): the accuracy is measured against them. Without
            them a targeted sweep has ``accuracy=None``.
        progress: show a tqdm progress bar over eps (default ``True``).
        return_adv: also return the adversarial images of every eps (default ``False``).
        **kw: passed to the attack, e.g. ``steps=20``, ``norm="l2"``, ``seed=0``.

    Returns:
        dict with ``"eps"`` (list of floats), ``"success"`` (bool ``(E, B)``), ``"success_rate"`` (``(E,)``),
        ``"accuracy"`` (``(E,)`` or ``None``), and ``"x_adv"`` (list of ``(B, C, H, W)``) with ``return_adv``.
        The rates are statistics for tables and plots: float64 on the CPU (some devices have no float64).
    """
    check_inputs(model, x, y)
    run = _resolve(attack, needs_eps=True)
    try:
        eps_list = [float(e) for e in eps_values]
    except (TypeError, ValueError):
        raise TypeError(f"eps_values must be a sequence of numbers, got {eps_values!r}") from None
    if not eps_list or any(not math.isfinite(e) or e < 0 for e in eps_list):
        raise ValueError(f"eps_values must be a non-empty sequence of finite numbers >= 0, got {eps_list}")
    labels = y
    if targeted:
        labels = None if y_true is None else check_labels(y_true, x.shape[0], "y_true", device=x.device)

    success, accuracy, advs = [], [], []
    for eps in tqdm(eps_list, desc=f"{getattr(attack, '__name__', attack)} sweep", disable=not progress):
        x_adv = run(model, x, y, eps, targeted=targeted, **kw)
        pred = predict_labels(model, x_adv)
        success.append(pred == y if targeted else pred != y)
        if labels is not None:
            accuracy.append(_rate(pred == labels))
        if return_adv:
            advs.append(x_adv)
    success = torch.stack(success)
    out = {"eps": eps_list, "success": success, "success_rate": _rate(success),
           "accuracy": torch.stack(accuracy) if accuracy else None}
    if return_adv:
        out["x_adv"] = advs
    return out


# --------------------------------------------------------------------------- transfer (grey box)
def transfer(source_model: nn.Module, target_model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack,
             targeted: bool = False, y_true: torch.Tensor | None = None, **kw) -> dict:
    """Craft adversarial images on ``source_model`` (white box) and test them on ``target_model``, whose
    gradients the attacker never used: do adversarial examples transfer? (Szegedy et al., 2014; Papernot,
    McDaniel & Goodfellow, 2016.)

    Args:
        source_model, target_model: classifiers in eval mode, on ``x``'s device, with the same classes.
        x: images ``(B, C, H, W)`` in ``[0, 1]``.
        y: LongTensor ``(B,)``: true labels (untargeted) or targets (``targeted=True``).
        attack: ``"fgsm"``, ``"pgd"``, ``"cw"`` or a callable ``attack(model, x, y, targeted=..., **kw)``;
            pass its budget in ``kw``, e.g. ``eps=0.2``.
        targeted: passed to the attack (default ``False``).
        y_true: the true labels when ``targeted`` (optional), for the accuracies.
        **kw: passed to the attack.

    Returns:
        dict with ``"x_adv"``; ``"source_clean_accuracy"``, ``"source_adv_accuracy"``, ``"target_clean_accuracy"``,
        ``"target_adv_accuracy"`` (floats, against the true labels; ``None`` when targeted without ``y_true``);
        ``"source_success_rate"`` (the white-box success on the source); ``"transfer_mask"`` (bool ``(B,)``: the
        attack succeeds on the target) and ``"transfer_rate"``: the fraction of successes on the target among
        the ``"n_eligible"`` images it classified correctly before the attack (targeted without ``y_true``:
        among those it did not already classify as the target); ``nan`` if there are none.
    """
    for name, model in (("source_model", source_model), ("target_model", target_model)):
        check_model(model, x, name=name)
        check_inputs(model, x, y)
    run = _resolve(attack, needs_eps=False)
    labels = y
    if targeted:
        labels = None if y_true is None else check_labels(y_true, x.shape[0], "y_true", device=x.device)

    x_adv = run(source_model, x, y, targeted=targeted, **kw)
    src_clean, src_adv = predict_labels(source_model, x), predict_labels(source_model, x_adv)
    tgt_clean, tgt_adv = predict_labels(target_model, x), predict_labels(target_model, x_adv)

    def hit(pred):
        return pred == y if targeted else pred != y

    def acc(pred):
        return None if labels is None else _rate(pred == labels).item()

    eligible = (tgt_clean == labels) if labels is not None else (tgt_clean != y)
    transfer_mask = hit(tgt_adv)
    n = int(eligible.sum())
    return {
        "x_adv": x_adv,
        "source_clean_accuracy": acc(src_clean), "source_adv_accuracy": acc(src_adv),
        "target_clean_accuracy": acc(tgt_clean), "target_adv_accuracy": acc(tgt_adv),
        "source_success_rate": _rate(hit(src_adv)).item(),
        "transfer_mask": transfer_mask,
        "transfer_rate": _rate(transfer_mask[eligible]).item() if n else math.nan,
        "n_eligible": n,
    }
