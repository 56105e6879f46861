"""How good is an explanation? Numbers that can be computed without a ground truth, one module per question:

* :mod:`.fidelity`   does the map point at what the model uses? :func:`deletion_auc`, :func:`insertion_auc`
  (Petsiuk et al., RISE, BMVC 2018) and :func:`selectivity` (how concentrated the map is);
* :mod:`.stability`  does it stay put when x barely changes? :func:`max_sensitivity` (Yeh et al., NeurIPS 2019),
  and :func:`rank_correlation` (Spearman) for consistency between maps;
* :mod:`.sanity`     does it depend on the model at all? :func:`randomization_check` (Adebayo et al., NeurIPS 2018)
  and the reference row :func:`edge_map`, an "explanation" that never looks at the model;
* cost: :func:`time_per_image`, here.

All of them are also importable from here and from :mod:`course_lib.explain`.
"""
from __future__ import annotations

import statistics
import time

import torch

from .fidelity import deletion_auc, insertion_auc, selectivity
from .sanity import edge_map, randomization_check
from .stability import max_sensitivity, rank_correlation

__all__ = ["deletion_auc", "insertion_auc", "max_sensitivity", "randomization_check", "rank_correlation",
           "selectivity", "time_per_image", "edge_map", "timed_call"]


def time_per_image(fn, x: torch.Tensor, repeats: int = 3, warmup: int = 1) -> float:
    """Wall-clock seconds per image of ``fn(x)``: the median over ``repeats`` runs of time(fn(x)) / B.

    ``warmup`` untimed runs come first (one-off costs: caches, lazy initialisation). On CUDA the device is
    synchronised before and after each run, since kernels run asynchronously.
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] == 0:
        raise ValueError("x must be a non-empty batch tensor (B, ...)")
    if not isinstance(repeats, int) or repeats < 1 or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats!r} and {warmup!r}")
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn(x)
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / x.shape[0]


def timed_call(fn, x: torch.Tensor):
    """``(fn(x), seconds per image)`` from one timed run: the result is kept, so an expensive explanation is
    computed once and timed at the same time (no warm-up: run ``fn`` once before if one-off costs matter).
    On CUDA the device is synchronised before and after."""
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] == 0:
        raise ValueError("x must be a non-empty batch tensor (B, ...)")
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    out = fn(x)
    sync()
    return out, (time.perf_counter() - t0) / x.shape[0]
