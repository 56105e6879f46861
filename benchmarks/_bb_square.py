"""The Square attack (L-infinity, scores) side by side with torchattacks ``Square`` and ART ``SquareAttack``: one
section of ``benchmarks/blackbox.py`` (``run(model, x, y, rows, quick)``), runnable alone for a check::

    .venv-peers/bin/python benchmarks/_bb_square.py          # 4 digits, small budgets: a smoke run

Setup: untargeted, eps 0.1, 0.2 and 0.3, equal budgets = the same *maximum* number of queries per digit (1,000 and
5,000; every image the model is asked about counts, the peers' bookkeeping passes included). Square stops on
success, so the queries actually spent differ: both are reported. The peers:

* torchattacks ``Square(norm="Linf", eps, n_queries, p_init=0.8, n_restarts=1, loss="margin", seed=0)``: one clean
  pass, the start, one query per iteration, one final pass: ``n_queries = budget - 3``.
* ART ``SquareAttack(norm=np.inf, eps, max_iter, p_init=0.8, nb_restarts=1)``: one clean pass and one loss pass,
  the start, then *three* passes per iteration (the prediction of every image, the loss of the current point again,
  the new point): ``max_iter = (budget - 3) // 3``. A second ART line, without a target, gives ART one iteration per
  query of ours (``max_iter = budget - 1``, about three times our queries): the same number of candidate points.

Per digit the queries are attributed by a wrapper that matches every row to the digit whose eps-ball it lies in
(the digits are further apart than 2 eps in L-infinity; checked), and notes the first query whose prediction is
wrong: queries spent and queries to success (compared on the digits both attacks fooled), for ours (from the
oracle) and the peers alike. Success = the model's
prediction on the returned image differs from the label and the image is in the eps-ball (tolerance 1e-6).
"""
from __future__ import annotations

import logging
import random
import time
import warnings

import numpy as np
import torch
from _common import Counted, add_row, log
from torch import nn

from course_lib.attacks import Oracle
from course_lib.attacks.square import square_attack

EPS = (0.1, 0.2, 0.3)
BUDGETS = (1000, 5000)
QUICK_BUDGETS = (100, 300)
FIGURE_EPS = 0.1


class PerDigit(Counted):
    """Counted, plus per digit: the images asked about (each row belongs to the digit whose eps-ball holds it) and
    the number of the first query the model got wrong (0: none)."""

    def __init__(self, model, x, y, eps):
        super().__init__(model)
        self.x, self.y, self.eps = x.flatten(1), y, eps
        self.spent = torch.zeros(len(x), dtype=torch.long)
        self.first = torch.zeros(len(x), dtype=torch.long)

    def forward(self, rows):
        z = super().forward(rows)
        with torch.no_grad():
            dist = (rows.detach().flatten(1)[:, None, :] - self.x[None]).abs().amax(2)  # (rows, digits)
            owner = dist.argmin(1)
            assert (dist.gather(1, owner[:, None]).squeeze(1) <= self.eps + 1e-5).all(), "a row outside every ball"
            wrong = z.argmax(1) != self.y[owner]
            for r in range(len(rows)):  # queries are numbered per digit, in row order
                i = int(owner[r])
                self.spent[i] += 1
                if wrong[r] and self.first[i] == 0:
                    self.first[i] = self.spent[i]
        return z


def _outcome(model, adv, x, y, eps):
    with torch.no_grad():
        wrong = model(adv).argmax(1) != y
    inside = (adv - x).abs().amax((1, 2, 3)) <= eps + 1e-6
    return wrong & inside


def _torchattacks(counted, x, y, eps, budget):
    import torchattacks

    atk = torchattacks.Square(counted, norm="Linf", eps=eps, n_queries=budget - 3, n_restarts=1, p_init=0.8,
                              loss="margin", resc_schedule=True, seed=0)
    return atk(x, y)


def _art(counted, x, y, eps, max_iter):
    from art.attacks.evasion import SquareAttack
    from art.estimators.classification import PyTorchClassifier

    np.random.seed(0)
    random.seed(0)
    clf = PyTorchClassifier(counted, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]), nb_classes=10,
                            clip_values=(0.0, 1.0))
    atk = SquareAttack(clf, norm=np.inf, eps=eps, max_iter=max_iter, p_init=0.8, nb_restarts=1,
                       batch_size=max(len(x), 1), verbose=False)
    return torch.tensor(atk.generate(x.numpy(), y=y.numpy()))


