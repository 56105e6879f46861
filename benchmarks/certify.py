"""course_lib.certify side by side with ART's certification estimators, and the cost of each verifier per image.

Run from the repository root with ``.venv-peers/bin/python benchmarks/certify.py`` (about 15-20 minutes on one busy
CPU thread; ``BENCH_QUICK=1`` shrinks every size for a smoke run of a few minutes and writes
``results/certify_quick.*``). Nothing is downloaded. Results go to ``benchmarks/results/certify.json`` and
``certify.md``; the tables are printed as well. ``BENCH_ONLY=1,3`` (or ``--parts 1,3``) runs some parts only: each
part is saved to ``results/certify_parts/`` and the tables are rebuilt from the saved parts, so the other parts keep
their last numbers.

No certified models are shipped: every model here is trained inside the script, seeded (torch seed 0), on the 8,000
training digits of ``load_mnist("train")``, and evaluated on the first held-out digits of ``load_mnist("test")``.
Setup, the same for every library: one process, ``torch.set_num_threads(1)`` (the machine is shared), the CPU.

Parts (issue 13, section 4):
1. ``interval_bounds`` / ``margin_bounds(method="ibp")`` vs ART ``PyTorchIBPClassifier.predict_intervals`` /
   ``certify`` on a small IBP-trained CNN (conv16 4x4/2 - conv32 4x4/2 - FC100 - FC10, no normalisation layer:
   ART's converter accepts only top-level Conv2d / Linear / ReLU children), eps 0.1: bound differences, certified
   accuracy, time per call (interleaved).
2. ``smoothed_certify`` vs ART ``PyTorchRandomizedSmoothing.certify``: a CNN trained with Gaussian noise (sigma 0.25),
   n0 = 100, n = 10,000, alpha = 0.001: radii, abstentions, certified accuracy, time per digit; peak memory at
   n = 100,000 for one digit (a fresh process per library, ``ru_maxrss`` growth).
3. Time per image of IBP, CROWN-IBP (``intermediate="ibp"``), CROWN (``intermediate="crown"``) and ``verify_exact``
   (time limit 30 s) on an IBP-trained 784-100-100-10 MLP and on part 1's CNN, eps 0.02 and 0.05.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import time
import types
import warnings

import numpy as np
import torch
from _common import (
    RESULTS,
    add_row,
    interleaved_times,
    load_parts,
    log,
    machine,
    markdown_table,
    rows_table,
    run_part,
    write_results,
)
from scipy.stats import beta, norm
from torch import nn

from course_lib.certify import (
    certified_accuracy_at,
    certified_training,
    crown_bounds,
    interval_bounds,
    margin_bounds,
    smoothed_certify,
    verify_exact,
)
from course_lib.data import load_mnist, make_loader
from course_lib.models import build_model
from course_lib.training import train

QUICK = os.environ.get("BENCH_QUICK") == "1"
THREADS = 1                                  # the machine is shared: one thread for every library
PARTS_DIR = RESULTS / "certify_parts"
SUFFIX = "_quick" if QUICK else ""
SEED = 0
BATCH = 128

# part 1
EPS1 = 0.1
EPOCHS1 = 3 if QUICK else 10
N1 = 50 if QUICK else 200
REPEATS1 = 2 if QUICK else 5
# part 2
SIGMA, ALPHA, N0 = 0.25, 0.001, 100
N_SMOOTH = 1_000 if QUICK else 10_000
N2 = 5 if QUICK else 50
N_MEM = 10_000 if QUICK else 100_000
EPOCHS2 = 1 if QUICK else 5
NOISY_BATCH = 256                            # noisy images per forward pass, both libraries
RADII = (0.0, 0.25, 0.5, 0.75)
# part 3
EPS3 = (0.02, 0.05)
EPOCHS_MLP = 3 if QUICK else 10
EPS_MLP_TRAIN = 0.05
N3 = 3 if QUICK else 10                      # digits for IBP, CROWN-IBP and (on the MLP) CROWN and the MILP
N3_CNN_CROWN = 1 if QUICK else 10            # CROWN with CROWN intermediate bounds on the CNN (quick: ~0.3 s)
N3_CNN_MILP = 1 if QUICK else 10             # verify_exact on the CNN
TIME_LIMIT = 10.0 if QUICK else 30.0

DATA_NOTE = ("Data: `load_mnist('test')` (the held-out digits) is a held-out part of the official MNIST *training* "
             "set (images 0-9999, split by class), not the official MNIST test set; training digits are "
             "`load_mnist('train')` (8,000), disjoint from them.")
TIMING_NOTE = ("Timings: one process, `torch.set_num_threads(1)`, on 2 cores shared with other heavy jobs (see the "
               "load averages): absolute times are inflated and noisy. Where two libraries are compared their calls "
               "take turns (`interleaved_times`), so the ratios are the fairer number.")
MODEL_NOTE = ("Models: none is shipped for certification; each is trained inside the script, seeded (torch seed 0), "
              "on the 8,000 training digits, in the times given in the part's details. They are small and briefly "
              "trained: the certified accuracies measure the comparison, not the state of the art.")


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def versions() -> dict:
    from importlib.metadata import version

    out = {name: version(name) for name in ("course_lib", "adversarial-robustness-toolbox", "numpy", "scipy")}
    try:
        out["statsmodels"] = version("statsmodels")
    except Exception:                                           # noqa: BLE001 - not installed
        out["statsmodels"] = "not installed (shim, see part 2)"
    return out


def ensure_statsmodels() -> bool:
    """ART's ``_lower_confidence_bound`` imports ``statsmodels.stats.proportion.proportion_confint``; where
    statsmodels is missing, a stand-in module computes the same Clopper-Pearson interval (``method="beta"``) with
    scipy. Returns True when the stand-in was installed."""
    try:
        import statsmodels.stats.proportion  # noqa: F401
        return False
    except ImportError:
        pass

    def proportion_confint(count, nobs, alpha=0.05, method="beta"):
        assert method == "beta"
        lo = 0.0 if count == 0 else float(beta.ppf(alpha / 2, count, nobs - count + 1))
        hi = 1.0 if count == nobs else float(beta.ppf(1 - alpha / 2, count + 1, nobs - count))
        return lo, hi

    pkg, stats, prop = (types.ModuleType(n) for n in ("statsmodels", "statsmodels.stats",
                                                        "statsmodels.stats.proportion"))
    prop.proportion_confint = proportion_confint
    pkg.stats, stats.proportion = stats, prop
    sys.modules.update({"statsmodels": pkg, "statsmodels.stats": stats, "statsmodels.stats.proportion": prop})
    return True


# --------------------------------------------------------------------------------------------------- models

class IBPCNN(nn.Module):
    """conv16 4x4/2 - ReLU - conv32 4x4/2 - ReLU - FC100 - ReLU - FC10 on [0, 1] images, no normalisation layer.

    Every child is a Conv2d, Linear or ReLU (each ReLU its own module), in call order: what ART's
    ``PyTorchIBPClassifier`` converter accepts (it hooks the top-level children, refuses anything else, Flatten
    included, and infers the reshape between the last convolution and the first Linear)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 4, stride=2)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 4, stride=2)
        self.relu2 = nn.ReLU()
        self.fc1 = nn.Linear(32 * 5 * 5, 100)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(100, 10)

    def forward(self, x):
        h = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.fc2(self.relu3(self.fc1(h.flatten(1))))


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(),
                         nn.Linear(100, 10))


