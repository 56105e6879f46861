"""course_lib.defenses and course_lib.attacks.robust_accuracy side by side with torchattacks and ART.

Run from the repository root with ``.venv-peers/bin/python benchmarks/defenses.py`` (over 50 minutes on one busy CPU
thread, most of it part 1, then part 2 with about 10; ``BENCH_QUICK=1`` shrinks every size for a smoke run of a few
minutes and writes ``results/defenses_quick.*``). Nothing is downloaded. Results go to
``benchmarks/results/defenses.json`` and ``defenses.md``; the tables are printed as well. ``BENCH_ONLY=1,3`` (or
``--parts 1,3``) runs some parts only: each part is saved to ``results/defenses_parts/`` and the table is rebuilt
from the saved parts, so the other parts keep their last numbers. ``--model NAME`` (or ``BENCH_MODEL``) picks part
1's model: a shipped name, or ``mnist_pgd@/path/weights.pt`` (the architecture of ``mnist_pgd`` with those weights);
``--eps`` its budget.

Setup, the same for every library: one process, ``torch.set_num_threads(1)`` (the machine is shared), the CPU,
images from ``load_mnist`` (the held-out digits of ``load_mnist("test")`` are a held-out part of the official MNIST
*training* set, not the official test set), every model in eval mode when attacked. Timings: one interleaved
call per library (``interleaved_times``; the calls are long), wall clock and CPU seconds; ratio = course_lib / peer.

Parts (issue 11, section 4):
1. ``robust_accuracy`` (its defaults: PGD-CE and PGD-margin 100 steps x 2 restarts, targeted PGD to 3 classes,
   Square 2,000 queries) vs torchattacks ``AutoAttack(version="standard")`` (APGD-CE, APGD-T 9 targets, FAB-T 9
   targets, Square 5,000 queries) on ``mnist_pgd`` at eps 0.3: robust accuracy, per-image agreement, time.
2. ``adversarial_training`` (PGD-7, ``scheduler=None``: AdamW with weight decay 0 at a constant lr 3e-3) vs ART
   ``AdversarialTrainerMadryPGD`` (PGD-7, Adam at a constant lr 3e-3), 2,000 digits, 10 epochs, seeds 0, 1, 2 (per
   seed the same initial ``mnist_cnn`` for both): time per epoch (interleaved, every seed), clean and PGD-40
   accuracy per seed, their means and the paired differences; plus ours with the default one-cycle lr (seed 0).
3. ``distill`` at T = 100 vs ART ``DefensiveDistillation`` (soft labels, no temperature) from the shipped
   ``mnist_cnn``: clean accuracy, logit gap, zero input gradients, PGD-40 (CE and margin) accuracy at eps 0.1.
4. Gradient masking by preprocessing (bit depth 3, JPEG 50, random resize+pad) on ``mnist_cnn_aug`` at eps 0.1:
   plain PGD-40, our BPDA / EOT, ART's PGD through its preprocessors (their ``estimate_gradient`` is the identity).
"""
from __future__ import annotations

import argparse
import os
import statistics
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from _common import (
    RESULTS,
    Counted,
    add_row,
    interleaved_times,
    load_parts,
    log,
    machine,
    rows_table,
    run_part,
    write_results,
)
from torch import nn

from course_lib.attacks import pgd, robust_accuracy
from course_lib.data import load_mnist, make_loader
from course_lib.defenses import BPDA, EOT, JPEG, BitDepth, Defended, RandomResizePad, adversarial_training, distill
from course_lib.models import build_model, load_model
from course_lib.training import predict

QUICK = os.environ.get("BENCH_QUICK") == "1"
THREADS = 1                                  # the machine is shared: one thread for every library
PARTS_DIR = RESULTS / "defenses_parts"
SUFFIX = "_quick" if QUICK else ""

# part 1
N_ROBUST = 50 if QUICK else 500              # overridden by --n-robust (see the notes of the run)
# part 2 (N_TRAIN and BATCH also part 3's)
N_TRAIN = 500 if QUICK else 2000
EPOCHS2 = 2 if QUICK else 10
SEEDS2 = (0, 1) if QUICK else (0, 1, 2)       # per seed: same initial weights for both libraries, own data order
LR2 = 3e-3                                   # constant for both: ours scheduler=None, ART torch.optim.Adam
BATCH = 50
# part 3
EPOCHS = 1 if QUICK else 3
LR = 1e-3
AT_EPS, AT_ALPHA, AT_STEPS = 0.3, 0.1, 7     # inner PGD of both trainers: 7 steps of 0.1 (2.3 eps in all)
N_EVAL = 100 if QUICK else 500               # held-out digits for part 2's accuracies
EVAL_EPS, EVAL_ALPHA, EVAL_STEPS = 0.3, 0.01, 40
# part 3
TEMPERATURE = 100.0
N_EVAL3 = 100 if QUICK else 200
EPS3 = 0.1
# part 4
N_MASK = 50 if QUICK else 200
EPS4, ALPHA4, STEPS4 = 0.1, 0.01, 40
EOT_SAMPLES = 10
EVAL_DRAWS = 5
SEED = 0

DATA_NOTE = ("Data: `load_mnist('test')` (the held-out digits) is a held-out part of the official MNIST *training* "
             "set (images 0-9999, split by class), not the official MNIST test set; training digits are the first "
             "of `load_mnist('train')`, disjoint from them.")
TIMING_NOTE = ("Timings: one process, `torch.set_num_threads(1)`, on 2 cores shared with other heavy jobs (see the "
               "load averages): absolute times are inflated and noisy. The libraries' calls take turns "
               "(`interleaved_times`, one timed call each: the calls are long), so the ratios are the fairer number; "
               "forward passes per digit (counted by a wrapper around the model) do not depend on the load.")


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def labels(model, x):
    return predict(model, x).argmax(1)


def acc(model, x, y) -> float:
    return float((labels(model, x) == y).double().mean())


def acc_random(model, x, y, draws: int = EVAL_DRAWS) -> tuple[float, list[float]]:
    """Accuracy of a model with random behaviour: mean over ``draws`` evaluations (global RNG seeded 100, 101, ...)."""
    vals = []
    for d in range(draws):
        torch.manual_seed(100 + d)
        vals.append(acc(model, x, y))
    return statistics.mean(vals), vals


def in_ball(adv, x, eps) -> dict:
    excess = float((adv - x).abs().max()) - eps
    return {"ok": bool(excess <= 1e-6 and adv.min() >= 0 and adv.max() <= 1), "max_excess": excess}


