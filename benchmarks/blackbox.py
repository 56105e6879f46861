"""course_lib's black-box attacks side by side with Foolbox's BoundaryAttack and ART's ZooAttack.

Run from the repository root with ``make bench`` or ``.venv-peers/bin/python benchmarks/blackbox.py`` (about
10 minutes on 2 quiet CPU cores; ``BENCH_QUICK=1`` shrinks everything to a smoke run of seconds). Nothing is
downloaded. Results go to ``benchmarks/results/blackbox.json`` and ``blackbox.md``; the table is printed as well.

Setup: the shipped ``mnist_cnn`` (eval) on ``course_lib.device()``, held-out digits of ``load_mnist("test")`` (a
held-out part of the official MNIST *training* set) that the model classifies correctly, untargeted attacks,
``torch.set_num_threads(2)``. A black-box attack is judged at a query budget: every call of the model goes through
a wrapper that counts the images it sees, the peer runs first, and ours then gets the same mean number of queries
per digit (through ``Oracle``, which counts for itself). Success = the model's prediction on the returned image
differs from the label; distances are L2 over the successes.

Rows:
1. Boundary attack (Brendel et al., 2018; labels only) vs Foolbox ``BoundaryAttack`` (its default settings,
   ``steps`` = 250 and 1,000) on digits other than 8: uniform noise, Foolbox's only way to start, is an "8" for
   mnist_cnn, so Foolbox raises on every 8. Ours is run on the 8s separately.
2. ZOO (Chen et al., 2017; probabilities) vs ART ``ZooAttack`` (Adam, 128 coordinates per iteration, h = 1e-4,
   lr 0.01, initial c 1, 3 binary-search steps, no resizing or importance sampling, ``max_iter`` 40).
"""
from __future__ import annotations

import logging
import os
import time
import warnings

import numpy as np
import torch
from _common import Counted, add_row, log, machine, rows_table, write_results
from torch import nn

from course_lib.attacks import Oracle, boundary_attack, zoo
from course_lib.data import load_mnist
from course_lib.models import load_model

QUICK = os.environ.get("BENCH_QUICK") == "1"
THREADS = 2
N_BOUNDARY = 4 if QUICK else 20
BOUNDARY_STEPS = (20,) if QUICK else (250, 1000)
N_ZOO = 2 if QUICK else 10
ZOO_ITERS = 2 if QUICK else 40
ROWS: list[dict] = []


def outcome(model, adv, x, y):
    with torch.no_grad():
        fooled = model(adv).argmax(1) != y
    l2 = (adv - x).flatten(1).norm(dim=1)
    return fooled, float(l2[fooled].median()) if fooled.any() else None


def compare(row, model, x, y, peer_name, run_peer, run_ours):
    """Run the peer (counting its queries), then ours at the same mean queries per digit; add the table lines."""
    counted = Counted(model).eval()
    t = time.perf_counter()
    adv_peer = run_peer(counted)
    t_peer = time.perf_counter() - t
    q = counted.images / len(x)
    oracle_kind, fn = run_ours
    oracle = Oracle(model, oracle_kind)
    t = time.perf_counter()
    adv_ours = fn(oracle, int(q))
    t_ours = time.perf_counter() - t
    f_peer, l2_peer = outcome(model, adv_peer, x, y)
    f_ours, l2_ours = outcome(model, adv_ours, x, y)
    both = f_peer & f_ours
    d_peer = (adv_peer - x).flatten(1).norm(dim=1)[both].median().item() if both.any() else None
    d_ours = (adv_ours - x).flatten(1).norm(dim=1)[both].median().item() if both.any() else None
    note = f"queries per digit: ours {float(oracle.queries.double().mean()):.0f}, {peer_name} {q:.0f}"
    add_row(ROWS, row, "success rate", float(f_ours.double().mean()), peer_name, float(f_peer.double().mean()),
            lower_is_better=False, note=note)
    add_row(ROWS, row, "median L2 over successes", l2_ours, peer_name, l2_peer)
    add_row(ROWS, row, "median L2, digits fooled by both", d_ours, peer_name, d_peer, note=f"{int(both.sum())} digits")
    add_row(ROWS, row, "seconds per digit", t_ours / len(x), peer_name, t_peer / len(x))


