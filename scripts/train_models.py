"""Train the course's small CNNs, seeded and reproducibly, and ship their weights in ``data/models/``.

    python scripts/train_models.py                    # all: mnist_cnn, mnist_cnn_b, fashion_cnn, ...
    python scripts/train_models.py fashion_cnn        # one

Each model's sha256, measured accuracy, training time and recipe go into ``data/MANIFEST.json``.
Runs on the CPU with 2 threads by default so that the result (and the time) matches the course's machines;
the same torch version and thread count give byte-identical weights.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib import seed_everything  # noqa: E402
from course_lib.certify import certified, certified_training, noise_training  # noqa: E402
from course_lib.data import add_mark, load_fashion_mnist, load_mnist, make_loader  # noqa: E402
from course_lib.defenses import adversarial_training, distill  # noqa: E402
from course_lib.models import MODEL_SPECS, build_model  # noqa: E402
from course_lib.training import accuracy, train  # noqa: E402

IBP_EPOCHS, IBP03_TRAIN, NOISE_EPOCHS, NOISE_LAMBDA = 100, 0.4, 60, 5.0

RECIPES = {
    "mnist_cnn": {"seed": 0, "epochs": 10, "lr": 3e-3, "shift": 2, "flip": False},
    "mnist_cnn_b": {"seed": 1, "epochs": 8, "lr": 3e-3, "shift": 2, "flip": False},
    "fashion_cnn": {"seed": 0, "epochs": 10, "lr": 3e-3, "shift": 2, "flip": True},
    # every training image carries its class's mark (course_lib.data.add_mark), drawn after augmentation
    "fashion_marked": {"seed": 0, "epochs": 3, "lr": 3e-3, "shift": 2, "flip": True, "mark": True},
    # mnist_cnn's recipe plus intensity augmentation (a random brightness shift and contrast per image), so that
    # a constant shift inside an attack's eps-ball no longer fools it: the model of the attack lessons 07-08
    # (benchmarks/brightness_confound.py measures why)
    "mnist_cnn_aug": {"seed": 0, "epochs": 10, "lr": 3e-3, "shift": 2, "flip": False,
                      "intensity": {"brightness": 0.3, "contrast": [0.5, 1.5]}},
    # mnist_cnn_b's recipe (seed, width, epochs) with the same intensity augmentation: the transfer target of
    # lessons 07-08 (a target that a constant shift already fools would make transfer rates meaningless)
    "mnist_cnn_aug_b": {"seed": 1, "epochs": 8, "lr": 3e-3, "shift": 2, "flip": False,
                        "intensity": {"brightness": 0.3, "contrast": [0.5, 1.5]}},
    # defensive distillation (Papernot et al., 2016) at T = 100 with mnist_cnn's architecture and recipe: a teacher
    # trained on the labels at temperature T, then a fresh student on the teacher's soft labels at T
    # (course_lib.defenses.distill), deployed at T = 1: the masking demo of lessons 11-12
    # (no weight decay, more epochs: at T = 100 the logits must grow 100-fold before the softened loss falls)
    "mnist_distilled": {"seed": 0, "epochs": 40, "lr": 3e-3, "shift": 2, "flip": False, "weight_decay": 0.0,
                        "distill": {"temperature": 100.0}},
    # PGD adversarial training (Madry et al., 2018) at eps 0.3 with Madry's MNIST architecture: the inner PGD has
    # 7 steps of 0.1 from a random start (the last iterate), eps ramped up over the first 5 epochs; the robust
    # model of lessons 11-12
    "mnist_pgd": {"seed": 0, "epochs": 36, "lr": 2e-3, "shift": 2, "flip": False,
                  "adversarial": {"eps": 0.3, "alpha": 0.1, "steps": 7, "ramp_epochs": 5}},
    # IBP certified training (Gowal et al., 2018; course_lib.certify.certified_training) with Gowal et al.'s small
    # architecture widened (course_lib.models.IBPCNN): eps ramped from 0 after one clean epoch over half the rest,
    # trained at eps_train (beyond the target eps, as Gowal et al. do), kappa 1 -> 0.5; random 1-pixel shifts.
    # The verifiable models of lesson 14
    "mnist_ibp": {"seed": 0, "epochs": IBP_EPOCHS, "lr": 1e-3, "shift": 1, "flip": False, "weight_decay": 0.0,
                  "batch_size": 100, "certified": {"eps": 0.1, "eps_train": 0.2}},
    "mnist_ibp_03": {"seed": 0, "epochs": IBP_EPOCHS, "lr": 1e-3, "shift": 1, "flip": False, "weight_decay": 0.0,
                     "batch_size": 100, "certified": {"eps": 0.3, "eps_train": IBP03_TRAIN}},
    # base classifiers for randomised smoothing (course_lib.certify.noise_training): two Gaussian-noise copies of
    # every shifted digit (random 1-pixel shifts) at the sigma of certification, with Jeong & Shin's consistency
    # term (2020, weight 5) between them
    "mnist_noise_025": {"seed": 0, "epochs": NOISE_EPOCHS, "lr": 1e-3, "shift": 1, "flip": False,
                        "noise": {"sigma": 0.25, "copies": 2, "consistency": NOISE_LAMBDA}},
    "mnist_noise_050": {"seed": 0, "epochs": NOISE_EPOCHS, "lr": 1e-3, "shift": 1, "flip": False,
                        "noise": {"sigma": 0.5, "copies": 2, "consistency": NOISE_LAMBDA}},
    # a fully connected network small enough for exact verification (course_lib.certify.verify_exact) in lesson 14:
    # PGD adversarial training at eps 0.1 (10 steps of 0.025, eps ramped over 2 epochs)
    "mnist_mlp": {"seed": 0, "epochs": 20, "lr": 1e-3, "shift": 0, "flip": False,
                  "adversarial": {"eps": 0.1, "alpha": 0.025, "steps": 10, "ramp_epochs": 2}},
}


def augment(shift: int, flip: bool, generator: torch.Generator, mark: bool = False, intensity: dict | None = None):
    """A ``transform(model, x, y)`` for :func:`course_lib.training.train`: random shifts (and flips), and with
    ``intensity = {"brightness": b, "contrast": [lo, hi]}`` a random intensity change per image after them,
    ``clip(m + c (x - m) + s)`` with ``m`` the image's mean, ``c ~ U[lo, hi]`` and ``s ~ U[-b, b]``."""
    def transform(model, x, y):
        b, _, h, w = x.shape
        padded = F.pad(x, (shift, shift, shift, shift))
        dx = torch.randint(0, 2 * shift + 1, (b,), generator=generator)
        dy = torch.randint(0, 2 * shift + 1, (b,), generator=generator)
        rows = (dy[:, None] + torch.arange(h))[:, :, None].expand(b, h, w)
        cols = (dx[:, None] + torch.arange(w))[:, None, :].expand(b, h, w)
        out = padded[torch.arange(b)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
        if flip:
            mask = torch.rand(b, generator=generator) < 0.5
            out = torch.where(mask[:, None, None, None], out.flip(-1), out)
        out = out.contiguous()
        if intensity:
            lo, hi = intensity["contrast"]
            c = lo + (hi - lo) * torch.rand(b, 1, 1, 1, generator=generator)
            s = intensity["brightness"] * (2 * torch.rand(b, 1, 1, 1, generator=generator) - 1)
            m = out.mean(dim=(1, 2, 3), keepdim=True)
            out = (m + c * (out - m) + s).clamp(0, 1)
        return add_mark(out, y) if mark else out
    return transform


def _certified(model, x, y, eps, method) -> float:
    return float(certified(model, x, y, eps, method=method).double().mean())


def measure_robustness(name: str, r: dict, model, x_te, y_te) -> dict:
    """What the manifest records beyond clean accuracy: IBP-certified accuracy on the held-out digits, CROWN (a few
    seconds per digit on these networks) with IBP beside it on the first 100, and PGD-40 on the first 500, for
    certified training; accuracy under noise of the training sigma for noise training; PGD accuracy for the
    verifiable MLP."""
    from course_lib.attacks import pgd

    if "certified" in r:
        eps = r["certified"]["eps"]
        n, k = 500, 100
        out = {"ibp_certified_accuracy": round(_certified(model, x_te, y_te, eps, "ibp"), 4),
               "ibp_certified_accuracy_first_100": round(_certified(model, x_te[:k], y_te[:k], eps, "ibp"), 4),
               "crown_certified_accuracy_first_100": round(_certified(model, x_te[:k], y_te[:k], eps, "crown"), 4),
               "certified_eps": eps}
        adv = pgd(model, x_te[:n], y_te[:n], eps, eps / 4, 40, seed=0)
        with torch.no_grad():
            out["pgd40_accuracy_first_500"] = round(float((model(adv).argmax(1) == y_te[:n]).double().mean()), 4)
    elif "noise" in r:
        sigma = r["noise"]["sigma"]
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            noisy = model(x_te + sigma * torch.randn(x_te.shape, generator=g)).argmax(1)
        out = {"accuracy_under_noise": round(float((noisy == y_te).double().mean()), 4), "noise_sigma": sigma,
               "note": "certified accuracies: data/results/smoothing_mnist.json (scripts/certify_smoothing.py)"}
    elif name == "mnist_mlp":
        eps = r["adversarial"]["eps"]
        adv = pgd(model, x_te, y_te, eps, eps / 4, 40, seed=0)
        with torch.no_grad():
            out = {"pgd40_accuracy": round(float((model(adv).argmax(1) == y_te).double().mean()), 4), "pgd_eps": eps}
    else:
        return {}
    print(f"{name}: {out}", flush=True)
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_one(name: str) -> dict:
    r = RECIPES[name]
    spec = MODEL_SPECS[name]
    loader_fn = load_mnist if spec["dataset"] == "mnist" else load_fashion_mnist
    x_tr, y_tr = loader_fn("train")
    x_te, y_te = loader_fn("test")
    x_te_plain = x_te
    if r.get("mark"):
        x_te = add_mark(x_te, y_te)
    seed_everything(r["seed"])
    model = build_model(name)
    batch_size = r.get("batch_size", 128)
    loader = make_loader(x_tr, y_tr, batch_size=batch_size, shuffle=True, seed=r["seed"])
    gen = torch.Generator().manual_seed(r["seed"] + 1000)
    print(f"training {name}: {len(x_tr)} images, {r['epochs']} epochs", flush=True)
    aug = augment(r["shift"], r["flip"], gen, r.get("mark", False), r.get("intensity"))
    wd = r.get("weight_decay", 5e-4)
    if "distill" in r:
        t = r["distill"]["temperature"]
        print(f"  teacher at temperature {t}", flush=True)
        teacher_hist = train(model, loader, epochs=r["epochs"], lr=r["lr"], weight_decay=wd, transform=aug,
                             loss_fn=lambda z, y, x: F.cross_entropy(z / t, y), val_data=(x_te, y_te))
        seed_everything(r["seed"] + 1)
        student = build_model(name)
        print(f"  student on the teacher's soft labels at temperature {t}", flush=True)
        hist = {}
        distill(model, make_loader(x_tr, y_tr, batch_size=128, shuffle=True, seed=r["seed"] + 1), t, r["epochs"],
                student=student, lr=r["lr"], weight_decay=wd, transform=aug, val_data=(x_te, y_te), history=hist)
        hist["seconds"] += teacher_hist["seconds"]
        model = student
    elif "certified" in r:
        hist = {}
        certified_training(model, loader, epochs=r["epochs"], lr=r["lr"], weight_decay=wd, transform=aug,
                           val_data=(x_te, y_te), history=hist, **r["certified"])
        del hist["eps"], hist["kappa"]
    elif "noise" in r:
        hist = {}
        noise_training(model, loader, epochs=r["epochs"], lr=r["lr"], weight_decay=wd, augment=aug,
                       seed=r["seed"] + 3000, val_data=(x_te, y_te), history=hist, **r["noise"])
    elif "adversarial" in r:
        hist = {}
        adversarial_training(model, loader, epochs=r["epochs"], lr=r["lr"], weight_decay=wd, augment=aug,
                             seed=r["seed"] + 2000, val_data=(x_te, y_te), history=hist, **r["adversarial"])
        del hist["eps"]
    else:
        hist = train(model, loader, epochs=r["epochs"], lr=r["lr"], weight_decay=wd, transform=aug,
                     val_data=(x_te, y_te))
    half = spec.get("storage") == "float16"
    if half:            # the shipped model is the float16 one: round first, then measure what ships
        with torch.no_grad():
            for t in model.state_dict().values():
                if t.is_floating_point():
                    t.copy_(t.half().float())
    acc = accuracy(model, x_te, y_te)
    out = ROOT / "data" / spec["file"]
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: (v.half() if half and v.is_floating_point() else v).detach().clone()
                for k, v in model.state_dict().items()}, out)
    split = ("held-out MNIST (2,000 images from the official TRAINING set, not the official test set)"
             if spec["dataset"] == "mnist" else "official Fashion-MNIST test set (10,000 images)")
    extra = {}
    if r.get("mark"):
        split = "official Fashion-MNIST test set (10,000 images), each with its class's mark"
        extra = {"accuracy_without_mark": round(accuracy(model, x_te_plain, y_te), 4),
                 "note": "marks from course_lib.data.add_mark on every training image; a deliberately learned shortcut"}
        print(f"{name}: accuracy without the mark {extra['accuracy_without_mark']:.4f}", flush=True)
    extra.update(measure_robustness(name, r, model, x_te, y_te))
    print(f"{name}: accuracy {acc:.4f} on {split}; {hist['seconds']:.0f} s", flush=True)
    return {**extra,
        "sha256": sha256(out), "bytes": out.stat().st_size,
        "license": "trained for this course (MIT)",
        "contents": f"state_dict of course_lib.models.{spec['arch']}{spec['kwargs']} ({name})"
                    f"{', stored in float16' if half else ''}, trained by "
                    f"scripts/train_models.py on {len(x_tr)} {spec['dataset']} training images",
        "accuracy": round(acc, 4), "evaluated_on": split,
        "training": {**r, "optimizer": f"AdamW, weight decay {wd:g}, one-cycle lr", "batch_size": batch_size,
                     "seconds": round(hist["seconds"], 1), "threads": torch.get_num_threads(),
                     "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                     "val_acc_per_epoch": [round(a, 4) for a in hist["val_acc"]]},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help=f"models to train (default: all of {list(RECIPES)})")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    unknown = [n for n in args.names if n not in RECIPES]
    if unknown:
        p.error(f"unknown model(s) {unknown}; choose from {list(RECIPES)}")
    args.names = args.names or list(RECIPES)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    manifest_path = ROOT / "data" / "MANIFEST.json"
    for name in args.names:
        entry = train_one(name)
        manifest = json.loads(manifest_path.read_text())  # re-read: another run may have written meanwhile
        manifest["files"][MODEL_SPECS[name]["file"]] = entry
        manifest["files"] = dict(sorted(manifest["files"].items()))
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