_CACHE: dict = {}


def data():
    if "data" not in _CACHE:
        _CACHE["data"] = (load_mnist("train"), load_mnist("test"))
    return _CACHE["data"]


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).double().mean())


def ibp_cnn() -> tuple[nn.Module, dict]:
    """Part 1's CNN (also part 3's), trained once per process: ``certified_training`` at eps 0.1."""
    if "cnn" not in _CACHE:
        (xt, yt), (xe, ye) = data()
        torch.manual_seed(SEED)
        m = IBPCNN()
        t0 = time.perf_counter()
        certified_training(m, make_loader(xt, yt, batch_size=BATCH, seed=SEED), EPS1, EPOCHS1, progress=False)
        secs = time.perf_counter() - t0
        info = {"train_s": secs, "epochs": EPOCHS1, "eps": EPS1, "eps_train": 1.1 * EPS1,
                "clean_accuracy_2000": accuracy(m, xe, ye), "parameters": sum(p.numel() for p in m.parameters())}
        log(f"  IBP CNN: {EPOCHS1} epochs of certified_training at eps {EPS1} in {secs:.0f} s; clean accuracy "
            f"{info['clean_accuracy_2000']:.3f} on the 2,000 held-out digits")
        _CACHE["cnn"] = (m.eval(), info)
    return _CACHE["cnn"]


def ibp_mlp() -> tuple[nn.Module, dict]:
    (xt, yt), (xe, ye) = data()
    torch.manual_seed(SEED)
    m = mlp()
    t0 = time.perf_counter()
    certified_training(m, make_loader(xt, yt, batch_size=BATCH, seed=SEED), EPS_MLP_TRAIN, EPOCHS_MLP,
                       progress=False)
    secs = time.perf_counter() - t0
    info = {"train_s": secs, "epochs": EPOCHS_MLP, "eps": EPS_MLP_TRAIN, "clean_accuracy_2000": accuracy(m, xe, ye)}
    log(f"  MLP 784-100-100-10: {EPOCHS_MLP} epochs of certified_training at eps {EPS_MLP_TRAIN} in {secs:.0f} s; "
        f"clean accuracy {info['clean_accuracy_2000']:.3f}")
    return m.eval(), info


