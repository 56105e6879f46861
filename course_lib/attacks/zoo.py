"""ZOO (Chen, Zhang, Sharma, Yi & Hsieh, AISec 2017): Carlini & Wagner's attack without gradients. The gradient
of the loss is estimated coordinate by coordinate from the model's log-probabilities (symmetric differences), and
each estimated coordinate takes one Adam step: zeroth-order optimisation, a score-based black-box attack. For large
images the paper adds two devices: a smaller attack space, upsampled to the image, and importance sampling of the
coordinates."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .._rng import generator, multinomial, uniform
from .._validate import check_count, check_images, check_labels
from ._common import check_positive
from ._search import ConstantSearch, keep_closest
from .oracle import begin_attack

__all__ = ["zoo", "oracle_margin"]

BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8
REGIONS = 8  # importance sampling: the attack space is cut into 8 x 8 regions per channel (the paper's choice)
# Rows per oracle call: on a CPU a forward pass is fastest per image in batches whose activations stay in the
# caches (mnist_cnn, 1 thread: ~5,500 digits/s in batches of 32-334, ~2,800/s in batches of 1,337, the oracle's own
# split of 2^20 input values; imagenet_lite0: 48 photos/s in batches of 4, 40 in batches of 1, 31 in batches of 8).
# Smaller calls cost more with 2 threads on a busy machine. So: about 2^18 input values per call, at least 4 rows.
_VALUES_PER_CALL, _MIN_ROWS_PER_CALL = 1 << 18, 4


def zoo(oracle, x: torch.Tensor, y: torch.Tensor, targeted: bool = False, max_queries: int = 20000,
        seed=None, *, kappa: float = 0.0, c: float = 1.0, binary_search_steps: int = 3, coords: int = 128,
        h: float = 1e-4, lr: float = 1e-2, resize=None, importance: bool | float = False,
        progress: bool = True) -> torch.Tensor:
    """ZOO-Adam (Chen et al., "ZOO: Zeroth Order Optimization Based Black-box Attacks to Deep Neural Networks
    without Training Substitute Models", AISec 2017), L2. Minimises, inside the box ``[0, 1]``::

        ||x' - x||_2^2 + c * f(x'),
        f(x') = max(log F(x')_y - max_{i != y} log F(x')_i, -kappa)      (untargeted)
        f(x') = max(max_{i != t} log F(x')_i - log F(x')_t, -kappa)      (targeted, t = y)

    with ``log F`` the oracle's log-probabilities (``oracle(rows, log=True)``: exact even where a probability
    underflows to 0, as for a distilled model whose logits differ by hundreds). Each iteration draws ``coords``
    distinct coordinates ``i`` per image and estimates ``f``'s partial derivatives by symmetric differences
    (their eq. 6)::

        g_i = (f(x' + h e_i) - f(x' - h e_i)) / (2h)

    (``2 * coords`` queries; one-sided, over ``h``, at a pixel of 0 or 1, so that every query stays in
    ``[0, 1]``), plus one query of ``x'`` itself; the distance term's derivative ``2 (x' - x)_i`` is exact. Each
    drawn coordinate then takes one Adam step (their Algorithm 2: its own moments and step count ``T_i``)::

        M_i = 0.9 M_i + 0.1 g_i,   v_i = 0.999 v_i + 0.001 g_i^2,   T_i = T_i + 1
        x'_i = clip(x'_i - lr * M_i / (1 - 0.9^T_i) / (sqrt(v_i / (1 - 0.999^T_i)) + 1e-8), 0, 1)

    ``c`` is searched per image as in C&W: times 10 until a first success, then bisection; each of the
    ``binary_search_steps`` gets an equal share of the image's budget and continues from the previous step's
    last iterate with fresh Adam moments (ART's ZooAttack restarts from ``x``: with a few thousand queries per
    step, starting over wastes them).

    Large images (the paper's attack-space dimension reduction and importance sampling; its third device, growing
    the attack space during the attack, is not implemented): ``resize=s`` optimises a perturbation ``delta`` of
    size ``C x s x s``, upsampled bilinearly (``U``, as ``F.interpolate(...,
    mode="bilinear", align_corners=False)``) to the image::

        x' = clip(x + U delta, 0, 1),    g_i = (f(clip(x + U(delta + h e_i))) - f(clip(x + U(delta - h e_i)))) / (2h)

    and the distance term's derivative is exact, ``2 [U^T ((x' - x) * 1{0 < x + U delta < 1})]_i``.
    ``delta`` itself is unconstrained (the clip keeps every query in the box; the paper's code uses a tanh).
    ``importance=True`` samples the coordinates (still distinct) with probabilities from the current
    perturbation (``x' - x``, or ``delta``): the largest ``|perturbation|`` in each of 8 x 8 regions per channel
    (max pooling, as in the paper), normalised, mixed half and half with the uniform distribution (so that no
    coordinate is locked out; a float ``w`` in ``(0, 1]`` gives the max-pooled part the weight ``w``): the
    coordinates the attack already uses get more of the queries.

    Success and the result: the oracle records, per image, the closest query whose arg-max is wrong (targeted:
    is ``t``). ZOO keeps, per image, the closest query that is adversarial by its own criterion, the arg-max
    *and* the margin ``f = -kappa`` reached; the probes count too. With ``kappa = 0`` the two criteria agree, and
    the last column of ``oracle.trace()`` equals the returned image's distance for every image fooled; with
    ``kappa > 0`` the trace may hold a closer query that is adversarial without the margin (it is ``<=``).

    Args:
        oracle: an :class:`Oracle` with ``access="scores"``.
        x: images ``(B, C, H, W)`` in ``[0, 1]``; y: LongTensor ``(B,)``: true labels (untargeted) or targets.
        targeted: ``False`` (default) or ``True``.
        max_queries: queries per image (default 20,000); the attack spends at most this and what the oracle has
            left (its count continues), and returns its best so far when the budget runs out. The last iteration
            of a binary-search step draws fewer coordinates if fewer queries are left; at most 2 stay unspent.
        seed: which coordinates are drawn: ``None`` (fresh, from torch's global RNG), an int or a
            ``torch.Generator`` (see :mod:`course_lib._rng`).
        kappa: the confidence margin (default 0); c: the initial constant (default 1);
        binary_search_steps: steps of the search on ``c`` (default 3);
        coords: coordinates per iteration and image (default 128, the paper's batch);
        h: the difference step (default 1e-4, the paper's); lr: Adam's learning rate (default 0.01).
        resize: ``None`` (default: the attack space is the image) or the attack space's side ``s`` (an int, or
            ``(s_h, s_w)``), at most the image's; the paper uses 32 for ImageNet. (On ``imagenet_lite0``,
            ``resize=32, coords=32, binary_search_steps=1`` fooled the demo photos the model is unsure of in
            200-260 queries; photos it is sure of need thousands.)
        importance: ``False`` (default: uniform draws), ``True`` or a weight in ``(0, 1]``, as above.
        progress: show a progress bar (default ``True``).

    Returns:
        ``(B, C, H, W)`` in ``[0, 1]``, detached, on ``x``'s device: per image the closest adversarial query (by
        the criterion above), else the last iterate (``x`` itself if no query fitted the budget).
    """
    check_images(x)
    b, ch, hh, ww = x.shape
    check_labels(y, b, device=x.device)
    if not isinstance(targeted, bool):
        raise TypeError(f"targeted must be True or False, got {targeted!r}")
    max_queries = check_count(max_queries, "max_queries", minimum=1)
    binary_search_steps = check_count(binary_search_steps, "binary_search_steps", minimum=1)
    coords = check_count(coords, "coords", minimum=1)
    c, h, lr = check_positive(c, "c"), check_positive(h, "h"), check_positive(lr, "lr")
    if isinstance(kappa, bool) or not isinstance(kappa, (int, float)) or not 0 <= kappa < float("inf"):
        raise ValueError(f"kappa must be a finite number >= 0, got {kappa!r}")
    size = _check_resize(resize, hh, ww)
    mix = _check_importance(importance)
    gen = generator(seed)
    limit = begin_attack(oracle, x, y, targeted, "l2", max_queries, "zoo", scores=True)

    device, dtype = x.device, x.dtype
    x = x.detach()
    flat_x = x.flatten(1)
    d = flat_x.shape[1]
    if size is None:  # the attack space is the image: w = x'
        space, p = None, d
        w = flat_x.clone()
    else:             # the attack space is delta (C x s_h x s_w): x' = clip(x + U delta)
        space = (_upsampling(size[0], hh, device, dtype), _upsampling(size[1], ww, device, dtype))
        p = ch * size[0] * size[1]
        w = torch.zeros(b, p, device=device, dtype=dtype)
    k = min(coords, p)
    shape = (ch, *size) if space is not None else None
    rows_per_call = max(_MIN_ROWS_PER_CALL, _VALUES_PER_CALL // d)
    best = flat_x.clone()
    best_l2 = torch.full((b,), float("inf"), device=device, dtype=dtype)
    search = ConstantSearch(c, b, dtype=torch.float64)  # on the CPU: some devices (MPS) have no float64
    start = oracle.queries.clone()
    share = (limit - start).clamp_min(0) // binary_search_steps
    seen_k = [False]  # the number of classes is checked against y at the first answer

    def image(wa: torch.Tensor, xa: torch.Tensor) -> torch.Tensor:
        """x' for attack-space points ``wa`` (n, P) of the originals ``xa`` (n, D), flat (n, D), unclipped."""
        if space is None:
            return wa
        return xa + _up(wa.view(-1, ch, *size), space).flatten(1)

    def ask(raw, base, pos, coord, step, act, ok_step) -> torch.Tensor:
        """Build and query the rows (point ``pos[r]`` moved by ``step[r]`` along ``coord[r]``), a few at a time,
        keeping the closest adversarial one per image; returns the margin ``f`` before clipping per row."""
        gaps = []
        for s in range(0, pos.shape[0], rows_per_call):
            sl = slice(s, s + rows_per_call)
            rows = _probes(raw, base, pos[sl], coord[sl], step[sl], space, shape)
            who = act[pos[sl]]
            logp = oracle(rows.view(-1, ch, hh, ww), owner=who.cpu(), log=True)
            if not seen_k[0]:  # the first answer tells the number of classes
                if int(y.max()) >= logp.shape[1]:
                    raise ValueError(f"y must hold class indices in [0, {logp.shape[1]}) (the oracle answers "
                                     f"{logp.shape[1]} classes), got {int(y.max())}")
                seen_k[0] = True
            yr = y[who]
            gap = _gap(logp, yr, targeted)
            gaps.append(gap)
            # adversarial by ZOO's criterion: the arg-max (as the oracle's trace) and the margin kappa
            pred = logp.argmax(1)
            fooled = (pred == yr if targeted else pred != yr) & (gap <= -kappa)
            if not bool(fooled.any()):
                continue
            hit = fooled.nonzero().flatten()
            who = who[hit]
            ok_step[who] = True
            keep_closest(best, best_l2, rows[hit], (rows[hit] - flat_x[who]).norm(dim=1), who)
        return torch.cat(gaps)

    per_iter = 2 * k + 1
    bar = tqdm(total=int((limit - start).clamp_min(0).max()) // per_iter, desc="ZOO", disable=not progress,
               leave=False)
    for step in range(binary_search_steps):
        stop = limit if step == binary_search_steps - 1 else start + (step + 1) * share
        m, v = torch.zeros_like(w), torch.zeros_like(w)
        t = torch.zeros_like(w)
        ok_step = torch.zeros(b, dtype=torch.bool, device=device)
        while True:
            # coordinates per image this iteration: k, or fewer where the step's budget is almost spent
            kk = ((stop - oracle.queries - 1) // 2).clamp(max=k)
            act_cpu = (kk >= 1).nonzero().flatten()
            if act_cpu.numel() == 0:
                break
            act, kk = act_cpu.to(device), kk[act_cpu].to(device)
            n = act.numel()
            valid = torch.arange(k, device=device) < kk[:, None]                      # (n, k)
            wa, xa = w[act], flat_x[act]
            col = _draw(wa, xa, space, shape or x.shape[1:], k, mix, gen)                 # (n, k)
            raw = image(wa, xa)                                                        # (n, D), unclipped
            base = raw.clamp(0.0, 1.0) if space is not None else raw
            # the rows: per image x' itself, then x' + h e_i for the k coordinates, then x' - h e_i
            sign = torch.cat([torch.zeros(n, 1, device=device, dtype=dtype),
                              torch.ones(n, k, device=device, dtype=dtype),
                              -torch.ones(n, k, device=device, dtype=dtype)], 1)          # (n, 1 + 2k)
            coord = torch.cat([col[:, :1], col, col], 1)
            keep = torch.cat([torch.ones(n, 1, dtype=torch.bool, device=device), valid, valid], 1)
            owner_pos = torch.arange(n, device=device)[:, None].expand_as(keep)[keep]
            gap = ask(raw, base, owner_pos, coord[keep], sign[keep] * h, act, ok_step)
            # the estimated gradient of ||x' - x||^2 + c f on the drawn coordinates
            f = torch.zeros(n, 1 + 2 * k, device=device, dtype=gap.dtype)
            f[keep] = gap.clamp_min(-kappa)
            fp, fm = f[:, 1:1 + k], f[:, 1 + k:]
            if space is None:
                xi = wa.gather(1, col)
                step_len = (xi + h).clamp(max=1.0) - (xi - h).clamp(min=0.0)        # one-sided at 0 and 1
                g_dist = 2 * (xi - xa.gather(1, col))
            else:
                step_len = torch.full_like(fp, 2 * h)
                inside = ((raw > 0) & (raw < 1)).to(dtype)
                g_dist = 2 * _up_t(((base - xa) * inside).view(-1, ch, hh, ww), space).flatten(1).gather(1, col)
            c_act = search.c[act_cpu].to(dtype).to(device)[:, None]
            g = g_dist + c_act * ((fp - fm) / step_len).to(dtype)
            # Adam on the drawn coordinates (only the valid ones: a short last iteration draws fewer)
            fi = (act[:, None] * p + col)[valid]
            g = g[valid]
            tf, mf, vf = t.view(-1), m.view(-1), v.view(-1)
            ti = tf[fi] + 1
            mi = BETA1 * mf[fi] + (1 - BETA1) * g
            vi = BETA2 * vf[fi] + (1 - BETA2) * g * g
            tf[fi], mf[fi], vf[fi] = ti, mi, vi
            new = w.view(-1)[fi] - lr * (mi / (1 - BETA1 ** ti)) / ((vi / (1 - BETA2 ** ti)).sqrt() + ADAM_EPS)
            w.view(-1)[fi] = new.clamp(0.0, 1.0) if space is None else new
            bar.update(1)
        # binary search on c (Carlini & Wagner): bisect after a success, else x10 until the first
        search.update(ok_step.cpu())
    bar.close()
    found = torch.isfinite(best_l2)
    last = image(w, flat_x).clamp(0.0, 1.0)
    out = torch.where(found[:, None], best, last)
    return out.view_as(x).detach()


def oracle_margin(oracle, x: torch.Tensor, y: torch.Tensor, owner: torch.Tensor | None = None,
                  targeted: bool = False) -> torch.Tensor:
    """The log-probability margin that ZOO's loss clips (Chen et al., 2017, eqs. 4-5), asked of a score oracle::

        untargeted:  f(x') = log p_y(x') - max_{j != y} log p_j(x')        (< 0: no longer classified as y)
        targeted:    f(x') = max_{j != t} log p_j(x') - log p_t(x')        (< 0: classified as the target t)

    Differences of log-probabilities are differences of logits, so this is C&W's logit margin, exactly.

    Args:
        oracle: an :class:`~course_lib.attacks.Oracle` with ``access="scores"``; every row of ``x`` is one query.
        x: the images to ask about ``(N, C, H, W)`` in ``[0, 1]``.
        y: LongTensor of labels (targets if ``targeted``): ``(N,)``, one per row, or ``(1,)`` for every row.
        owner: LongTensor ``(N,)``: which original image each row is a query for (as for the oracle); ``None``
            (default) lets the oracle count one query per row of its own images.
        targeted: the targeted margin (default ``False``).

    Returns:
        a float tensor ``(N,)`` on ``x``'s device, detached.
    """
    if getattr(oracle, "access", None) != "scores":
        raise ValueError("oracle_margin needs an Oracle with access='scores' (a label oracle gives no margin)")
    check_images(x)
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape not in ((1,), (x.shape[0],)):
        raise ValueError(f"y must be a LongTensor of shape (1,) or ({x.shape[0]},), got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    logp = oracle(x, owner=owner, log=True)
    labels = y.to(logp.device).expand(x.shape[0])
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= logp.shape[1]):
        raise ValueError(f"y must hold class indices in [0, {logp.shape[1]}), got {labels.tolist()}")
    return _gap(logp, labels, targeted)


# --------------------------------------------------------------------------- pieces
def _gap(logp: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """The log-probability margin that ZOO's f clips (their eqs. 4-5), per row: ``< 0`` when the attack succeeds
    (untargeted: ``log F_y - max_{i != y} log F_i``; targeted: ``max_{i != t} log F_i - log F_t``)."""
    own = logp.gather(1, y[:, None]).squeeze(1)
    other = logp.scatter(1, y[:, None], float("-inf")).amax(1)
    return other - own if targeted else own - other


def _upsampling(s: int, n: int, device, dtype) -> torch.Tensor:
    """The matrix ``(n, s)`` of 1-D linear upsampling from ``s`` to ``n`` samples as ``F.interpolate`` does it
    (``align_corners=False``): bilinear upsampling of an image is ``U_h delta U_w^T`` per channel."""
    eye = torch.eye(s, device=device, dtype=dtype)[:, None, :]                 # (s, 1, s): one basis vector per row
    return F.interpolate(eye, size=n, mode="linear", align_corners=False)[:, 0, :].T.contiguous()


def _up(delta: torch.Tensor, space) -> torch.Tensor:
    """``U delta``: (n, C, s_h, s_w) -> (n, C, H, W)."""
    uh, uw = space
    return torch.einsum("hs,ncst,wt->nchw", uh, delta, uw)


def _up_t(img: torch.Tensor, space) -> torch.Tensor:
    """``U^T img``: (n, C, H, W) -> (n, C, s_h, s_w), the adjoint of :func:`_up`."""
    uh, uw = space
    return torch.einsum("hs,nchw,wt->ncst", uh, img, uw)


def _probes(raw, base, pos, coord, step, space, shape) -> torch.Tensor:
    """The query rows (N, D): row ``r`` is image ``pos[r]``'s point moved by ``step[r]`` along attack-space
    coordinate ``coord[r]`` (a step of 0: the point itself), in ``[0, 1]``."""
    if space is None:
        rows = base[pos]
        r = torch.arange(rows.shape[0], device=rows.device)
        rows[r, coord] = (rows[r, coord] + step).clamp(0.0, 1.0)
        return rows
    uh, uw = space
    ch, sh, sw = shape
    c_i, rest = coord // (sh * sw), coord % (sh * sw)
    # U e_i is the outer product of a column of U_h and one of U_w, in channel c_i
    patch = (uh.T[rest // sw][:, :, None] * uw.T[rest % sw][:, None, :]) * step[:, None, None]   # (N, H, W)
    rows = raw[pos].view(-1, ch, uh.shape[0], uw.shape[0])
    rows[torch.arange(rows.shape[0], device=rows.device), c_i] += patch
    return rows.flatten(1).clamp_(0.0, 1.0)


def _coordinate_probs(pert: torch.Tensor, mix: float) -> torch.Tensor:
    """Importance sampling (as in the paper): per image, ``|pert|`` (n, C, S_h, S_w) max-pooled over each
    of 8 x 8 regions per channel, spread back over the region, normalised to sum 1, and mixed with the uniform
    distribution, ``mix * pooled + (1 - mix) / P``. Returns ``(n, P)``; uniform where ``pert`` is 0."""
    n, ch, sh, sw = pert.shape
    rh = torch.arange(sh, device=pert.device) * REGIONS // sh      # each row's region (regions of ~S/8 rows)
    rw = torch.arange(sw, device=pert.device) * REGIONS // sw
    region = (rh[:, None] * REGIONS + rw[None, :]).flatten()      # (S_h S_w,)
    mag = pert.abs().reshape(n, ch, -1)
    pooled = torch.zeros(n, ch, REGIONS * REGIONS, device=pert.device, dtype=pert.dtype)
    pooled = pooled.scatter_reduce(2, region.expand(n, ch, -1), mag, "amax", include_self=True)
    spread = pooled.gather(2, region.expand(n, ch, -1)).reshape(n, -1)
    total = spread.sum(1, keepdim=True)
    uniform = torch.full_like(spread, 1.0 / spread.shape[1])
    focused = torch.where(total > 0, spread / total.clamp_min(torch.finfo(spread.dtype).tiny), uniform)
    return mix * focused + (1 - mix) * uniform


def _draw(wa, xa, space, shape, k: int, mix: float, gen) -> torch.Tensor:
    """``k`` distinct attack-space coordinates per image (n, k): uniform, or by importance (``mix > 0``)."""
    n, p = wa.shape[0], wa.shape[1]
    if mix > 0:
        pert = (wa - xa if space is None else wa).view(n, *shape)
        return multinomial(_coordinate_probs(pert, mix), k, gen)
    # k distinct coordinates uniformly: the k largest of P uniform numbers (a random k-subset)
    return uniform((n, p), gen, wa.device).topk(k, 1, sorted=False).indices


def _check_resize(resize, hh: int, ww: int):
    if resize is None:
        return None
    size = (resize, resize) if isinstance(resize, int) and not isinstance(resize, bool) else resize
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)):
        raise ValueError("resize must be None, an int >= 1 or a pair of them (the attack space's side), "
                         f"got {resize!r}")
    if size[0] > hh or size[1] > ww:
        raise ValueError(f"resize {tuple(size)} must not exceed the image's size ({hh}, {ww})")
    return tuple(size)


def _check_importance(importance) -> float:
    if importance is False or importance is None:
        return 0.0
    if importance is True:
        return 0.5
    if isinstance(importance, (int, float)) and 0 < importance <= 1:
        return float(importance)
    raise ValueError(f"importance must be False, True or a weight in (0, 1], got {importance!r}")