def timed(makers: dict, label: str, raw: dict, warm: dict | None = None):
    """One interleaved, timed call per library; ``warm``: small untimed calls first (one-off costs: lazy
    initialisation, allocator), since the timed calls are too long to repeat. Wall and CPU seconds, outputs."""
    for fn in (warm or {}).values():
        fn()
    wall, cpu, outs = interleaved_times(makers, repeats=1, warmup=0)
    raw[label] = {"wall_s": wall, "cpu_s": cpu}
    return {k: v[0] for k, v in wall.items()}, {k: v[0] for k, v in cpu.items()}, outs


def art_classifier(model, **kw):
    from art.estimators.classification import PyTorchClassifier

    kw.setdefault("loss", nn.CrossEntropyLoss())
    return PyTorchClassifier(model, input_shape=(1, 28, 28), nb_classes=10, clip_values=(0.0, 1.0),
                             device_type="cpu", **kw)


def versions() -> dict:
    from importlib.metadata import version

    return {name: version(name) for name in ("course_lib", "torchattacks", "adversarial-robustness-toolbox",
                                             "numpy")}


# --------------------------------------------------------------------------------------------------- part 1

def pick_model(spec: str | None):
    """Part 1's model: ``spec`` (a shipped name or ``arch@weights.pt``), else the shipped ``mnist_pgd``, else the
    training probe's weights ``/tmp/probe_A.pt``, else ``mnist_cnn_aug`` (then at eps 0.1). Returns
    ``(model, description, default eps)``."""
    if spec:
        if "@" in spec:
            arch, path = spec.split("@", 1)
            m = build_model(arch)
            m.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return m.eval(), f"`{arch}` architecture with the weights of `{path}` (a stand-in)", 0.3
        return load_model(spec), f"`{spec}` (shipped)", 0.3 if spec == "mnist_pgd" else 0.1
    try:
        import hashlib

        from course_lib.data import data_dir
        from course_lib.models import model_info

        m = load_model("mnist_pgd")
        sha = hashlib.sha256((data_dir() / "models/mnist_pgd.pt").read_bytes()).hexdigest()
        note = model_info("mnist_pgd").get("note", "")
        return m, f"`mnist_pgd` (shipped, sha256 {sha[:12]}...{'; manifest note: ' + note if note else ''})", 0.3
    except Exception as err:  # not shipped yet
        log(f"  mnist_pgd not loadable ({type(err).__name__}: {err}); falling back")
    if os.path.exists("/tmp/probe_A.pt"):
        return pick_model("mnist_pgd@/tmp/probe_A.pt")
    return load_model("mnist_cnn_aug"), "`mnist_cnn_aug` (shipped; development stand-in)", 0.1


def part1(args, raw):
    import torchattacks

    rows: list[dict] = []
    model, desc, eps_default = pick_model(args.model)
    eps = args.eps if args.eps is not None else eps_default
    n = args.n_robust or N_ROBUST
    x, y = load_mnist("test")
    x, y = x[:n], y[:n]
    log(f"\n[1] robust_accuracy vs torchattacks AutoAttack (standard), model {desc}, eps {eps}, {n} digits; "
        f"load {load()}")
    c_ours, c_aa = Counted(model).eval(), Counted(model).eval()
    clean = labels(model, x) == y
    makers = {
        "ours": lambda: robust_accuracy(c_ours, x, y, eps),
        "AutoAttack": lambda: torchattacks.AutoAttack(c_aa, norm="Linf", eps=eps, version="standard", n_classes=10,
                                                      seed=0)(x, y),
    }
    wall, cpu, outs = timed(makers, "part1", raw)
    model.zero_grad(set_to_none=True)
    res = outs["ours"]
    adv_aa = outs["AutoAttack"]
    r_ours = res.robust.cpu()
    r_aa = (labels(model, adv_aa) == y) & clean
    # our own check of our result: the returned images are in the ball and misclassified where not robust
    r_ours_check = (labels(model, res.x_adv) == y) & clean
    ball = {"ours": in_ball(res.x_adv, x, eps), "AutoAttack": in_ball(adv_aa, x, eps)}
    a_ours, a_aa = float(r_ours.double().mean()), float(r_aa.double().mean())
    only_ours = int((r_ours & ~r_aa).sum())   # robust for ours, broken by AutoAttack: our evaluation missed them
    only_aa = int((r_aa & ~r_ours).sum())
    passes = {"ours": c_ours.images / n, "AutoAttack": c_aa.images / n}
    diff_pts = 100 * (a_ours - a_aa)
    add_row(rows, "1 robust accuracy", f"robust accuracy (eps {eps}, {n} digits)", a_ours, "torchattacks AutoAttack",
            a_aa, target="ours within 1 point of AutoAttack, never > 1 point above",
            met=abs(diff_pts) <= 1.0 + 1e-9, lower_is_better=True,
            note=f"ours - AutoAttack = {diff_pts:+.1f} points; clean accuracy {float(clean.double().mean()):.3f}; "
                 f"ours broken by: {dict(res.counts)}")
    add_row(rows, "1 robust accuracy", "digits robust for one evaluation only", only_ours, "robust for AutoAttack only",
            only_aa, note=f"'{only_ours}' = robust for ours but broken by AutoAttack (our evaluation too lenient on "
                          f"them); '{only_aa}' = broken by ours, robust for AutoAttack; both robust "
                          f"{int((r_ours & r_aa).sum())}, both broken {int((~r_ours & ~r_aa).sum())}")
    add_row(rows, "1 robust accuracy", f"seconds per call ({n} digits)", wall["ours"], "torchattacks AutoAttack",
            wall["AutoAttack"], target="<= AutoAttack", met=wall["ours"] <= wall["AutoAttack"],
            note=f"CPU-time ratio {cpu['ours'] / cpu['AutoAttack']:.2f}; forward passes per digit: ours "
                 f"{passes['ours']:.0f}, AutoAttack {passes['AutoAttack']:.0f}")
    add_row(rows, "1 robust accuracy", "outputs in the eps-ball and [0, 1]", "ok" if ball["ours"]["ok"] else "NO",
            "torchattacks AutoAttack", "ok" if ball["AutoAttack"]["ok"] else "NO",
            note="" if bool((r_ours_check == r_ours).all()) else "ours' robust flags disagree with its x_adv!")
    details = {"model": desc, "eps": eps, "n": n, "robust_accuracy": {"ours": a_ours, "AutoAttack": a_aa},
               "clean_accuracy": float(clean.double().mean()), "broken_by_counts": res.counts,
               "robust_only_ours": only_ours, "robust_only_autoattack": only_aa,
               "robust_ours": r_ours.tolist(), "robust_autoattack": r_aa.tolist(), "broken_by": res.broken_by,
               "seconds": wall, "cpu_seconds": cpu, "forward_passes_per_digit": passes, "in_ball": ball,
               "ours_flags_consistent": bool((r_ours_check == r_ours).all())}
    intro = (f"Model {desc}, eps {eps} (L-inf), the first {n} held-out digits. Ours: `robust_accuracy(model, x, y, "
             f"{eps})` with its defaults (PGD-CE and PGD-margin 100 steps x 2 restarts each, step 2.5 eps / 100; "
             "targeted PGD (margin) to the 3 next classes; Square 2,000 queries; each attack on the digits still "
             "robust). Peer: torchattacks `AutoAttack(norm='Linf', eps, version='standard', n_classes=10, seed=0)` "
             "(APGD-CE, APGD-T with 9 target classes, FAB-T with 9 targets, Square 5,000 queries; each on the "
             "digits still correct). Robust = correct on the returned image (and clean), checked with the model for "
             "both.")
    notes = [
        "Target of the issue: ours within 1 point of AutoAttack's robust accuracy, never more than 1 point above, "
        "at no more time. A digit robust for ours but broken by AutoAttack is a failure of our evaluation (it is "
        "too lenient there).",
    ]
    return {"title": "Part 1: robust_accuracy vs AutoAttack", "intro": intro, "rows": rows, "notes": notes,
            "details": details}


