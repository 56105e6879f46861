"""course_lib: the library behind the course *Safety and Security for Neural Networks*.

Every algorithm the lessons teach lives here, batched and device-agnostic. Conventions:
images are float tensors ``(B, C, H, W)`` in ``[0, 1]``; models take ``[0, 1]`` images and
normalise inside themselves; labels are ``LongTensor (B,)``; results are detached tensors
on the input's device.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__version__ = "0.1.0"

__all__ = ["device", "accelerator", "seed_everything", "__version__"]

_SUBMODULES = {"data", "models", "training", "corruptions", "plot", "homework", "explain", "attacks", "defenses",
               "certify", "widgets", "stats"}


def __getattr__(name):
    """``course_lib.data`` etc. work after a plain ``import course_lib`` (imported on first use)."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def accelerator() -> torch.device | None:
    """The accelerator of this machine, if any: CUDA, then Apple MPS; ``None`` on a CPU-only machine."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return None


def device() -> torch.device:
    """The best available device for lessons: CUDA, then Apple MPS, then CPU."""
    return accelerator() or torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random generators (all devices) with ``seed``."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
