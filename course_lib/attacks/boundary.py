"""The Boundary attack (Brendel, Rauber & Bethge, ICLR 2018): a decision-based black-box attack that needs only the
model's final labels. It starts from an image that is already adversarial and walks along the decision boundary
towards the original, shrinking the perturbation while staying adversarial.

The parts, each short: :func:`noise_start` (an adversarial starting point from noise), :func:`_bisect` (the segment
search that puts the start near the boundary), :func:`_propose` (one step of the walk, the paper's equations; public as
:func:`boundary_proposal`) and :func:`_adapt` (the step-size rule)."""
from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from .._rng import generator, normal, uniform
from .._validate import check_count, check_images, check_labels
from ._common import check_positive, expand, per_image_norm
from ._search import keep_closest
from .oracle import begin_attack

__all__ = ["boundary_attack", "noise_start", "boundary_proposal"]

# a walk that has not gained 5 % in its first 400 steps is stuck. Measured on mnist_cnn (20 held-out digits, seed 0):
# after 400 steps every walk on a digit other than 8 had gained 8 % or more, the walks on the two 8s 1.6 % or less:
# every start of an 8 (dim noise, an occluded digit) lies in a thin adversarial sliver where almost every proposal
# fails. Such a walk is restarted from a new start; a walk that got going is never abandoned.
STALL_STEPS, STALL_GAIN = 400, 0.05


