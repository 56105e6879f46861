"""The Boundary attack (L2, untargeted, labels only): course_lib's ``boundary_attack`` vs Foolbox ``BoundaryAttack``
and ART ``BoundaryAttack`` at equal queries per digit. A section of ``benchmarks/blackbox.py`` (which calls
:func:`run`); ``.venv-peers/bin/python benchmarks/_bb_boundary.py`` runs it alone on 4 digits.

Protocol: each peer runs first through ``Counted(model)``, which counts every image it sees; ours then gets that
mean number of queries per digit through a fresh ``Oracle(model, "labels")``. Foolbox: its defaults (spherical and
source step 0.01, adaptation 1.5, statistics every 10 steps) with ``steps`` chosen for about 1,000, 5,000 and 25,000
queries per digit. ART: its defaults (delta = epsilon = 0.01, 25 trials of 20 samples per iteration, step
adaptation 0.667, ``init_size`` 100) with ``max_iter`` chosen for about 1,000 and 5,000 queries per digit (ART's
iterations cost hundreds of queries each).

Starts: mnist_cnn calls uniform noise an "8", so Foolbox's own start (``LinearSearchBlendedUniformNoiseAttack``)
fails on every 8 and Foolbox then raises for the whole batch; it gets ``starting_points``: its own start on the other
digits (counted) and, on each 8, the nearest (L2) digit of the batch from another class. ART draws uniform noise
itself and returns an 8 unchanged when none is adversarial (a failure). Ours starts from its own noise on every
digit (uniform, dimmed and sparse binary).

Metric: median L2 over all digits, a failure counted as infinitely far; also the success rate and seconds per
digit. "before" = ours with ``restarts=0``: the walk without the restarts that rescue the 8s.
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np
import torch
from _common import Counted, add_row, log
from torch import nn

from course_lib.attacks import Oracle, boundary_attack

FOOLBOX_STEPS = (900, 4500, 22700)   # about 1.1 queries per step
ART_ITERS = (20, 100)               # about 50 queries per iteration on mnist_cnn (measured in a quick run)
QUICK = {"foolbox": (100,), "art": (1,)}


def _l2(adv, x):
    return (adv - x).flatten(1).norm(dim=1)


def _fooled(model, adv, y):
    with torch.no_grad():
        return model(adv).argmax(1) != y


def _median_all(dist, fooled) -> float:
    d = torch.where(fooled, dist, torch.full_like(dist, math.inf))
    return float(d.sort().values[(len(d) - 1) // 2])


def _nearest_other(x, y):
    d = torch.cdist(x.flatten(1), x.flatten(1))
    d[y[:, None] == y[None, :]] = math.inf
    return x[d.argmin(1)]


def _foolbox(model, x, y, steps):
    import foolbox as fb

    counted = Counted(model).eval()
    torch.manual_seed(0)
    t = time.perf_counter()
    fmodel = fb.PyTorchModel(counted, bounds=(0, 1))
    starts = _nearest_other(x, y)
    eights = y == 8
    if (~eights).any():
        init = fb.attacks.LinearSearchBlendedUniformNoiseAttack(steps=50)
        starts[~eights] = init.run(fmodel, x[~eights], fb.criteria.Misclassification(y[~eights]))
    adv = fb.attacks.BoundaryAttack(steps=steps).run(fmodel, x, fb.criteria.Misclassification(y),
                                                      starting_points=starts)
    return adv, counted.images / len(x), time.perf_counter() - t


class _Float(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x.float())


def _art(model, x, y, iters):
    from art.attacks.evasion import BoundaryAttack
    from art.estimators.classification import PyTorchClassifier

    counted = Counted(model).eval()
    np.random.seed(0)
    t = time.perf_counter()
    clf = PyTorchClassifier(_Float(counted), loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                            nb_classes=10, clip_values=(0.0, 1.0))
    attack = BoundaryAttack(clf, targeted=False, max_iter=iters, verbose=False)
    adv = torch.tensor(attack.generate(x.numpy(), y=y.numpy()))
    return adv, counted.images / len(x), time.perf_counter() - t


def _ours(model, x, y, q, **kw):
    oracle = Oracle(model, "labels")
    t = time.perf_counter()
    adv = boundary_attack(oracle, x, y, max_queries=int(q), seed=0, progress=False, **kw)
    return adv, oracle, time.perf_counter() - t


def run(model, x, y, rows, quick) -> dict:
    """Append the Boundary rows (ours vs Foolbox and ART at their counted queries) and return the figure data."""
    warnings.filterwarnings("ignore")
    n8 = int((y == 8).sum())
    figure = {"ours": None, "peers": []}
    longest = None
    runs = [("Foolbox BoundaryAttack", _foolbox, s) for s in (QUICK["foolbox"] if quick else FOOLBOX_STEPS)]
    runs += [("ART BoundaryAttack", _art, s) for s in (QUICK["art"] if quick else ART_ITERS)]
    for peer, fn, setting in runs:
        log(f"Boundary vs {peer} ({setting})")
        adv_p, q, t_p = fn(model, x, y, setting)
        f_p, d_p = _fooled(model, adv_p, y), _l2(adv_p, x)
        adv_o, oracle, t_o = _ours(model, x, y, q)
        f_o, d_o = _fooled(model, adv_o, y), _l2(adv_o, x)
        row = f"Boundary @ {q:,.0f} q ({peer.split()[0]})"
        note = f"{len(x)} digits ({n8} eights); queries per digit: ours {float(oracle.queries.double().mean()):.0f}"
        add_row(rows, row, "median L2, all digits (failure = inf)", _median_all(d_o, f_o), peer,
                _median_all(d_p, f_p), target="<= peer", met=_median_all(d_o, f_o) <= _median_all(d_p, f_p),
                note=note)
        add_row(rows, row, "success rate", float(f_o.double().mean()), peer, float(f_p.double().mean()),
                lower_is_better=False)
        e = y == 8
        if e.any():
            add_row(rows, row, "median L2 on the 8s", _median_all(d_o[e], f_o[e]), peer, _median_all(d_p[e], f_p[e]),
                    note="Foolbox started from the nearest other digit; ART from its own noise")
        add_row(rows, row, "seconds per digit", t_o / len(x), peer, t_p / len(x), target="<= Foolbox per query"
                if peer.startswith("Foolbox") else "", met=(t_o / max(float(oracle.queries.double().mean()), 1))
                <= (t_p / max(q, 1)) * 1.0 if peer.startswith("Foolbox") else None)
        figure["peers"].append({"label": peer, "queries": q, "median": _median_all(d_p, f_p)})
        if longest is None or q > longest[0]:
            longest = (q, oracle)
    # before/after the restarts, at the largest budget: the walk's traces, the 8s apart
    q, oracle = longest
    _, oracle_b, _ = _ours(model, x, y, q, restarts=0)
    q_all, d_after = oracle.trace()
    _, d_before = oracle_b.trace(q_all)
    e = (y == 8).numpy()
    label = f"Boundary @ {q:,.0f} q: restarts"
    if e.any():
        add_row(rows, label, "median L2 on the 8s, after (restarts)", float(d_after[e, -1].median()),
                "ours, restarts=0 (before)", float(d_before[e, -1].median()), note=f"{int(e.sum())} eights")
    add_row(rows, label, "median L2 on the other digits, after", float(d_after[~e, -1].median()),
            "ours, restarts=0 (before)", float(d_before[~e, -1].median()))
    figure["ours"] = {"label": "course_lib boundary_attack", "queries": q_all.tolist(),
                      "median": [float(v) for v in d_after.median(0).values]}
    return figure


if __name__ == "__main__":
    from course_lib.data import load_mnist
    from course_lib.models import load_model

    torch.set_num_threads(1)
    model = load_model("mnist_cnn")
    xa, ya = load_mnist("test")
    keep = model(xa[:200]).argmax(1) == ya[:200]
    xa, ya = xa[:200][keep], ya[:200][keep]
    idx = torch.cat([(ya == 8).nonzero()[:1, 0], (ya != 8).nonzero()[:3, 0]])
    rows: list = []
    print(run(model, xa[idx], ya[idx], rows, quick=True))