def main() -> None:
    torch.set_num_threads(THREADS)
    warnings.filterwarnings("ignore")
    logging.getLogger("art").setLevel(logging.ERROR)
    torch.manual_seed(0)
    np.random.seed(0)
    start = time.perf_counter()
    info = machine()
    device = torch.device("cpu")  # both peers are run on the CPU here; the attacks themselves follow x's device
    model = load_model("mnist_cnn", device)
    x_all, y_all = load_mnist("test")
    with torch.no_grad():
        right = model(x_all[:400]).argmax(1) == y_all[:400]
    x_all, y_all = x_all[:400][right], y_all[:400][right]
    from importlib.metadata import version

    versions = {n: version(n) for n in ("course_lib", "foolbox", "adversarial-robustness-toolbox", "numpy")}
    log("course_lib black-box attacks vs Foolbox BoundaryAttack and ART ZooAttack")
    log(f"machine: {info['cpu']}, torch threads {THREADS}, load average {info['load_average_1_5_15']}; {versions}")

    # ---------------------------------------------------------------- 1. Boundary attack vs Foolbox
    import foolbox as fb

    keep = y_all != 8
    xb, yb = x_all[keep][:N_BOUNDARY], y_all[keep][:N_BOUNDARY]
    for steps in BOUNDARY_STEPS:
        row = f"1 Boundary, Foolbox steps={steps}"
        log(row)

        def peer(counted, steps=steps):
            torch.manual_seed(0)
            fmodel = fb.PyTorchModel(counted, bounds=(0, 1))
            _, adv, _ = fb.attacks.BoundaryAttack(steps=steps)(fmodel, xb, yb, epsilons=None)
            return adv

        compare(row, model, xb, yb, "Foolbox BoundaryAttack", peer,
                ("labels", lambda o, q: boundary_attack(o, xb, yb, max_queries=q, seed=0, progress=False)))
    eights_x, eights_y = x_all[y_all == 8][:N_BOUNDARY // 4 or 1], y_all[y_all == 8][:N_BOUNDARY // 4 or 1]
    try:
        fb.attacks.BoundaryAttack(steps=10)(fb.PyTorchModel(model, bounds=(0, 1)), eights_x, eights_y,
                                            epsilons=None)
        peer_on_8 = "runs"
    except ValueError as e:
        peer_on_8 = f"raises: {e}"
    o = Oracle(model, "labels")
    adv8 = boundary_attack(o, eights_x, eights_y, max_queries=500, seed=0, progress=False)
    f8, l8 = outcome(model, adv8, eights_x, eights_y)
    add_row(ROWS, "1 Boundary on 8s", f"success rate on {len(eights_x)} eights, 500 queries", float(f8.double().mean()),
            "Foolbox BoundaryAttack", None, lower_is_better=False, note=f"ours median L2 {l8}; Foolbox {peer_on_8}")

    # ---------------------------------------------------------------- 2. ZOO vs ART
    from art.attacks.evasion import ZooAttack
    from art.estimators.classification import PyTorchClassifier

    xz, yz = x_all[:N_ZOO], y_all[:N_ZOO]
    row = f"2 ZOO, ART max_iter={ZOO_ITERS}"
    log(row)

    def art_zoo(counted):
        clf = PyTorchClassifier(counted, loss=nn.CrossEntropyLoss(), input_shape=tuple(xz.shape[1:]), nb_classes=10,
                                clip_values=(0.0, 1.0))
        attack = ZooAttack(clf, confidence=0.0, targeted=False, learning_rate=1e-2, max_iter=ZOO_ITERS,
                           binary_search_steps=3, initial_const=1.0, abort_early=False, use_resize=False,
                           use_importance=False, nb_parallel=128, batch_size=1, variable_h=1e-4, verbose=False)
        return torch.tensor(attack.generate(xz.numpy(), y=np.eye(10, dtype=np.float32)[yz.numpy()]))

    compare(row, model, xz, yz, "ART ZooAttack", art_zoo,
            ("scores", lambda o, q: zoo(o, xz, yz, max_queries=q, seed=0, c=1.0, binary_search_steps=3,
                                        progress=False)))

    elapsed = time.perf_counter() - start
    info["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    table = rows_table(ROWS, targets=False)
    md = (f"# course_lib black-box attacks vs Foolbox and ART\n\nMachine: {info['cpu']}, torch threads {THREADS}, "
          f"load average {info['load_average_1_5_15']} at the start, {info['load_average_at_end']} at the end. "
          f"Versions: {versions}, torch {info['torch']}.\n\nModel `mnist_cnn` (eval), held-out digits of "
          "`load_mnist('test')` (a held-out part of the official MNIST training set) that it classifies correctly; "
          "untargeted. Ours gets the peer's mean queries per digit; ratio = course_lib / peer.\n\n"
          f"{table}\n\nTotal run time {elapsed:.0f} s.\n")
    js, mdp = write_results("blackbox", {"machine": info, "versions": versions, "quick": QUICK, "rows": ROWS}, md)
    log(f"total {elapsed:.0f} s; wrote {js} and {mdp}")


if __name__ == "__main__":
    main()