# --------------------------------------------------------------------------------------------------- part 2

def pgd_acc(model, x, y, eps, alpha=EVAL_ALPHA, steps=EVAL_STEPS, loss="ce") -> float:
    adv = pgd(model, x, y, eps, alpha, steps, seed=SEED, loss=loss)
    model.zero_grad(set_to_none=True)
    return acc(model, adv, y)


def fresh_cnn():
    torch.manual_seed(SEED)
    return build_model("mnist_cnn")


def part2(args, raw):
    from art.defences.trainer import AdversarialTrainerMadryPGD

    rows: list[dict] = []
    xt, yt = load_mnist("train")
    xt, yt = xt[:N_TRAIN], yt[:N_TRAIN]
    xe, ye = load_mnist("test")
    xe, ye = xe[:N_EVAL], ye[:N_EVAL]
    log(f"\n[2] adversarial_training vs ART AdversarialTrainerMadryPGD: {N_TRAIN} digits, {EPOCHS2} epoch(s), batch "
        f"{BATCH}, lr {LR2:g}, eps {AT_EPS}, PGD-{AT_STEPS} step {AT_ALPHA}, seeds {list(SEEDS2)}; load {load()}")
    hist: dict = {}

    def cnn(seed):
        torch.manual_seed(seed)
        return build_model("mnist_cnn")

    def ours(m, xs, ys, epochs, seed, **kw):
        kw.setdefault("scheduler", None)   # a constant lr, like ART's Adam (AdamW with weight decay 0 = Adam)
        return adversarial_training(m, make_loader(xs, ys, batch_size=BATCH, seed=seed), AT_EPS, AT_ALPHA,
                                    AT_STEPS, epochs, lr=LR2, seed=seed, progress=False, history=hist, **kw)

    def art(m, xs, ys, epochs, seed):
        np.random.seed(seed)
        opt = torch.optim.Adam(m.parameters(), lr=LR2)
        clf = art_classifier(m, optimizer=opt)
        trainer = AdversarialTrainerMadryPGD(clf, nb_epochs=epochs, batch_size=BATCH, eps=AT_EPS, eps_step=AT_ALPHA,
                                             max_iter=AT_STEPS, num_random_init=1)
        trainer.attack.set_params(batch_size=BATCH, verbose=False)  # its inner attack's default batch is 32
        trainer.fit(xs.numpy(), F.one_hot(ys, 10).float().numpy())
        m.eval()
        return m

    def evaluate(m):
        m.eval()
        return {"clean": acc(m, xe, ye), "pgd40": pgd_acc(m, xe, ye, EVAL_EPS)}

    warm = {"ours": lambda: ours(cnn(SEED), xt[:2 * BATCH], yt[:2 * BATCH], 1, SEED),
            "ART": lambda: art(cnn(SEED), xt[:2 * BATCH], yt[:2 * BATCH], 1, SEED)}
    res: dict = {"ours": {}, "ART": {}}
    secs: dict = {"ours": {}, "ART": {}}
    cpus: dict = {"ours": {}, "ART": {}}
    same_init, losses = {}, {}
    for i, s in enumerate(SEEDS2):
        models = {"ours": cnn(s), "ART": cnn(s)}
        same_init[s] = all(torch.equal(a, b) for a, b in zip(models["ours"].state_dict().values(),
                                                             models["ART"].state_dict().values(), strict=True))
        makers = {"ours": lambda s=s, m=models["ours"]: ours(m, xt, yt, EPOCHS2, s),
                  "ART": lambda s=s, m=models["ART"]: art(m, xt, yt, EPOCHS2, s)}
        if i % 2:  # every other seed ART runs first
            makers = dict(reversed(list(makers.items())))
        wall, cpu, _ = timed(makers, f"part2 seed {s}", raw, warm if i == 0 else None)
        losses[s] = hist.get("loss")
        for k, m in models.items():
            res[k][s] = evaluate(m)
            secs[k][s], cpus[k][s] = wall[k] / EPOCHS2, cpu[k] / EPOCHS2
        log(f"  seed {s}: ours {res['ours'][s]}, ART {res['ART'][s]}; s/epoch ours {secs['ours'][s]:.2f}, "
            f"ART {secs['ART'][s]:.2f}; load {load()}")
    # diagnostic, untimed: ours with train's default one-cycle schedule (peak LR2), to show what the schedule costs
    onecycle = evaluate(ours(cnn(SEED), xt, yt, EPOCHS2, SEED, scheduler="onecycle"))
    log(f"  ours, one-cycle, seed {SEED}: {onecycle}")

    mean = statistics.mean
    n_seeds = len(SEEDS2)

    def sd(v):
        return statistics.stdev(v) if len(v) > 1 else float("nan")

    diff = {s: res["ours"][s]["pgd40"] - res["ART"][s]["pgd40"] for s in SEEDS2}
    diff_clean = {s: res["ours"][s]["clean"] - res["ART"][s]["clean"] for s in SEEDS2}
    summary = {k: {"clean_mean": mean(v[s]["clean"] for s in SEEDS2), "pgd40_mean": mean(v[s]["pgd40"] for s in SEEDS2),
                   "pgd40_sd": sd([v[s]["pgd40"] for s in SEEDS2]),
                   "pgd40_range": [min(v[s]["pgd40"] for s in SEEDS2), max(v[s]["pgd40"] for s in SEEDS2)],
                   "seconds_per_epoch_mean": mean(secs[k].values()),
                   "cpu_seconds_per_epoch_mean": mean(cpus[k].values())} for k, v in res.items()}
    summary["pgd40_diff"] = {"per_seed": diff, "mean": mean(diff.values()), "sd": sd(list(diff.values()))}
    summary["clean_diff"] = {"per_seed": diff_clean, "mean": mean(diff_clean.values())}
    so, sa = summary["ours"], summary["ART"]
    cpu_ratio = sum(cpus["ours"].values()) / sum(cpus["ART"].values())
    r = "2 adversarial training"
    peer = "ART AdversarialTrainerMadryPGD"
    for s in SEEDS2:
        add_row(rows, r, f"PGD-40 accuracy, seed {s}", res["ours"][s]["pgd40"], peer, res["ART"][s]["pgd40"],
                lower_is_better=False, note=f"ours - ART = {100 * diff[s]:+.1f} points; clean accuracy ours "
                f"{res['ours'][s]['clean']:.3f}, ART {res['ART'][s]['clean']:.3f}")
    add_row(rows, r, f"PGD-40 accuracy (eps {EVAL_EPS}, {N_EVAL} held-out), mean of {n_seeds} seeds", so["pgd40_mean"],
            peer, sa["pgd40_mean"], target=">= ART", met=so["pgd40_mean"] >= sa["pgd40_mean"], lower_is_better=False,
            note=f"paired difference ours - ART: mean {100 * summary['pgd40_diff']['mean']:+.1f} points (per seed "
                 + ", ".join(f"{100 * diff[s]:+.1f}" for s in SEEDS2) + f"); PGD-{EVAL_STEPS} step {EVAL_ALPHA}, "
                 f"random start, course_lib `pgd` (seed {SEED}) on every model")
    add_row(rows, r, f"clean accuracy ({N_EVAL} held-out), mean of {n_seeds} seeds", so["clean_mean"], peer,
            sa["clean_mean"], lower_is_better=False,
            note=f"paired difference ours - ART: mean {100 * summary['clean_diff']['mean']:+.1f} points")
    add_row(rows, r, f"PGD-40 accuracy, ours with the default one-cycle schedule (peak lr {LR2:g}), seed {SEED}",
            onecycle["pgd40"], f"ours, constant lr, seed {SEED}", res["ours"][SEED]["pgd40"], lower_is_better=False,
            note=f"diagnostic (not timed): what `train`'s default schedule costs; clean accuracy "
                 f"{onecycle['clean']:.3f} (constant lr {res['ours'][SEED]['clean']:.3f}); ART seed {SEED}: "
                 f"{res['ART'][SEED]['pgd40']:.3f}")
    add_row(rows, r, f"seconds per epoch ({N_TRAIN} digits), mean of {n_seeds} seeds", so["seconds_per_epoch_mean"],
            peer, sa["seconds_per_epoch_mean"], target="<= ART",
            met=so["seconds_per_epoch_mean"] <= sa["seconds_per_epoch_mean"],
            note=f"CPU-time ratio {cpu_ratio:.2f}; wall ratio per seed "
                 + ", ".join(f"{secs['ours'][s] / secs['ART'][s]:.2f}" for s in SEEDS2))
    details = {"n_train": N_TRAIN, "epochs": EPOCHS2, "batch": BATCH, "lr": LR2, "eps": AT_EPS, "alpha": AT_ALPHA,
               "steps": AT_STEPS, "n_eval": N_EVAL, "seeds": list(SEEDS2), "results": res,
               "ours_onecycle_seed0": onecycle, "summary": summary, "seconds_per_epoch": secs,
               "cpu_seconds_per_epoch": cpus, "cpu_time_ratio": cpu_ratio, "same_initial_weights": same_init,
               "ours_loss_per_epoch": losses}
    intro = (f"Per seed s in {list(SEEDS2)}: a fresh `build_model('mnist_cnn')` per library after "
             f"`torch.manual_seed(s)` "
             f"(identical initial weights: {'yes' if all(same_init.values()) else 'NO'}), the first {N_TRAIN} digits "
             f"of `load_mnist('train')`, {EPOCHS2} epochs, batch {BATCH}, eps {AT_EPS} from the first step (no ramp), "
             f"inner PGD {AT_STEPS} steps of {AT_ALPHA} from a random start, a constant lr {LR2:g} for both. Ours: "
             f"`adversarial_training(model, make_loader(x, y, batch_size={BATCH}, seed=s), {AT_EPS}, {AT_ALPHA}, "
             f"{AT_STEPS}, {EPOCHS2}, lr={LR2:g}, seed=s, scheduler=None)` (AdamW with weight decay 0, i.e. Adam). "
             f"ART: `np.random.seed(s)`, `PyTorchClassifier(..., optimizer=torch.optim.Adam(lr={LR2:g}))`, "
             f"`AdversarialTrainerMadryPGD(classifier, nb_epochs={EPOCHS2}, batch_size={BATCH}, eps={AT_EPS}, "
             f"eps_step={AT_ALPHA}, max_iter={AT_STEPS}, num_random_init=1)`, its inner attack's batch set to "
             f"{BATCH}. Each model evaluated on the first {N_EVAL} held-out digits: clean accuracy and course_lib "
             f"PGD-{EVAL_STEPS} (eps {EVAL_EPS}, step {EVAL_ALPHA}, random start). Every seed's two trainings are "
             f"timed interleaved (ART first on every other seed). One untimed diagnostic: ours with `train`'s "
             f"default one-cycle schedule (peak {LR2:g}), seed {SEED}.")
    notes = [
        "ART's `AdversarialTrainerMadryPGD` is `AdversarialTrainer(classifier, ProjectedGradientDescent(classifier, "
        "eps, eps_step, max_iter, num_random_init), ratio=1.0)`: every batch (shuffled with NumPy) is replaced "
        "entirely by PGD examples of the current model, then `classifier.fit` makes one step on it: the same "
        "algorithm as ours (both return the inner attack's last iterate). `max_iter=7` is the same budget as our "
        "`steps=7`.",
        f"Optimiser: both at a constant lr {LR2:g} (ART has no schedule; ours `scheduler=None`); ours is AdamW with "
        "weight decay 0, the same update as Adam. The seed fixes the same initial weights for both; the data order "
        "and the random starts come from each library's own generator (ours torch, ART NumPy), so they differ "
        "between the libraries, as they differ between seeds.",
        "Target of the issue: our PGD-40 accuracy at least ART's (here: the mean over the seeds), our time per epoch "
        f"at most ART's. A small run ({N_TRAIN} digits), not a usable robust model: compare the two trainers, not "
        "the level (the shipped `mnist_pgd` is part 1's model).",
    ]
    return {"title": "Part 2: adversarial_training vs ART AdversarialTrainerMadryPGD", "intro": intro, "rows": rows,
            "notes": notes, "details": details}


