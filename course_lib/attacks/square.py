"""The Square attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020): a score-based black-box attack by random
search. No gradient is estimated: each step changes one random square of the image to a vertex of the eps-ball and
keeps the change if the model's margin shrank. Squares work because convolutional networks react to local,
structured changes far more than to scattered pixels, and a vertex of the ball is where the largest change lives.
"""
from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from .._rng import generator, integers, uniform
from .._validate import check_count, check_images, check_in, check_labels
from ._common import LOSSES, check_eps, check_positive
from .oracle import begin_attack

__all__ = ["square_attack", "p_schedule"]

# the iterations (out of 10,000) after which p halves: the reference code's schedule, rescaled to the budget
HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_schedule(p_init: float, i: int, n_iters) -> torch.Tensor:
    """The fraction ``p`` of the image that iteration ``i`` (0 = the first step after the start) changes, for a
    budget of ``n_iters`` queries (a LongTensor ``(n,)``, one budget per image, or an int): ``p_init`` halved once
    for each threshold ``10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000`` that ``floor(10000 i / n_iters)`` has
    passed (strictly), as in the reference code, which rescales the paper's schedule for 10,000 queries to any
    budget. Returns ``p`` per image, float64 ``(n,)``."""
    n = torch.as_tensor(n_iters, dtype=torch.long).reshape(-1)
    scaled = (i * 10_000) // n.clamp_min(1)
    halvings = sum((scaled > t).long() for t in HALVINGS)
    return p_init / 2.0 ** halvings.double()


