"""Comparing two methods measured on the same items (images, digits): a paired bootstrap.

When every method is scored on the same images, the images themselves vary far more than the methods do (an easy
digit is easy for every method). Two independent standard errors carry that variation twice and hide real
differences; the *paired* comparison looks at the difference per image, where the image's own difficulty cancels.
The bootstrap (Efron & Tibshirani, 1993, *An Introduction to the Bootstrap*, ch. 13) does this without assuming a
distribution: draw the images with replacement, keep each image's pair of scores together, recompute the
statistic of both methods on the same draw, and read the interval off the quantiles of the differences.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from ._rng import generator, integers

__all__ = ["Interval", "paired_bootstrap", "summarize"]


class Interval(NamedTuple):
    """A difference ``estimate`` = statistic(a) - statistic(b) with its bootstrap interval ``[low, high]``,
    from ``n`` items (pairs with a NaN in either score are left out)."""

    estimate: float
    low: float
    high: float
    n: int

    @property
    def resolved(self) -> bool:
        """True when the interval excludes 0: the sample tells which of the two is larger."""
        return self.low > 0 or self.high < 0

    def describe(self, fmt: str = "+.3f", unresolved: str = " ≈") -> str:
        """``"estimate [low, high]"`` in ``fmt``, followed by ``unresolved`` when the interval contains 0
        (by as many spaces otherwise, so columns stay aligned)."""
        text = f"{self.estimate:{fmt}} [{self.low:{fmt}}, {self.high:{fmt}}]"
        return text + (" " * len(unresolved) if self.resolved else unresolved)


_STATISTICS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mean": lambda t: t.mean(-1),
    "median": lambda t: t.quantile(0.5, dim=-1),   # the midpoint of the two middle values for an even count
}


def paired_bootstrap(a, b, statistic: str | Callable = "mean", n_resamples: int = 10_000, level: float = 0.95,
                     seed=0) -> Interval:
    """Percentile bootstrap interval of ``statistic(a) - statistic(b)`` for paired scores ``a[i]``, ``b[i]``.

    Each resample draws ``n`` item indices ``i_1..i_n`` uniformly with replacement and computes
    ``D* = T(a[i_1..i_n]) - T(b[i_1..i_n])`` (the *same* indices for both: that is the pairing). The interval is
    the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of ``D*`` over the resamples (linear interpolation),
    the estimate ``T(a) - T(b)`` on all items. For the mean, ``D*`` is the mean of the per-item differences.

    Args:
        a, b: scores of two methods on the same ``n`` items, 1-D and of equal length (tensors or sequences);
            an item with a NaN in either score is left out of both.
        statistic: ``"mean"`` (default), ``"median"`` (midpoint of the middle values), or a function mapping a
            tensor ``(R, n)`` to ``(R,)`` along its last dimension.
        n_resamples: number of bootstrap resamples (default 10,000).
        level: coverage of the interval, in (0, 1) (default 0.95).
        seed: for the resamples: an int (default 0; the same seed gives the same interval), a ``torch.Generator``
            (advanced) or ``None`` (fresh randomness from torch's global RNG; see :mod:`course_lib._rng`).
    """
    a = torch.as_tensor(a).detach().double().cpu()
    b = torch.as_tensor(b).detach().double().cpu()
    if a.dim() != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be 1-D scores of the same items, got shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    keep = ~(a.isnan() | b.isnan())
    a, b = a[keep], b[keep]
    n = a.numel()
    if n < 2:
        raise ValueError(f"need at least 2 items without NaN to resample, got {n}")
    if isinstance(statistic, str):
        if statistic not in _STATISTICS:
            raise ValueError(f"statistic must be one of {sorted(_STATISTICS)} or a function, got {statistic!r}")
        statistic = _STATISTICS[statistic]
    gen = generator(seed)
    idx = integers(0, n, (n_resamples, n), gen, a.device)
    diffs = statistic(a[idx]) - statistic(b[idx])
    alpha = (1 - level) / 2
    low, high = diffs.quantile(torch.tensor([alpha, 1 - alpha], dtype=torch.float64))
    estimate = statistic(a[None]) - statistic(b[None])
    return Interval(float(estimate[0]), float(low), float(high), n)


def summarize(scores, statistic: str = "mean") -> float:
    """One number for a column of per-item scores: their mean or median (``"mean"``, ``"median"``: the midpoint of
    the two middle values for an even count, as in :func:`paired_bootstrap`), NaN items left out."""
    v = torch.as_tensor(scores).detach().double().cpu().flatten()
    if statistic not in _STATISTICS:
        raise ValueError(f"statistic must be one of {sorted(_STATISTICS)}, got {statistic!r}")
    v = v[~v.isnan()]
    if v.numel() == 0:
        raise ValueError("no score without NaN to summarize")
    return float(_STATISTICS[statistic](v))