# --------------------------------------------------------------------------------------------------- part 3

class SoftLabelNLL(nn.modules.loss._Loss):
    """Cross-entropy of probabilities ``p`` (a softmax output) against soft labels ``t``:
    ``-mean_i sum_k t_ik log p_ik`` (what ART's ``DefensiveDistillation`` needs: a loss that takes probability
    labels, on a model that outputs probabilities)."""

    def forward(self, p, t):
        return -(t * torch.log(p.clamp_min(1e-30))).sum(1).mean()


def input_grad_zero(model, x, y) -> float:
    """Share of images whose cross-entropy gradient w.r.t. the input is exactly 0 (float32)."""
    xg = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(xg), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, xg)
    return float((g.flatten(1).abs().amax(1) == 0).double().mean())


def top2_gap(model, x) -> float:
    z = predict(model, x).topk(2, 1).values
    return float((z[:, 0] - z[:, 1]).median())


def part3(args, raw):
    from art.defences.transformer.evasion import DefensiveDistillation

    rows: list[dict] = []
    teacher = load_model("mnist_cnn")
    xt, yt = load_mnist("train")
    xt, yt = xt[:N_TRAIN], yt[:N_TRAIN]
    xe, ye = load_mnist("test")
    xe, ye = xe[:N_EVAL3], ye[:N_EVAL3]
    log(f"\n[3] distill (T = {TEMPERATURE:g}) vs ART DefensiveDistillation: teacher mnist_cnn, {N_TRAIN} digits, "
        f"{EPOCHS} epoch(s), batch {BATCH}; load {load()}")
    students = {"ours": fresh_cnn(), "ART": fresh_cnn()}

    def ours(student, xs, epochs):
        return distill(teacher, make_loader(xs, yt[:len(xs)], batch_size=BATCH, seed=SEED), TEMPERATURE, epochs,
                       student=student, lr=LR, seed=SEED, progress=False)

    def art(student, xs, epochs):
        np.random.seed(SEED)
        t_clf = art_classifier(nn.Sequential(teacher, nn.Softmax(dim=1)).eval())
        s_probs = nn.Sequential(student, nn.Softmax(dim=1))
        s_clf = art_classifier(s_probs, loss=SoftLabelNLL(), optimizer=torch.optim.Adam(s_probs.parameters(), lr=LR))
        DefensiveDistillation(t_clf, batch_size=BATCH, nb_epochs=epochs)(xs.numpy(), s_clf)
        student.eval()
        return student

    warm = {"ours": lambda: ours(fresh_cnn(), xt[:2 * BATCH], 1), "ART": lambda: art(fresh_cnn(), xt[:2 * BATCH], 1)}
    wall, cpu, _ = timed({"ours": lambda: ours(students["ours"], xt, EPOCHS),
                          "ART": lambda: art(students["ART"], xt, EPOCHS)}, "part3", raw, warm)
    teacher.zero_grad(set_to_none=True)
    res = {}
    evaluated = {"ours": students["ours"], "ART": students["ART"], "teacher": teacher}
    try:  # course_lib's full recipe (scripts/train_models.py): teacher trained at T = 100, 40 epochs each
        evaluated["shipped mnist_distilled"] = load_model("mnist_distilled")
    except Exception as err:
        log(f"  mnist_distilled not loadable: {err}")
    for k, m in evaluated.items():
        m.eval()
        res[k] = {"clean": acc(m, xe, ye), "median_top2_gap": top2_gap(m, xe),
                  "grad_zero_share": input_grad_zero(m, xe, ye),
                  "pgd40_ce": pgd_acc(m, xe, ye, EPS3), "pgd40_margin": pgd_acc(m, xe, ye, EPS3, loss="margin")}
        log(f"  {k}: {res[k]}")
    r = f"3 distillation (ours T = {TEMPERATURE:g})"
    peer = "ART DefensiveDistillation"
    tn = res["teacher"]
    sd = res.get("shipped mnist_distilled")

    def ref(key, f=".3f"):
        return f"teacher {tn[key]:{f}}" + (f"; shipped `mnist_distilled` {sd[key]:{f}}" if sd else "")
    add_row(rows, r, f"clean accuracy ({N_EVAL3} held-out)", res["ours"]["clean"], peer, res["ART"]["clean"],
            lower_is_better=False, note=ref("clean"))
    add_row(rows, r, "median top-2 logit gap", res["ours"]["median_top2_gap"], peer, res["ART"]["median_top2_gap"],
            note=ref("median_top2_gap", ".3g"))
    add_row(rows, r, "share of digits with CE input gradient exactly 0", res["ours"]["grad_zero_share"], peer,
            res["ART"]["grad_zero_share"], note=ref("grad_zero_share") + "; float32")
    add_row(rows, r, f"PGD-40 (CE) accuracy, eps {EPS3}", res["ours"]["pgd40_ce"], peer, res["ART"]["pgd40_ce"],
            note=ref("pgd40_ce") + "; high = the attack was masked, not robustness")
    add_row(rows, r, f"PGD-40 (margin) accuracy, eps {EPS3}", res["ours"]["pgd40_margin"], peer,
            res["ART"]["pgd40_margin"], note=ref("pgd40_margin"))
    add_row(rows, r, f"seconds per epoch ({N_TRAIN} digits)", wall["ours"] / EPOCHS, peer, wall["ART"] / EPOCHS,
            note=f"CPU-time ratio {cpu['ours'] / cpu['ART']:.2f}; ART also predicts the teacher once up front")
    details = {"temperature": TEMPERATURE, "n_train": N_TRAIN, "epochs": EPOCHS, "batch": BATCH, "lr": LR,
               "n_eval": N_EVAL3, "eps": EPS3, "results": res,
               "seconds_per_epoch": {k: v / EPOCHS for k, v in wall.items()},
               "cpu_seconds_per_epoch": {k: v / EPOCHS for k, v in cpu.items()}}
    intro = (f"Teacher: the shipped `mnist_cnn` (trained at T = 1; not retrained at T as in Papernot et al.). "
             f"Students: a fresh `build_model('mnist_cnn')` each (seed {SEED}, identical initial weights), the first "
             f"{N_TRAIN} digits of `load_mnist('train')`, {EPOCHS} epoch(s), batch {BATCH}. Ours: `distill(teacher, "
             f"loader, {TEMPERATURE:g}, {EPOCHS}, student=...)` (AdamW, one-cycle lr peaking at {LR:g}); ART: "
             f"`DefensiveDistillation(classifier=teacher + softmax, batch_size={BATCH}, nb_epochs={EPOCHS})` applied "
             f"to a `PyTorchClassifier(student + softmax, loss=soft-label NLL, optimizer=Adam(lr={LR:g}))`. Measured "
             f"on the first {N_EVAL3} held-out digits at the student's logits (deployed at T = 1), with course_lib "
             f"`pgd` (eps {EPS3}, step {EVAL_ALPHA}, 40 steps, random start, seed {SEED}).")
    notes = [
        "What ART's `DefensiveDistillation` does (art/defences/transformer/evasion/defensive_distillation.py): it "
        "checks that the teacher and the student both output probabilities, predicts the teacher's probabilities on "
        "`x` once, and calls `transformed_classifier.fit(x, y=those probabilities, batch_size, nb_epochs)`. There is "
        "no temperature: the soft labels are the teacher's softmax at T = 1, and the student is trained at T = 1. "
        "It is knowledge distillation at T = 1, not Papernot et al.'s defense.",
        "The student of ART must output probabilities (a softmax layer) and its loss must accept probability "
        "labels; with `nn.CrossEntropyLoss` ART would pass the soft labels through, but the loss would then apply "
        "a second softmax on the probabilities. We used a soft-label NLL on the softmax output (`SoftLabelNLL` in "
        "this script). Attacks and measurements use the student without the softmax layer (its logits).",
        f"Why ours masks nothing here: `distill` matches softmax(s / T) to softmax(t / T), whose minimiser is s = t + "
        f"const, the teacher's own logit scale. Papernot et al. (and `scripts/train_models.py` for the shipped "
        f"`mnist_distilled`) first train the teacher at temperature T, so that its logits are about T times larger; "
        f"only then is the student deployed at T = 1 saturated. The issue fixes the teacher to the shipped "
        f"`mnist_cnn` (trained at T = 1), so with this teacher our student has a median top-2 gap of "
        f"{res['ours']['median_top2_gap']:.3g} (teacher {tn['median_top2_gap']:.3g}), "
        f"{100 * res['ours']['grad_zero_share']:.0f} % zero gradients, and PGD-40 on the cross-entropy leaves "
        f"{res['ours']['pgd40_ce']:.3f} of the digits correct: no masking, like ART's student. What the temperature "
        f"changes with a T = 1 teacher is the learning signal: at T = {TEMPERATURE:g} the soft labels are nearly "
        f"uniform and the T^2-scaled loss is a weak regression of s on t, so in {EPOCHS} epoch(s) our student reaches "
        f"{res['ours']['clean']:.3f} clean accuracy against ART's {res['ART']['clean']:.3f}."
        + (f" The masking that the issue expects is that of the full recipe: the shipped `mnist_distilled` has a "
           f"median top-2 gap of {sd['median_top2_gap']:.3g}, {100 * sd['grad_zero_share']:.0f} % of the digits with "
           f"a zero CE gradient, and PGD-40 accuracy {sd['pgd40_ce']:.3f} (CE) against {sd['pgd40_margin']:.3f} "
           f"(margin)." if sd else ""),
        "ART's `DefensiveDistillation` cannot mask gradients the way Papernot et al.'s defense does whatever the "
        "teacher: its student is trained at T = 1 on softmax(t), so it learns logits on the scale that softmax(t) "
        "implies (s = t + const at the optimum), never T times larger than its training loss needs.",
    ]
    return {"title": "Part 3: distill vs ART DefensiveDistillation", "intro": intro, "rows": rows, "notes": notes,
            "details": details}


