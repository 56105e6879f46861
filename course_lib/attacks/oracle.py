"""Black-box access to a classifier: an oracle that answers queries and counts them.

A black-box attacker may *ask* the deployed model about images of their choice, but sees neither its weights nor
its gradients. :class:`Oracle` is that interface: ``oracle(x)`` returns the class probabilities (``access="scores"``,
the score-based threat model of ZOO, Chen et al. 2017) or only the predicted labels (``access="labels"``, the
decision-based threat model of the Boundary attack, Brendel et al. 2018). It runs the model without gradients and
counts every image it is asked about, per original image, because a black-box attack is judged by its success *at
a query budget*.
"""
from __future__ import annotations

import torch
from torch import nn

from .._batches import logits_in_batches
from .._validate import check_images, check_in, check_model

__all__ = ["Oracle", "QueryBudgetExceeded"]


class QueryBudgetExceeded(RuntimeError):
    """A query would exceed the oracle's ``max_queries`` for some image."""


class Oracle:
    """Query access to ``model``: ``oracle(x)`` answers, ``oracle.queries`` counts.

    Args:
        model: classifier mapping ``[0, 1]`` images to logits, in eval mode. The oracle keeps it private and runs
            it under ``torch.no_grad``: nothing that comes back carries a gradient.
        access: ``"scores"`` (default): ``oracle(x)`` returns the softmax probabilities ``(N, K)``;
            ``"labels"``: only the predicted classes ``(N,)``, a LongTensor.
        max_queries: ``None`` (default, no limit) or the most images that may be asked about per original image;
            a call that would exceed it raises :class:`QueryBudgetExceeded` before the model runs.

    Counting: :meth:`reset` ``(n)`` starts the count for ``n`` original images (an attack calls it first);
    ``oracle(x, owner)`` then adds one query to ``owner[i]`` for each row ``x[i]`` (``owner=None``: row ``i`` is
    image ``i``). ``oracle.queries`` is the LongTensor ``(n,)`` of queries per image, ``oracle.total`` their sum.
    Used directly without :meth:`reset`, the first call starts the count with one image per row.
    """

    def __init__(self, model: nn.Module, access: str = "scores", max_queries: int | None = None):
        check_model(model)
        check_in(access, {"scores", "labels"}, "access")
        if max_queries is not None and (isinstance(max_queries, bool) or not isinstance(max_queries, int)
                                        or max_queries < 1):
            raise ValueError(f"max_queries must be None or an int >= 1, got {max_queries!r}")
        self._model, self.access, self.max_queries = model, access, max_queries
        self.queries = torch.zeros(0, dtype=torch.long)
        self.total = 0

    def __repr__(self) -> str:
        return (f"Oracle({type(self._model).__name__}, access={self.access!r}, max_queries={self.max_queries}, "
                f"queries spent: {self.total})")

    def reset(self, n: int) -> None:
        """Start counting for ``n`` original images (all counts 0)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1 (the number of original images), got {n!r}")
        check_model(self._model)
        self.queries, self.total = torch.zeros(n, dtype=torch.long), 0

    def remaining(self) -> torch.Tensor | None:
        """Queries left per image ``(n,)``, or ``None`` without a budget."""
        return None if self.max_queries is None else self.max_queries - self.queries

    def __call__(self, x: torch.Tensor, owner: torch.Tensor | None = None) -> torch.Tensor:
        """The model's answer for each image of ``x`` ``(N, C, H, W)`` in ``[0, 1]``: probabilities ``(N, K)`` or
        labels ``(N,)``, detached, on ``x``'s device. ``owner`` (LongTensor ``(N,)``): which original image each
        row is a query for."""
        check_images(x)
        check_model(self._model, x)
        if self.queries.numel() == 0:
            self.reset(x.shape[0])
        n = self.queries.numel()
        if owner is None:
            if x.shape[0] != n:
                raise ValueError(f"the count is for {n} image(s) but x has {x.shape[0]} rows: pass owner=... (which "
                                 "original image each row is for) or call reset(n) first")
            owner = torch.arange(n)
        else:
            if not isinstance(owner, torch.Tensor) or owner.dtype != torch.long or owner.shape != (x.shape[0],):
                raise ValueError(f"owner must be a LongTensor of shape ({x.shape[0]},)")
            owner = owner.cpu()
            if owner.numel() and (int(owner.min()) < 0 or int(owner.max()) >= n):
                raise ValueError(f"owner must hold image indices in [0, {n}), got [{int(owner.min())}, "
                                 f"{int(owner.max())}]")
        spent = self.queries + torch.bincount(owner, minlength=n)
        if self.max_queries is not None and bool((spent > self.max_queries).any()):
            i = int((spent > self.max_queries).nonzero()[0])
            raise QueryBudgetExceeded(f"image {i} would need {int(spent[i])} queries; the budget is "
                                      f"{self.max_queries} per image")
        with torch.no_grad():
            logits = logits_in_batches(self._model, x.detach())
        self.queries, self.total = spent, self.total + x.shape[0]
        return logits.softmax(1) if self.access == "scores" else logits.argmax(1)