def run(model, x, y, rows, quick) -> dict:
    """Ours vs torchattacks ``Square`` and ART ``SquareAttack`` at each eps and budget; appends the table lines to
    ``rows`` and returns the success-vs-queries data at eps 0.1 for the figure."""
    warnings.filterwarnings("ignore")
    logging.getLogger("art").setLevel(logging.ERROR)
    gaps = (x.flatten(1)[:, None] - x.flatten(1)[None]).abs().amax(2) + 10 * torch.eye(len(x))
    assert gaps.min() > 2 * max(EPS), "two digits closer than 2 eps: the per-digit query count would be ambiguous"
    budgets = QUICK_BUDGETS if quick else BUDGETS
    figure = {"eps": FIGURE_EPS, "ours": None, "peers": []}
    for eps in EPS:
        for budget in budgets:
            row = f"Square eps={eps}, {budget} queries"
            log(f"{row} ({len(x)} digits)")
            oracle = Oracle(model)
            t = time.perf_counter()
            adv = square_attack(oracle, x, y, eps, max_queries=budget, seed=0, progress=False)
            t_ours = time.perf_counter() - t
            ok = _outcome(model, adv, x, y, eps)
            ours = {"success": float(ok.double().mean()), "spent": float(oracle.queries.double().mean()),
                    "to_success": float(oracle.queries[ok].double().mean()) if ok.any() else None,
                    "seconds": t_ours / len(x)}
            peers = {}
            for name, fn, arg in (("torchattacks Square", _torchattacks, budget),
                                  ("ART SquareAttack", _art, (budget - 3) // 3),
                                  ("ART SquareAttack, max_iter = budget", _art, budget - 1)):
                counted = PerDigit(model, x, y, eps).eval()
                t = time.perf_counter()
                adv_p = fn(counted, x, y, eps, arg)
                t_p = time.perf_counter() - t
                ok_p = _outcome(model, adv_p, x, y, eps)
                both = ok & ok_p  # paired: the queries to success on the digits that both fooled
                peers[name] = {"success": float(ok_p.double().mean()), "spent": float(counted.spent.double().mean()),
                               "max_spent": int(counted.spent.max()), "both": int(both.sum()),
                               "to_success": float(counted.first[both].double().mean()) if both.any() else None,
                               "ours_to_success": float(oracle.queries[both].double().mean()) if both.any() else None,
                               "seconds": t_p / len(x)}
            equal = {k: v for k, v in peers.items() if "max_iter = budget" not in k}
            best_name = max(equal, key=lambda k: (equal[k]["success"], -equal[k]["seconds"]))
            best = equal[best_name]
            for name, p in peers.items():
                target = name in equal
                note = (f"queries per digit spent: ours {ours['spent']:.0f}, peer {p['spent']:.0f} "
                        f"(peer max {p['max_spent']})")
                add_row(rows, row, "success rate", ours["success"], name, p["success"],
                        target=">= best peer" if target else "", met=ours["success"] >= best["success"] if target
                        else None, lower_is_better=False, note=note)
                add_row(rows, row, "mean queries to success, digits both fooled", p["ours_to_success"], name,
                        p["to_success"], note=f"{p['both']} digits; ours over all its successes "
                        f"{ours['to_success'] if ours['to_success'] is None else round(ours['to_success'], 1)}")
            add_row(rows, row, "seconds per digit", ours["seconds"], best_name, best["seconds"],
                    target="<= best peer", met=ours["seconds"] <= best["seconds"],
                    note="one run; small times are noisy")
            if eps == FIGURE_EPS:
                if budget == budgets[-1]:
                    q, d = oracle.trace()
                    figure["ours"] = {"label": f"course_lib square_attack ({budget} queries)",
                                      "queries": q.tolist(), "success": (d <= eps).double().mean(0).tolist()}
                for name, p in equal.items():
                    figure["peers"].append({"label": f"{name} ({budget} queries)", "queries": budget,
                                            "success": p["success"]})
    return figure


if __name__ == "__main__":
    from course_lib.data import load_mnist
    from course_lib.models import load_model

    torch.set_num_threads(1)
    model = load_model("mnist_cnn")
    xs, ys = load_mnist("test")
    with torch.no_grad():
        right = model(xs[:100]).argmax(1) == ys[:100]
    xs, ys = xs[:100][right][:4], ys[:100][right][:4]
    out = run(model, xs, ys, [], quick=True)
    log(f"figure: ours {len(out['ours']['queries'])} points, final success {out['ours']['success'][-1]:.2f}; "
        f"peers {[(p['label'], p['success']) for p in out['peers']]}")