def noise_cnn() -> tuple[nn.Module, dict]:
    """Part 2's base classifier: ``mnist_cnn``'s architecture (SmallCNN 16-32-64) trained with Gaussian noise of
    standard deviation SIGMA added to every training batch (not clipped), seeded."""
    (xt, yt), (xe, ye) = data()
    torch.manual_seed(SEED)
    m = build_model("mnist_cnn")
    g = torch.Generator().manual_seed(SEED)
    t0 = time.perf_counter()
    train(m, make_loader(xt, yt, batch_size=BATCH, seed=SEED), EPOCHS2, progress=False,
          transform=lambda _m, x, _y: x + SIGMA * torch.randn(x.shape, generator=g))
    secs = time.perf_counter() - t0
    m.eval()
    gn = torch.Generator().manual_seed(1)
    info = {"train_s": secs, "epochs": EPOCHS2, "sigma": SIGMA, "clean_accuracy_2000": accuracy(m, xe, ye),
            "noisy_accuracy_2000": accuracy(m, xe + SIGMA * torch.randn(xe.shape, generator=gn), ye)}
    log(f"  noise CNN: {EPOCHS2} epochs with Gaussian noise sigma {SIGMA} in {secs:.0f} s; clean accuracy "
        f"{info['clean_accuracy_2000']:.3f}, under noise {info['noisy_accuracy_2000']:.3f}")
    return m, info


# --------------------------------------------------------------------------------------------------- part 1

def art_ibp(model):
    from art.estimators.certification.interval import PyTorchIBPClassifier

    with contextlib.redirect_stdout(io.StringIO()):            # it prints "Inferred reshape on op num ..."
        return PyTorchIBPClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=(1, 28, 28),
                                    nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")


def per_logit_certified(lo, hi, y):
    """The per-logit rule: ``lower(z_y) > upper(z_k)`` for every ``k != y``."""
    lo, hi = torch.as_tensor(lo), torch.as_tensor(hi)
    other = hi.clone()
    other[torch.arange(len(y)), y] = -torch.inf
    return lo[torch.arange(len(y)), y] > other.max(1).values


