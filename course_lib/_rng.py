"""Randomness in course_lib: what ``seed`` means, once for the whole package.

Every function of course_lib that draws random numbers takes ``seed`` and turns it into a private
``torch.Generator`` with :func:`generator`:

* ``seed=None``: fresh randomness, drawn from torch's global RNG (one number seeds a private generator). Two
  calls differ, and ``course_lib.seed_everything(s)`` (or ``torch.manual_seed(s)``) at the top of a notebook
  makes the whole notebook reproducible.
* ``seed=<int>``: a new generator seeded with it. The same seed gives the same numbers; the global RNG is not
  touched.
* ``seed=<torch.Generator>``: used as it is, and advanced (so several calls can share one stream). It may live
  on any device.

The numbers are drawn on the generator's device (the CPU for ``None`` and ints) and then moved to the input's
device, so a seed means the same numbers on a CPU, a GPU and a Mac. The cost on a GPU is the draw on the CPU and
one copy; for most methods that is small next to the model's forward passes. Where it is not (HopSkipJump on
large images draws thousands of probe directions per step), pass a generator of the GPU, e.g.
``seed=torch.Generator("cuda").manual_seed(0)``: the draws then happen there, and the numbers differ from the
CPU's. The helpers below (:func:`uniform`, :func:`normal`, :func:`integers`, :func:`permutation`,
:func:`multinomial`) do the draw and the move; call them instead of ``torch.rand(..., generator=...)`` so that
the rule holds everywhere.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["generator", "uniform", "normal", "integers", "permutation", "multinomial"]


def generator(seed=None, device="cpu") -> torch.Generator:
    """A private ``torch.Generator`` for ``seed`` (see the module docstring): ``None`` = seeded from torch's global
    RNG, an int = seeded with it, a ``torch.Generator`` = returned as it is. ``device``: where a new generator
    lives (default the CPU, which every course function uses: same seed, same numbers on every device)."""
    if isinstance(seed, torch.Generator):
        return seed
    if seed is None:
        seed = int(torch.randint(0, 2 ** 62, ()))  # one draw from the global RNG: seed_everything reproduces it
    elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be None, an int or a torch.Generator, got {type(seed).__name__}")
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def _to(t: torch.Tensor, device) -> torch.Tensor:
    return t if device is None else t.to(device)


def uniform(shape, gen: torch.Generator, device=None, dtype=None) -> torch.Tensor:
    """``U[0, 1)`` numbers of ``shape``, drawn on ``gen``'s device and moved to ``device`` (``None``: stay)."""
    return _to(torch.rand(shape, generator=gen, device=gen.device, dtype=dtype), device)


def normal(shape, gen: torch.Generator, device=None, dtype=None) -> torch.Tensor:
    """``N(0, 1)`` numbers of ``shape``, drawn on ``gen``'s device and moved to ``device``."""
    return _to(torch.randn(shape, generator=gen, device=gen.device, dtype=dtype), device)


def integers(low: int, high: int, shape, gen: torch.Generator, device=None) -> torch.Tensor:
    """Uniform integers in ``[low, high)`` (LongTensor of ``shape``), drawn on ``gen``'s device, moved to ``device``."""
    return _to(torch.randint(low, high, shape, generator=gen, device=gen.device), device)


def permutation(n: int, gen: torch.Generator, device=None) -> torch.Tensor:
    """A uniformly random permutation of ``0..n-1``, drawn on ``gen``'s device and moved to ``device``."""
    return _to(torch.randperm(n, generator=gen, device=gen.device), device)


def multinomial(probs: torch.Tensor, k: int, gen: torch.Generator, replacement: bool = False) -> torch.Tensor:
    """``torch.multinomial(probs, k)`` drawn on ``gen``'s device; the indices come back on ``probs``' device."""
    return torch.multinomial(probs.to(gen.device), k, replacement=replacement, generator=gen).to(probs.device)
