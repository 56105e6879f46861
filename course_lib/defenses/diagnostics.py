"""Is a defense's robustness real, or are its gradients hidden? The checklist of Athalye, Carlini & Wagner (ICML
2018, section 3.1; also Carlini et al., "On evaluating adversarial robustness", 2019), each item measured.

A defense that masks gradients shows symptoms that a truly robust model does not: a one-step attack beats the
iterative one, a black-box attack beats white-box PGD, even an unbounded attack fails, a larger budget does not
help, the input gradients are zero or not finite, or random restarts change the answer. Each row of
:func:`masking_diagnostics` measures one symptom and flags it when it appears.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._grad import input_gradient
from .._rng import generator
from .._validate import check_count, check_images, check_labels, check_model
from ..attacks._common import check_eps
from ..attacks.evaluate import success_mask
from ..attacks.fgsm import fgsm
from ..attacks.oracle import Oracle
from ..attacks.pgd import pgd
from ..attacks.square import square_attack

__all__ = ["masking_diagnostics", "MaskingReport"]


@dataclass
class MaskingReport:
    """The rows of :func:`masking_diagnostics`: ``(check, measured, flagged, meaning)`` each; ``flagged`` is True
    when any row is. Prints as a table; in a notebook it shows as an HTML table with flagged rows in red."""

    rows: list

    @property
    def flagged(self) -> bool:
        return any(r[2] for r in self.rows)

    def __str__(self) -> str:
        width = max(len(r[0]) for r in self.rows)
        lines = [f"{'check':{width}s}  {'flag':4s}  measured"]
        lines += [f"{c:{width}s}  {'RED' if f else 'ok':4s}  {m}" for c, m, f, _ in self.rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr style='background:{'#f8d0d0' if f else '#d8f0d8'}'><td>{c}</td><td>{m}</td>"
            f"<td>{'masking?' if f else 'ok'}</td><td style='text-align:left'>{why}</td></tr>"
            for c, m, f, why in self.rows)
        return ("<table><tr><th>check</th><th>measured</th><th>flag</th><th>what a flag means</th></tr>"
                f"{body}</table>")


def masking_diagnostics(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 40,
                        restarts: int = 5, square_queries: int = 1000, tolerance: float = 0.03,
                        seed=0) -> MaskingReport:
    """Athalye, Carlini & Wagner's checklist for gradient masking, on ``model`` at L-inf budget ``eps``::

        1. one-step beats iterative      acc(FGSM) < acc(PGD) - tol
        2. black box beats white box     acc(Square) < acc(PGD) - tol                (scores only)
        3. unbounded attack fails        success of PGD at eps = 1 (the whole pixel range) < 1 - tol
        4. budget does not help          acc(PGD, 2 eps) > acc(PGD, eps) - tol while acc(PGD, eps) > tol
        5. gradients zero or non-finite  share of images whose input gradient of the loss is 0, NaN or inf > tol
        6. restarts change the answer    acc(PGD, 1 start) - acc(PGD, ``restarts`` starts) > tol
        7. the model is random           the logits of the same images differ between two calls (then a single
                                         gradient is one sample: attack the expectation, with EOT)

    PGD: ``steps`` steps of ``2.5 eps / steps`` with a random start, cross-entropy. Accuracies are on ``x`` (all
    images, a misclassified clean image counts as fooled). ``tol`` is ``tolerance`` (default 0.03) but at least 3
    images' worth (``3 / len(x)``), so that one or two images of sampling noise do not raise a flag. A flag is a
    symptom, not a proof; no flag is not a proof of robustness either, only the absence of these symptoms.

    Returns a :class:`MaskingReport` (``.rows``, ``.flagged``; prints as a table)."""
    check_images(x)
    check_model(model, x)
    y = check_labels(y, x.shape[0], device=x.device)
    eps = check_eps(eps)
    steps = check_count(steps, "steps", minimum=1)
    restarts = check_count(restarts, "restarts", minimum=2)
    square_queries = check_count(square_queries, "square_queries", minimum=1)
    gen = generator(seed)

    def acc(x_adv):
        return 1 - success_mask(model, x_adv, y).cpu().double().mean().item()

    def run_pgd(e, n=1):
        return pgd(model, x, y, e, 2.5 * e / steps, steps, seed=gen, restarts=n)

    a_pgd = acc(run_pgd(eps))
    a_fgsm = acc(fgsm(model, x, y, eps))
    a_square = acc(square_attack(Oracle(model, access="scores"), x, y, eps, max_queries=square_queries, seed=gen,
                                 progress=False))
    s_unbounded = 1 - acc(run_pgd(1.0))
    a_double = acc(run_pgd(min(2 * eps, 1.0)))
    grad, _ = input_gradient(model, x, lambda z: F.cross_entropy(z, y, reduction="none"))
    norms = grad.flatten(1).abs().sum(1)
    bad = (~torch.isfinite(norms)) | (norms == 0)
    share_bad = bad.cpu().double().mean().item()
    a_restarts = acc(run_pgd(eps, restarts))
    with torch.no_grad():
        first, second = model(x), model(x)
    share_random = ((first - second).abs().flatten(1).amax(1) > 1e-6).cpu().double().mean().item()
    t = max(tolerance, 3 / x.shape[0])
    rows = [
        ("one-step attack beats iterative", f"FGSM {a_fgsm:.3f} vs PGD-{steps} {a_pgd:.3f}", a_fgsm < a_pgd - t,
         "PGD should never do worse than its own first step: its gradient steps are misled"),
        ("black box beats white box", f"Square ({square_queries} queries) {a_square:.3f} vs PGD {a_pgd:.3f}",
         a_square < a_pgd - t, "an attack without gradients does better: the gradients are hidden or wrong"),
        ("unbounded attack fails", f"PGD at eps = 1 fools {s_unbounded:.3f}", s_unbounded < 1 - t,
         "with the whole pixel range any decision can be changed: the attack, not the model, is failing"),
        ("larger budget does not help", f"PGD at {min(2 * eps, 1.0):g}: {a_double:.3f} vs at {eps:g}: {a_pgd:.3f}",
         a_pgd > t and a_double > a_pgd - t, "accuracy must fall as the ball grows; if not, the attack is stuck"),
        ("gradients zero or not finite", f"{share_bad:.3f} of the images", share_bad > t,
         "no usable gradient (shattered or vanishing): PGD cannot move"),
        ("random restarts change the answer", f"1 start {a_pgd:.3f} vs {restarts} starts {a_restarts:.3f}",
         a_pgd - a_restarts > t, "the loss surface is erratic (stochastic or shattered): one run is not enough"),
        ("the model is random", f"{share_random:.3f} of the images get other logits on a second call",
         share_random > 0, "randomised defense: one gradient is one sample; attack the expectation (EOT)"),
    ]
    return MaskingReport(rows)
