"""The bookkeeping of the attacks that minimise a distance (Carlini & Wagner, ZOO, HopSkipJump): the binary
search over the constant ``c`` and "keep, per image, the closest successful attempt"."""
from __future__ import annotations

import math

import torch


class ConstantSearch:
    """Carlini & Wagner's per-image search over the constant ``c`` of ``||x' - x||^2 + c f(x')``::

        until the first success:  c <- 10 c
        after it:                 c <- (lower + upper) / 2,   lower = largest failing c, upper = smallest successful c

    ``.c`` ``(B,)`` holds each image's current constant (``dtype``, ``device``); :meth:`update` moves it on
    after one search step, given which images succeeded during it.
    """

    def __init__(self, c: float, b: int, dtype=torch.float32, device=None):
        self.c = torch.full((b,), float(c), dtype=dtype, device=device)
        self.lower = torch.zeros(b, dtype=dtype, device=device)
        self.upper = torch.full((b,), math.inf, dtype=dtype, device=device)

    def update(self, success: torch.Tensor) -> None:
        """One step of the search; ``success`` bool ``(B,)`` on ``.c``'s device."""
        self.upper = torch.where(success, torch.minimum(self.upper, self.c), self.upper)
        self.lower = torch.where(success, self.lower, torch.maximum(self.lower, self.c))
        self.c = torch.where(torch.isfinite(self.upper), (self.lower + self.upper) / 2, self.c * 10)


def keep_closest(best: torch.Tensor, best_d: torch.Tensor, rows: torch.Tensor, dist: torch.Tensor,
                 owner: torch.Tensor, hit: torch.Tensor | None = None) -> torch.Tensor:
    """Per image ``i``, keep the closest successful attempt, in place::

        best[i], best_d[i]  <-  rows[r], dist[r]    for the first r with owner[r] = i, hit[r] and the smallest dist[r],
                                                    if dist[r] < best_d[i]

    ``best`` ``(B, ...)``, ``best_d`` ``(B,)``; ``rows`` ``(N, ...)`` attempts on behalf of the images ``owner``
    ``(N,)`` (several rows may share an owner), ``dist`` ``(N,)`` their distances, ``hit`` ``(N,)`` which succeeded
    (``None``: all). No host-device synchronisation. Returns which images improved, bool ``(B,)``.
    """
    n = rows.shape[0]
    d = dist.to(best_d.dtype)
    if hit is not None:
        d = torch.where(hit, d, torch.full_like(d, math.inf))
    low = torch.full_like(best_d, math.inf).scatter_reduce(0, owner, d, "amin")
    better = low < best_d
    pos = torch.arange(n, device=rows.device)
    at_min = d == low[owner]  # inf == inf only where the image has no success at all: not better, never used
    first = torch.full(best_d.shape, n, dtype=torch.long, device=rows.device).scatter_reduce(
        0, owner, torch.where(at_min, pos, torch.full_like(pos, n)), "amin")
    picked = rows[first.clamp(max=max(n - 1, 0))] if n else best
    best.copy_(torch.where(better.view(-1, *([1] * (best.dim() - 1))), picked, best))
    best_d.copy_(torch.where(better, low, best_d))
    return better
