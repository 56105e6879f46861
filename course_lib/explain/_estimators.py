"""The plumbing the estimators of :mod:`.shapley` and :mod:`.lime` share: they take any value function over
coalitions (:mod:`.games`), evaluate it on CPU bool masks, do their arithmetic in float64 on the CPU, and hand the
result back on the device and in the dtype of the game's values.

* :func:`check_players`  the (value function, number of players) pair every estimator takes
* :class:`Evaluator`     calls the value function in chunks, counts the evaluations, returns float64 CPU values
* :func:`ends`           ``v(∅)`` and ``v(N)``, which every estimator needs exactly
* :func:`random_orders`  uniformly random orders (permutations) of the players, one per row
* :func:`weighted_gram`  ``Dᵀ diag(w) D`` for the weighted least-squares fits of KernelSHAP and LIME

Randomness: ``seed`` as everywhere in course_lib (:mod:`course_lib._rng`); the coalitions are drawn on the CPU.
"""
from __future__ import annotations

import numpy as np
import torch

from .._rng import uniform


def check_players(value, n_players) -> int:
    """Validate the pair (value function, number of players) that every estimator takes."""
    if not callable(value):
        raise TypeError(f"value must be a callable value(masks: bool (K, n)) -> (K,), got {type(value).__name__}")
    if isinstance(n_players, bool) or not isinstance(n_players, int) or n_players < 1:
        raise ValueError(f"n_players must be a positive int, got {n_players!r}")
    own = getattr(value, "n_players", None)
    if own is not None and own != n_players:
        raise ValueError(f"n_players={n_players} does not match the game, which has {own} players")
    return n_players


class Evaluator:
    """Calls a value function on CPU bool masks and returns float64 CPU values, remembering the device and
    dtype the game answered in so that the estimators can hand their result back there (:meth:`result`)."""

    def __init__(self, value, n_players: int):
        self.value, self.n, self.count = value, n_players, 0
        self.device, self.dtype = torch.device("cpu"), torch.float64

    def __call__(self, masks: torch.Tensor, chunk: int = 1 << 15) -> torch.Tensor:
        out = []
        for part in masks.split(chunk):
            v = self.value(part)
            if not isinstance(v, torch.Tensor) or tuple(v.shape) != (part.shape[0],):
                shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                raise ValueError(f"the value function must return a tensor of shape ({part.shape[0]},), one value "
                                 f"per coalition, got {shape}")
            if v.is_floating_point():
                self.device, self.dtype = v.device, v.dtype
            out.append(v.detach().cpu().double())  # to the CPU first: some devices (MPS) have no float64
            self.count += part.shape[0]
        v = torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)
        if not torch.isfinite(v).all():
            raise ValueError("the value function returned NaN or infinite values")
        return v

    def result(self, t: torch.Tensor) -> torch.Tensor:
        """A CPU float64 result in the game's dtype, on its device (converted on the CPU, then moved)."""
        return t.to(self.dtype).to(self.device)


def ends(evaluate: Evaluator, n: int) -> tuple[float, float]:
    """``v(∅)`` and ``v(N)``, which every estimator needs exactly."""
    v = evaluate(torch.stack([torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)]))
    return float(v[0]), float(v[1])


def random_orders(m: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """``m`` uniformly random orders of ``n`` players, LongTensor ``(m, n)`` on the CPU: row ``p`` lists the players
    in the order they join (the ranks of ``m x n`` uniform numbers: every order equally likely)."""
    return uniform((m, n), gen, "cpu").argsort(1)


def weighted_gram(d: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``Dᵀ diag(w) D`` for ``d`` ``(K, n)`` and weights ``w`` ``(K,)``, by einsum: multi-threaded BLAS on matrices
    this small can take 100 times longer than the arithmetic when the CPU is busy."""
    return np.einsum("ki,kj->ij", d * w[:, None], d)
