"""Robust accuracy under the worst of several attacks per image: an evaluation that does not trust one attack.

One PGD run can overestimate robustness badly (a masked or merely awkward loss surface stalls it): AutoAttack
(Croce & Hein, ICML 2020) therefore counts an image as robust only if every attack of an ensemble fails on it. The
ensemble here: PGD with restarts on the cross-entropy, PGD on the logit margin (Carlini & Wagner's loss, which does
not saturate), targeted PGD towards each of the top other classes, and the Square attack, which needs no gradient
at all (Andriushchenko et al., 2020) and so catches gradient masking.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from .._rng import generator
from .._validate import check_count, check_images, check_in, check_labels, check_model
from ..training import predict
from ._common import check_eps
from .evaluate import success_mask
from .oracle import Oracle
from .pgd import pgd
from .square import square_attack

__all__ = ["robust_accuracy", "RobustAccuracy", "ROBUST_ATTACKS"]

#: The attacks of :func:`robust_accuracy`, in the order they run.
ROBUST_ATTACKS = ("pgd-ce", "pgd-margin", "pgd-targeted", "square")


@dataclass
class RobustAccuracy:
    """The result of :func:`robust_accuracy`.

    ``accuracy``: the fraction of images that are classified correctly and that no attack fooled; ``robust``:
    bool ``(B,)``, the same per image; ``broken_by``: per image ``"clean"`` (already misclassified),
    the name of the first attack that fooled it, or ``""`` (robust); ``counts``: images per entry of
    ``broken_by``; ``x_adv``: per image the adversarial example found (the input itself where none was)."""

    accuracy: float
    robust: torch.Tensor
    broken_by: list
    counts: dict = field(default_factory=dict)
    x_adv: torch.Tensor | None = None

    def __str__(self) -> str:
        parts = ", ".join(f"{k or 'robust'} {v}" for k, v in self.counts.items())
        return f"robust accuracy {self.accuracy:.4f} ({parts})"


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "linf",
                    attacks=ROBUST_ATTACKS, steps: int = 100, restarts: int = 2, targets: int = 3,
                    square_queries: int = 2000, seed=0, progress: bool = False) -> RobustAccuracy:
    """The accuracy of ``model`` on ``x`` under the worst of several attacks, image by image::

        robust_i = [f(x_i) = y_i]  and  [no attack a in ``attacks`` finds x'_i in the ball with f(x'_i) != y_i]

    Attacks run in the order of :data:`ROBUST_ATTACKS`, each on the images that are still robust:

    * ``"pgd-ce"``: PGD on the cross-entropy, ``restarts`` random starts, ``steps`` steps of ``2.5 eps / steps``;
    * ``"pgd-margin"``: the same on the logit margin ``z_y - max_{k != y} z_k`` (no softmax to saturate);
    * ``"pgd-targeted"``: targeted PGD on the margin towards each of the ``targets`` classes with the largest
      clean logits after ``y`` (one random start each);
    * ``"square"``: the Square attack with ``square_queries`` queries per image, from scores only, so that a
      defense that hides its gradients is still attacked (L-inf only; skipped for ``norm="l2"``).

    An attack's number is an upper bound on the true robust accuracy; the ensemble makes it tighter and says per
    image which attack broke it. ``seed``: the attacks' randomness (int, ``torch.Generator`` or ``None``).
    Returns a :class:`RobustAccuracy`.
    """
    check_images(x)
    check_model(model, x)
    y = check_labels(y, x.shape[0], device=x.device)
    eps = check_eps(eps)
    check_in(norm, {"linf", "l2"}, "norm")
    steps = check_count(steps, "steps", minimum=1)
    restarts = check_count(restarts, "restarts", minimum=1)
    targets = check_count(targets, "targets", minimum=0)
    square_queries = check_count(square_queries, "square_queries", minimum=1)
    names = list(attacks)
    for a in names:
        check_in(a, set(ROBUST_ATTACKS), "attack")
    gen = generator(seed)
    x = x.detach()
    x_adv = x.clone()
    logits = predict(model, x)
    robust = logits.argmax(1) == y
    broken = ["" if r else "clean" for r in robust.tolist()]
    alpha = 2.5 * eps / steps

    def attempt(name, idx, run):
        """Run ``run(xs, ys)`` on the still-robust images ``idx``; record the ones it fools."""
        if idx.numel() == 0:
            return
        cand = run(x[idx], y[idx])
        fooled = success_mask(model, cand, y[idx])
        for j in idx[fooled].tolist():
            broken[j] = name
        x_adv[idx[fooled]] = cand[fooled]
        robust[idx[fooled]] = False

    for name in tqdm(names, desc="attacks", disable=not progress):
        left = robust.nonzero().flatten()
        if name == "pgd-ce":
            attempt(name, left, lambda xs, ys: pgd(model, xs, ys, eps, alpha, steps, norm=norm, seed=gen,
                                                   restarts=restarts, loss="ce"))
        elif name == "pgd-margin":
            attempt(name, left, lambda xs, ys: pgd(model, xs, ys, eps, alpha, steps, norm=norm, seed=gen,
                                                   restarts=restarts, loss="margin"))
        elif name == "pgd-targeted" and targets > 0:
            others = logits.scatter(1, y[:, None], float("-inf")).topk(min(targets, logits.shape[1] - 1), 1).indices
            for k in range(others.shape[1]):
                left = robust.nonzero().flatten()

                def run(xs, ys, k=k, idx=left, others=others):
                    t = others[idx, k]
                    return pgd(model, xs, t, eps, alpha, steps, norm=norm, seed=gen, targeted=True, loss="margin")

                attempt(name, left, run)
        elif name == "square" and norm == "linf":
            attempt(name, left, lambda xs, ys: square_attack(Oracle(model, access="scores"), xs, ys, eps,
                                                             max_queries=square_queries, seed=gen, progress=False))
    counts: dict = {}
    for b in broken:
        counts[b] = counts.get(b, 0) + 1
    return RobustAccuracy(robust.cpu().double().mean().item(), robust, broken, counts, x_adv)