def part1(args, raw):
    rows: list[dict] = []
    model, info = ibp_cnn()
    xe, ye = data()[1]
    x, y = xe[:N1], ye[:N1]
    xn = x.numpy()
    log(f"\n[1] IBP vs ART PyTorchIBPClassifier: {N1} digits, eps {EPS1}; load {load()}")
    clf = art_ibp(model)
    with torch.no_grad():
        clean = model(x).argmax(1) == y
        clf.model.set_forward_mode("concrete")
        art_concrete = torch.from_numpy(clf.predict(xn)).argmax(1)
        clf.model.set_forward_mode("abstract")
    makers = {
        "ours interval_bounds": lambda: interval_bounds(model, x, EPS1),
        "ours margin_bounds": lambda: margin_bounds(model, x, y, EPS1, method="ibp"),
        "ART predict_intervals": lambda: clf.predict_intervals(xn, bounds=float(EPS1), limits=[0.0, 1.0],
                                                               batch_size=N1),
    }
    wall, cpu, outs = interleaved_times(makers, repeats=REPEATS1, warmup=1)
    raw["part1"] = {"wall_s": wall, "cpu_s": cpu}
    med = {k: float(np.median(v)) for k, v in wall.items()}
    medc = {k: float(np.median(v)) for k, v in cpu.items()}
    lo, hi = outs["ours interval_bounds"]
    art = torch.from_numpy(outs["ART predict_intervals"])
    a_lo, a_hi = art[:, 0], art[:, 1]
    d_lo, d_hi = float((lo - a_lo).abs().max()), float((hi - a_hi).abs().max())
    scale = float(torch.maximum(lo.abs(), hi.abs()).max())
    cert_margin = (outs["ours margin_bounds"] + torch.eye(10)[y] * 1e9).min(1).values > 0
    cert_ours_logit = per_logit_certified(lo, hi, y)
    cert_art = torch.from_numpy(clf.certify(outs["ART predict_intervals"], y.numpy()))
    cert_art_on_ours = torch.from_numpy(clf.certify(torch.stack([lo, hi], 1).numpy(), y.numpy()))
    widths = (hi - lo).mean().item()
    add_row(rows, "1 IBP", "max |ours - ART|, lower bounds of the logits", d_lo, "ART PyTorchIBPClassifier", None,
            target="equal to rounding", met=d_lo <= 1e-4 * max(scale, 1.0),
            note=f"largest |bound| {scale:.3g}; mean interval width {widths:.3g}")
    add_row(rows, "1 IBP", "max |ours - ART|, upper bounds of the logits", d_hi, "ART PyTorchIBPClassifier", None,
            target="equal to rounding", met=d_hi <= 1e-4 * max(scale, 1.0))
    add_row(rows, "1 IBP", "certified accuracy, per-logit rule", float(cert_ours_logit.double().mean()),
            "ART certify", float(cert_art.double().mean()), lower_is_better=False,
            note=f"ART's certify on our bounds {float(cert_art_on_ours.double().mean()):.3f}; digits where ours and "
                 f"ART's per-logit verdicts differ: {int((cert_ours_logit != cert_art).sum())}")
    add_row(rows, "1 IBP", "certified accuracy, margin_bounds (ours only)", float(cert_margin.double().mean()),
            "ART (no margin specification)", "n/a", lower_is_better=False,
            note=f"the specification z_y - z_k folded into the last layer; clean accuracy "
                 f"{float(clean.double().mean()):.3f} (ART's concrete forward agrees on "
                 f"{int((art_concrete == model(x).argmax(1)).sum())} of {N1})")
    add_row(rows, "1 IBP", f"seconds per call, interval_bounds ({N1} digits)", med["ours interval_bounds"],
            "ART predict_intervals", med["ART predict_intervals"], target="<= ART",
            met=med["ours interval_bounds"] <= med["ART predict_intervals"],
            note=f"median of {REPEATS1} interleaved rounds; CPU-time ratio "
                 f"{medc['ours interval_bounds'] / medc['ART predict_intervals']:.2f}")
    add_row(rows, "1 IBP", f"seconds per call, margin_bounds ibp ({N1} digits)", med["ours margin_bounds"],
            "ART predict_intervals", med["ART predict_intervals"],
            note="margin_bounds also traces the model and folds the specification")
    details = {"model": "IBPCNN conv16 4x4/2 - conv32 4x4/2 - FC100 - FC10", "training": info, "n": N1, "eps": EPS1,
               "max_abs_diff": {"lower": d_lo, "upper": d_hi}, "largest_abs_bound": scale,
               "certified": {"ours_per_logit": cert_ours_logit.tolist(), "ours_margin": cert_margin.tolist(),
                             "art_certify": cert_art.tolist(), "art_certify_on_our_bounds": cert_art_on_ours.tolist()},
               "clean": clean.tolist(), "seconds_median": med, "cpu_seconds_median": medc}
    intro = (f"Model: `IBPCNN` (conv16 4x4 stride 2 - ReLU - conv32 4x4 stride 2 - ReLU - FC100 - ReLU - FC10, "
             f"{info['parameters']:,} parameters, no normalisation layer), trained in the script with "
             f"`certified_training(model, loader, eps={EPS1}, epochs={EPOCHS1})` (eps_train {1.1 * EPS1:.2f} ramped, "
             f"clean-loss weight 1 -> 0.5, batch {BATCH}) in {info['train_s']:.0f} s; clean accuracy "
             f"{info['clean_accuracy_2000']:.3f} on the 2,000 held-out digits. The first {N1} held-out digits, eps "
             f"{EPS1} (L-inf, the box clipped to [0, 1] by both). Ours: `interval_bounds(model, x, {EPS1})` and "
             f"`margin_bounds(model, x, y, {EPS1}, method='ibp')`; ART: `PyTorchIBPClassifier(model, "
             f"CrossEntropyLoss(), (1, 28, 28), 10, clip_values=(0, 1), device_type='cpu').predict_intervals(x, "
             f"bounds={EPS1}, limits=[0, 1], batch_size={N1})` and its `certify(preds, labels)`.")
    notes = [
        "What ART's IBP wrapper accepts (art 1.20.1, `interval/pytorch.py`, `ConvertedModel`): it registers forward "
        "hooks on `model.children()` and converts each hooked module; anything but `Conv2d`, `Linear` and `ReLU` "
        "raises `ValueError('Supported Operations are Conv2D, Linear, and RelU')`: no `Flatten` module, no "
        "`Sequential` nesting, no normalisation, pooling or batch norm. The reshape from convolutions to dense layers "
        "is inferred (the first Linear after a Conv2d, or after Conv2d-ReLU), so the model must flatten in its "
        "`forward`, as `IBPCNN` does; normalisation would have to move into ART's `preprocessing`, which is applied "
        "before the box is built and so would scale eps. Convolutions must have a bias. Each convolution is "
        "converted to a dense matrix (here 2,704 x 784 and 800 x 2,704) and bounds are per logit.",
        "Certification rules: the per-logit rule (ART's `certify`: the label's lower bound above every other "
        "logit's upper bound) vs `margin_bounds`, which bounds z_y - z_k directly with the last layer folded into "
        "the specification and so certifies at least as many digits.",
    ]
    return {"title": "Part 1: IBP vs ART PyTorchIBPClassifier", "intro": intro, "rows": rows, "notes": notes,
            "details": details}


# --------------------------------------------------------------------------------------------------- part 2

def art_smoother(model, n0=N0):
    from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

    return PyTorchRandomizedSmoothing(model, loss=nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10,
                                      device_type="cpu", sample_size=n0, scale=SIGMA, alpha=ALPHA)


def certified_at(labels, radii, y, r):
    return certified_accuracy_at(labels, radii, y, r)


