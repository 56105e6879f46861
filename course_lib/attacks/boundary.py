"""The Boundary attack (Brendel, Rauber & Bethge, ICLR 2018): a decision-based black-box attack that needs only the
model's final labels. It starts from an image that is already adversarial and walks along the decision boundary
towards the original, shrinking the perturbation while staying adversarial."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .._validate import check_images, check_labels
from ._common import check_count, check_positive, expand, generator, per_image_norm
from .oracle import Oracle

__all__ = ["boundary_attack"]


def boundary_attack(oracle: Oracle, x: torch.Tensor, y: torch.Tensor, targeted: bool = False,
                    max_queries: int = 5000, seed=None, *, init: torch.Tensor | None = None,
                    spherical_step: float = 0.01, source_step: float = 0.01, step_adaptation: float = 1.5,
                    adapt_every: int = 10, init_trials: int = 50, search_steps: int = 10,
                    progress: bool = True) -> torch.Tensor:
    """Boundary attack (Brendel, Rauber & Bethge, "Decision-Based Adversarial Attacks", ICLR 2018), L2.

    Only labels are used (an ``Oracle`` with ``access="labels"`` suffices; with scores the arg-max is taken).
    Per image, with ``x'`` the current adversarial image and ``d = ||x' - x||_2``, one iteration proposes::

        eta   ~ N(0, I), minus its component along x - x', scaled to ||eta|| = delta * d
        x_s   = x + (x' + eta - x) * d / ||x' + eta - x||          (orthogonal step: back onto the sphere of radius d)
        x_new = x + (1 - epsilon) * (clip(x_s) - x)                (step towards the original)

    and keeps ``x_new`` if the oracle says it is adversarial and it is closer to ``x``. Both candidates are
    queried (2 queries per iteration). Every ``adapt_every`` iterations, per image, ``delta``
    (``spherical_step``) grows by ``step_adaptation`` when more than half of the orthogonal candidates were
    adversarial and shrinks when fewer than a fifth were (the boundary is locally flat: larger steps are safe);
    ``epsilon`` (``source_step``) grows when more than a quarter of the full candidates ``x_new`` were adversarial
    and shrinks below a tenth (the thresholds of the authors' Foolbox implementation; the two are adapted
    independently here). A walk whose ``epsilon`` falls below 1e-7 has converged and stops.

    Start: an image the oracle already gets wrong (or, targeted, already calls ``y``) is returned as it is (one
    query). Otherwise ``init`` if given (images the oracle already classifies adversarially, e.g. photos of the target
    class), else (untargeted only) random noise, redrawn up to ``init_trials`` times until adversarial (in turn
    uniform noise, uniform noise dimmed by a random factor, and sparse binary noise: a model may call all uniform
    noise one class, an "8" for mnist_cnn, which fools nothing on the 8s); then
    ``search_steps`` bisection steps on the segment from ``x`` to the start find a point near the boundary.

    Args:
        oracle: an :class:`Oracle`: the attack never sees the model, only its answers.
        x: images ``(B, C, H, W)`` in ``[0, 1]``; y: LongTensor ``(B,)``: true labels (untargeted) or targets.
        targeted: ``False`` (default): any other label; ``True``: the label ``y`` (needs ``init``).
        max_queries: queries per image, the first look at ``x``, the starting point and the bisection included
            (default 5,000).
        seed: int, ``torch.Generator`` on ``x``'s device, or ``None``: noise and proposals (global RNG untouched).

    Returns:
        ``(B, C, H, W)`` in ``[0, 1]``: per image the closest adversarial image found; an image for which no
        adversarial start was found is returned unchanged (the attack failed there). ``oracle.queries`` then holds
        the queries spent per image (never more than ``max_queries``).
    """
    if not isinstance(oracle, Oracle):
        raise TypeError(f"boundary_attack takes an Oracle (black-box access), got {type(oracle).__name__}: "
                        "wrap the model as Oracle(model, access='labels')")
    check_images(x)
    check_labels(y, x.shape[0], device=x.device)
    max_queries = check_count(max_queries, "max_queries", minimum=1)
    for name, v in (("spherical_step", spherical_step), ("source_step", source_step)):
        check_positive(v, name)
    if check_positive(step_adaptation, "step_adaptation") <= 1:
        raise ValueError(f"step_adaptation must be > 1, got {step_adaptation!r}")
    adapt_every, init_trials = check_count(adapt_every, "adapt_every", 1), check_count(init_trials, "init_trials")
    search_steps = check_count(search_steps, "search_steps")
    if init is not None and max_queries < 2:
        raise ValueError(f"with init, max_queries must be >= 2 (one query for x, one for init), got {max_queries}")
    if targeted and init is None:
        raise ValueError("a targeted boundary attack needs init=...: images the model already classifies as the "
                         "targets (for instance images of those classes), to start from")
    b, device = x.shape[0], x.device
    x = x.detach()
    gen = generator(device, seed)
    oracle.reset(b)
    budget = torch.full((b,), max_queries, dtype=torch.long)

    def ask(images, idx):
        """Adversarial or not, for ``images`` queried on behalf of the originals ``idx`` (device tensors)."""
        out = oracle(images, owner=idx.cpu())
        labels = out if out.dim() == 1 else out.argmax(1)
        return labels == y[idx] if targeted else labels != y[idx]

    def can_ask(k):
        return (oracle.queries + k <= budget).to(device)

    # ------------------------------------------------------------ 1. an adversarial starting point per image
    adv = x.clone()
    done = ask(x, torch.arange(b, device=device))  # already adversarial (misclassified, or the target): keep x
    found = torch.zeros(b, dtype=torch.bool, device=device)
    if init is not None:
        check_images(init, name="init")
        if init.shape != x.shape:
            raise ValueError(f"init must have the shape of x {tuple(x.shape)}, got {tuple(init.shape)}")
        idx = torch.arange(b, device=device)
        ok = ask(init.detach().to(device), idx)
        if not bool(ok.all()):
            bad = (~ok).nonzero().flatten().tolist()[:8]
            raise ValueError(f"init must already be adversarial for every image; it is not for image(s) {bad}")
        adv, found = init.detach().to(device).clone(), ok & ~done
    else:
        for trial in range(init_trials):
            idx = (~found & ~done & can_ask(1)).nonzero().flatten()
            if idx.numel() == 0:
                break
            noise = _noise(trial, (idx.numel(), *x.shape[1:]), gen, device, x.dtype)
            ok = ask(noise, idx)
            adv[idx[ok]], found[idx[ok]] = noise[ok], True

    # ------------------------------------------------------------ 2. bisection towards x: close to the boundary
    lo = torch.zeros(b, device=device, dtype=x.dtype)  # blend 0 = x (not adversarial)
    hi = torch.ones(b, device=device, dtype=x.dtype)   # blend 1 = the start (adversarial)
    start = adv.clone()
    for _ in range(search_steps):
        idx = (found & can_ask(1)).nonzero().flatten()
        if idx.numel() == 0:
            break
        mid = (lo[idx] + hi[idx]) / 2
        cand = x[idx] + expand(mid, x) * (start[idx] - x[idx])
        ok = ask(cand, idx)
        hi[idx[ok]], lo[idx[~ok]] = mid[ok], mid[~ok]
    adv = torch.where(expand(found, x), x + expand(hi, x) * (start - x), x)  # x itself where done or not found

    # ------------------------------------------------------------ 3. walk along the boundary towards x
    sph = torch.full((b,), float(spherical_step), device=device, dtype=x.dtype)
    src = torch.full((b,), float(source_step), device=device, dtype=x.dtype)
    sph_hits = torch.zeros(b, device=device)
    src_hits = torch.zeros(b, device=device)
    tries = torch.zeros(b, device=device)
    left = int((budget - oracle.queries).max())
    bar = tqdm(total=max(left, 0) // 2, desc="boundary attack", disable=not progress, leave=False)
    while True:
        idx = (found & can_ask(2) & (src > 1e-7)).nonzero().flatten()
        if idx.numel() == 0:
            break
        xo, xa = x[idx], adv[idx]
        diff = xa - xo                                     # from the original to the current adversarial
        d = per_image_norm(diff).clamp_min(1e-12)
        u = diff / expand(d, x)
        eta = torch.randn(xa.shape, generator=gen, device=device, dtype=x.dtype)
        eta = eta - u * expand((eta * u).flatten(1).sum(1), x)         # orthogonal to x' - x
        eta = eta * expand(sph[idx] * d / per_image_norm(eta).clamp_min(1e-12), x)
        on_sphere = diff + eta
        spherical = (xo + on_sphere * expand(d / per_image_norm(on_sphere), x)).clamp(0.0, 1.0)
        candidate = xo + expand(1 - src[idx], x) * (spherical - xo)
        ok_sph = ask(spherical, idx)
        ok = ask(candidate, idx)
        closer = per_image_norm(candidate - xo) < d
        accept = ok & closer
        adv[idx[accept]] = candidate[accept]
        tries[idx] += 1
        sph_hits[idx] += ok_sph.float()
        src_hits[idx] += ok.float()
        # step sizes, per image, every adapt_every iterations (Brendel et al.): delta keeps roughly half of the
        # orthogonal candidates adversarial, epsilon between a tenth and a quarter of the full candidates
        due = idx[tries[idx] >= adapt_every]
        if due.numel():
            p_sph, p_src = sph_hits[due] / tries[due], src_hits[due] / tries[due]
            f = step_adaptation
            sph[due] = torch.where(p_sph > 0.5, sph[due] * f, torch.where(p_sph < 0.2, sph[due] / f, sph[due]))
            src[due] = torch.where(p_src > 0.25, src[due] * f, torch.where(p_src < 0.1, src[due] / f, src[due]))
            tries[due], sph_hits[due], src_hits[due] = 0, 0, 0
        bar.update(1)
    bar.close()
    return adv.detach()


def _noise(trial: int, shape, gen, device, dtype) -> torch.Tensor:
    """Starting-point candidates, in turn: uniform noise, dimmed uniform noise (twice: ``u * level`` with ``level``
    drawn mostly small), sparse binary noise (density < 1/2: pixels at exactly 0 and 1, where the walk's clipping
    bites, so it comes last)."""
    u = torch.rand(shape, generator=gen, device=device, dtype=dtype)
    kind = trial % 4
    if kind == 0:
        return u
    level = torch.rand(shape[0], generator=gen, device=device, dtype=dtype)
    if kind in (1, 2):
        return u * expand(level * level, u)
    return (torch.rand(shape, generator=gen, device=device, dtype=dtype) < expand(level / 2, u)).to(dtype)
