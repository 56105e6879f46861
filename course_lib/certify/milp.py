"""Exact verification of a small ReLU network by mixed-integer linear programming (Tjeng, Xiao & Tedrake,
"Evaluating Robustness of Neural Networks with Mixed Integer Programming", ICLR 2019).

Bounds (:mod:`.bounds`) are sound but incomplete: a positive lower bound proves robustness, a negative one proves
nothing. A MILP is *complete*: it finds the smallest margin ``z_y - z_k`` over the whole ball exactly, so it either
proves robustness or returns an input that breaks it. The price is exponential time in the worst case (one binary
variable per ReLU whose sign the bounds cannot settle), so it is for small networks.

**Formulation.** Variables: the input pixels ``x`` in the box ``[max(x0 - eps, 0), min(x0 + eps, 1)]``; the output
``z`` of every (maximal run of consecutive) affine step(s) with an equality ``z = W h + b``, where ``W`` and ``b``
are read off the step itself (applied to the zero input and to the basis vectors); and for each nonlinear step,
with pre-activation bounds ``l <= z <= u`` from :func:`~course_lib.certify.bounds.crown_bounds`' machinery (CROWN,
or IBP with ``bounds="ibp"``) used as the big-M constants:

* ReLU ``a = max(z, 0)``: stable neurons need no binary (``l >= 0``: ``a = z``; ``u <= 0``: ``a = 0``); an unstable
  one (``l < 0 < u``) gets a binary ``d`` and::

      a >= 0,   a >= z,   a <= z - l (1 - d),   a <= u d            (d = 1: a = z >= 0;  d = 0: a = 0 >= z)

* max-pooling ``m = max_{i in window} z_i`` (encoded, not refused): inputs whose upper bound is below the window's
  largest lower bound can never be the maximum and are dropped; if one input is left, ``m = z_i``; otherwise one
  binary ``d_i`` per remaining input, with ``u_max`` the largest upper bound of the window::

      m >= z_i,   m <= z_i + (u_max - l_i) (1 - d_i)   for every i,    sum_i d_i = 1

For each class ``k != y`` the program minimises ``z_y - z_k`` (scipy's :func:`scipy.optimize.milp`, i.e. HiGHS).
The image is **verified** when every minimum is positive (HiGHS's proven lower bound, not only its best point);
a negative value gives a **counterexample**: the optimal input, checked with the model itself in floating point
(inside the ball and ``[0, 1]``, and misclassified) before it is returned. Classes whose margin lower bound from
the same bounds is already positive are skipped, the others are solved from the lowest bound up, and the search
stops at the first real counterexample (``exact_margin=True`` solves every class instead).

The program is built and solved in float64 (on a float64 copy of the model); the pre-activation bounds are
widened by ``1e-7 (1 + |bound|)`` so that rounding cannot cut off the true optimum. HiGHS itself works with
tolerances of about ``1e-6`` (feasibility, integrality), so a margin within about ``1e-5`` of zero is a tie, not a
proof either way: a "counterexample" is only claimed after the model has confirmed it.
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array
from torch import nn

from .._validate import check_in, check_labels
from .bounds import _backward, _box, _chain, _check, _crown_pre

__all__ = ["VerificationResult", "verify_exact"]

STATUSES = ("verified", "counterexample", "timeout", "unknown")

#: HiGHS options passed to :func:`scipy.optimize.milp` (``solver_options`` overrides them). Measured on a
#: 784-64-64-10 MLP at eps 0.02 (10 digits, one thread): HiGHS's presolve and its large-neighbourhood / feasibility
#: jump heuristics spend seconds on the dense first-layer rows; without them, 6.2 s instead of 26 s in all.
SOLVER_OPTIONS: dict = {"presolve": False, "mip_heuristic_run_feasibility_jump": False,
                        "mip_heuristic_run_rens": False, "mip_heuristic_run_rins": False}


def _known(options: dict) -> dict:
    """The options this scipy's HiGHS knows (older versions lack some heuristic switches: they are dropped)."""
    public = {"disp", "presolve", "time_limit", "node_limit", "mip_rel_gap"}
    try:
        from scipy.optimize._highspy._core import HighsOptions
        names = HighsOptions()
    except Exception:                                   # noqa: BLE001 - private module: any failure, public only
        return {k: v for k, v in options.items() if k in public}
    return {k: v for k, v in options.items() if k in public or hasattr(names, k)}