def boundary_attack(oracle, x: torch.Tensor, y: torch.Tensor, targeted: bool = False,
                    max_queries: int = 5000, seed=None, *, init: torch.Tensor | Callable | None = None,
                    spherical_step: float = 0.01, source_step: float = 0.01, step_adaptation: float = 1.5,
                    adapt_every: int = 10, check_every: int = 5, init_trials: int = 50, search_steps: int = 10,
                    restarts: int = 20,
                    progress: bool = True) -> torch.Tensor:
    """Boundary attack (Brendel, Rauber & Bethge, "Decision-Based Adversarial Attacks", ICLR 2018), L2.

    Only labels are used (an ``Oracle`` with ``access="labels"`` suffices; with scores the arg-max is taken).
    Per image, with ``x'`` the current adversarial image and ``d = ||x' - x||_2``, one step proposes::

        eta   ~ N(0, I), minus its component along x' - x, scaled to ||eta|| = delta * d
        x_s   = clip(x + (x' + eta - x) * d / ||x' + eta - x||)       (orthogonal step: back onto the sphere)
        x_new = clip(x_s + (1 - (1 - epsilon) d / ||x_s - x||) (x - x_s))   (towards x: ||x_new - x|| = (1 - epsilon) d)

    and keeps ``x_new`` if the oracle says it is adversarial (one query per step). The source step is
    length-corrected as in the authors' Foolbox code: wherever clipping to ``[0, 1]`` pulled ``x_s`` inside the
    sphere, the step towards ``x`` is shortened so that ``x_new`` lands at ``(1 - epsilon) d``, and the walk does
    not lurch towards the original by more than ``epsilon`` allows. Every ``check_every`` steps the orthogonal
    candidate ``x_s`` is queried too (its success rate steers ``delta``), so a step costs ``1 + 1/check_every``
    queries (Foolbox: 1.1). Step adaptation per image (the thresholds of Foolbox): once ``adapt_every`` orthogonal
    checks are in, ``delta`` (``spherical_step``) grows by ``step_adaptation`` when more than half were
    adversarial and shrinks below a fifth (the boundary is locally flat: larger steps are safe); once
    ``adapt_every`` full steps are in, ``epsilon`` (``source_step``) grows when more than a quarter were
    adversarial and shrinks below a tenth. A walk whose ``epsilon`` falls below 1e-7 has converged and stops.

    Start: an image the oracle already gets wrong (or, targeted, already calls ``y``) is returned as it is (one
    query). Otherwise the start comes from ``init``: a tensor of images the oracle already classifies adversarially
    (e.g. photos of the target class), or a callable with the black-box attack signature
    ``init(oracle, x, y, targeted=..., max_queries=..., seed=...) -> images`` run through the same oracle and budget
    (like Foolbox's ``init_attack``; e.g. ``hop_skip_jump``), or, by default, :func:`noise_start`. Then
    ``search_steps`` bisection steps on the segment from ``x`` to the start find a point near the boundary.

    Restarts (not in the paper): the walk is a local search. A walk that has converged (``epsilon`` below 1e-7: a
    local minimum of the distance) or is stuck (less than 5 % closer after its first 400 steps: the start lies in
    a thin adversarial sliver, as for every start of an 8 on ``mnist_cnn``, where almost every proposal fails)
    begins again, in the same batch as the other walks, from a new start: a copy of ``x`` with a random square
    occluded (black or noise) and fresh noise in turn (with a tensor ``init``: from ``init`` again, with new
    proposals), up to ``restarts`` times per image while the budget allows. The result is the closest adversarial
    image queried over all walks.

    Args:
        oracle: an :class:`Oracle`: the attack never sees the model, only its answers.
        x: images ``(B, C, H, W)`` in ``[0, 1]``; y: LongTensor ``(B,)``: true labels (untargeted) or targets.
        targeted: ``False`` (default): any other label; ``True``: the label ``y`` (needs ``init``).
        max_queries: queries per image, the first look at ``x``, the start and the bisection included (default
            5,000); the attack spends at most this and what the oracle has left, and returns its best so far.
        seed: the randomness of the noise and the proposals: ``None`` (fresh, from torch's global RNG), an int
            or a ``torch.Generator`` (see :mod:`course_lib._rng`).
        spherical_step, source_step: the initial ``delta`` and ``epsilon`` (0.01 each, as in Foolbox);
        step_adaptation: their factor (1.5); adapt_every: statistics per adaptation (10); check_every: query the
        orthogonal candidate every this many steps (5); init_trials: noise draws of the default start (50);
        search_steps: bisection steps (10); restarts: new walks per image at most (20; 0 = the paper's single
        walk); progress: show a progress bar.

    Returns:
        ``(B, C, H, W)`` in ``[0, 1]``: per image the closest adversarial image found; an image for which no
        adversarial start was found is returned unchanged (the attack failed there). ``oracle.queries`` then holds
        the queries spent per image, and ``oracle.trace()`` the best L2 distance after each number of queries.
    """
    check_images(x)
    check_labels(y, x.shape[0], device=x.device)
    max_queries = check_count(max_queries, "max_queries", minimum=1)
    for name, v in (("spherical_step", spherical_step), ("source_step", source_step)):
        check_positive(v, name)
    if check_positive(step_adaptation, "step_adaptation") <= 1:
        raise ValueError(f"step_adaptation must be > 1, got {step_adaptation!r}")
    adapt_every, init_trials = check_count(adapt_every, "adapt_every", 1), check_count(init_trials, "init_trials")
    check_every, search_steps = check_count(check_every, "check_every", 1), check_count(search_steps, "search_steps")
    restarts = check_count(restarts, "restarts")
    if isinstance(init, torch.Tensor):
        check_images(init, name="init")
        if init.shape != x.shape:
            raise ValueError(f"init must have the shape of x {tuple(x.shape)}, got {tuple(init.shape)}")
        if max_queries < 2:
            raise ValueError(f"with init, max_queries must be >= 2 (one query for x, one for init), got {max_queries}")
    elif init is not None and not callable(init):
        raise TypeError(f"init must be None, a tensor of adversarial images or an attack function, got "
                        f"{type(init).__name__}")
    if targeted and init is None:
        raise ValueError("a targeted boundary attack needs init=...: images the model already classifies as the "
                         "targets (for instance images of those classes), or an attack that finds such images")
    limit = begin_attack(oracle, x, y, targeted, "l2", max_queries, "boundary_attack")
    b, device = x.shape[0], x.device
    x = x.detach()
    gen = generator(seed)

    closest = x.clone()  # per image the closest adversarial image queried so far (what the oracle's trace sees)
    closest_d = torch.full((b,), float("inf"), device=device, dtype=x.dtype)

    def ask(images, idx):
        """Adversarial or not, for ``images`` queried on behalf of the originals ``idx`` (device tensors, each
        image at most once per call); keeps the closest adversarial query per image."""
        out = oracle(images, owner=idx.cpu())
        labels = out if out.dim() == 1 else out.argmax(1)
        ok = labels == y[idx] if targeted else labels != y[idx]
        keep_closest(closest, closest_d, images, per_image_norm(images - x[idx]), idx, ok)
        return ok

    def fits(k):
        return (oracle.queries + k <= limit).to(device)

    # ------------------------------------------------------------ 1. an adversarial starting point per image
    done = torch.zeros(b, dtype=torch.bool, device=device)
    first = fits(1).nonzero().flatten()
    if first.numel():
        done[first] = ask(x[first], first)  # already adversarial (misclassified, or the target): keep x
    adv, found = x.clone(), torch.zeros(b, dtype=torch.bool, device=device)
    if not bool((~done & fits(2)).any()):
        start = x  # nothing left to start (every image already adversarial, or out of budget)
    elif not isinstance(init, torch.Tensor):
        # a start attack (ours by default) runs through the same oracle: its queries count against the budget
        # (it runs on the whole batch; an image that was adversarial already costs it a query or two)
        start_fn = noise_start if init is None else init
        rest = int((limit - oracle.queries).max())
        start = start_fn(oracle, x, y, targeted=targeted, max_queries=max(rest - 1, 1), seed=gen).detach()
        if start.shape != x.shape:
            raise ValueError(f"the init attack returned shape {tuple(start.shape)}, expected {tuple(x.shape)}")
    else:
        start = init.detach().to(device)
    todo = (~done & fits(1)).nonzero().flatten()
    if todo.numel():
        ok = ask(start[todo], todo)  # verified with one query, as Foolbox does with its init attack's result
        if isinstance(init, torch.Tensor) and not bool(ok.all()):
            bad = todo[~ok].tolist()[:8]
            raise ValueError(f"init must already be adversarial for every image; it is not for image(s) {bad}")
        adv[todo[ok]], found[todo[ok]] = start[todo[ok]], True

    # ------------------------------------------------------------ 2. bisection, 3. the walk (with restarts)
    adv = _bisect(ask, x, adv, found, search_steps, fits)
    restart_cost = search_steps + 20
    can_redraw = isinstance(init, torch.Tensor) or not targeted  # a targeted start attack's result is the only start
    walk = _Walk(x, found, spherical_step, source_step, adv)
    used = torch.zeros(b, dtype=torch.long, device=device)  # restarts per image
    bar = tqdm(total=int((limit - oracle.queries).clamp_min(0).sum()), desc="boundary attack",
               disable=not progress, leave=False)
    t = 0
    while True:
        spent = oracle.total
        # a walk that converged (epsilon < 1e-7: a local minimum of the distance) or got stuck starts again
        # elsewhere, in the same batch as the others, while its budget allows (occlusions and noise in turn; a
        # targeted attack from init again, with new proposals)
        over = walk.on & ((walk.src <= 1e-7) | walk.stuck)
        again = (over & (used < restarts) & fits(restart_cost)).nonzero().flatten() if can_redraw else over[:0]
        if again.numel():
            used[again] += 1
            new, ok = torch.empty_like(x[again]), torch.ones(again.numel(), dtype=torch.bool, device=device)
            if isinstance(init, torch.Tensor):
                new = init.detach().to(device)[again]  # verified at the start
            else:
                for parity, kind in ((1, "occlusion"), (0, "noise")):
                    sel = (used[again] % 2 == parity).nonzero().flatten()
                    if sel.numel():
                        new[sel], ok[sel] = _draw_starts(ask, x[again[sel]], again[sel], init_trials, gen, fits, kind)
            mask = torch.zeros(b, dtype=torch.bool, device=device)
            mask[again[ok]] = True
            adv = _bisect(ask, x, torch.where(expand(mask, x), _put(adv, again[ok], new[ok]), adv), mask,
                          search_steps, fits)
            walk.restart(again, ok, adv)
        active = walk.on & (walk.src > 1e-7) & ~walk.stuck
        check = t % check_every == check_every - 1
        idx = (active & fits(2 if check else 1)).nonzero().flatten()
        if idx.numel() == 0 and check:  # nobody can afford the orthogonal check this step: a plain step
            check, idx = False, (active & fits(1)).nonzero().flatten()
        if idx.numel() == 0:
            break
        spherical, candidate = _propose(x[idx], adv[idx], walk.sph[idx], walk.src[idx], gen)
        if check:
            walk.stats["sph_hits"][idx] += ask(spherical, idx).float()
            walk.stats["sph_tries"][idx] += 1
        ok = ask(candidate, idx)
        closer = per_image_norm(candidate - x[idx]) < per_image_norm(adv[idx] - x[idx])
        adv[idx[ok & closer]] = candidate[ok & closer]
        walk.stats["src_hits"][idx] += ok.float()
        walk.stats["src_tries"][idx] += 1
        walk.steps[idx] += 1
        _adapt(walk.sph, walk.src, walk.stats, adapt_every, step_adaptation)
        due = idx[walk.steps[idx] == STALL_STEPS]
        if due.numel():  # stuck: no real progress in the first STALL_STEPS steps, and a restart is possible
            no_gain = per_image_norm(adv[due] - x[due]) > (1 - STALL_GAIN) * walk.origin[due]
            walk.stuck[due] = no_gain & (used[due] < restarts) & fits(restart_cost)[due] & can_redraw
        t += 1
        bar.update(oracle.total - spent)
    bar.close()
    return closest.detach()


