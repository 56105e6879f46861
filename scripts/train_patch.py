"""Train the course's adversarial patch (Brown et al., 2017) and ship it as ``data/patches/<name>.png``.

    python scripts/train_patch.py                  # the shipped "toaster" patch, about 20-30 min on one busy core
    python scripts/train_patch.py --steps 20       # a quick try (not written unless --write)

The patch is trained on ``imagenet_lite0`` with :func:`course_lib.attacks.train_patch` on the 20 labelled
ImageNet photos (``load_imagenet_samples``), then quantised to 8 bits (what a PNG, or a printer, keeps) and
evaluated, quantised, on those photos and on the five demo photos it never saw (``load_photo``), at random
places. Its sha256, recipe, time and measured success go into ``data/MANIFEST.json``. The same torch version,
thread count and seed give the same patch.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib.attacks import patch_success, train_patch  # noqa: E402
from course_lib.data import IMAGENET_CLASSES, PHOTOS, load_imagenet_samples, load_photo  # noqa: E402
from course_lib.models import load_model  # noqa: E402

RECIPE = {"name": "toaster", "target": 859, "size": 64, "steps": 1200, "batch_size": 8, "lr": 0.02,
          "scale_range": [0.8, 1.2], "max_angle": 22.5, "seed": 0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=RECIPE["steps"])
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1, as for the shipped patch: another count changes the float sums)")
    p.add_argument("--write", action="store_true", help="write the patch even with a non-default --steps")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    r = {**RECIPE, "steps": args.steps}
    assert IMAGENET_CLASSES[r["target"]] == r["name"], IMAGENET_CLASSES[r["target"]]

    model = load_model("imagenet_lite0")
    x_train, _ = load_imagenet_samples()
    x_held = torch.cat([load_photo(name) for name in sorted(PHOTOS)])
    history: list = []
    t0 = time.perf_counter()
    patch = train_patch(model, x_train, r["target"], r["size"], r["steps"], seed=r["seed"],
                        batch_size=r["batch_size"], lr=r["lr"], scale_range=tuple(r["scale_range"]),
                        max_angle=r["max_angle"], history=history)
    seconds = time.perf_counter() - t0
    u8 = (patch * 255).round().to(torch.uint8)
    patch = u8.float() / 255  # evaluate what ships
    result = {
        "success_train_photos": round(patch_success(model, x_train, patch, r["target"], places=10, seed=1000), 3),
        "success_held_out_photos": round(patch_success(model, x_held, patch, r["target"], places=20, seed=2000), 3),
    }
    last = history[-50:]
    print(f"{r['steps']} steps in {seconds:.0f} s; last 50 steps: loss {np.mean([h['loss'] for h in last]):.3f}, "
          f"batch success {np.mean([h['success'] for h in last]):.2f}; quantised patch at random places: "
          f"{result}", flush=True)
    if args.steps != RECIPE["steps"] and not args.write:
        print("not written (non-default --steps; add --write to ship it)")
        return

    from PIL import Image

    out = ROOT / "data" / "patches" / f"{r['name']}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(u8.permute(1, 2, 0).numpy()).save(out, optimize=True)
    entry = {
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(), "bytes": out.stat().st_size,
        "license": "trained for this course (MIT)",
        "contents": f"adversarial patch {r['size']}x{r['size']} RGB, 8 bits, towards ImageNet class {r['target']} "
                    f"({r['name']!r}) for imagenet_lite0, trained by scripts/train_patch.py with "
                    "course_lib.attacks.train_patch on the 20 photos of imagenet_samples.npz",
        **result,
        "evaluated_on": "success = fraction classified as the target with the patch pasted at scale 1 at random "
                        "places: the 20 training photos x 10 places, and the 5 demo photos of load_photo (never "
                        "seen in training) x 20 places",
        "training": {**r, "seconds": round(seconds, 1), "threads": torch.get_num_threads(),
                     "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                     "final_loss_mean_last_50": round(float(np.mean([h["loss"] for h in last])), 4)},
    }
    manifest_path = ROOT / "data" / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][f"patches/{r['name']}.png"] = entry
    manifest["files"] = dict(sorted(manifest["files"].items()))
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)} and its manifest entry")


if __name__ == "__main__":
    main()