@dataclass
class VerificationResult:
    """The answer of :func:`verify_exact` for one image.

    * ``status``: ``"verified"`` (no input of the ball changes the class), ``"counterexample"`` (one does, and
      ``counterexample`` is it), ``"timeout"`` (the time limit ran out first), or ``"unknown"`` (rare: the solver
      failed, or its answer and the model's floating-point output disagree within tolerances; ``message`` says
      which).
    * ``counterexample``: the adversarial image ``(C, H, W)`` on ``x``'s device, or ``None``. It lies in the ball
      and in ``[0, 1]``, and the model misclassifies it (checked).
    * ``margin``: ``"verified"``/``"timeout"``/``"unknown"``: a proven lower bound on ``min_k min_ball (z_y - z_k)``
      (from the MILP, or from the CROWN/IBP bound for classes it skipped); ``"counterexample"``: the model's margin
      ``z_y - max_{k != y} z_k`` at the counterexample (negative). With ``exact_margin=True`` it is the exact
      minimum over the ball (the MILP's optimum, up to solver tolerances) for verified and counterexample.
    * ``seconds``: wall-clock time for this image (its share of the batch's bounds included).
    * ``unstable``: the number of binary variables (unstable ReLUs, max-pooling choices): what makes MILPs hard.
    * ``message``: a note from the solver (empty when all went well)."""

    status: str
    counterexample: torch.Tensor | None
    margin: float
    seconds: float
    unstable: int = 0
    message: str = ""


class _Program:
    """A MILP under construction: variables with bounds (some integer) and sparse rows ``lo <= A v <= hi``."""

    def __init__(self):
        self.lb, self.ub, self.integer = [], [], []
        self.n = 0
        self.rows, self.cols, self.vals, self.rlo, self.rhi = [], [], [], [], []
        self.m = 0

    def variables(self, lo, hi, integer=False) -> np.ndarray:
        lo, hi = np.asarray(lo, dtype=np.float64).ravel(), np.asarray(hi, dtype=np.float64).ravel()
        self.lb.append(lo)
        self.ub.append(hi)
        self.integer.append(np.full(lo.size, int(integer)))
        idx = np.arange(self.n, self.n + lo.size)
        self.n += lo.size
        return idx

    def rows_of(self, terms, lo, hi):
        """Rows ``lo <= sum_t coef_t * v[var_t] <= hi`` (``lo``, ``hi``: one value per row, arrays); ``terms`` is a
        list of ``(row, var, coef)`` arrays with rows numbered from 0 for this call."""
        lo, hi = np.asarray(lo, dtype=np.float64).ravel(), np.asarray(hi, dtype=np.float64).ravel()
        for r, v, c in terms:
            r, v, c = np.broadcast_arrays(np.asarray(r), np.asarray(v), np.asarray(c, dtype=np.float64))
            self.rows.append(r.ravel() + self.m)
            self.cols.append(v.ravel())
            self.vals.append(c.ravel())
        self.rlo.append(lo)
        self.rhi.append(hi)
        self.m += lo.size

    def geq(self, terms, lo):
        self.rows_of(terms, lo, np.full(np.size(lo), np.inf))

    def leq(self, terms, hi):
        self.rows_of(terms, np.full(np.size(hi), -np.inf), hi)

    def build(self):
        a = csr_array((np.concatenate(self.vals), (np.concatenate(self.rows), np.concatenate(self.cols))),
                      shape=(self.m, self.n))
        return (np.concatenate(self.integer), Bounds(np.concatenate(self.lb), np.concatenate(self.ub)),
                LinearConstraint(a, np.concatenate(self.rlo), np.concatenate(self.rhi)))


def _pad(v: np.ndarray) -> np.ndarray:
    return 1e-7 * (1.0 + np.abs(v))


def _affine_groups(steps, max_entries: int, device):
    """The runs of consecutive affine steps, each as ``(start, end, W, b)`` (float64 numpy, ``W`` of shape
    ``(n_out, n_in)``) read off the steps: their composition applied to ``[0, e_1, ..., e_n]`` in one batch."""
    groups, i = [], 0
    while i < len(steps):
        if steps[i].kind != "affine":
            i += 1
            continue
        j = i
        while j < len(steps) and steps[j].kind == "affine":
            j += 1
        n_in = math.prod(steps[i].in_shape)
        for s in steps[i:j]:
            n_out = math.prod(s.out_shape)
            if (n_in + 1) * n_out > max_entries:
                names = ", ".join(repr(t.name) for t in steps[i:j])
                raise ValueError(
                    f"verify_exact: the affine layer {s.name!r} (in the run {names}) would need a dense "
                    f"{n_out} x {n_in} matrix ({n_out * n_in:.3g} entries > max_entries={max_entries:.3g}); exact "
                    "verification by MILP is for small networks (an MLP, or a small conv net on small inputs)")
        z = torch.cat([torch.zeros(1, n_in, dtype=torch.float64, device=device),
                       torch.eye(n_in, dtype=torch.float64, device=device)]).view(n_in + 1, *steps[i].in_shape)
        with torch.no_grad():
            for s in steps[i:j]:
                z = s.f(z)
        z = z.reshape(n_in + 1, -1).cpu().numpy()
        groups.append((i, j, np.ascontiguousarray((z[1:] - z[0]).T), z[0].copy()))
        i = j
    return groups