def _put(t: torch.Tensor, idx: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    out = t.clone()
    out[idx] = rows
    return out


class _Walk:
    """The per-image state of the walks: step sizes, statistics, steps taken, distance at the walk's start."""

    def __init__(self, x, on, spherical_step, source_step, adv):
        b, device = x.shape[0], x.device
        self.x, self.on, self.delta0, self.eps0 = x, on.clone(), float(spherical_step), float(source_step)
        self.sph = torch.full((b,), self.delta0, device=device, dtype=x.dtype)
        self.src = torch.full((b,), self.eps0, device=device, dtype=x.dtype)
        self.stats = {k: torch.zeros(b, device=device) for k in ("sph_hits", "sph_tries", "src_hits", "src_tries")}
        self.steps = torch.zeros(b, dtype=torch.long, device=device)
        self.stuck = torch.zeros(b, dtype=torch.bool, device=device)
        self.origin = per_image_norm(adv - x)

    def restart(self, idx, ok, adv):
        """New walks for the images ``idx`` (those with ``ok``, a new start; the others stop)."""
        self.on[idx] = ok
        self.sph[idx], self.src[idx], self.steps[idx], self.stuck[idx] = self.delta0, self.eps0, 0, False
        for v in self.stats.values():
            v[idx] = 0
        self.origin[idx] = per_image_norm(adv[idx] - self.x[idx])


def boundary_proposal(x: torch.Tensor, x_adv: torch.Tensor, delta, epsilon, seed=None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """One proposal of the Boundary attack per image (Brendel et al., 2018), with ``d = ||x' - x||_2``::

        eta   ~ N(0, I) minus its component along x' - x, scaled to ||eta|| = delta d
        x_s   = clip( x + (x' + eta - x) d / ||x' + eta - x|| )        (orthogonal step, onto the sphere of radius d)
        x_new = clip( x_s + s (x - x_s) ),  s such that ||x_new - x|| = (1 - epsilon) d   (source step)

    The walk of :func:`boundary_attack` asks the oracle whether ``x_new`` is still adversarial; this function
    asks nothing.

    Args:
        x: the originals ``(B, C, H, W)`` in ``[0, 1]``.
        x_adv: the current adversarial points ``x'``, same shape, different from ``x``.
        delta: the orthogonal step size, a float or a tensor ``(B,)``.
        epsilon: the source step size in ``[0, 1]``, a float or a tensor ``(B,)``.
        seed: the noise: ``None`` (fresh, from torch's global RNG), an int or a ``torch.Generator`` (continued).

    Returns:
        ``(x_s, x_new)``, each ``(B, C, H, W)``, detached; the inputs are not changed.
    """
    check_images(x)
    check_images(x_adv)
    if x_adv.shape != x.shape:
        raise ValueError(f"x_adv must have x's shape {tuple(x.shape)}, got {tuple(x_adv.shape)}")
    steps = []
    for value, name in ((delta, "delta"), (epsilon, "epsilon")):
        t = torch.as_tensor(value, dtype=x.dtype, device=x.device).detach()
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],) or not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
            raise ValueError(f"{name} must be a number >= 0 or a tensor of shape ({x.shape[0]},), got {value!r}")
        steps.append(t)
    if bool((steps[1] > 1).any()):
        raise ValueError(f"epsilon must be at most 1 (a step past x), got {epsilon!r}")
    return _propose(x.detach(), x_adv.detach(), steps[0], steps[1], generator(seed))


