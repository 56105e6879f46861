"""Randomised-smoothing certificates too slow for a lesson, shipped as ``data/results/smoothing_mnist.json``.

    python scripts/certify_smoothing.py              # about 10 minutes on 2 cores
    python scripts/certify_smoothing.py --digits 50  # a quick look (not written unless --write)

CERTIFY (Cohen, Rosenfeld & Kolter, 2019; ``course_lib.certify.smoothed_certify``) with the paper's settings,
n0 = 100, n = 10,000, alpha = 0.001, seed 0, on the first held-out MNIST digits (a held-out part of the official
MNIST *training* set): the noise-trained ``mnist_noise_025`` (sigma 0.25) and ``mnist_noise_050`` (sigma 0.5) on
500 digits, and the standard ``mnist_cnn`` at sigma 0.25 on 100 digits as the baseline (it is 5x slower per vote).
Per digit the label, the predicted class (-1 = abstain), the radius and the votes for the selected class are
stored, with the settings, the time and each model's sha256; the file's sha256 goes into ``data/MANIFEST.json``.
Lesson 14 reads it with ``course_lib.data.load_result("smoothing_mnist")``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib.certify import certified_accuracy_at, smoothed_certify  # noqa: E402
from course_lib.data import load_mnist  # noqa: E402
from course_lib.models import MODEL_SPECS, load_model  # noqa: E402

RUNS = [("mnist_noise_025", 0.25, 500), ("mnist_noise_050", 0.5, 500), ("mnist_cnn", 0.25, 100)]
N0, N, ALPHA, SEED = 100, 10_000, 0.001, 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--digits", type=int, default=None, help="digits per run (default: 500, 500, 100)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--write", action="store_true", help="write the file even with --digits")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    manifest_path = ROOT / "data" / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text())
    x_all, y_all = load_mnist("test")
    runs = []
    for name, sigma, digits in RUNS:
        digits = args.digits or digits
        x, y = x_all[:digits], y_all[:digits]
        model = load_model(name)
        start = time.perf_counter()
        labels, radii, counts = smoothed_certify(model, x, sigma, n0=N0, n=N, alpha=ALPHA, seed=SEED,
                                                 progress=True, return_counts=True)
        seconds = time.perf_counter() - start
        summary = {f"certified_accuracy_r{r}": round(certified_accuracy_at(labels, radii, y, r), 4)
                   for r in (0.25, 0.5, 0.75, 1.0, 1.5)}
        summary["abstain"] = round(float((labels == -1).double().mean()), 4)
        print(f"{name} sigma {sigma}: {digits} digits in {seconds:.0f} s; {summary}", flush=True)
        runs.append({"model": name, "sigma": sigma, "digits": digits, "seconds": round(seconds, 1),
                     "model_sha256": manifest["files"][MODEL_SPECS[name]["file"]]["sha256"], **summary,
                     "y": y.tolist(), "labels": labels.tolist(), "radii": [round(float(r), 6) for r in radii],
                     "counts": counts.tolist()})
    if args.digits and not args.write:
        print("not written (non-default --digits; add --write to ship it)")
        return
    result = {"script": "scripts/certify_smoothing.py", "method": "CERTIFY (Cohen, Rosenfeld & Kolter, 2019), "
              "course_lib.certify.smoothed_certify", "n0": N0, "n": N, "alpha": ALPHA, "seed": SEED,
              "digits": "the first held-out MNIST digits, load_mnist('test') (a held-out part of the official "
                        "MNIST training set)",
              "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
              "torch": torch.__version__, "runs": runs}
    out = ROOT / "data" / "results" / "smoothing_mnist.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, separators=(",", ":")) + "\n")
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["results/smoothing_mnist.json"] = {
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(), "bytes": out.stat().st_size,
        "license": "computed for this course (MIT)",
        "contents": "randomised-smoothing certificates (labels, radii, votes) of mnist_noise_025, mnist_noise_050 "
                    "and mnist_cnn, made by scripts/certify_smoothing.py",
        "summary": {r["model"]: {k: v for k, v in r.items() if k.startswith(("certified", "abstain", "seconds",
                                                                              "digits"))} for r in runs},
    }
    manifest["files"] = dict(sorted(manifest["files"].items()))
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)} and its manifest entry")


if __name__ == "__main__":
    main()