def _windows(step, shape):
    """For a max-pooling step on ``shape = (C, H, W)``: ``(C * L, k*k)`` flat input indices per output, -1 for
    padding, in the order of the output's flattening."""
    k, s, p, d = step.pool
    c, h, w = shape
    index = torch.arange(1, c * h * w + 1, dtype=torch.float64).view(c, 1, h, w)
    cols = F.unfold(index, k, dilation=d, padding=p, stride=s if s is not None else k)   # (C, k*k, L)
    return (cols.permute(0, 2, 1).reshape(-1, cols.shape[1]).round().long() - 1).numpy()


def _encode(prog: _Program, steps, groups, pre, box_lo, box_hi, out_lo, out_hi):
    """Add the network to ``prog``: returns the input variables, the logit variables and the number of binaries."""
    inputs = prog.variables(box_lo, box_hi)
    cur = inputs
    zero = prog.variables([0.0], [0.0])[0]
    by_start = {g[0]: g for g in groups}
    binaries = 0
    i = 0
    while i < len(steps):
        if i in by_start:
            _, j, w, b = by_start[i]
            if j < len(steps):                          # the input of the next nonlinear step: its bounds
                lo, hi = (t.reshape(-1) for t in pre[j])
            else:
                lo, hi = out_lo, out_hi
            z = prog.variables(lo - _pad(lo), hi + _pad(hi))
            r, c = np.nonzero(w)
            prog.rows_of([(np.arange(z.size), z, 1.0), (r, cur[c], -w[r, c])], b, b)       # z - W h = b
            cur, i = z, j
            continue
        step = steps[i]
        lb, ub = np.concatenate(prog.lb), np.concatenate(prog.ub)
        lo = np.maximum(pre[i][0].reshape(-1), lb[cur])
        hi = np.minimum(pre[i][1].reshape(-1), ub[cur])
        if step.kind == "relu":
            out = cur.copy()
            out[hi <= 0] = zero
            unstable = (lo < 0) & (hi > 0)
            n = int(unstable.sum())
            if n:
                zu, l, u = cur[unstable], lo[unstable] - _pad(lo[unstable]), hi[unstable] + _pad(hi[unstable])
                a = prog.variables(np.zeros(n), u)
                d = prog.variables(np.zeros(n), np.ones(n), integer=True)
                rows = np.arange(n)
                prog.geq([(rows, a, 1.0), (rows, zu, -1.0)], np.zeros(n))                  # a >= z
                prog.leq([(rows, a, 1.0), (rows, zu, -1.0), (rows, d, -l)], -l)            # a <= z - l (1 - d)
                prog.leq([(rows, a, 1.0), (rows, d, -u)], np.zeros(n))                     # a <= u d
                out[unstable] = a
                binaries += n
            cur = out
        else:
            win = _windows(step, step.in_shape)
            out = np.empty(len(win), dtype=np.int64)
            for o, members in enumerate(win):
                members = members[members >= 0]
                best = lo[members].max()
                members = members[hi[members] >= best]   # the others are never the maximum
                if members.size == 1:
                    out[o] = cur[members[0]]
                    continue
                l, u = lo[members] - _pad(lo[members]), hi[members] + _pad(hi[members])
                top = u.max()
                m = prog.variables([best - _pad(np.array(best))], [top])[0]
                d = prog.variables(np.zeros(members.size), np.ones(members.size), integer=True)
                rows = np.arange(members.size)
                zi = cur[members]
                prog.geq([(rows, m, 1.0), (rows, zi, -1.0)], np.zeros(rows.size))          # m >= z_i
                prog.leq([(rows, m, 1.0), (rows, zi, -1.0), (rows, d, top - l)], top - l)  # m <= z_i + (u-l)(1-d)
                prog.rows_of([(np.zeros(rows.size, dtype=np.int64), d, 1.0)], np.ones(1), np.ones(1))  # sum d = 1
                out[o] = m
                binaries += members.size
            cur = out
        i += 1
    return inputs, cur, binaries