def square_attack(oracle, x: torch.Tensor, y: torch.Tensor, eps: float, targeted: bool = False,
                  max_queries: int = 5000, norm: str = "linf", seed=None, *, p_init: float = 0.8,
                  loss: str = "margin", progress: bool = True) -> torch.Tensor:
    """The Square attack (Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient black-box
    adversarial attack via random search", ECCV 2020), L-infinity, with probabilities only.

    Random search on the loss ``L`` over the ball ``||x' - x||_inf <= eps`` inside ``[0, 1]``, read from the
    oracle's log-probabilities ``log p``:

        margin (default):  L(x') = log p_y(x') - max_{k != y} log p_k(x')  =  z_y - max_{k != y} z_k   (logits z)
        cross-entropy:     L(x') = log p_y(x')                              (untargeted: push p_y down)
        targeted (y = target t): margin L = max_{k != t} z_k - z_t;   cross-entropy L = -log p_t

    Start (one query): vertical stripes, ``x^0 = clip(x + eps * s)`` with one sign ``s = +-1`` per channel and
    column. Step ``i`` (one query): draw a square window of side ``s_i = round(sqrt(p_i * H * W))`` (at least 1,
    at most ``min(H, W)``; ``p_i * H * W`` = the fraction ``p_i`` of the ``n_features / C`` pixel positions) at a
    uniformly random position, draw one sign ``+-1`` per channel, and set the window to the vertex
    ``clip(x + eps * sign)`` (the rest stays as in the best point ``x^best``)::

        x_new = x^best  outside the window,   clip(x + eps * sign_c)  inside it (channel c)
        x^best <- x_new   if L(x_new) < L(x^best)

    (As in the reference code, signs are redrawn until the window differs from ``x^best``: a step that changes
    nothing would waste a query.) ``p_i`` follows the paper's schedule, ``p_init`` halved at iterations 10, 50,
    200, 500, 1000, 2000, 4000, 6000 and 8000 of 10,000, rescaled to each image's budget: see
    :func:`p_schedule`. Differences from the reference code: the window may sit anywhere, the last row and column
    included (the reference code's ``randint(0, h - s)`` never reaches them), and its side may reach the image's.

    An image stops at its first adversarial query (untargeted: the arg-max is not ``y``; targeted: it is ``y``),
    and that query is returned: success is what counts for Square, and its distance is ``<= eps`` (not the
    smallest possible, which this attack does not look for). In the oracle's L-infinity trace such an image shows
    one entry, the returned image's distance, ``<= eps``. An image never fooled returns its lowest-loss query;
    an image with no query left returns ``x``. Queries: one for the start, one per step, all images batched.

    Args:
        oracle: an :class:`Oracle` with ``access="scores"``: the attack reads ``oracle(rows, owner, log=True)``.
        x: images ``(B, C, H, W)`` in ``[0, 1]``; y: LongTensor ``(B,)``: true labels (untargeted) or targets.
        eps: the radius of the L-infinity ball, finite ``>= 0`` (``0``: one query of ``x`` itself).
        targeted: ``False`` (default) or ``True``.
        max_queries: queries per image, the start included (default 5,000); the attack spends at most this and
            what the oracle has left, and returns its best so far. The ``p`` schedule is rescaled to it.
        norm: ``"linf"`` (default). ``"l2"`` (the paper's Algorithm 3) is not implemented here.
        seed: the randomness of the stripes, windows and signs: ``None`` (fresh, from torch's global RNG), an int
            or a ``torch.Generator`` (see :mod:`course_lib._rng`).
        p_init: the initial fraction of pixels a window covers, in ``(0, 1]`` (default 0.8, the paper's choice for
            MNIST and the default of the reference implementations).
        loss: ``"margin"`` (default) or ``"ce"`` (cross-entropy), as above.
        progress: show a progress bar (default ``True``).

    Returns:
        ``(B, C, H, W)`` in ``[0, 1]`` and in the eps-ball (exactly, in ``x``'s dtype), detached, on ``x``'s device.
        ``oracle.queries`` holds the queries per image.
    """
    check_images(x)
    b = x.shape[0]
    check_labels(y, b, device=x.device)
    eps = check_eps(eps)
    max_queries = check_count(max_queries, "max_queries", minimum=1)
    check_in(norm, {"linf", "l2"}, "norm")
    if norm == "l2":
        raise NotImplementedError("square_attack implements the L-infinity attack only (norm='linf'); the L2 "
                                  "version (the paper's Algorithm 3) is not implemented in course_lib")
    p_init = check_positive(p_init, "p_init")
    if p_init > 1:
        raise ValueError(f"p_init must be in (0, 1] (a fraction of the image), got {p_init!r}")
    check_in(loss, set(LOSSES), "loss")
    if not isinstance(targeted, bool):
        raise TypeError(f"targeted must be True or False, got {targeted!r}")
    gen = generator(seed)
    limit = begin_attack(oracle, x, y, targeted, norm, max_queries, "square_attack", scores=True)

    x = x.detach()
    _, c, h, w = x.shape
    device = x.device
    rows_, cols = torch.arange(h, device=device), torch.arange(w, device=device)
    budget = limit - oracle.queries  # per image, the start included: the p schedule is rescaled to it
    best = x.clone()
    best_loss = torch.full((b,), math.inf, dtype=torch.float64)  # CPU, like the counts (MPS has no float64)
    done = torch.zeros(b, dtype=torch.bool)      # fooled: stop (CPU, like the counts)
    started = torch.zeros(b, dtype=torch.bool)   # the start was queried

    def ask(idx: torch.Tensor, rows: torch.Tensor) -> None:
        """Query ``rows`` for images ``idx`` (CPU), keep the better ones, note the fooled ones."""
        logp = oracle(rows, owner=idx, log=True)
        if not bool(started.any()) and int(y.max()) >= logp.shape[1]:  # the first answer tells K
            raise ValueError(f"y must hold class indices in [0, {logp.shape[1]}) (the oracle answers "
                             f"{logp.shape[1]} classes), got {int(y.max())}")
        dev_idx = idx.to(device)
        value, fooled = _loss(logp, y[dev_idx], targeted, loss)
        value, fooled = value.cpu().double(), fooled.cpu()
        # the first adversarial query is kept whatever its loss (the cross-entropy need not be lower there)
        better = (value < best_loss[idx]) | fooled
        best[dev_idx[better.to(device)]] = rows[better.to(device)]
        best_loss[idx] = torch.where(better, value, best_loss[idx])
        done[idx] |= fooled

    # the start: vertical stripes of +-eps, one sign per channel and column
    idx = (oracle.queries < limit).nonzero().flatten()
    if idx.numel() == 0:
        return best
    # the two vertices of the ball in each pixel, computed once: every query is made of them
    up, down = _vertex(x, 1.0, eps), _vertex(x, -1.0, eps)
    stripes = _sign((idx.numel(), c, 1, w), gen, device)
    dev_idx = idx.to(device)
    ask(idx, torch.where(stripes, up[dev_idx], down[dev_idx]))
    started[idx] = True

    n_steps = int(budget.max()) - 1
    bar = tqdm(total=n_steps, desc="Square", disable=not progress, leave=False)
    for i in range(n_steps if eps > 0 else 0):  # eps = 0: nothing but x itself to try
        idx = (started & ~done & (oracle.queries < limit)).nonzero().flatten()
        if idx.numel() == 0:
            break
        n, dev_idx = idx.numel(), idx.to(device)
        # the window's side and corner on the CPU in float64 (the same numbers on every device), then moved
        side = p_schedule(p_init, i, budget[idx]).mul(h * w).sqrt().round().long().clamp(1, min(h, w))
        top = (uniform(n, gen, dtype=torch.float64) * (h - side + 1)).long().to(device)
        left = (uniform(n, gen, dtype=torch.float64) * (w - side + 1)).long().to(device)
        side = side.to(device)
        window = (((rows_ >= top[:, None]) & (rows_ < (top + side)[:, None]))[:, :, None]
                  & ((cols >= left[:, None]) & (cols < (left + side)[:, None]))[:, None, :])[:, None]  # (n,1,H,W)
        ups, downs, cur = up[dev_idx], down[dev_idx], best[dev_idx]
        cand = torch.where(window, torch.where(_sign((n, c, 1, 1), gen, device), ups, downs), cur)
        for _ in range(100):  # redraw the signs where the window would not change anything (p = 1/2 for C = 1)
            same = ~(cand != cur).flatten(1).any(1)
            if not bool(same.any()):
                break
            k = int(same.sum())
            redraw = torch.where(_sign((k, c, 1, 1), gen, device), ups[same], downs[same])
            cand[same] = torch.where(window[same], redraw, cur[same])
        ask(idx, cand)
        bar.update(1)
    bar.close()
    return best