# --------------------------------------------------------------------------------------------------- part 4

def part4(args, raw):
    from art.attacks.evasion import ProjectedGradientDescent
    from art.defences.preprocessor import FeatureSqueezing, JpegCompression

    rows: list[dict] = []
    m = load_model("mnist_cnn_aug")
    x, y = load_mnist("test")
    x, y = x[:N_MASK], y[:N_MASK]
    log(f"\n[4] BPDA and EOT vs ART preprocessors (identity gradient): mnist_cnn_aug, {N_MASK} digits, eps {EPS4}, "
        f"PGD-{STEPS4} step {ALPHA4}; load {load()}")

    def ours_pgd(target):
        return lambda: pgd(target, x, y, EPS4, ALPHA4, STEPS4, seed=SEED)

    def art_pgd(pre):
        def run():
            np.random.seed(SEED)
            clf = art_classifier(m, preprocessing_defences=[pre])
            attack = ProjectedGradientDescent(clf, norm=np.inf, eps=EPS4, eps_step=ALPHA4, max_iter=STEPS4,
                                              num_random_init=1, batch_size=N_MASK, verbose=False)
            return torch.from_numpy(attack.generate(x=x.numpy(), y=y.numpy()))
        return run

    class FeatureSqueezing32(FeatureSqueezing):
        """ART's FeatureSqueezing, its output cast back to the input's dtype: under NumPy 2 ``np.rint(x * max_value)``
        with a float64 ``max_value`` returns float64, which the float32 model rejects (see the notes)."""

        def __call__(self, x, y=None):
            out, y = super().__call__(x, y)
            return out.astype(x.dtype), y

    defenses = {
        "bit depth 3": (Defended(m, BitDepth(3)), Defended(m, BPDA(BitDepth(3))), "BPDA (identity)",
                        FeatureSqueezing32(clip_values=(0.0, 1.0), bit_depth=3), False),
        "JPEG 50": (Defended(m, JPEG(50)), Defended(m, BPDA(JPEG(50))), "BPDA (identity)",
                    JpegCompression(clip_values=(0.0, 1.0), quality=50, channels_first=True), False),
        "random resize+pad": (Defended(m, RandomResizePad()), None, f"EOT ({EOT_SAMPLES} draws)", None, True),
    }
    details = {}
    for name, (defended, bpda, how, art_pre, random) in defenses.items():
        if random:
            bpda = EOT(defended, EOT_SAMPLES)
        makers = {"plain PGD": ours_pgd(defended), how: ours_pgd(bpda)}
        if art_pre is not None:
            makers["ART"] = art_pgd(art_pre)
        torch.manual_seed(SEED)
        wall, cpu, outs = timed(makers, f"part4 {name}", raw)
        m.zero_grad(set_to_none=True)
        evaluate = (lambda a, d=defended: acc_random(d, a, y)) if random else \
            (lambda a, d=defended: (acc(d, a, y), None))
        clean, clean_draws = evaluate(x)
        accs, draws = {}, {}
        for k, a in outs.items():
            accs[k], draws[k] = evaluate(a)
        ball = {k: in_ball(a, x, EPS4) for k, a in outs.items()}
        extra = ""
        if art_pre is not None:  # does ART's preprocessor compute what ours does?
            pre_art = torch.from_numpy(art_pre(x.numpy())[0]).float()
            d = (pre_art - defended.transform(x)).abs()
            extra = (f"; ART's preprocessing vs ours on the clean digits: max |diff| {float(d.max()):.3g}, "
                     f"predictions equal on {int((labels(m, pre_art) == labels(defended, x)).sum())} of {N_MASK}")
        r = f"4 {name}"
        rnd = f" (mean of {EVAL_DRAWS} evaluation draws)" if random else ""
        add_row(rows, r, f"accuracy, no attack{rnd}", clean, "", None, note=f"undefended model {acc(m, x, y):.3f}"
                + (f"; draws {clean_draws}" if random else ""))
        add_row(rows, r, f"accuracy under plain PGD-40{rnd}", accs["plain PGD"], "", None,
                note=f"{wall['plain PGD']:.1f} s; masked gradients: high = the attack failed, not robustness")
        peer_val = accs.get("ART") if art_pre is not None else "n/a"
        peer_name = "ART PGD + preprocessor" if art_pre is not None else "ART (no EoT for resize+pad)"
        add_row(rows, r, f"accuracy under our {how} PGD-40{rnd}", accs[how], peer_name, peer_val,
                target="<= ART" if art_pre is not None else "", met=(accs[how] <= accs["ART"] + 1e-12)
                if art_pre is not None else None,
                note=("lower = stronger attack" + extra + ("; draws " + str(draws[how]) if random else "")))
        if art_pre is not None:  # diagnostic: the peers return PGD's last iterate, ours by default any fooled one
            last = pgd(bpda, x, y, EPS4, ALPHA4, STEPS4, seed=SEED, keep_best=False)
            accs[how + ", keep_best=False"] = acc(defended, last, y)
            add_row(rows, r, f"accuracy under our {how} PGD-40, last iterate (keep_best=False)",
                    accs[how + ", keep_best=False"], "ART PGD + preprocessor", accs["ART"],
                    note="diagnostic (not timed): ART returns the last iterate too")
            add_row(rows, r, "seconds per attack", wall[how], "ART PGD + preprocessor", wall["ART"],
                    note=f"CPU-time ratio {cpu[how] / cpu['ART']:.2f}; plain PGD {wall['plain PGD']:.1f} s")
        else:
            add_row(rows, r, "seconds per attack", wall[how], "ART", "n/a",
                    note=f"plain PGD {wall['plain PGD']:.1f} s; EOT costs {EOT_SAMPLES} forward passes per step")
        if not all(b["ok"] for b in ball.values()):
            add_row(rows, r, "outputs in the eps-ball and [0, 1]", "NO", "", None, note=str(ball))
        details[name] = {"clean": clean, "clean_draws": clean_draws, "accuracy": accs, "accuracy_draws": draws,
                         "seconds": wall, "cpu_seconds": cpu, "in_ball": ball}
    intro = (f"Model: the shipped `mnist_cnn_aug` behind each preprocessing defense of `course_lib.defenses` "
             f"(`Defended(m, BitDepth(3))`, `Defended(m, JPEG(50))`, `Defended(m, RandomResizePad())`), the first "
             f"{N_MASK} held-out digits, eps {EPS4}, PGD-{STEPS4} step {ALPHA4}, one random start. Attacks: (a) "
             f"course_lib `pgd` on the defended model; (b) course_lib `pgd` on `Defended(m, BPDA(transform))` "
             f"(bit depth, JPEG) or `EOT(defended, {EOT_SAMPLES})` (random resize+pad); (c) ART "
             f"`ProjectedGradientDescent(eps={EPS4}, eps_step={ALPHA4}, max_iter={STEPS4}, num_random_init=1)` on "
             f"`PyTorchClassifier(m, preprocessing_defences=[FeatureSqueezing(clip_values=(0, 1), bit_depth=3)])` "
             f"or `[JpegCompression(clip_values=(0, 1), quality=50, channels_first=True)]`. Every adversarial batch "
             f"is scored on our `Defended` model (the defense as deployed); the random defense's accuracy is the mean "
             f"over {EVAL_DRAWS} evaluation draws (torch seeds 100-104).")
    notes = [
        "ART's preprocessors here (`FeatureSqueezing`, `JpegCompression`) are NumPy preprocessors that do not "
        "override `Preprocessor.estimate_gradient`, whose default returns the incoming gradient unchanged: ART "
        "differentiates them as the identity, which is BPDA with the identity, the same approximation as our "
        "`BPDA(transform)`. The comparison is therefore the same attack in two implementations.",
        "Random resize+pad: ART's `art.preprocessing.expectation_over_transformation` offers EoT for image "
        "rotation, center crop, and natural corruptions (brightness, contrast, Gaussian and shot noise, zoom blur), "
        "none of which draws a random shrink and a random placement in a padded frame like `RandomResizePad`; the "
        "cell is n/a.",
    ]
    return {"title": "Part 4: BPDA and EOT against preprocessing defenses", "intro": intro, "rows": rows,
            "notes": notes, "details": details}