def _spec(y, k, dtype, device):
    return F.one_hot(y, k).to(dtype).unsqueeze(1) - torch.eye(k, dtype=dtype, device=device).unsqueeze(0)


def verify_exact(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, time_limit: float = 60.0,
                 bounds: str = "crown", exact_margin: bool = False, max_entries: int = 5_000_000,
                 chunk: int = 1024, progress: bool = False,
                 solver_options: dict | None = None) -> list[VerificationResult]:
    """Exact verification over the L-inf ball ``{x' : ||x' - x||_inf <= eps} ∩ [0, 1]^n`` by a MILP per class::

        min over x' in the ball of  z_y(x') - z_k(x'),   k != y          (ReLUs and max-pooling as big-M constraints)

    verified if every minimum is > 0; otherwise the minimiser, checked with the model, is a counterexample (the
    formulation is written out in the module's docstring; Tjeng, Xiao & Tedrake, ICLR 2019).

    Arguments: ``model`` in eval mode, a ``torch.fx``-traceable chain of the layers :mod:`.bounds` supports
    returning ``(B, K)`` logits; ``x`` images ``(B, C, H, W)`` in ``[0, 1]``; ``y`` labels ``(B,)``; ``eps >= 0``;
    ``time_limit`` seconds per image (default 60; HiGHS stops there and the image is ``"timeout"``);
    ``bounds``: the pre-activation bounds used as big-M constants and to skip classes, ``"crown"`` (tighter, fewer
    binaries) or ``"ibp"``; ``exact_margin``: solve every class to optimality (no skipping, no early stop), so that
    ``margin`` is the exact smallest margin over the ball; ``max_entries``: the largest dense affine matrix allowed
    (larger layers are refused with an error naming them); ``chunk``: neurons bounded at a time by CROWN;
    ``progress``: a progress bar over the images; ``solver_options``: HiGHS options that replace the defaults
    (:data:`SOLVER_OPTIONS`), e.g. ``{"presolve": True}``.

    Returns a list of ``B`` :class:`VerificationResult` (one image gives a list of one), each with ``status`` in
    ``"verified"``, ``"counterexample"``, ``"timeout"`` (or, rarely, ``"unknown"``), ``counterexample``, ``margin``,
    ``seconds``. The model's mode and parameters are not changed."""
    start = time.perf_counter()
    _check(model, x, eps)
    check_in(bounds, {"crown", "ibp"}, "bounds")
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not time_limit > 0:
        raise ValueError(f"time_limit must be a number of seconds > 0, got {time_limit!r}")
    work = copy.deepcopy(model).double()                # float64 copy: the program's coefficients without rounding
    x64 = x.detach().to(torch.float64)
    with torch.no_grad():
        steps, out = _chain(work, x64)
    if out.dim() != 2:
        raise ValueError(f"verify_exact needs logits of shape (B, K), the model returns {tuple(out.shape)}")
    k = out.shape[1]
    check_labels(y, x.shape[0], "y", num_classes=k, device=x.device)
    groups = _affine_groups(steps, max_entries, x.device)
    with torch.no_grad():
        pre, boxes = _crown_pre(steps, x64, eps, bounds, chunk)
        c = _spec(y, k, torch.float64, x.device)
        last = max([i + 1 for i, s in enumerate(steps) if s.kind != "affine"], default=0)
        lower = torch.maximum(_backward(steps, len(steps), c, pre, boxes[0]),
                              _backward(steps[last:], len(steps) - last, c, {}, boxes[last]))
    lower = lower.cpu().numpy()
    pre = {i: (lo.cpu().numpy(), hi.cpu().numpy()) for i, (lo, hi) in pre.items()}
    box = [t.cpu().numpy() for t in boxes[0]]
    out_box = [t.reshape(t.shape[0], -1).cpu().numpy() for t in boxes[-1]]
    lo32, hi32 = _box(x.detach(), eps)                  # the ball in x's dtype: the counterexample is clamped to it
    share = (time.perf_counter() - start) / x.shape[0]

    images = range(x.shape[0])
    if progress:
        from tqdm.auto import tqdm
        images = tqdm(images, desc="verify_exact")
    with torch.no_grad():
        clean_pred = model(x.detach()).argmax(1)
    results = []
    for b in images:
        t0 = time.perf_counter()
        if int(clean_pred[b]) != int(y[b]) and not exact_margin:
            # x itself lies in the ball and is misclassified: the counterexample needs no solver
            margin = float((out[b, int(y[b])] - out[b, int(clean_pred[b])]).item())
            results.append(VerificationResult("counterexample", x[b].detach().clone(), margin,
                                              time.perf_counter() - t0 + share,
                                              message="the clean image is already misclassified"))
            continue
        prog = _Program()
        inputs, logits, binaries = _encode(prog, steps, groups, {i: (lo[b], hi[b]) for i, (lo, hi) in pre.items()},
                                           box[0][b], box[1][b], out_box[0][b], out_box[1][b])
        program = prog.build()
        result = _solve(model, x[b], int(y[b]), lower[b], program, inputs, logits, (lo32[b], hi32[b]),
                        time_limit, t0, exact_margin, _known(SOLVER_OPTIONS) | (solver_options or {}))
        result.unstable = binaries
        result.seconds = time.perf_counter() - t0 + share
        results.append(result)
    return results


