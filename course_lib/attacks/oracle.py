"""Black-box access to a classifier: an oracle that answers queries, counts them and keeps the attack's score.

A black-box attacker may *ask* the deployed model about images of their choice, but sees neither its weights nor
its gradients. :class:`Oracle` is that interface: ``oracle(x)`` returns the class probabilities (``access="scores"``,
the score-based threat model of ZOO and the Square attack), their logarithms (``oracle(x, log=True)``), or only the
predicted labels (``access="labels"``, the decision-based threat model of the Boundary attack and HopSkipJump). It
runs the model without gradients and counts every image it is asked about against the original image that the
query is for, because a black-box attack is judged by its success *at a query budget*.

The oracle also keeps the record that query-vs-distortion plots need: once :meth:`Oracle.watch` has told it the
original images and labels (every attack of the course does this), it notes, per original image, the distance of
the closest adversarial image asked about so far, and :meth:`Oracle.trace` reads it at any query counts.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .._batches import logits_in_batches
from .._validate import check_images, check_in, check_labels, check_model

__all__ = ["Oracle", "QueryBudgetExceeded"]

NORMS = ("l2", "linf")


class QueryBudgetExceeded(RuntimeError):
    """A query would exceed the oracle's ``max_queries`` for some image."""


class Oracle:
    """Query access to ``model``: ``oracle(x)`` answers, ``oracle.queries`` counts, ``oracle.trace`` records.

    Args:
        model: classifier mapping ``[0, 1]`` images to logits, in eval mode. The oracle keeps it private and runs
            it under ``torch.no_grad``: nothing that comes back carries a gradient.
        access: ``"scores"`` (default): ``oracle(x)`` returns the softmax probabilities ``(N, K)`` (or, with
            ``log=True``, ``log_softmax`` of the logits: exact where a probability would underflow to 0);
            ``"labels"``: only the predicted classes ``(N,)``, a LongTensor.
        max_queries: ``None`` (default, no limit) or the most images that may be asked about per original image,
            over the oracle's whole life (until :meth:`reset`); a direct call that would exceed it raises
            :class:`QueryBudgetExceeded` before the model runs. Attacks never exceed it: each spends at most
            ``min(its own max_queries, what the oracle has left)`` per image and returns its best so far.

    Counting: :meth:`reset` ``(n)`` starts the count for ``n`` original images; ``oracle(x, owner)`` then adds one
    query to ``owner[i]`` for each row ``x[i]`` (``owner=None``: row ``i`` is image ``i``). ``oracle.queries`` is
    the LongTensor ``(n,)`` of queries per image, ``oracle.total`` their sum. The first call of a fresh oracle (or
    the first attack run through it) starts the count. An attack handed an oracle whose count is running for the
    same number of images continues that count: it never wipes it.
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
        self._watch = None  # (x, y, targeted, norm) of the originals being traced
        self._best = None   # (n,) distance of the closest adversarial query so far (inf: none yet)
        self._events: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (owner, query, distance)

    def __repr__(self) -> str:
        return (f"Oracle({type(self._model).__name__}, access={self.access!r}, max_queries={self.max_queries}, "
                f"queries spent: {self.total})")

    # ------------------------------------------------------------------ counting
    def reset(self, n: int) -> None:
        """Start counting for ``n`` original images (all counts 0; the trace is cleared)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1 (the number of original images), got {n!r}")
        check_model(self._model)
        self.queries, self.total = torch.zeros(n, dtype=torch.long), 0
        self._watch, self._best, self._events = None, None, []

    def remaining(self) -> torch.Tensor | None:
        """Queries left per image ``(n,)``, or ``None`` without a budget."""
        return None if self.max_queries is None else self.max_queries - self.queries

    def __call__(self, x: torch.Tensor, owner: torch.Tensor | None = None, *, log: bool = False) -> torch.Tensor:
        """The model's answer for each image of ``x`` ``(N, C, H, W)`` in ``[0, 1]``: probabilities ``(N, K)``
        (log-probabilities with ``log=True``) or labels ``(N,)``, detached, on ``x``'s device. ``owner``
        (LongTensor ``(N,)``): which original image each row is a query for."""
        check_images(x)
        check_model(self._model, x)
        if log and self.access != "scores":
            raise ValueError("log=True asks for log-probabilities, which an Oracle with access='labels' does not give")
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
        before = self.queries
        spent = before + torch.bincount(owner, minlength=n)
        if self.max_queries is not None and bool((spent > self.max_queries).any()):
            i = int((spent > self.max_queries).nonzero()[0])
            raise QueryBudgetExceeded(f"image {i} would need {int(spent[i])} queries; the budget is "
                                      f"{self.max_queries} per image")
        with torch.no_grad():
            logits = logits_in_batches(self._model, x.detach())
        self.queries, self.total = spent, self.total + x.shape[0]
        if self._watch is not None:
            self._record(x.detach(), logits.argmax(1), owner, before)
        if self.access == "labels":
            return logits.argmax(1)
        return logits.log_softmax(1) if log else logits.softmax(1)

    # ------------------------------------------------------------------ the trace
    def watch(self, x: torch.Tensor, y: torch.Tensor, targeted: bool = False, norm: str = "l2") -> None:
        """Record, from now on, the distance ``||x'_i - x_i||`` (``norm`` "l2" or "linf") of the closest query
        ``x'_i`` for image ``i`` that the model gets wrong (untargeted: label ``!= y_i``; targeted: ``== y_i``).

        Attacks call this themselves. Watching the same ``x``, ``y``, ``targeted`` and ``norm`` again keeps the
        record (two attacks in a row on one oracle give one trace); anything else starts a new one. Images
        already asked about before the watch began count in the query numbers but not in the record."""
        check_images(x)
        check_labels(y, x.shape[0], device=x.device)
        check_in(norm, set(NORMS), "norm")
        if self.queries.numel() == 0:
            self.reset(x.shape[0])
        if x.shape[0] != self.queries.numel():
            raise ValueError(f"the oracle counts queries for {self.queries.numel()} image(s) but x has {x.shape[0]}:"
                             " use a fresh Oracle or call oracle.reset(n)")
        w = self._watch
        if (w is not None and w[2] == bool(targeted) and w[3] == norm and w[0].shape == x.shape
                and w[0].device == x.device and torch.equal(w[0], x.detach()) and torch.equal(w[1], y)):
            return
        self._watch = (x.detach().clone(), y.clone(), bool(targeted), norm)
        self._best = torch.full((x.shape[0],), math.inf, dtype=torch.float64)
        self._events = []

    def _record(self, rows: torch.Tensor, labels: torch.Tensor, owner: torch.Tensor, before: torch.Tensor) -> None:
        """Note the rows that are adversarial and closer than the best so far. Resolution: one call (the row's
        own query number, the closest of a call's rows per image)."""
        x0, y0, targeted, norm = self._watch
        dev_owner = owner.to(rows.device)
        hit = labels == y0[dev_owner] if targeted else labels != y0[dev_owner]
        if not bool(hit.any()):
            return
        diff = (rows[hit] - x0[dev_owner[hit]]).flatten(1)
        dist = (diff.norm(dim=1) if norm == "l2" else diff.abs().amax(1)).cpu().double()  # MPS has no float64
        hit_cpu = hit.cpu()
        own = owner[hit_cpu]
        if owner.numel() == 1 or int(torch.bincount(owner).max()) == 1:
            # one row per image (the decision-based attacks' steps): the row is the owner's next query, and
            # the record is a comparison with the best so far
            qnum = before[own] + 1
            better = dist < self._best[own]
            if bool(better.any()):
                self._best[own[better]] = dist[better]
                self._events.append((own[better], qnum[better], dist[better]))
            return
        # the query number of each row: the owner's count before the call + its rank among the owner's rows
        rank = _rank_within(owner)
        qnum = (before[owner] + rank + 1)[hit_cpu]
        best_call = torch.full_like(self._best, math.inf).scatter_reduce(0, own, dist, "amin")
        improved = (best_call < self._best).nonzero().flatten()
        if improved.numel() == 0:
            return
        # for each improved image, the query number of the row that reached its best distance in this call
        at = torch.zeros_like(self.queries)
        is_min = dist == best_call[own]
        at.scatter_reduce_(0, own[is_min], qnum[is_min], "amin", include_self=False)
        self._best[improved] = best_call[improved]
        self._events.append((improved, at[improved], best_call[improved]))

    def trace(self, queries=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The best distance per image after each number of queries: ``(q, d)`` with ``q`` the query counts
        (LongTensor ``(Q,)``; default: about 60 counts spaced evenly on a log scale from 1 to the most any image
        spent) and ``d`` ``(n, Q)`` float64, ``inf`` where no adversarial image had been asked about yet. The
        last column of a finished attack equals the distance of the image it returned."""
        if self._watch is None:
            raise RuntimeError("nothing is being traced: an attack run through this oracle (or oracle.watch(x, y))"
                               " starts the record")
        if queries is None:
            top = max(int(self.queries.max()), 1)
            queries = torch.unique(torch.logspace(0, math.log10(top), 60).round().long().clamp(1, top))
        q = torch.as_tensor(queries, dtype=torch.long).flatten()
        if q.numel() == 0 or bool((q[1:] < q[:-1]).any()):
            raise ValueError("queries must be a non-empty increasing sequence of query counts")
        n = self.queries.numel()
        table = torch.full((n, q.numel() + 1), math.inf, dtype=torch.float64)
        for owner, at, dist in self._events:
            col = torch.searchsorted(q, at)  # the first count q_j >= at sees this distance
            flat = owner * (q.numel() + 1) + col
            table.view(-1).scatter_reduce_(0, flat, dist, "amin")
        return q, table[:, :-1].cummin(1).values


def _rank_within(owner: torch.Tensor) -> torch.Tensor:
    """For each row, how many earlier rows have the same owner."""
    order = torch.argsort(owner, stable=True)
    sorted_owner = owner[order]
    start = torch.zeros_like(sorted_owner)
    if owner.numel() > 1:
        new = torch.ones_like(sorted_owner, dtype=torch.bool)
        new[1:] = sorted_owner[1:] != sorted_owner[:-1]
        idx = torch.arange(owner.numel())
        start = torch.where(new, idx, torch.zeros_like(idx)).cummax(0).values
    rank = torch.empty_like(owner)
    rank[order] = torch.arange(owner.numel()) - start
    return rank


def begin_attack(oracle, x: torch.Tensor, y: torch.Tensor, targeted: bool, norm: str, max_queries: int,
                 name: str, scores: bool = False) -> torch.Tensor:
    """The common start of every black-box attack: check that ``oracle`` is an :class:`Oracle` (with scores if
    ``scores``), continue its count (or start one for ``x``), start its trace, and return the per-image limit of
    ``oracle.queries`` (LongTensor ``(B,)``, CPU) that the attack may reach: the count so far plus
    ``max_queries``, but never past the oracle's own ``max_queries``."""
    if not isinstance(oracle, Oracle):
        kind = "scores" if scores else "labels"
        raise TypeError(f"{name} takes an Oracle (black-box access), got {type(oracle).__name__}: "
                        f"wrap the model as Oracle(model, access={kind!r})")
    if scores and oracle.access != "scores":
        raise ValueError(f"{name} reads probabilities: it needs Oracle(model, access='scores'); with labels only, "
                         "use boundary_attack or hop_skip_jump")
    b = x.shape[0]
    if oracle.queries.numel() not in (0, b):
        raise ValueError(f"the oracle is counting queries for {oracle.queries.numel()} image(s) but x has {b}: use a "
                         f"fresh Oracle, or oracle.reset({b}) to start a new count")
    oracle.watch(x, y, targeted, norm)
    limit = oracle.queries + max_queries
    if oracle.max_queries is not None:
        limit = limit.clamp(max=oracle.max_queries)
    return limit
