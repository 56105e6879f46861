"""HopSkipJumpAttack (Chen, Jordan & Wainwright, IEEE S&P 2020): a decision-based black-box attack that needs only
the model's final labels. Like the Boundary attack it starts from an adversarial image, but instead of a random walk
it *estimates the direction of the gradient* at the decision boundary from the labels of random probes around a
boundary point, steps along it (hop), and returns to the boundary by binary search (jump): far fewer queries."""
from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from .._rng import generator, normal, uniform
from .._validate import check_count, check_images, check_in, check_labels
from ._common import check_positive, expand
from ._search import keep_closest
from .boundary import _draw_starts
from .oracle import Oracle, begin_attack

__all__ = ["hop_skip_jump"]

# input values per oracle call in the gradient estimate (83 MNIST digits): on a CPU a small batch is faster per
# image than a large one (mnist_cnn on one core: ~250 us per digit in batches of 64, ~800 us in batches of 4,096)
_CHUNK = 1 << 16


def hop_skip_jump(oracle: Oracle, x: torch.Tensor, y: torch.Tensor, targeted: bool = False, max_queries: int = 5000,
                  norm: str = "l2", seed=None, *, init: torch.Tensor | None = None, gamma: float = 1.0,
                  init_evals: int = 100, max_evals: int = 10_000, init_trials: int = 50,
                  progress: bool = True) -> torch.Tensor:
    """HopSkipJumpAttack (Chen, Jordan & Wainwright, "HopSkipJumpAttack: A Query-Efficient Decision-Based Attack",
    IEEE S&P 2020), L2 or L-infinity, untargeted or targeted.

    Only labels are used (an ``Oracle`` with ``access="labels"`` suffices; with scores the arg-max is taken). With
    ``phi(x') = +1`` if ``x'`` is adversarial (untargeted: label ``!= y``; targeted: ``== y``), else ``-1``, and
    ``d`` the input dimension ``C * H * W``, each image follows the paper's Algorithms 1 and 2:

    1. Start: an adversarial ``x~_0`` (``init``, or random noise), then binary search on the segment from ``x`` to
       it: ``x_0`` on the boundary, to a precision ``theta = gamma / d^(3/2)`` (L2, on the blend factor
       ``alpha`` of ``(1 - alpha) x + alpha x~``) or ``theta = gamma / d^2`` (Linf: the 'blend' is the projection
       ``clip(x~, x - alpha, x + alpha)`` onto the Linf ball of radius ``alpha``, searched up to
       ``theta * ||x~ - x||_inf``).
    2. For ``t = 1, 2, ...``, with ``dist_{t-1} = ||x_{t-1} - x||_p``:

       * gradient direction at the boundary point, from ``B_t = init_evals * sqrt(t)`` (at most ``max_evals``)
         random unit vectors ``u_b`` (Gaussian for L2, uniform in ``[-1, 1]^d`` for Linf, scaled to unit L2 norm)
         and ``delta_t = sqrt(d) theta dist_{t-1}`` (L2) or ``d theta dist_{t-1}`` (Linf), their eq. (16)::

             v_t = 1 / (B_t - 1) * sum_b (phi(x_{t-1} + delta_t u_b) - mean_b' phi(...)) u_b

         (the baseline-subtracted Monte-Carlo estimate; the positive factor ``1 / (B_t - 1)`` does not change the
         direction. A probe that leaves ``[0, 1]`` is clipped and ``u_b`` replaced by the step actually taken,
         as in the authors' code; if every probe gets the same answer the baseline is not subtracted);
       * update direction ``v = v_t / ||v_t||_2`` (L2) or ``sign(v_t)`` (Linf);
       * geometric step-size search: ``xi_t = dist_{t-1} / sqrt(t)``, halved until ``clip(x_{t-1} + xi_t v)`` is
         adversarial;
       * binary search between ``x`` and that point gives ``x_t`` on the boundary.

    Batched: all images go through each stage together, each with its own ``t``, ``dist`` and ``delta``.
    Budget: every query is counted against its image; an image whose next iteration does not fit (its gradient
    samples, one step query and the binary search) gets fewer gradient samples and stops when none fit. An image
    the oracle already gets wrong (or, targeted, already calls ``y``) is returned as it is (one query). The result
    per image is the closest adversarial image queried (in the attack's norm; the random probes of the gradient
    estimate count too, as they do in the oracle's trace).

    Args:
        oracle: an :class:`Oracle`: the attack never sees the model, only its answers.
        x: images ``(B, C, H, W)`` in ``[0, 1]``; y: LongTensor ``(B,)``: true labels (untargeted) or targets.
        targeted: ``False`` (default): any other label; ``True``: the label ``y`` (needs ``init``).
        max_queries: queries per image, the first look at ``x`` and the start included (default 5,000); never
            more than the oracle has left.
        norm: ``"l2"`` (default) or ``"linf"``: the distance minimised (and recorded in the oracle's trace).
        seed: the randomness of the starting noise and the probes: ``None`` (fresh, from torch's global RNG), an
            int or a ``torch.Generator`` (see :mod:`course_lib._rng`).
        init: ``None`` (default) or images ``(B, C, H, W)`` the oracle already classifies adversarially (e.g.
            images of the target classes), to start from; required for ``targeted=True``. Without it (untargeted),
            random noise is drawn up to ``init_trials`` (default 50) times until adversarial, in turn uniform noise,
            dimmed uniform noise and sparse binary noise (a model may call all uniform noise one class: mnist_cnn
            calls it "8", which fools nothing on the 8s).
        gamma: sets the binary-search threshold ``theta`` above (default 1.0, the paper's).
        init_evals: gradient samples in the first iteration, ``B_1`` (default 100); max_evals: the most in any
            iteration (default 10,000).
        progress: show a progress bar (default ``True``).

    Returns:
        ``(B, C, H, W)`` in ``[0, 1]``, detached: per image the closest adversarial image queried; an image for
        which no adversarial start was found is returned unchanged (the attack failed there). ``oracle.queries``
        then holds the queries spent per image.
    """
    check_images(x)
    b, device = x.shape[0], x.device
    check_labels(y, b, device=device)
    max_queries = check_count(max_queries, "max_queries", minimum=1)
    check_in(norm, {"l2", "linf"}, "norm")
    gamma = check_positive(gamma, "gamma")
    init_evals = check_count(init_evals, "init_evals", minimum=1)
    max_evals = check_count(max_evals, "max_evals", minimum=1)
    init_trials = check_count(init_trials, "init_trials")
    if targeted and init is None:
        raise ValueError("a targeted hop_skip_jump needs init=...: images the model already classifies as the "
                         "targets (for instance images of those classes), to start from")
    if init is not None:
        check_images(init, name="init")
        if init.shape != x.shape:
            raise ValueError(f"init must have the shape of x {tuple(x.shape)}, got {tuple(init.shape)}")
        init = init.detach().to(device=device, dtype=x.dtype)
    limit = begin_attack(oracle, x, y, targeted, norm, max_queries, "hop_skip_jump")
    x = x.detach()
    gen = generator(seed)
    d = x[0].numel()
    theta = gamma / (d ** 1.5 if norm == "l2" else d ** 2)
    # binary search: the bracket [lo, hi] (blend factor in [0, 1], or Linf radius in [0, dist], dist <= 1) halves
    # until hi - lo <= theta (times dist for Linf): a fixed number of steps
    search_steps = max(math.ceil(math.log2(1.0 / theta)), 0)

    def distance(rows, idx):
        diff = (rows - x[idx]).flatten(1)  # the oracle's formula, so that its trace and our choice agree exactly
        return diff.norm(dim=1) if norm == "l2" else diff.abs().amax(1)

    best = x.clone()
    best_d = torch.full((b,), math.inf, dtype=x.dtype, device=device)

    def ask(rows, idx):
        """Adversarial or not, for ``rows`` queried on behalf of the originals ``idx`` (device tensors); keeps the
        closest adversarial row per original."""
        if rows.shape[0] == 0:  # every image out of budget: ask nothing
            return torch.zeros(0, dtype=torch.bool, device=device)
        out = oracle(rows, owner=idx.cpu())
        labels = out if out.dim() == 1 else out.argmax(1)
        hit = labels == y[idx] if targeted else labels != y[idx]
        if bool(hit.any()):
            keep_closest(best, best_d, rows, distance(rows, idx), idx, hit)
        return hit

    def left():
        return (limit - oracle.queries).to(device)

    def project(pts, idx, alpha):
        """The point of parameter ``alpha`` between ``x`` (0) and ``pts``: a blend (L2) or the projection onto the
        Linf ball of radius ``alpha`` around ``x``."""
        if norm == "l2":
            return (1 - expand(alpha, pts)) * x[idx] + expand(alpha, pts) * pts
        r = expand(alpha, pts)
        return torch.minimum(torch.maximum(pts, x[idx] - r), x[idx] + r)

    def binary_search(pts, idx):
        """Boundary points between ``x[idx]`` (not adversarial) and the adversarial ``pts``: per image the last
        adversarial point queried (``pts`` itself if the budget allows no query)."""
        hi_pts = pts.clone()
        lo = torch.zeros(idx.numel(), dtype=x.dtype, device=device)
        hi = torch.ones_like(lo) if norm == "l2" else distance(pts, idx).to(x.dtype)
        for _ in range(search_steps):
            rows = (left()[idx] >= 1).nonzero().flatten()
            if rows.numel() == 0:
                break
            mid = (lo[rows] + hi[rows]) / 2
            cand = project(pts[rows], idx[rows], mid)
            ok = ask(cand, idx[rows])
            hi[rows[ok]], hi_pts[rows[ok]], lo[rows[~ok]] = mid[ok], cand[ok], mid[~ok]
        return hi_pts

    total = int((limit - oracle.queries).clamp(min=0).sum())
    bar = tqdm(total=total, desc="HopSkipJump", disable=not progress, leave=False)
    spent0 = oracle.total

    # ------------------------------------------------------------ 1. a start per image, then onto the boundary
    everyone = torch.arange(b, device=device)
    done = torch.zeros(b, dtype=torch.bool, device=device)
    look = everyone[left() >= 1]
    done[look] = ask(x[look], look)  # already adversarial: keep x (distance 0)
    found = torch.zeros(b, dtype=torch.bool, device=device)
    start = x.clone()
    if init is not None:
        idx = everyone[~done & (left() >= 1)]
        ok = ask(init[idx], idx)
        if not bool(ok.all()):
            bad = idx[~ok].tolist()[:8]
            raise ValueError(f"init must already be adversarial for every image; it is not for image(s) {bad}")
        start[idx], found[idx] = init[idx], True
    else:  # the Boundary attack's noise start (uniform, dimmed, sparse binary), through this attack's ask
        sub = everyone[~done]
        new, ok = _draw_starts(ask, x[sub], sub, init_trials, gen, lambda k: left() >= k, "noise")
        start[sub[ok]], found[sub[ok]] = new[ok], True
    cur = x.clone()  # x_t, the current boundary point
    idx = everyone[found]
    if idx.numel():
        cur[idx] = binary_search(start[idx], idx)
    dist = distance(cur, everyone)
    t = torch.zeros(b, dtype=torch.long, device=device)
    running = found.clone()
    bar.update(oracle.total - spent0)

    # ------------------------------------------------------------ 2. estimate, step, search: Algorithm 2
    scale = math.sqrt(d) if norm == "l2" else d
    while True:
        t_next = t + 1
        # in float64 on the CPU (some devices have no float64): B_t is the same number everywhere
        want = (init_evals * t_next.cpu().double().sqrt()).long().clamp(max=max_evals).to(device)
        # the iteration must fit: its samples, one step query and the binary search (fewer samples if short)
        n = torch.minimum(want, left() - 1 - search_steps)
        running &= n >= 1
        idx = everyone[running]
        if idx.numel() == 0:
            break
        t[idx], n = t_next[idx], n[idx]
        # gradient-direction estimate at x_{t-1}, eq. (16), with delta_t from the previous distance
        delta = (scale * theta * dist[idx]).clamp_min(1e-12)
        grad = _estimate(ask, cur, idx, n, delta, norm, gen)
        v = grad / expand(grad.flatten(1).norm(dim=1).clamp_min(1e-30), grad) if norm == "l2" else grad.sign()
        # geometric step-size search: xi = dist / sqrt(t), halved until adversarial, within the budget that
        # leaves the binary search room
        xi = dist[idx] / t[idx].to(x.dtype).sqrt()
        moved = torch.zeros(idx.numel(), dtype=torch.bool, device=device)
        step_pts = cur[idx].clone()
        while True:
            rows = (~moved & (left()[idx] >= 1 + search_steps) & (xi > 0)).nonzero().flatten()
            if rows.numel() == 0:
                break
            cand = (cur[idx[rows]] + expand(xi[rows], v) * v[rows]).clamp(0.0, 1.0)
            ok = ask(cand, idx[rows])
            step_pts[rows[ok]], moved[rows[ok]] = cand[ok], True
            xi[rows[~ok]] /= 2
        running[idx[~moved]] = False  # no adversarial step within the budget: this image is finished
        hop = idx[moved]
        if hop.numel():
            cur[hop] = binary_search(step_pts[moved], hop)
            dist[hop] = distance(cur[hop], hop)
        bar.update(oracle.total - spent0 - bar.n)
    bar.close()
    return best.detach()