def _sign(shape, gen: torch.Generator, device) -> torch.Tensor:
    """Uniform random signs, as booleans (``True``: +eps)."""
    return integers(0, 2, shape, gen, device).bool()


def _vertex(x: torch.Tensor, sign: float, eps: float) -> torch.Tensor:
    """``clip(x + eps * sign, 0, 1)``, rounded so that ``|x' - x| <= eps`` holds exactly, both as ``x``'s dtype
    computes ``x' - x`` (compared with ``eps`` there and in float64) and for the exact difference: with ``e`` the
    largest number of ``x``'s dtype that is ``<= eps``, ``clip(x + sign * e)`` is computed in float64 and rounded
    towards ``x``. Computed once per attack."""
    device, x = x.device, x.cpu()  # float64 arithmetic on the CPU: some devices (MPS) have no float64
    e = torch.tensor(eps, dtype=x.dtype)
    if e.double() > eps:
        e = torch.nextafter(e, torch.zeros_like(e))
    x64 = x.double()
    z64 = (x64 + sign * float(e)).clamp(0.0, 1.0)
    z = z64.to(x.dtype)
    z = torch.where((z.double() - x64).abs() > (z64 - x64).abs(), torch.nextafter(z, x), z)  # towards x
    for _ in range(64):  # float64 inputs: x + e itself may have rounded outwards by an ulp
        out = ((z - x).abs().double() > eps) | ((z.double() - x64).abs() > eps)
        if not bool(out.any()):
            return z.to(device)
        z = torch.where(out, torch.nextafter(z, x), z)
    raise RuntimeError("could not round the vertex of the eps-ball inside it")  # never seen


def _loss(logp: torch.Tensor, y: torch.Tensor, targeted: bool, loss: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss the attack lowers and whether each row is adversarial (as the oracle's trace decides it)."""
    own = logp.gather(1, y[:, None]).squeeze(1)
    other = logp.scatter(1, y[:, None], float("-inf")).amax(1)
    pred = logp.argmax(1)
    fooled = pred == y if targeted else pred != y
    if loss == "margin":
        value = other - own if targeted else own - other
    else:
        value = -own if targeted else own
    return value, fooled