# --------------------------------------------------------------------------------------------------- main

PARTS = {"1": part1, "2": part2, "3": part3, "4": part4}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default=os.environ.get("BENCH_ONLY", "1,2,3,4"),
                    help="comma-separated parts to run; '' only rebuilds the tables from the saved parts")
    ap.add_argument("--model", default=os.environ.get("BENCH_MODEL"))
    ap.add_argument("--eps", type=float, default=None)
    ap.add_argument("--n-robust", type=int, default=int(os.environ.get("BENCH_N_ROBUST", "0")) or None)
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("art").setLevel(logging.ERROR)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    info = machine()
    vers = versions()
    log("course_lib.defenses / robust_accuracy vs torchattacks, ART")
    log(f"machine: {info['cpu']}, {info['logical_cores']} logical cores, torch threads {THREADS}, load average "
        f"{info['load_average_1_5_15']}; versions {vers}, torch {info['torch']}")
    PARTS_DIR.mkdir(parents=True, exist_ok=True)
    for p in [s.strip() for s in args.parts.split(",") if s.strip()]:
        run_part(PARTS[p], p, args, info, vers, QUICK, PARTS_DIR, SUFFIX)
    assemble(info, vers)


def extra_notes(p: str, d: dict, parts: dict) -> list[str]:
    """Notes that depend on the run's sizes (added when the table is assembled)."""
    out = []
    if p == "1" and not d["quick"] and d["details"]["n"] < 500:
        out.append(f"Size: the issue asks for 500 digits; this run used the first {d['details']['n']}. On 1 thread "
                   "at load ~3 the 200-digit run took 467 s for both libraries; a 500-digit run was stopped unfinished "
                   "after 26 minutes, over the time the session could spend. `--n-robust 500` (or no option) runs "
                   "the issue's size.")
    if p == "2" and "summary" in d["details"]:
        det = d["details"]
        sm, seeds = det["summary"], det["seeds"]
        so, sa, df = sm["ours"], sm["ART"], sm["pgd40_diff"]
        per = {k: [det["results"][k][str(s)]["pgd40"] for s in seeds] for k in ("ours", "ART")}
        diffs = [df["per_seed"][str(s)] for s in seeds]
        rng = {k: max(v) - min(v) for k, v in per.items()}
        signs = "change sign" if min(diffs) < 0 < max(diffs) else "all have the same sign"
        if abs(df["mean"]) <= min(rng.values()):
            verdict = ("smaller than the seed-to-seed spread of either library: within noise, the two trainers "
                       f"cannot be told apart on {len(seeds)} seeds")
        elif abs(df["mean"]) <= max(rng.values()):
            verdict = ("larger than one library's seed-to-seed spread but within the other's: not resolved on "
                       f"{len(seeds)} seeds")
        else:
            verdict = "larger than the seed-to-seed spread of either library: a real gap"
        oc, c0 = det["ours_onecycle_seed0"], det["results"]["ours"][str(seeds[0])]
        out.append(
            f"Reading: mean PGD-40 accuracy ours {so['pgd40_mean']:.3f} vs ART {sa['pgd40_mean']:.3f} (target "
            f"{'met' if so['pgd40_mean'] >= sa['pgd40_mean'] else 'missed'}); paired difference ours - ART "
            f"{100 * df['mean']:+.1f} points on average, per seed " + ", ".join(f"{100 * v:+.1f}" for v in diffs)
            + f" (they {signs}). Seed-to-seed spread (max - min over {len(seeds)} seeds): ours "
            f"{100 * rng['ours']:.1f} points ({min(per['ours']):.3f}-{max(per['ours']):.3f}), ART "
            f"{100 * rng['ART']:.1f} points ({min(per['ART']):.3f}-{max(per['ART']):.3f}). The mean difference is "
            f"{verdict}.")
        art0 = det["results"]["ART"][str(seeds[0])]
        out.append(
            "Randomness not seeded per library: ART's `PyTorchClassifier.fit`, called once per batch, wraps the batch "
            "in a `DataLoader(shuffle=True)` that draws from torch's global generator (which `np.random.seed` does "
            "not set): it only reorders the images inside the batch, which changes nothing but floating-point "
            "rounding, and that generator's state depends on what ran before in the process (here the warm-up "
            "calls; the order is fixed, so a rerun should repeat the table). Ours draws only from its seeded "
            "generators."
            + ("" if d["quick"] else
               f" That alone moves ART's seed {seeds[0]} from {art0['pgd40']:.3f} PGD-40 / {art0['clean']:.3f} clean "
               "to 0.850 / 0.952 when it is trained first in a fresh process (same seeds; measured separately): "
               "training is chaotic at this size, and each per-seed number is one draw from that noise."))
        out.append(
            f"Schedule: with `train`'s default one-cycle schedule (peak {det['lr']:g}) instead of a constant lr, ours "
            f"reaches {oc['pgd40']:.3f} PGD-40 / {oc['clean']:.3f} clean on seed {seeds[0]}, against "
            f"{c0['pgd40']:.3f} / {c0['clean']:.3f} with `scheduler=None` "
            f"({100 * (oc['pgd40'] - c0['pgd40']):+.1f} points robust): over only "
            f"{det['epochs'] * det['n_train'] // det['batch']} steps the schedule warms up for the first quarter "
            "and averages well below its peak lr.")
    if p == "4":
        t = d["details"].get("random resize+pad", {}).get("seconds", {})
        eot = next((v for k, v in t.items() if k.startswith("EOT")), None)
        if eot and t.get("plain PGD"):
            out.append(f"EOT with {EOT_SAMPLES} draws took {eot / t['plain PGD']:.0f}x the time of plain PGD, more "
                       f"than its {EOT_SAMPLES}x forward and backward passes: `EOT` runs the {EOT_SAMPLES} copies "
                       f"as one batch of {EOT_SAMPLES} x {N_MASK} images, which on one thread is slower per image "
                       "(cause not profiled).")
    return out