def _estimate(ask, cur, idx, n, delta, norm, gen) -> torch.Tensor:
    """Eq. (16) for the boundary points ``cur[idx]``, ``n[i]`` probes each (rows generated in chunks):
    ``mean_b (phi_b - mean phi) u_b``, written as ``S_fu / n - fbar * S_u / n`` so that chunks only add up (without
    the baseline where all ``phi_b`` agree)."""
    device, dtype = cur.device, cur.dtype
    shape = cur.shape[1:]
    owner = torch.repeat_interleave(torch.arange(idx.numel(), device=device), n)
    s_fu = torch.zeros((idx.numel(), *shape), dtype=dtype, device=device)
    s_u = torch.zeros_like(s_fu)
    s_f = torch.zeros(idx.numel(), dtype=dtype, device=device)
    step = max(_CHUNK // cur[0].numel(), 1)
    for k in range(0, owner.numel(), step):
        own = owner[k:k + step]
        base = cur[idx[own]]
        if norm == "l2":
            u = normal(base.shape, gen, device, dtype)
        else:
            u = uniform(base.shape, gen, device, dtype) * 2 - 1
        u = u / expand(u.flatten(1).norm(dim=1).clamp_min(1e-30), u)
        r = expand(delta[own], u)
        probes = (base + r * u).clamp(0.0, 1.0)
        u = (probes - base) / r  # the step actually taken, after clipping to the box
        f = ask(probes, idx[own]).to(dtype) * 2 - 1
        s_fu.index_add_(0, own, expand(f, u) * u)
        s_u.index_add_(0, own, u)
        s_f.index_add_(0, own, f)
    m = n.to(dtype)
    fbar = s_f / m
    fbar = torch.where(fbar.abs() < 1, fbar, torch.zeros_like(fbar))
    return (s_fu - expand(fbar, s_u) * s_u) / expand(m, s_u)
