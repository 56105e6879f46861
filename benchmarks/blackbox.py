"""course_lib's black-box attacks side by side with Foolbox, ART and torchattacks, at equal queries per digit.

Run from the repository root with ``make bench`` or ``.venv-peers/bin/python benchmarks/blackbox.py`` (about
30 minutes on 2 quiet CPU cores; ``BENCH_QUICK=1`` shrinks everything to a smoke run). Nothing is downloaded.
Results go to ``benchmarks/results/blackbox.json``, ``blackbox.md`` and the figure ``blackbox.png``; the table is
printed as well.

Setup: the shipped ``mnist_cnn`` (eval) on the CPU, ``torch.set_num_threads(2)``, held-out digits of
``load_mnist("test")`` (a held-out part of the official MNIST *training* set) that the model classifies
correctly: the first two of each class (20 digits, two of them 8s: ``mnist_cnn`` calls all uniform noise "8", the
hard case for decision-based attacks). Untargeted attacks. Every call of the model by a peer goes through a wrapper
that counts the images it sees; ours count through ``Oracle``. Each section says its protocol:

* ``_bb_boundary.py``  the Boundary attack vs Foolbox ``BoundaryAttack`` and ART ``BoundaryAttack``
* ``_bb_hsj.py``       HopSkipJump vs Foolbox ``HopSkipJumpAttack`` and ART ``HopSkipJump``
* ``_bb_zoo.py``       ZOO vs ART ``ZooAttack``
* ``_bb_square.py``    the Square attack vs torchattacks ``Square`` and ART ``SquareAttack``
"""
from __future__ import annotations

import logging
import math
import os
import time
import warnings

import numpy as np
import torch
from _common import RESULTS, log, machine, rows_table, write_results

from course_lib.data import load_mnist
from course_lib.models import load_model

QUICK = os.environ.get("BENCH_QUICK") == "1"
THREADS = 2
PER_CLASS = 1 if QUICK else 2


def digits(model):
    x_all, y_all = load_mnist("test")
    with torch.no_grad():
        right = model(x_all[:600]).argmax(1) == y_all[:600]
    x_all, y_all = x_all[:600][right], y_all[:600][right]
    idx = torch.cat([(y_all == k).nonzero()[:PER_CLASS, 0] for k in range(10)])
    return x_all[idx], y_all[idx]


def figure(curves: dict, path) -> None:
    """Distortion against queries (log scale) for every library and attack; Square's success rate beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1.6, 1]})
    colours = {"Boundary": "C0", "HSJ": "C1", "ZOO": "C2"}
    markers = {"Foolbox": "s", "ART": "^", "torchattacks": "D"}
    for name, data in curves.items():
        if name == "Square" or not data:
            continue
        c = colours[name]
        ours = data["ours"]
        q = np.array(ours["queries"], dtype=float)
        m = np.array([v if v is not None and math.isfinite(v) else np.nan for v in ours["median"]])
        ax.plot(q, m, color=c, label=f"{ours['label']} (trace)")
        for p in data["peers"]:
            lib = p["label"].split()[0]
            ax.plot(p["queries"], p["median"] if math.isfinite(p["median"]) else np.nan, markers.get(lib, "o"),
                    color=c, markerfacecolor="none", markersize=9, label=f"{p['label']}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("queries per digit")
    ax.set_ylabel("median L2 of the best adversarial image")
    ax.set_title("Distortion vs queries (L2 attacks; lines: course_lib traces, markers: peers)")
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles, strict=True))
    ax.legend(seen.values(), seen.keys(), fontsize=7)
    sq = curves.get("Square")
    if sq and sq.get("ours"):
        ax2.plot(sq["ours"]["queries"], sq["ours"]["success"], color="C3", label=sq["ours"]["label"])
        for p in sq["peers"]:
            lib = p["label"].split()[0]
            ax2.plot(p["queries"], p["success"], markers.get(lib, "o"), color="C3", markerfacecolor="none",
                     markersize=9, label=p["label"])
        ax2.set_xscale("log")
        ax2.set_xlabel("queries per digit")
        ax2.set_ylabel("fraction of digits fooled")
        ax2.set_title(f"Square attack, L-inf eps = {sq.get('eps')}")
        ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    torch.set_num_threads(THREADS)
    warnings.filterwarnings("ignore")
    logging.getLogger("art").setLevel(logging.ERROR)
    torch.manual_seed(0)
    np.random.seed(0)
    start = time.perf_counter()
    info = machine()
    model = load_model("mnist_cnn", torch.device("cpu"))
    x, y = digits(model)
    from importlib.metadata import version

    versions = {n: version(n) for n in ("course_lib", "foolbox", "adversarial-robustness-toolbox", "torchattacks",
                                        "numpy")}
    log("course_lib black-box attacks vs Foolbox, ART and torchattacks")
    log(f"machine: {info['cpu']}, torch threads {THREADS}, load average {info['load_average_1_5_15']}; {versions}")
    log(f"{len(x)} digits, classes {y.tolist()}")
    import _bb_boundary
    import _bb_hsj
    import _bb_square
    import _bb_zoo

    rows: list[dict] = []
    curves, seconds = {}, {}
    only = os.environ.get("BENCH_ONLY", "")
    for name, module in (("Boundary", _bb_boundary), ("HSJ", _bb_hsj), ("ZOO", _bb_zoo), ("Square", _bb_square)):
        if only and name not in only.split(","):
            continue
        t = time.perf_counter()
        curves[name] = module.run(model, x, y, rows, QUICK)
        seconds[name] = round(time.perf_counter() - t)
        log(f"{name}: {seconds[name]} s")
    suffix = "_quick" if QUICK else ""
    png = RESULTS / f"blackbox{suffix}.png"
    figure(curves, png)
    elapsed = time.perf_counter() - start
    info["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    table = rows_table(rows)
    md = (f"# course_lib black-box attacks vs Foolbox, ART and torchattacks\n\nMachine: {info['cpu']}, torch threads "
          f"{THREADS}, load average {info['load_average_1_5_15']} at the start, {info['load_average_at_end']} at the "
          f"end. Versions: {versions}, torch {info['torch']}.\n\nModel `mnist_cnn` (eval), {len(x)} held-out digits of "
          "`load_mnist('test')` (a held-out part of the official MNIST training set) that it classifies correctly, "
          f"the first {PER_CLASS} of each class (the 8s included); untargeted. Ours gets the peer's mean queries per "
          "digit (Square: the same maximum); ratio = course_lib / peer. Protocols: the docstrings of "
          f"`benchmarks/_bb_*.py`.\n\n![distortion vs queries]({png.name})\n\n{table}\n\nSeconds per section: "
          f"{seconds}. Total run time {elapsed:.0f} s.\n")
    js, mdp = write_results("blackbox", {"machine": info, "versions": versions, "quick": QUICK, "rows": rows,
                                         "curves": curves, "seconds": seconds}, md)
    log(f"total {elapsed:.0f} s; wrote {js}, {mdp} and {png}")


if __name__ == "__main__":
    main()