def _propose(xo: torch.Tensor, xa: torch.Tensor, delta: torch.Tensor, epsilon: torch.Tensor,
             gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One proposal per image (the docstring's equations): the orthogonal candidate on the sphere of radius
    ``d = ||x' - x||`` and the candidate ``epsilon d`` closer to ``x``, both clipped to ``[0, 1]``."""
    diff = xa - xo
    d = per_image_norm(diff).clamp_min(1e-12)
    u = diff / expand(d, xo)
    eta = normal(xa.shape, gen, xa.device, xa.dtype)
    eta = eta - u * expand((eta * u).flatten(1).sum(1), xo)            # orthogonal to x' - x
    eta = eta * expand(delta * d / per_image_norm(eta).clamp_min(1e-12), xo)
    on_sphere = diff + eta
    spherical = (xo + on_sphere * expand(d / per_image_norm(on_sphere), xo)).clamp(0.0, 1.0)
    # length correction: from x_s, move towards x until the distance to x is (1 - epsilon) d
    to_x = xo - spherical
    r = per_image_norm(to_x).clamp_min(1e-12)
    step = ((r - (1 - epsilon) * d) / r).clamp(0.0, 1.0)
    candidate = (spherical + expand(step, xo) * to_x).clamp(0.0, 1.0)
    return spherical, candidate


def _adapt(sph: torch.Tensor, src: torch.Tensor, stats: dict, every: int, factor: float) -> None:
    """Foolbox's step-size rule, per image, in place: ``delta`` after ``every`` orthogonal checks (> 1/2
    adversarial: larger; < 1/5: smaller), ``epsilon`` after ``every`` full steps (> 1/4: larger; < 1/10: smaller)."""
    for step, hits, tries, hi, lo in ((sph, "sph_hits", "sph_tries", 0.5, 0.2), (src, "src_hits", "src_tries", 0.25,
                                                                                0.1)):
        due = stats[tries] >= every
        if bool(due.any()):
            p = stats[hits][due] / stats[tries][due]
            step[due] = torch.where(p > hi, step[due] * factor, torch.where(p < lo, step[due] / factor, step[due]))
            stats[hits][due], stats[tries][due] = 0, 0


def _bisect(ask, x: torch.Tensor, start: torch.Tensor, found: torch.Tensor, steps: int, fits) -> torch.Tensor:
    """``steps`` bisection steps on the segment from ``x`` (blend 0, not adversarial) to ``start`` (blend 1,
    adversarial), per image where ``found``; returns the adversarial end of the last bracket (``x`` elsewhere)."""
    lo = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
    hi = torch.ones(x.shape[0], device=x.device, dtype=x.dtype)
    for _ in range(steps):
        idx = (found & fits(1)).nonzero().flatten()
        if idx.numel() == 0:
            break
        mid = (lo[idx] + hi[idx]) / 2
        ok = ask(x[idx] + expand(mid, x) * (start[idx] - x[idx]), idx)
        hi[idx[ok]], lo[idx[~ok]] = mid[ok], mid[~ok]
    return torch.where(expand(found, x), x + expand(hi, x) * (start - x), start)


def noise_start(oracle, x: torch.Tensor, y: torch.Tensor, targeted: bool = False, max_queries: int = 50,
                seed=None, *, trials: int = 50) -> torch.Tensor:
    """Adversarial starting points from noise, for decision-based attacks: per image, up to ``trials`` random
    images are asked about until one is adversarial (untargeted only). The draws cycle through uniform noise,
    uniform noise dimmed by a random factor ``u * l^2`` (twice) and sparse binary noise (density below 1/2): a model
    may call all uniform noise one class (``mnist_cnn`` calls it "8", which fools nothing on the 8s).

    Returns ``(B, C, H, W)``: the first adversarial draw per image, ``x`` itself where none was found within
    ``min(trials, max_queries)`` queries. Uses the black-box attack signature, so any other attack can take its
    place as a start (``boundary_attack(..., init=...)``)."""
    check_images(x)
    check_labels(y, x.shape[0], device=x.device)
    max_queries = check_count(max_queries, "max_queries", minimum=1)
    trials = check_count(trials, "trials")
    if targeted:
        raise ValueError("noise_start is untargeted: for a targeted attack pass init= images of the target classes")
    limit = begin_attack(oracle, x, y, targeted, "l2", max_queries, "noise_start")
    device = x.device

    def ask(images, idx):
        out = oracle(images, owner=idx.cpu())
        return (out if out.dim() == 1 else out.argmax(1)) != y[idx]

    def fits(k):
        return (oracle.queries + k <= limit).to(device)

    out, ok = _draw_starts(ask, x.detach(), torch.arange(x.shape[0], device=device), trials,
                           generator(seed), fits, "noise")
    return torch.where(expand(ok, x), out, x.detach())


def _draw_starts(ask, x, idx, trials, gen, fits, kind):
    """Up to ``trials`` random candidates per image ``x[i]`` (original ``idx[i]``) until one is adversarial:
    ``kind="noise"`` (see :func:`_noise`) or ``"occlusion"`` (a random square of the image, 3 pixels to half the
    side, replaced by black or by uniform noise: a local change, which finds starts near the image where every
    noise image falls in one class). Returns the candidates and which are adversarial."""
    out, found = x.clone(), torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for trial in range(trials):
        sel = (~found & fits(1)[idx]).nonzero().flatten()
        if sel.numel() == 0:
            break
        shape = (sel.numel(), *x.shape[1:])
        cand = _noise(trial, shape, gen, x.device, x.dtype) if kind == "noise" else _occlude(x[sel], gen)
        ok = ask(cand, idx[sel])
        out[sel[ok]], found[sel[ok]] = cand[ok], True
    return out, found


def _occlude(x: torch.Tensor, gen) -> torch.Tensor:
    """Each image with one random square (side 3 to half the image) replaced by black or by uniform noise."""
    b, _, h, w = x.shape
    side = 3 + (uniform(b, gen, x.device) * max(min(h, w) // 2 - 2, 1)).long()
    top = (uniform(b, gen, x.device) * (h - side + 1)).long()
    left = (uniform(b, gen, x.device) * (w - side + 1)).long()
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < (top + side)[:, None, None])
              & (cols >= left[:, None, None]) & (cols < (left + side)[:, None, None]))[:, None]
    black = expand(uniform(b, gen, x.device) < 0.5, x)
    fill = torch.where(black, torch.zeros_like(x), uniform(x.shape, gen, x.device, x.dtype))
    return torch.where(inside, fill, x)


def _noise(trial: int, shape, gen, device, dtype) -> torch.Tensor:
    """Starting-point candidates, in turn: uniform noise, dimmed uniform noise (twice: ``u * level`` with ``level``
    drawn mostly small), sparse binary noise (density < 1/2: pixels at exactly 0 and 1, where the walk's clipping
    bites, so it comes last)."""
    u = uniform(shape, gen, device, dtype)
    kind = trial % 4
    if kind == 0:
        return u
    level = uniform(shape[0], gen, device, dtype)
    if kind in (1, 2):
        return u * expand(level * level, u)
    return (uniform(shape, gen, device, dtype) < expand(level / 2, u)).to(dtype)