def _solve(model, xb, yb, lower, program, inputs, logits, ball, time_limit, t0, exact_margin, options):
    integrality, var_bounds, constraints = program
    order = [k for k in np.argsort(lower, kind="stable") if k != yb and (exact_margin or lower[k] <= 0)]
    proven = {k: float(lower[k]) for k in range(len(lower)) if k != yb}       # a lower bound per class
    best = {}                                                                  # MILP optimum per class
    found, notes, timed_out, unknown = None, [], False, False
    options = {"disp": False, "mip_rel_gap": 1e-6 if exact_margin else 1e-4, **options}
    for k in order:
        remaining = time_limit - (time.perf_counter() - t0)
        if remaining <= 0:
            timed_out = True
            notes.append(f"no time left for class {k}")
            break
        cost = np.zeros(integrality.size)
        cost[logits[yb]], cost[logits[k]] = 1.0, -1.0
        with _quiet(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Unrecognized options", RuntimeWarning)   # HiGHS's own names
            res = milp(cost, integrality=integrality, bounds=var_bounds, constraints=constraints,
                       options={**options, "time_limit": remaining})
        if res.status not in (0, 1):
            unknown = True
            notes.append(f"class {k}: HiGHS says {res.message}")
            continue
        dual = getattr(res, "mip_dual_bound", None)
        if dual is not None and np.isfinite(dual):
            proven[k] = max(proven[k], float(dual))
        if res.x is not None:
            best[k] = float(res.fun)
        if proven[k] > 0:
            continue
        if res.x is not None and res.fun < 0:
            adv, margin = _confirm(model, xb, yb, res.x[inputs], ball)
            if margin < 0:
                if found is None or best[k] < found[2]:
                    found = (adv, margin, best[k])
                if not exact_margin:
                    break
                continue
            notes.append(f"class {k}: the MILP's minimum {res.fun:.3g} < 0 but the model's margin at its "
                         f"minimiser is {margin:.3g} (a tie within tolerances)")
        if res.status == 1:
            timed_out = True
            notes.append(f"class {k}: time limit reached")
            if not exact_margin:
                break
        elif found is None:
            unknown = True
            if res.x is not None and res.fun >= 0:
                notes.append(f"class {k}: minimum {res.fun:.3g} and lower bound {proven[k]:.3g} straddle 0 "
                             "(within tolerances)")
    message = "; ".join(notes)
    if found is not None:
        margin = min(best.values()) if exact_margin else found[1]
        return VerificationResult("counterexample", found[0], margin, 0.0, message=message)
    status = "timeout" if timed_out else "unknown" if unknown else "verified"
    if exact_margin and status == "verified":
        return VerificationResult(status, None, min(best.values(), default=min(proven.values())), 0.0,
                                  message=message)
    return VerificationResult(status, None, min(proven.values()), 0.0, message=message)


@contextlib.contextmanager
def _quiet():
    """HiGHS (through scipy 1.17) prints stray debugging lines to the C-level stdout even with ``disp=False``:
    file descriptor 1 points to /dev/null while it runs (anything else written there meanwhile is lost too)."""
    try:
        sys.stdout.flush()
        saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):
        yield
        return
    os.dup2(null, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


def _confirm(model, xb, yb, point, ball):
    """The MILP's minimiser as an image of ``xb``'s dtype and device, clamped to the ball, and the model's margin
    ``z_y - max_{k != y} z_k`` there."""
    adv = torch.as_tensor(point, dtype=xb.dtype, device=xb.device).view_as(xb)
    adv = torch.minimum(torch.maximum(adv, ball[0]), ball[1])
    with torch.no_grad():
        z = model(adv[None])[0]
    others = torch.cat([z[:yb], z[yb + 1:]])
    return adv.detach(), float(z[yb] - others.max())