def mem_child(lib: str, weights: str, n: int) -> None:
    """In a fresh process: the growth of peak resident memory over one certify call with ``n`` noisy copies of one
    digit, after a warm-up call with n = 1,000 (libraries loaded, buffers allocated): the kernel's peak counter
    VmHWM is reset to the current RSS just before the call and read after it (/proc/self/status)."""
    torch.set_num_threads(THREADS)
    warnings.filterwarnings("ignore")
    ensure_statsmodels()
    m = build_model("mnist_cnn")
    m.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    m.eval()
    x = load_mnist("test")[0][:1]
    if lib == "ours":
        def run(k):
            return smoothed_certify(m, x, SIGMA, N0, k, ALPHA, seed=SEED, batch_size=NOISY_BATCH)
    else:
        clf = art_smoother(m)

        def run(k):
            np.random.seed(SEED)
            return clf.certify(x.numpy(), n=k, batch_size=NOISY_BATCH)
    run(1_000)
    del_rss = _status_kib("VmRSS")
    reset = _reset_peak()
    before = _status_kib("VmRSS")
    t0 = time.perf_counter()
    lab, rad = run(n)
    secs = time.perf_counter() - t0
    peak = _status_kib("VmHWM")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"lib": lib, "n": n, "rss_before_kib": before, "peak_rss_kib": peak, "peak_reset": reset,
                      "rss_after_warmup_kib": del_rss, "ru_maxrss_kib": maxrss,
                      "growth_mib": (peak - before) / 1024, "seconds": secs, "label": int(lab[0]),
                      "radius": float(rad[0])}))