def assemble(info, vers) -> None:
    parts = load_parts(PARTS, PARTS_DIR, SUFFIX)
    lines = ["# course_lib.defenses and robust_accuracy vs torchattacks and ART", "",
             f"Versions: {', '.join(f'{k} {v}' for k, v in vers.items())}, torch {info['torch']}. Machine: "
             f"{info['cpu']}, {info['logical_cores']} logical cores, torch threads {THREADS}, device cpu."
             + (" BENCH_QUICK=1: reduced sizes." if QUICK else ""), ""]
    for p, d in parts.items():
        notes = d["notes"] + extra_notes(p, d, parts)
        lines += [f"## {d['title']}", "", d["intro"], "",
                  f"Run time {d['elapsed_s']:.0f} s; load average (1/5/15 min) {d['load_average_start']} at the "
                  f"start, {d['load_average_end']} at the end.", "",
                  rows_table(d["rows"]), "", "Notes:", "", *[f"- {n}" for n in notes], ""]
    lines += ["## Notes for every part", "", f"- {DATA_NOTE}", f"- {TIMING_NOTE}",
              "- Ratio = course_lib / peer (for accuracies and counts as well: read it with the metric).", ""]
    md = "\n".join(lines)
    payload = {"machine": info, "versions": vers, "threads": THREADS, "quick": QUICK,
               "config": {"n_robust_default": N_ROBUST, "n_train": N_TRAIN, "epochs": EPOCHS, "batch": BATCH,
                          "lr": LR, "part2": {"epochs": EPOCHS2, "lr": LR2, "seeds": list(SEEDS2)},
                          "at": [AT_EPS, AT_ALPHA, AT_STEPS], "n_eval": N_EVAL,
                          "eval_pgd": [EVAL_EPS, EVAL_ALPHA, EVAL_STEPS], "temperature": TEMPERATURE,
                          "n_eval3": N_EVAL3, "eps3": EPS3, "n_mask": N_MASK, "mask_pgd": [EPS4, ALPHA4, STEPS4],
                          "eot_samples": EOT_SAMPLES, "eval_draws": EVAL_DRAWS, "seed": SEED,
                          "data": "load_mnist('test'): held out from the official MNIST training set"},
               "parts": parts}
    js, mdp = write_results("defenses", payload, md)
    for d in parts.values():
        log(f"\n{d['title']}\n" + rows_table(d["rows"]))
    log(f"\nwrote {js} and {mdp}")


if __name__ == "__main__":
    main()
