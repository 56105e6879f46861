"""The ZOO section of benchmarks/blackbox.py: course_lib's ``zoo`` vs ART's ``ZooAttack`` at equal queries per digit.

``run(model, x, y, rows, quick)`` is called by blackbox.py; run this file alone for a check
(``.venv-peers/bin/python benchmarks/_bb_zoo.py``, ``BENCH_QUICK=1`` for a smoke run, ``ZOO_THREADS=1`` for one
torch thread instead of 2; the digits are blackbox.py's). Settings of the peer (as in blackbox.py's row 2): Adam,
128 coordinates per iteration (``nb_parallel``), ``h`` = 1e-4, learning rate 0.01, initial ``c`` = 1, 3
binary-search steps, no resizing, no importance sampling, ``batch_size`` 1 (one image at a time, as ART's ZOO is
meant to run), ``abort_early`` off and ``max_iter`` 36: 3 x 36 x 257 = 27,756 queries per digit. Ours then gets the
peer's mean queries per digit, with its defaults (the same Adam settings, 128 coordinates, 3 binary-search steps),
through a fresh ``Oracle``.

Targets (the issue's): success >= ART's + 30 points; median L2 over successes below ART's; time per digit <= 0.2x
ART's. Wall-clock time and this process's CPU time are both reported, measured back to back in one process (CPU
time is the less polluted one on a shared machine; the two attacks run one after the other, not interleaved).
"""
from __future__ import annotations

import logging
import math
import os
import time
import warnings

import numpy as np
import torch
from _common import Counted, add_row, log
from torch import nn

from course_lib.attacks import Oracle, zoo

PEER = "ART ZooAttack"
MAX_ITER = 36


def _outcome(model, adv, x, y):
    with torch.no_grad():
        fooled = model(adv).argmax(1) != y
    return fooled, (adv - x).flatten(1).norm(dim=1)


def _median_inf(d: torch.Tensor) -> float:
    """The (lower) median over the digits, a failure counting as infinitely far: inf while fewer than half are
    fooled."""
    s = d.double().sort().values
    return float(s[(len(s) - 1) // 2])


def run(model, x, y, rows, quick) -> dict:
    """ZOO vs ART ZooAttack on the digits ``x, y`` (which ``model`` classifies correctly); appends table lines to
    ``rows``; returns the query-vs-median-L2 curves for the figure."""
    from art.attacks.evasion import ZooAttack
    from art.estimators.classification import PyTorchClassifier

    warnings.filterwarnings("ignore")
    logging.getLogger("art").setLevel(logging.ERROR)
    max_iter = 2 if quick else MAX_ITER
    n = len(x)
    row = f"2 ZOO, ART max_iter={max_iter}"
    log(f"{row}: {n} digits")

    counted = Counted(model).eval()
    clf = PyTorchClassifier(counted, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]), nb_classes=10,
                            clip_values=(0.0, 1.0))
    attack = ZooAttack(clf, confidence=0.0, targeted=False, learning_rate=1e-2, max_iter=max_iter,
                       binary_search_steps=3, initial_const=1.0, abort_early=False, use_resize=False,
                       use_importance=False, nb_parallel=128, batch_size=1, variable_h=1e-4, verbose=False)
    np.random.seed(0)  # ART draws its coordinates from numpy's global generator
    t, c = time.perf_counter(), time.process_time()
    adv_peer = torch.tensor(attack.generate(x.cpu().numpy(), y=np.eye(10, dtype=np.float32)[y.cpu().numpy()]))
    t_peer, c_peer = time.perf_counter() - t, time.process_time() - c
    q = counted.images / n

    oracle = Oracle(model)
    t, c = time.perf_counter(), time.process_time()
    adv_ours = zoo(oracle, x, y, max_queries=int(q), seed=0, progress=False)
    t_ours, c_ours = time.perf_counter() - t, time.process_time() - c

    f_peer, d_peer = _outcome(model, adv_peer.to(x.device), x, y)
    f_ours, d_ours = _outcome(model, adv_ours, x, y)
    s_ours, s_peer = float(f_ours.double().mean()), float(f_peer.double().mean())
    m_ours = float(d_ours[f_ours].median()) if f_ours.any() else None
    m_peer = float(d_peer[f_peer].median()) if f_peer.any() else None
    both = f_ours & f_peer
    note = f"{n} digits; queries per digit: ours {float(oracle.queries.double().mean()):.0f}, ART {q:.0f}"
    add_row(rows, row, "success rate", s_ours, PEER, s_peer, target=">= ART + 0.30", met=s_ours >= s_peer + 0.30,
            lower_is_better=False, note=note)
    add_row(rows, row, "median L2 over successes", m_ours, PEER, m_peer, target="< ART's",
            met=None if m_ours is None or m_peer is None else m_ours < m_peer)
    add_row(rows, row, "median L2, digits fooled by both", float(d_ours[both].median()) if both.any() else None,
            PEER, float(d_peer[both].median()) if both.any() else None, note=f"{int(both.sum())} digits")
    add_row(rows, row, "seconds per digit (wall)", t_ours / n, PEER, t_peer / n, target="<= 0.2x ART",
            met=t_ours <= 0.2 * t_peer, note=f"torch threads {torch.get_num_threads()}, load average "
            f"{os.getloadavg()[0]:.1f}")
    add_row(rows, row, "CPU seconds per digit", c_ours / n, PEER, c_peer / n, target="<= 0.2x ART",
            met=c_ours <= 0.2 * c_peer, note="this process's CPU time, all threads, back to back")

    top = int(oracle.queries.max())
    qs = torch.unique(torch.logspace(0, math.log10(top), 60).round().long().clamp(1, top))
    qs, dist = oracle.trace(qs)
    median = [_median_inf(dist[:, j]) for j in range(dist.shape[1])]
    peer_d = torch.where(f_peer, d_peer, torch.full_like(d_peer, math.inf))
    return {"ours": {"label": "course_lib zoo", "queries": qs.tolist(), "median": median},
            "peers": [{"label": f"{PEER} (max_iter {max_iter})", "queries": q, "median": _median_inf(peer_d)}]}


if __name__ == "__main__":
    quick = os.environ.get("BENCH_QUICK") == "1"
    torch.set_num_threads(int(os.environ.get("ZOO_THREADS", "2")))
    torch.manual_seed(0)
    from blackbox import digits  # the lead's digits: the first 2 of each class (1 for a quick run)

    from course_lib.models import load_model

    model = load_model("mnist_cnn", torch.device("cpu"))
    x, y = digits(model)
    out = run(model, x, y, [], quick)
    log(f"ours: median L2 at the last query count {out['ours']['median'][-1]:.4g}; ART: {out['peers'][0]}")