def _status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS: resident now; VmHWM: the peak since the last reset)."""
    with open("/proc/self/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith(field + ":")))


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter VmHWM to the current RSS (``echo 5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def part2(args, raw):
    rows: list[dict] = []
    model, info = noise_cnn()
    xe, ye = data()[1]
    x, y = xe[:N2], ye[:N2]
    log(f"\n[2] smoothed_certify vs ART PyTorchRandomizedSmoothing.certify: {N2} digits, sigma {SIGMA}, n0 {N0}, "
        f"n {N_SMOOTH}, alpha {ALPHA}; load {load()}")
    clf = art_smoother(model)

    def art_run(xs, n):
        np.random.seed(SEED)
        return clf.certify(xs.numpy(), n=n, batch_size=NOISY_BATCH)

    smoothed_certify(model, x[:2], SIGMA, N0, 500, ALPHA, seed=SEED, batch_size=NOISY_BATCH)   # warm-up
    art_run(x[:2], 500)
    makers = {"ours": lambda: smoothed_certify(model, x, SIGMA, N0, N_SMOOTH, ALPHA, seed=SEED,
                                               batch_size=NOISY_BATCH),
              "ART": lambda: art_run(x, N_SMOOTH)}
    wall, cpu, outs = interleaved_times(makers, repeats=1, warmup=0)
    raw["part2"] = {"wall_s": wall, "cpu_s": cpu}
    w = {k: v[0] for k, v in wall.items()}
    c = {k: v[0] for k, v in cpu.items()}
    lab_o, rad_o = (t.cpu() for t in outs["ours"])
    lab_a, rad_a = (torch.from_numpy(np.asarray(v)) for v in outs["ART"])
    rad_a = rad_a.to(torch.float64)
    rad_o = rad_o.to(torch.float64)
    abst = {"ours": float((lab_o == -1).double().mean()), "ART": float((lab_a == -1).double().mean())}
    both = (lab_o == lab_a) & (lab_o != -1)
    dmax = float((rad_o - rad_a)[both].abs().max()) if both.any() else None
    cap = SIGMA * float(norm.ppf(ALPHA ** (1 / N_SMOOTH)))
    for r in RADII:
        add_row(rows, "2 smoothing", f"certified accuracy at L2 radius {r}", certified_at(lab_o, rad_o, y, r),
                "ART certify", certified_at(lab_a, rad_a, y, r), lower_is_better=False,
                target="" if r != 0.5 else "within sampling noise of ART")
    add_row(rows, "2 smoothing", "abstention rate", abst["ours"], "ART certify", abst["ART"])
    add_row(rows, "2 smoothing", "mean radius over digits certified correct",
            float(rad_o[lab_o == y].mean()) if (lab_o == y).any() else None, "ART certify",
            float(rad_a[lab_a == y].mean()) if (lab_a == y).any() else None,
            note=f"the largest radius n = {N_SMOOTH:,} samples can certify: {cap:.3f}")
    add_row(rows, "2 smoothing", "max |radius ours - radius ART| (same class)", dmax, "", None,
            note=f"{int(both.sum())} digits where both certify the same class; different random numbers, so a "
                 f"difference is sampling noise, not a discrepancy; digits with different answers: "
                 f"{int((lab_o != lab_a).sum())}")
    add_row(rows, "2 smoothing", "seconds per digit", w["ours"] / N2, "ART certify", w["ART"] / N2,
            target="<= ART", met=w["ours"] <= w["ART"],
            note=f"one interleaved call each over {N2} digits; CPU-time ratio {c['ours'] / c['ART']:.2f}; "
                 f"{NOISY_BATCH} noisy images per forward pass for both")
    # memory at n = N_MEM, one digit, fresh processes
    weights = PARTS_DIR / "smoothing_base.pt"
    torch.save(model.state_dict(), weights)
    mem = {}
    for lib in ("ours", "ART"):
        res = subprocess.run([sys.executable, __file__, "--mem-child", lib, str(weights), str(N_MEM)],
                             capture_output=True, text=True, check=False)
        line = [s for s in res.stdout.splitlines() if s.startswith("{")]
        mem[lib] = json.loads(line[-1]) if line else {"error": res.stderr[-2000:]}
        log(f"  memory {lib}: {mem[lib]}")
    ok = all("growth_mib" in v for v in mem.values())
    add_row(rows, "2 smoothing", f"peak memory growth, n = {N_MEM:,}, one digit (MiB)",
            mem["ours"].get("growth_mib"), "ART certify", mem["ART"].get("growth_mib"), target="<= ART",
            met=(mem["ours"]["growth_mib"] <= mem["ART"]["growth_mib"]) if ok else None,
            note="peak RSS during the call (VmHWM, reset just before it) minus RSS before it, a fresh process per "
                 "library after a warm-up with n = 1,000; "
                 f"numpy's noise array alone: {N_MEM:,} x 784 float64 = {N_MEM * 784 * 8 / 2**20:.0f} MiB")
    if ok:
        add_row(rows, "2 smoothing", f"seconds for that call (n = {N_MEM:,}, one digit)", mem["ours"]["seconds"],
                "ART certify", mem["ART"]["seconds"], note="not interleaved (separate processes, one after the other)")
    details = {"training": info, "n": N2, "sigma": SIGMA, "alpha": ALPHA, "n0": N0, "n_samples": N_SMOOTH,
               "labels": {"ours": lab_o.tolist(), "ART": lab_a.tolist()},
               "radii": {"ours": rad_o.tolist(), "ART": rad_a.tolist()}, "y": y.tolist(), "abstention": abst,
               "max_abs_radius_diff_same_class": dmax, "radius_cap": cap, "seconds": w, "cpu_seconds": c,
               "memory": mem}
    intro = (f"Base classifier: `mnist_cnn`'s architecture (SmallCNN 16-32-64 with batch norm, normalisation inside) "
             f"trained in the script for {EPOCHS2} epochs with Gaussian noise of standard deviation {SIGMA} added to "
             f"every training batch (unclipped; `train(..., transform=...)`, one-cycle AdamW) in "
             f"{info['train_s']:.0f} s: clean accuracy {info['clean_accuracy_2000']:.3f}, "
             f"{info['noisy_accuracy_2000']:.3f} under noise, on the 2,000 held-out digits. The first {N2} held-out "
             f"digits; sigma {SIGMA}, n0 {N0}, n {N_SMOOTH:,}, alpha {ALPHA}. Ours: `smoothed_certify(model, x, "
             f"{SIGMA}, n0={N0}, n={N_SMOOTH}, alpha={ALPHA}, seed=0, batch_size={NOISY_BATCH})` (all digits "
             f"together); ART: `PyTorchRandomizedSmoothing(model, ..., sample_size={N0}, scale={SIGMA}, "
             f"alpha={ALPHA}).certify(x, n={N_SMOOTH}, batch_size={NOISY_BATCH})` (a Python loop over the digits), "
             "`np.random.seed(0)` first. Certified accuracy at r: the certified class is the label and the radius "
             ">= r.")
    notes = [
        "What ART's certify does (art 1.20.1, `randomized_smoothing.py`, `RandomizedSmoothingMixin.certify`): per "
        "digit, the class is the arg-max of `sample_size` noisy votes (n0 = `sample_size`, default 32; set to 100 "
        "here, Cohen et al.'s N0), then `n` fresh votes; the bound is statsmodels' `proportion_confint(k, n, "
        "alpha=2 * alpha, method='beta')[0]`, the lower end of a two-sided Clopper-Pearson interval at level "
        "2 alpha, i.e. the one-sided bound at level alpha, as in Cohen et al.'s code; abstain if it is < 0.5, else "
        "radius `scale * Phi^-1(p_lower)` (Cohen abstains at <= 0.5, a difference only at exactly 0.5). So the "
        "selection / estimation split and the statistics match Cohen et al.; ours is the same procedure.",
        "ART draws all n noisy copies of a digit at once in numpy (`np.repeat` plus `np.random.normal` in float64, "
        "then a float32 copy), then predicts them in batches: its memory grows with n. Ours draws the noise per "
        "forward pass.",
    ]
    if _CACHE.get("shim"):
        notes.append("statsmodels is not installed in `.venv-peers` (ART imports it inside `_lower_confidence_bound`, "
                     "so its `certify` fails without it): the script installs a stand-in "
                     "`statsmodels.stats.proportion.proportion_confint` computing the same Clopper-Pearson interval "
                     "with `scipy.stats.beta.ppf` (method 'beta' only).")
    return {"title": "Part 2: randomised smoothing vs ART PyTorchRandomizedSmoothing", "intro": intro, "rows": rows,
            "notes": notes, "details": details}


# --------------------------------------------------------------------------------------------------- part 3

def per_image(fn, x, y, n):
    """Median seconds per image of ``fn(x_i, y_i)`` over the first ``n`` images, and the outputs."""
    secs, outs = [], []
    for i in range(n):
        t0 = time.perf_counter()
        outs.append(fn(x[i:i + 1], y[i:i + 1]))
        secs.append(time.perf_counter() - t0)
    return secs, outs


def margin_ok(m, y):
    return bool((m + torch.eye(m.shape[1])[y] * 1e9).min(1).values.gt(0).all())


def part3(args, raw):
    rows_out: list[list] = []
    xe, ye = data()[1]
    log(f"\n[3] verifier times per image; load {load()}")
    mlp_model, mlp_info = ibp_mlp()
    cnn_model, cnn_info = ibp_cnn()
    models = {"MLP 784-100-100-10": (mlp_model, N3, N3), "IBPCNN (part 1)": (cnn_model, N3_CNN_CROWN, N3_CNN_MILP)}
    details: dict = {"mlp_training": mlp_info, "cnn_training": cnn_info, "results": {}}
    for name, (model, n_crown, n_milp) in models.items():
        x, y = xe[:N3], ye[:N3]
        with torch.no_grad():
            correct = model(x).argmax(1) == y
        for eps in EPS3:
            res: dict = {}
            interval_bounds(model, x[:1], eps)                 # warm-up (tracing, allocator)
            methods = [
                ("IBP (interval_bounds + margin)", N3,
                 lambda a, b, e=eps, m=model: (interval_bounds(m, a, e), margin_ok(margin_bounds(m, a, b, e), b))),
                ("CROWN-IBP (crown_bounds, intermediate='ibp')", N3,
                 lambda a, b, e=eps, m=model: crown_bounds(m, a, e, intermediate="ibp")),
                ("CROWN (crown_bounds, intermediate='crown')", n_crown,
                 lambda a, b, e=eps, m=model: crown_bounds(m, a, e, intermediate="crown")),
            ]
            for label, n, fn in methods:
                secs, outs = per_image(fn, x, y, n)
                if label.startswith("IBP"):
                    cert = sum(o[1] for o in outs)
                else:
                    cert = sum(bool(per_logit_certified(o[0], o[1], y[i:i + 1])[0]) for i, o in enumerate(outs))
                res[label] = {"n": n, "seconds": secs, "certified": cert}
                result = f"{cert} of {n} certified" + (" (margin)" if label.startswith("IBP") else " (per-logit)")
                if label.startswith("CROWN ("):                # the margin specification, untimed
                    cm = sum(margin_ok(margin_bounds(model, x[i:i + 1], y[i:i + 1], eps, method="crown"),
                                       y[i:i + 1]) for i in range(n))
                    res[label]["certified_margin_crown"] = cm
                    result += f"; margin_bounds(method='crown'): {cm}"
                log(f"  {name}, eps {eps}, {label}: median {np.median(secs):.3g} s per image, {result}")
                rows_out.append([name, eps, label, n, float(np.median(secs)), float(max(secs)), result])
            t0 = time.perf_counter()
            results = verify_exact(model, x[:n_milp], y[:n_milp], eps, time_limit=TIME_LIMIT)
            total = time.perf_counter() - t0
            statuses = [r.status for r in results]
            counts = {s: statuses.count(s) for s in dict.fromkeys(statuses)}
            secs = [r.seconds for r in results]
            res["verify_exact"] = {"n": n_milp, "seconds": secs, "statuses": statuses, "total_s": total,
                                   "unstable": [r.unstable for r in results], "margins": [r.margin for r in results]}
            log(f"  {name}, eps {eps}, verify_exact: {counts}, median {np.median(secs):.3g} s per image, "
                f"binaries {[r.unstable for r in results]}")
            rows_out.append([name, eps, f"verify_exact (MILP, time limit {TIME_LIMIT:g} s)", n_milp,
                             float(np.median(secs)), float(max(secs)),
                             ", ".join(f"{v} {k}" for k, v in counts.items())
                             + f" ({int(correct[:n_milp].sum())} of {n_milp} classified correctly)"
                             + f"; binaries per image {min(r.unstable for r in results)}-"
                               f"{max(r.unstable for r in results)}"])
            res["clean_correct"] = int(correct.sum())
            details["results"][f"{name} eps {eps}"] = res
    table = markdown_table(["Model", "eps", "Method", "Digits", "Median s / image", "Max s / image", "Result"],
                           rows_out)
    intro = (f"Models: (a) a 784-100-100-10 ReLU MLP trained in the script with `certified_training(eps="
             f"{EPS_MLP_TRAIN}, epochs={EPOCHS_MLP})` in {mlp_info['train_s']:.0f} s (clean accuracy "
             f"{mlp_info['clean_accuracy_2000']:.3f}); (b) part 1's `IBPCNN` (clean "
             f"{cnn_info['clean_accuracy_2000']:.3f}). The first {N3} held-out digits, one image per call, eps "
             f"{' and '.join(map(str, EPS3))}"
             + (f"; CROWN with CROWN intermediate bounds and the MILP on the CNN: the first {N3_CNN_CROWN} and "
                f"{N3_CNN_MILP} digits" if (N3_CNN_CROWN, N3_CNN_MILP) != (N3, N3) else "")
             + f". `verify_exact(model, x, y, eps, time_limit={TIME_LIMIT:g})` with its defaults "
             "(CROWN big-M bounds, HiGHS); its per-image seconds include its share of the bounds. Certified counts: "
             "IBP by `margin_bounds(method='ibp')`, CROWN(-IBP) by the per-logit rule on `crown_bounds` (per-logit "
             "bounds, which can certify fewer digits than IBP's margin), and for CROWN also by "
             "`margin_bounds(method='crown')` (untimed).")
    notes = [
        "CROWN with CROWN intermediate bounds bounds every pre-activation neuron by a backward pass through the "
        "layers below it (2,704 + 800 neurons for the CNN's two convolutions, in chunks of 1,024): its cost grows "
        "with neurons x depth; CROWN-IBP takes the intermediate bounds from IBP and runs one backward pass for the "
        "10 logits. On this two-convolution CNN that is about 0.2 s per image, not expensive; on the shipped "
        "five-convolution `mnist_cnn` (28x28 feature maps, max-pooling) it was about 80 s per image.",
        "verify_exact: a digit the model already misclassifies is its own counterexample, returned without a "
        "solve (0 binaries). A `counterexample` reached at the time limit is the solver's best point so far, "
        "confirmed by the model.",
    ]
    return {"title": "Part 3: IBP, CROWN and MILP times per image", "intro": intro, "rows": [], "table": table,
            "notes": notes, "details": details}


# --------------------------------------------------------------------------------------------------- main

PARTS = {"1": part1, "2": part2, "3": part3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default=os.environ.get("BENCH_ONLY", "1,2,3"),
                    help="comma-separated parts to run; '' only rebuilds the tables from the saved parts")
    ap.add_argument("--mem-child", nargs=3, metavar=("LIB", "WEIGHTS", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mem_child:
        lib, weights, n = args.mem_child
        mem_child(lib, weights, int(n))
        return
    torch.set_num_threads(THREADS)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("art").setLevel(logging.ERROR)
    _CACHE["shim"] = ensure_statsmodels()
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    info = machine()
    vers = versions()
    log("course_lib.certify vs ART; verifier times")
    log(f"machine: {info['cpu']}, {info['logical_cores']} logical cores, torch threads {THREADS}, load average "
        f"{info['load_average_1_5_15']}; versions {vers}, torch {info['torch']}")
    PARTS_DIR.mkdir(parents=True, exist_ok=True)
    for p in [s.strip() for s in args.parts.split(",") if s.strip()]:
        run_part(PARTS[p], p, args, info, vers, QUICK, PARTS_DIR, SUFFIX)
    assemble(info, vers)


def assemble(info, vers) -> None:
    parts = load_parts(PARTS, PARTS_DIR, SUFFIX)
    lines = ["# course_lib.certify vs ART, and the verifiers' cost", "",
             f"Versions: {', '.join(f'{k} {v}' for k, v in vers.items())}, torch {info['torch']}. Machine: "
             f"{info['cpu']}, {info['logical_cores']} logical cores, torch threads {THREADS}, device cpu."
             + (" BENCH_QUICK=1: reduced sizes." if QUICK else ""), ""]
    for d in parts.values():
        table = d.get("table") or rows_table(d["rows"])
        lines += [f"## {d['title']}", "", d["intro"], "",
                  f"Run time {d['elapsed_s']:.0f} s (model training included); load average (1/5/15 min) "
                  f"{d['load_average_start']} at the start, {d['load_average_end']} at the end.", "",
                  table, "", "Notes:", "", *[f"- {n}" for n in d["notes"]], ""]
    lines += ["## Notes for every part", "", f"- {DATA_NOTE}", f"- {MODEL_NOTE}", f"- {TIMING_NOTE}",
              "- Ratio = course_lib / peer (for accuracies as well: read it with the metric).", ""]
    md = "\n".join(lines)
    payload = {"machine": info, "versions": vers, "threads": THREADS, "quick": QUICK,
               "config": {"seed": SEED, "batch": BATCH,
                          "part1": {"eps": EPS1, "epochs": EPOCHS1, "n": N1, "repeats": REPEATS1},
                          "part2": {"sigma": SIGMA, "alpha": ALPHA, "n0": N0, "n": N_SMOOTH, "digits": N2,
                                    "n_memory": N_MEM, "epochs": EPOCHS2, "noisy_batch": NOISY_BATCH},
                          "part3": {"eps": list(EPS3), "digits": N3, "cnn_crown_digits": N3_CNN_CROWN,
                                    "cnn_milp_digits": N3_CNN_MILP, "time_limit": TIME_LIMIT,
                                    "mlp_epochs": EPOCHS_MLP, "mlp_eps_train": EPS_MLP_TRAIN},
                          "data": "load_mnist('test'): held out from the official MNIST training set"},
               "parts": parts}
    js, mdp = write_results("certify", payload, md)
    for d in parts.values():
        log(f"\n{d['title']}\n" + (d.get("table") or rows_table(d["rows"])))
    log(f"\nwrote {js} and {mdp}")


if __name__ == "__main__":
    main()
