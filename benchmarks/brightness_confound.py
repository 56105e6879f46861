"""The brightness confound: do FGSM and PGD beat what a blind perturbation of the same size already does?

`mnist_cnn` calls a digit with a uniform +0.1 brightness an "8" (lesson 00). A constant shift of every pixel by
+eps lies inside the L-inf ball of radius eps, so an attack at that eps may measure the model's brittleness to
brightness rather than the attack. For each model and eps this script measures, on the held-out digits (the
course's MNIST "test" split: a held-out part of the official MNIST *training* set, not the official test set):

* the accuracy clean, under each blind baseline of `course_lib.attacks.blind_baselines` (constant shift +eps and
  -eps, random signs, the best of the corruptions projected onto the ball, the best blind candidate per image),
  under FGSM and under PGD (40 steps of 2.5 eps / 40, random start);
* the paired difference PGD - best blind per image, with a bootstrap interval;
* where the misclassified digits go: the most frequent wrong class and its share, for the shift +eps, FGSM, PGD.

    python benchmarks/brightness_confound.py            # mnist_cnn, mnist_cnn_b, mnist_cnn_aug, mnist_cnn_aug_b
    python benchmarks/brightness_confound.py --n 500 --models mnist_cnn_aug
    python benchmarks/brightness_confound.py --quick     # 200 digits, mnist_cnn and mnist_cnn_aug, PGD-20, 5 draws:
                                                         # minutes, not hours; writes brightness_confound_quick.*
    python benchmarks/brightness_confound.py --models mnist_cnn_b --part    # one model's rows only, kept in
    python benchmarks/brightness_confound.py --reuse                        # results/brightness_confound_parts/;
                                                                            # then the table from the saved parts

Writes results/brightness_confound.{md,json}. Not a comparison with a reference library: it decides which
model the attack lessons use (see the notes in the Markdown it writes).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import RESULTS, log, machine, markdown_table, write_results  # noqa: E402

from course_lib.attacks import blind_baselines, fgsm, pgd  # noqa: E402
from course_lib.data import load_mnist  # noqa: E402
from course_lib.models import available_models, load_model  # noqa: E402
from course_lib.stats import paired_bootstrap  # noqa: E402
from course_lib.training import predict  # noqa: E402

EPS = [0.05, 0.1, 0.2, 0.3]
BASELINES = ["shift +eps", "shift -eps", "random noise", "corruptions", "best blind"]


def where_they_go(pred: torch.Tensor, y: torch.Tensor) -> tuple[int | None, float, int]:
    """The most frequent wrong class among the misclassified digits, its share of them, and how many there are."""
    wrong = pred[pred != y]
    if wrong.numel() == 0:
        return None, 0.0, 0
    counts = wrong.bincount(minlength=10)
    return int(counts.argmax()), counts.max().item() / wrong.numel(), wrong.numel()


def measure(name: str, x: torch.Tensor, y: torch.Tensor, steps: int, draws: int) -> list[dict]:
    model = load_model(name)
    rows = []
    for eps in EPS:
        t0 = time.perf_counter()
        base = blind_baselines(model, x, y, eps, draws=draws, seed=0)
        x_fgsm = fgsm(model, x, y, eps)
        x_pgd = pgd(model, x, y, eps, alpha=2.5 * eps / steps, steps=steps, seed=0)
        p_shift = predict(model, (x + eps).clamp(0, 1)).argmax(1)
        p_fgsm, p_pgd = predict(model, x_fgsm).argmax(1), predict(model, x_pgd).argmax(1)
        pgd_ok = (p_pgd == y).double()
        gap = paired_bootstrap(pgd_ok, base["best blind"])
        row = {"model": name, "eps": eps, **{k: v.mean().item() for k, v in base.items()},
               "FGSM": (p_fgsm == y).double().mean().item(), "PGD": pgd_ok.mean().item(),
               "PGD - best blind": {"diff": gap.estimate, "low": gap.low, "high": gap.high, "n": gap.n},
               "goes to": {k: where_they_go(p, y) for k, p in
                           [("shift +eps", p_shift), ("FGSM", p_fgsm), ("PGD", p_pgd)]},
               "seconds": time.perf_counter() - t0}
        rows.append(row)
        d = row["PGD - best blind"]
        log(f"{name:14s} eps {eps:.2f}: clean {row['clean']:.3f}  " +
            "  ".join(f"{k} {row[k]:.3f}" for k in BASELINES) +
            f"  FGSM {row['FGSM']:.3f}  PGD {row['PGD']:.3f}  PGD - best blind {d['diff']:+.3f} "
            f"[{d['low']:+.3f}, {d['high']:+.3f}]  goes to {row['goes to']}  ({row['seconds']:.0f} s)")
    return rows


def goes(t) -> str:
    cls, share, n = t
    return "-" if cls is None else f"{cls} ({share:.0%} of {n})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="*", default=["mnist_cnn", "mnist_cnn_b", "mnist_cnn_aug", "mnist_cnn_aug_b"])
    p.add_argument("--n", type=int, default=2000, help="held-out digits (the first n; default all 2,000)")
    p.add_argument("--steps", type=int, default=40, help="PGD steps (default 40)")
    p.add_argument("--draws", type=int, default=20, help="random-sign draws per digit (default 20)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true",
                   help="a check in minutes: 200 digits, mnist_cnn and mnist_cnn_aug, PGD-20, 5 draws; writes "
                        "results/brightness_confound_quick.{md,json} and leaves the full results alone")
    p.add_argument("--part", action="store_true",
                   help="measure the models and save their rows in results/brightness_confound_parts/, no table")
    p.add_argument("--reuse", action="store_true",
                   help="take a model's rows from results/brightness_confound_parts/ when they were measured with "
                        "the same --n, --steps and --draws (several --part runs can go in parallel)")
    args = p.parse_args()
    if args.quick:
        args.n, args.models, args.steps, args.draws = 200, ["mnist_cnn", "mnist_cnn_aug"], 20, 5
    torch.set_num_threads(args.threads)
    x, y = load_mnist("test")
    x, y = x[:args.n], y[:args.n]
    names = [m for m in args.models if m in available_models()]
    log(f"{len(x)} held-out digits (the course's 'test' split: held-out official MNIST TRAINING images); "
        f"PGD {args.steps} steps; models {names}; {machine()}")
    t0 = time.perf_counter()
    parts = RESULTS / "brightness_confound_parts"
    config = {"n": len(x), "steps": args.steps, "draws": args.draws}
    rows = []
    for name in names:
        part = parts / f"{name}.json"
        saved = json.loads(part.read_text()) if args.reuse and part.exists() else None
        if saved and saved["config"] == config:
            log(f"{name}: rows from {part}")
            rows += saved["rows"]
            continue
        measured = measure(name, x, y, args.steps, args.draws)
        rows += measured
        if args.part:
            parts.mkdir(parents=True, exist_ok=True)
            part.write_text(json.dumps({"config": config, "machine": machine(), "rows": measured}, indent=1) + "\n")
    if args.part:
        return

    header = ["model", "eps", "clean", *BASELINES, "FGSM", f"PGD-{args.steps}", "PGD - best blind [95 % CI]"]
    table = [[r["model"], r["eps"], r["clean"], *[r[k] for k in BASELINES], r["FGSM"], r["PGD"],
              f"{r['PGD - best blind']['diff']:+.3f} [{r['PGD - best blind']['low']:+.3f}, "
              f"{r['PGD - best blind']['high']:+.3f}]"] for r in rows]
    header2 = ["model", "eps", "shift +eps: top wrong class", "FGSM: top wrong class", "PGD: top wrong class"]
    table2 = [[r["model"], r["eps"], *[goes(r["goes to"][k]) for k in ("shift +eps", "FGSM", "PGD")]] for r in rows]
    md = (f"# The brightness confound: accuracy under blind baselines and under attack\n\n"
          f"{len(x)} held-out MNIST digits (the course's `test` split, a held-out part of the official MNIST "
          f"**training** set, not the official test set); L-inf budget eps in pixel units; PGD {args.steps} steps "
          f"of 2.5 eps / {args.steps} with a random start (seed 0); random signs: {args.draws} draws per digit "
          f"(accuracy = mean over draws); corruptions: brightness, contrast, Gaussian noise, Gaussian blur at "
          f"severities 1, 3, 5, each projected onto the ball, an image counted wrong if any of them fools it; "
          f"best blind: wrong if any blind candidate (both shifts, the 12 corruptions, the {args.draws} random "
          f"draws) fools it. Last column: the paired difference of PGD and best-blind accuracy per digit, with a "
          f"bootstrap 95 % interval (`course_lib.stats.paired_bootstrap`, 10,000 resamples).\n\n"
          + markdown_table(header, table)
          + "\n\nWhere the misclassified digits go: the most frequent wrong class, its share of the misclassified "
            "digits and their number.\n\n" + markdown_table(header2, table2)
          + f"\n\nMeasured in {sum(r['seconds'] for r in rows):.0f} s of model time (the rows' sum; "
            f"{time.perf_counter() - t0:.0f} s this run, parts reused: {args.reuse}); machine: {machine()}\n")
    name = "brightness_confound_quick" if args.quick else "brightness_confound"
    paths = write_results(name, {"config": vars(args), "rows": rows, "machine": machine()}, md)
    log(md)
    log(f"wrote {paths[0]} and {paths[1]}")


if __name__ == "__main__":
    main()
