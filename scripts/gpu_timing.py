"""Time a few course_lib methods on the CPU and on the accelerator (CUDA, else MPS), side by side.

    python scripts/gpu_timing.py            # prints a table; also writes it to $OUT/gpu_timing.txt when OUT is set
    python scripts/gpu_timing.py --quick    # 16 digits, 2 photos, one timed run each: checks that it works

Each method runs once untimed (one-off costs), then ``REPEATS`` times; the median is reported, with the device
synchronised around every run. mnist_cnn on 256 held-out digits, imagenet_lite0 on the shipped photos.
Without an accelerator only the CPU column is filled (a dry run).
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import course_lib  # noqa: E402
from course_lib.attacks import Oracle, carlini_wagner, fgsm, pgd, square_attack  # noqa: E402
from course_lib.data import load_imagenet_samples, load_mnist  # noqa: E402
from course_lib.explain import grad_cam, integrated_gradients, occlusion, saliency, smoothgrad  # noqa: E402
from course_lib.models import load_model  # noqa: E402

REPEATS = 3


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


def seconds(fn, device) -> float:
    fn()  # warm-up: kernels, caches, lazy initialisation
    times = []
    for _ in range(REPEATS):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def methods():
    """(data set, method, fn(model, x, y)) for the table."""
    return [
        ("mnist", "saliency", lambda m, x, y: saliency(m, x)),
        ("mnist", "smoothgrad n=50", lambda m, x, y: smoothgrad(m, x, seed=0)),
        ("mnist", "integrated_gradients 50", lambda m, x, y: integrated_gradients(m, x)),
        ("mnist", "grad_cam", lambda m, x, y: grad_cam(m, x)),
        ("mnist", "occlusion 4x4", lambda m, x, y: occlusion(m, x, window=4, progress=False)),
        ("mnist", "fgsm", lambda m, x, y: fgsm(m, x, y, 0.1)),
        ("mnist", "pgd 40 steps", lambda m, x, y: pgd(m, x, y, 0.1, 0.01, 40, seed=0)),
        ("mnist", "carlini_wagner 5x100", lambda m, x, y: carlini_wagner(m, x, y, steps=100)),
        ("mnist", "square 500 queries", lambda m, x, y: square_attack(Oracle(m), x, y, 0.2, max_queries=500,
                                                                       seed=0, progress=False)),
        ("imagenet", "saliency", lambda m, x, y: saliency(m, x)),
        ("imagenet", "integrated_gradients 50", lambda m, x, y: integrated_gradients(m, x)),
        ("imagenet", "grad_cam", lambda m, x, y: grad_cam(m, x)),
        ("imagenet", "pgd 10 steps", lambda m, x, y: pgd(m, x, y, 4 / 255, 1 / 255, 10, seed=0)),
    ]


def main(argv: list[str]) -> int:
    global REPEATS
    quick = "--quick" in argv
    n_digits, n_photos = (16, 2) if quick else (256, 8)
    if quick:
        REPEATS = 1
    acc = course_lib.accelerator()
    devices = [torch.device("cpu")] + ([acc] if acc is not None else [])
    xm, ym = load_mnist("test")
    xi, yi = load_imagenet_samples()
    data = {"mnist": ("mnist_cnn", xm[:n_digits], ym[:n_digits]),
            "imagenet": ("imagenet_lite0", xi[:n_photos], yi[:n_photos])}
    models = {(name, d): load_model(model, d) for name, (model, _, _) in data.items() for d in devices}
    lines = [f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
             + (f", {torch.cuda.get_device_name()}" if acc is not None and acc.type == "cuda" else "")
             + ("" if acc is not None else " (no accelerator: CPU column only)"),
             f"{'data':9s} {'method':26s} {'images':>6s} {'cpu s':>9s} {'accel s':>9s} {'speed-up':>9s}"]
    print("\n".join(lines), flush=True)
    for name, method, fn in methods():
        _, x, y = data[name]
        t = {}
        for d in devices:
            model, xd, yd = models[name, d], x.to(d), y.to(d)
            t[d.type] = seconds(lambda fn=fn, model=model, xd=xd, yd=yd: fn(model, xd, yd), d)
        a = t.get(acc.type) if acc is not None else None
        line = (f"{name:9s} {method:26s} {len(x):6d} {t['cpu']:9.3f} "
                + (f"{a:9.3f} {t['cpu'] / a:8.1f}x" if a is not None else f"{'-':>9s} {'-':>9s}"))
        print(line, flush=True)
        lines.append(line)
    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "gpu_timing.txt").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
