"""ZOO (Chen, Zhang, Sharma, Yi & Hsieh, AISec 2017): Carlini & Wagner's attack without gradients. The gradient
of the loss is estimated coordinate by coordinate from the model's probabilities (symmetric differences), and
each estimated coordinate takes one Adam step: zeroth-order optimisation, a score-based black-box attack."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .._validate import check_images, check_labels
from ._common import check_count, check_positive, generator
from .oracle import Oracle

__all__ = ["zoo"]


def _gap(probs: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """The log-probability margin that ZOO's f clips (their eqs. 4-5), per row: ``< 0`` when the attack succeeds
    (untargeted: ``log F_y - max_{i != y} log F_i``; targeted: ``max_{i != t} log F_i - log F_t``)."""
    logp = probs.clamp_min(1e-30).log()
    own = logp.gather(1, y[:, None]).squeeze(1)
    other = logp.scatter(1, y[:, None], float("-inf")).amax(1)
    return other - own if targeted else own - other


def zoo(oracle: Oracle, x: torch.Tensor, y: torch.Tensor, targeted: bool = False, max_queries: int = 20000,
        seed=None, *, kappa: float = 0.0, c: float = 1.0, binary_search_steps: int = 3, coords: int = 128,
        h: float = 1e-4, lr: float = 1e-2, progress: bool = True) -> torch.Tensor:
    """ZOO-Adam (Chen et al., "ZOO: Zeroth Order Optimization Based Black-box Attacks to Deep Neural Networks
    without Training Substitute Models", AISec 2017), L2. Minimises, inside the box ``[0, 1]``::

        ||x' - x||_2^2 + c * f(x'),
        f(x') = max(log F(x')_y - max_{i != y} log F(x')_i, -kappa)      (untargeted; targeted: the other way round)

    with ``F`` the oracle's probabilities. Each iteration draws ``coords`` random coordinates per image and
    estimates their partial derivatives of ``f`` by symmetric differences,
    ``g_i = (f(x' + h e_i) - f(x' - h e_i)) / (2h)`` (``2 * coords`` queries; one-sided, over ``h``, at a pixel
    of 0 or 1, so that every query stays in ``[0, 1]``), plus one query of ``x'`` itself
    (is it adversarial yet?); the distance term's gradient ``2 (x' - x)`` is exact. Each drawn coordinate then
    takes one Adam step (its own moments and step count, ``lr``, betas 0.9 and 0.999) and is clipped to ``[0, 1]``.
    ``c`` is searched per image as in C&W: times 10 until a first success, then bisection; each of the
    ``binary_search_steps`` gets an equal share of the budget and continues from the previous step's last
    iterate (fresh Adam moments). The result per image is the closest adversarial point queried. (The paper's
    attack-space reduction and importance sampling, which matter for large images, are not implemented.)

    Args:
        oracle: an :class:`Oracle` with ``access="scores"`` (ZOO needs probabilities).
        x: images ``(B, C, H, W)`` in ``[0, 1]``; y: LongTensor ``(B,)``: true labels (untargeted) or targets.
        targeted: ``False`` (default) or ``True``.
        max_queries: queries per image in all (default 20,000).
        seed: int, ``torch.Generator`` on ``x``'s device, or ``None``: which coordinates are drawn.
        kappa, c: confidence and the initial constant; coords, h, lr: as above.

    Returns:
        ``(B, C, H, W)`` in ``[0, 1]``: per image the closest adversarial image found, else the last iterate
        (never a blank image). ``oracle.queries`` holds the queries per image (never more than ``max_queries``).
    """
    if not isinstance(oracle, Oracle):
        raise TypeError(f"zoo takes an Oracle (black-box access), got {type(oracle).__name__}: "
                        "wrap the model as Oracle(model, access='scores')")
    if oracle.access != "scores":
        raise ValueError("zoo estimates gradients from probabilities: it needs Oracle(model, access='scores'); "
                         "with labels only, use boundary_attack")
    check_images(x)
    check_labels(y, x.shape[0], device=x.device)
    max_queries = check_count(max_queries, "max_queries", minimum=1)
    binary_search_steps = check_count(binary_search_steps, "binary_search_steps", minimum=1)
    coords = check_count(coords, "coords", minimum=1)
    c, h, lr = check_positive(c, "c"), check_positive(h, "h"), check_positive(lr, "lr")
    if kappa < 0:
        raise ValueError(f"kappa must be >= 0, got {kappa!r}")
    b, device = x.shape[0], x.device
    x = x.detach()
    d = x[0].numel()
    k = min(coords, d)
    per_iter = 2 * k + 1
    gen = generator(device, seed)
    oracle.reset(b)

    flat_x = x.flatten(1)
    cur = flat_x.clone()
    best, best_l2 = flat_x.clone(), torch.full((b,), float("inf"), device=device, dtype=x.dtype)
    const = torch.full((b,), c, device=device, dtype=x.dtype)
    lo = torch.zeros(b, device=device, dtype=x.dtype)
    hi = torch.full((b,), float("inf"), device=device, dtype=x.dtype)
    share = max_queries // binary_search_steps
    bar = tqdm(total=binary_search_steps * (share // per_iter), desc="ZOO", disable=not progress, leave=False)
    for step in range(binary_search_steps):
        m, v = torch.zeros_like(cur), torch.zeros_like(cur)
        t = torch.zeros_like(cur)
        ok_step = torch.zeros(b, dtype=torch.bool, device=device)
        stop = torch.full((b,), (step + 1) * share if step < binary_search_steps - 1 else max_queries,
                          dtype=torch.long)
        while True:
            act = ((oracle.queries + per_iter) <= stop).to(device).nonzero().flatten()
            if act.numel() == 0:
                break
            n = act.numel()
            idx = torch.rand(n, d, generator=gen, device=device).argsort(1)[:, :k]      # k distinct coordinates
            base = cur[act]
            plus, minus = base.repeat_interleave(k, 0), base.repeat_interleave(k, 0)
            r = torch.arange(n * k, device=device)
            col = idx.flatten()
            plus[r, col] = (plus[r, col] + h).clamp(max=1.0)   # queries stay in [0, 1]: at a pixel of 0 or 1
            minus[r, col] = (minus[r, col] - h).clamp(min=0.0)  # the difference is one-sided, over h
            step_len = (plus[r, col] - minus[r, col]).view(n, k)
            batch = torch.cat([base, plus, minus]).view(-1, *x.shape[1:])
            owner = torch.cat([act, act.repeat_interleave(k), act.repeat_interleave(k)])
            probs = oracle(batch, owner=owner.cpu())
            labels = torch.cat([y[act], y[act].repeat_interleave(k), y[act].repeat_interleave(k)])
            gap = _gap(probs, labels, targeted)
            f = gap.clamp_min(-kappa)
            fp, fm = f[n:n + n * k].view(n, k), f[n + n * k:].view(n, k)
            # the queried point itself: adversarial (with the margin kappa)? the closest so far?
            success = (gap[:n] < 0) & (gap[:n] <= -kappa)
            l2 = (base - flat_x[act]).norm(dim=1)
            better = success & (l2 < best_l2[act])
            best_l2[act] = torch.where(better, l2, best_l2[act])
            best[act] = torch.where(better[:, None], base, best[act])
            ok_step[act] |= success
            # Adam on the drawn coordinates
            g = 2 * (base.gather(1, idx) - flat_x[act].gather(1, idx)) + const[act, None] * (fp - fm) / step_len
            ai = act[:, None].expand(n, k)
            t[ai, idx] += 1
            m[ai, idx] = 0.9 * m[ai, idx] + 0.1 * g
            v[ai, idx] = 0.999 * v[ai, idx] + 0.001 * g * g
            m_hat = m[ai, idx] / (1 - 0.9 ** t[ai, idx])
            v_hat = v[ai, idx] / (1 - 0.999 ** t[ai, idx])
            cur[ai, idx] = (base.gather(1, idx) - lr * m_hat / (v_hat.sqrt() + 1e-8)).clamp(0.0, 1.0)
            bar.update(1)
        # binary search on c (Carlini & Wagner): bisect after a success, else x10 until the first
        hi = torch.where(ok_step, torch.minimum(hi, const), hi)
        lo = torch.where(ok_step, lo, torch.maximum(lo, const))
        const = torch.where(torch.isfinite(hi), (lo + hi) / 2, const * 10)
    bar.close()
    found = torch.isfinite(best_l2)
    out = torch.where(found[:, None], best, cur)
    return out.view_as(x).detach()
