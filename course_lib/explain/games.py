"""A model and an image as a cooperative game: the players are image regions, a coalition keeps its regions.

Shapley values and LIME share one idea. Split the image into ``n`` regions (superpixels or square patches), the
*players*. A *coalition* ``S`` is a subset of the players, written as a mask ``z`` in ``{0, 1}^n``. The *value*
of ``S`` is the model's score for the target class on the image in which the regions of ``S`` are kept and all
others are replaced by a baseline (black, grey, a blurred copy):

    v(S) = f_t( z_S * x + (1 - z_S) * b ),    z_S = 1 on the pixels of the regions in S, 0 elsewhere.

``v(N)`` is the score of the original image, ``v(∅)`` that of the baseline. An explanation method asks how much
each player contributes to ``v(N) - v(∅)``: :mod:`.shapley` answers with Shapley values, :mod:`.lime` with the
weights of a local linear model. Both take any *value function* ``value(masks) -> (K,)`` where ``masks`` is a
bool tensor ``(K, n)`` (one coalition per row), so they work on the hand-made games of the tests too
(:func:`as_game`).

The model is expensive, the estimators are cheap: every game counts its evaluations (``game.evaluations``, one
per coalition), so a budget of ``n_evals`` model evaluations can be checked, not only promised. (This module holds
the games; what the estimators share, evaluating a game in chunks and their float64 arithmetic, is in
:mod:`._estimators`, next to them.)
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._validate import check_in
from ._common import check_batch_size, prepare_target

__all__ = ["Game", "ImageGame", "as_game", "image_game", "superpixel_segments", "patch_segments",
           "all_coalitions", "coalition", "coalition_table", "lookup_game", "region_explainer"]


def check_masks(masks, n_players: int) -> torch.Tensor:
    """``masks`` as a bool tensor ``(K, n_players)``; bool or 0/1 tensors are accepted, anything else is refused."""
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"masks must be a bool tensor of shape (K, {n_players}), got {type(masks).__name__}")
    if masks.dim() != 2 or masks.shape[1] != n_players:
        hint = " (for one coalition use masks[None])" if masks.dim() == 1 else ""
        raise ValueError(f"masks must have shape (K, {n_players}) (one coalition of the {n_players} players per "
                         f"row), got shape {tuple(masks.shape)}{hint}")
    if masks.dtype == torch.bool:
        return masks
    if masks.is_complex() or not ((masks == 0) | (masks == 1)).all():
        raise ValueError(f"masks must be bool, or hold only the values 0 and 1; got dtype {masks.dtype} "
                         "with other values")
    return masks != 0


class Game:
    """A cooperative game over ``n_players`` players that counts how often it was evaluated.

    ``game(masks)`` with ``masks`` a bool tensor ``(K, n_players)`` returns the values ``(K,)`` of the K
    coalitions (row ``k`` keeps the players where ``masks[k]`` is True) and adds K to ``game.evaluations``.
    Subclasses implement ``_evaluate(masks)`` on validated bool masks.
    """

    def __init__(self, n_players: int):
        if isinstance(n_players, bool) or not isinstance(n_players, int) or n_players < 1:
            raise ValueError(f"n_players must be a positive int, got {n_players!r}")
        self.n_players = n_players
        self.evaluations = 0

    def __call__(self, masks) -> torch.Tensor:
        masks = check_masks(masks, self.n_players)
        out = self._evaluate(masks)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (masks.shape[0],):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"the value function must return a tensor of shape ({masks.shape[0]},), one value "
                             f"per coalition, got {shape}")
        self.evaluations += masks.shape[0]
        return out

    def _evaluate(self, masks: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(n_players={self.n_players}, evaluations={self.evaluations})"


class _FunctionGame(Game):
    def __init__(self, fn, n_players):
        super().__init__(n_players)
        self.fn = fn

    def _evaluate(self, masks):
        return self.fn(masks)


def as_game(fn, n_players: int) -> Game:
    """Wrap a plain function ``fn(masks: bool (K, n)) -> (K,)`` as a :class:`Game`: masks are validated,
    evaluations counted in ``.evaluations``. Handy for hand-made games, e.g. an additive game
    ``as_game(lambda m: m.double() @ c, len(c))``."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    return _FunctionGame(fn, n_players)


class ImageGame(Game):
    """The game of :func:`image_game`: ``v(S)`` = the model's target score with the segments outside ``S`` set
    to the baseline. Attributes: ``model``, ``x`` (1,C,H,W), ``segments`` (H,W), ``baseline`` (1,C,H,W),
    ``target`` (int), ``output``, ``batch_size``, ``n_players``, ``evaluations``."""

    def __init__(self, model, x, target, segments, baseline, output, batch_size):
        self.target = int(target)
        self.model = model
        # private copies: a caller who later edits x or segments in place must not change the game
        self.x = x.detach().clone()
        self.segments = segments.clone()
        self.baseline = baseline
        self.output = output
        self.batch_size = batch_size
        super().__init__(int(segments.max()) + 1)

    def images(self, masks) -> torch.Tensor:
        """The images ``(K, C, H, W)`` the model sees for ``masks`` (for pictures; not counted as evaluations)."""
        masks = check_masks(masks, self.n_players).to(self.x.device)
        keep = masks.index_select(1, self.segments.flatten()).view(-1, *self.segments.shape)   # (K, H, W)
        # where, not a blend, so kept pixels are bit-identical to x and removed ones to the baseline
        return torch.where(keep[:, None], self.x, self.baseline)

    def _evaluate(self, masks):
        if masks.shape[0] == 0:
            return self.x.new_zeros(0)
        masks = masks.to(self.x.device)
        scores = []
        with torch.no_grad():
            for chunk in masks.split(self.batch_size):
                logits = self.model(self.images(chunk))
                if self.output == "probability":
                    logits = logits.softmax(1)
                scores.append(logits[:, self.target])
        return torch.cat(scores)


def check_segments(segments, size: tuple[int, int], device) -> torch.Tensor:
    """``segments`` as a LongTensor ``(H, W)`` on ``device`` whose labels are exactly ``0, ..., n-1``."""
    if isinstance(segments, np.ndarray):
        segments = torch.from_numpy(segments)
    if not isinstance(segments, torch.Tensor):
        raise TypeError(f"segments must be a LongTensor of shape {tuple(size)}, got {type(segments).__name__}")
    if segments.dtype == torch.bool or segments.is_floating_point() or segments.is_complex():
        raise TypeError(f"segments must hold integer labels 0..n-1 (dtype torch.long), got dtype {segments.dtype}")
    if tuple(segments.shape) != tuple(size):
        raise ValueError(f"segments must have shape (H, W) = {tuple(size)} like the image, "
                         f"got shape {tuple(segments.shape)}")
    segments = segments.to(device=device, dtype=torch.long)
    labels = torch.unique(segments)
    n = int(labels.max()) + 1
    if int(labels.min()) < 0 or len(labels) != n:
        missing = sorted(set(range(n)) - set(labels.tolist()))[:10]
        raise ValueError(f"segments must use every label 0..n-1 exactly (n = number of players); got labels in "
                         f"[{int(labels.min())}, {n - 1}] with {len(labels)} distinct values"
                         + (f", missing e.g. {missing}" if missing else "")
                         + " (relabel with torch.unique(segments, return_inverse=True)[1])")
    return segments


def image_game(model: nn.Module, x: torch.Tensor, target, segments, baseline=0.0, *, output: str = "logit",
               batch_size: int | None = None) -> ImageGame:
    """Turn a model and one image into a cooperative game over the image's segments.

    ``value = image_game(model, x, target, segments, baseline)``; ``value(masks)`` for a bool tensor
    ``masks`` of shape ``(K, n)`` returns the ``(K,)`` scores

        v(S_k) = f_target( where(z_k, x, baseline) ),   z_k = masks[k, segments]   (pixel kept iff its segment is),

    so the all-ones mask gives ``f_target(x)`` and the all-zeros mask ``f_target(baseline)``. The model runs in
    batches of ``batch_size`` under ``torch.no_grad``; ``value.evaluations`` counts the coalitions evaluated
    (the forward pass that resolves ``target=None`` is not counted). Values come back detached, on ``x``'s
    device, in the model's dtype; the estimators in :mod:`.shapley` and :mod:`.lime` move them to CPU float64.
    (The game view of attributions: Lundberg & Lee, NeurIPS 2017; Ribeiro et al., KDD 2016.)

    Args:
        model: classifier mapping ``[0, 1]`` images to logits, in eval mode.
        x: one image ``(1, C, H, W)`` in ``[0, 1]``.
        target: class index (int or one-element LongTensor), or None for the class the model predicts for x.
        segments: LongTensor ``(H, W)`` with labels ``0..n-1``, each used: pixel ``(h, w)`` belongs to player
            ``segments[h, w]``. See :func:`superpixel_segments` and :func:`patch_segments`.
        baseline: what removed segments become: a float in ``[0, 1]`` (default 0.0 = black) or a tensor
            broadcastable to ``x`` with values in ``[0, 1]`` (e.g. a blurred copy of x, or the per-channel mean).
        output: ``"logit"`` (default) or ``"probability"`` (softmax of the logits) of the target class.
        batch_size: coalitions per forward pass; ``None`` (default) = about 2^20 input values (1,337 digits,
            6 photos at 224x224: on a CPU big images are faster per image in small batches).
    """
    check_in(output, {"logit", "probability"}, "output")
    target_t = prepare_target(model, x, target)
    batch_size = check_batch_size(batch_size, x)
    if x.shape[0] != 1:
        raise ValueError(f"image_game explains one image: x must have shape (1, C, H, W), got batch size "
                         f"{x.shape[0]} (use x[i:i+1] and build one game per image)")
    if isinstance(target, torch.Tensor) and target.numel() != 1:
        raise ValueError(f"target must be one class index for the one image, got shape {tuple(target.shape)}")
    segments = check_segments(segments, x.shape[-2:], x.device)
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float, torch.Tensor)):
        raise TypeError(f"baseline must be a float or a tensor broadcastable to x, got {type(baseline).__name__}")
    b = torch.as_tensor(baseline).detach().to(x.dtype).to(x.device)  # dtype first: MPS has no float64
    try:
        shape = torch.broadcast_shapes(b.shape, x.shape)
    except RuntimeError:
        shape = None
    if shape != x.shape:
        raise ValueError(f"baseline must be broadcastable to x's shape {tuple(x.shape)}, got shape {tuple(b.shape)}")
    if not torch.isfinite(b).all() or float(b.min()) < 0 or float(b.max()) > 1:
        raise ValueError(f"baseline must hold values in [0, 1] like the images, got values in "
                         f"[{float(b.min()):.4g}, {float(b.max()):.4g}]")
    b = b.expand(x.shape).clone()
    return ImageGame(model, x, int(target_t[0]), segments, b, output, batch_size)


def _one_image(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be an image tensor (1, C, H, W) or (C, H, W), got {type(x).__name__}")
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"{name} must be one image (1, C, H, W) or (C, H, W), got batch size {x.shape[0]}")
        x = x[0]
    if x.dim() != 3:
        raise ValueError(f"{name} must have shape (1, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    return x


def superpixel_segments(x: torch.Tensor, n_segments: int = 50, compactness: float | None = None,
                        sigma: float = 0.0) -> torch.Tensor:
    """SLIC superpixels (Achanta et al., TPAMI 2012) of one image, as players for :func:`image_game`.

    SLIC is k-means on (colour, position) started from a regular grid: each pixel joins the nearest of about
    ``n_segments`` centres under ``d = d_colour^2 + (d_xy / S)^2 m^2`` (``S`` the grid step, ``m`` the
    compactness), so regions follow edges. Deterministic: no seed needed.

    Args:
        x: one image ``(1, C, H, W)`` or ``(C, H, W)`` in ``[0, 1]``; 1 channel (grey) or more; 3 channels are
            taken as RGB and clustered in CIELAB as scikit-image does.
        n_segments: about how many superpixels (SLIC may return fewer or a few more; default 50).
        compactness: ``m`` above: larger gives squarer regions. None (default) means 10 for RGB (CIELAB spans
            0..100) and 0.1 otherwise (values span 0..1, so the same balance of colour and space).
        sigma: Gaussian smoothing before clustering, in pixels (default 0).

    Returns:
        LongTensor ``(H, W)`` on ``x``'s device with labels ``0..n-1``, each label used (renumbered after SLIC).
    """
    from skimage.segmentation import slic

    img = _one_image(x)
    if not img.is_floating_point() or not torch.isfinite(img).all() or img.min() < 0 or img.max() > 1:
        raise ValueError("x must be a float image with values in [0, 1]")
    if isinstance(n_segments, bool) or not isinstance(n_segments, int) or n_segments < 1:
        raise ValueError(f"n_segments must be a positive int, got {n_segments!r}")
    arr = img.detach().cpu().double().numpy()
    rgb = arr.shape[0] == 3
    if compactness is None:
        compactness = 10.0 if rgb else 0.1
    if arr.shape[0] == 1:
        labels = slic(arr[0], n_segments=n_segments, compactness=compactness, sigma=sigma, start_label=0,
                      channel_axis=None)
    else:
        labels = slic(np.moveaxis(arr, 0, -1), n_segments=n_segments, compactness=compactness, sigma=sigma,
                      start_label=0, channel_axis=-1, convert2lab=rgb)
    # SLIC may skip labels after merging small regions: renumber to 0..n-1 so that every label is a player
    contiguous = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)
    return torch.as_tensor(contiguous, dtype=torch.long, device=img.device)


def patch_segments(x_or_size, patch, *, device=None) -> torch.Tensor:
    """A regular grid of ``patch x patch`` squares as players, labelled row by row (row-major).

    Pixel ``(h, w)`` gets label ``(h // ph) * ceil(W / pw) + w // pw``; where ``H`` or ``W`` is not a multiple
    of the patch, the last row/column of patches is narrower. E.g. 28x28 with ``patch=4`` gives 49 players,
    with ``patch=(10, 7)`` a 3x4 grid of 12 players.

    Args:
        x_or_size: an image tensor (its last two dimensions are ``H, W``), a pair ``(H, W)`` or an int ``H = W``.
        patch: patch side in pixels, an int or a pair ``(ph, pw)``.
        device: where the result lives; default ``x``'s device for a tensor, else the CPU.

    Returns:
        LongTensor ``(H, W)`` with labels ``0..n-1``, ``n = ceil(H/ph) * ceil(W/pw)``.
    """
    if isinstance(x_or_size, torch.Tensor):
        if x_or_size.dim() < 2:
            raise ValueError(f"x must have at least 2 dimensions (…, H, W), got shape {tuple(x_or_size.shape)}")
        (h, w), device = x_or_size.shape[-2:], device or x_or_size.device
    elif isinstance(x_or_size, int) and not isinstance(x_or_size, bool):
        h = w = x_or_size
    elif isinstance(x_or_size, (tuple, list)) and len(x_or_size) == 2:
        h, w = x_or_size
    else:
        raise TypeError(f"x_or_size must be an image tensor, an int or a pair (H, W), got {x_or_size!r}")
    ph, pw = (patch, patch) if isinstance(patch, int) and not isinstance(patch, bool) else tuple(patch)
    for name, v in (("H", h), ("W", w), ("patch", ph), ("patch", pw)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    cols = -(-w // pw)
    rows = torch.arange(h, device=device) // ph
    return rows[:, None] * cols + (torch.arange(w, device=device) // pw)[None, :]


# --------------------------------------------------------------------------- tables of games and explainers
MAX_TABLE_PLAYERS = 20


def all_coalitions(n_players: int) -> torch.Tensor:
    """All ``2^n`` coalitions as a bool tensor ``(2^n, n)`` in binary order: row ``k`` holds player ``i`` iff bit
    ``i`` of ``k`` is set, so row 0 is ∅ and row ``2^n - 1`` is N."""
    if isinstance(n_players, bool) or not isinstance(n_players, int) or not 1 <= n_players <= MAX_TABLE_PLAYERS:
        raise ValueError(f"n_players must be an int in 1..{MAX_TABLE_PLAYERS} (2^n coalitions), got {n_players!r}")
    return (torch.arange(2 ** n_players)[:, None] >> torch.arange(n_players)) & 1 == 1


def coalition(n_players: int, players) -> torch.Tensor:
    """One coalition as a bool mask ``(1, n_players)``: True for the listed ``players`` (ints or a LongTensor)."""
    if isinstance(n_players, bool) or not isinstance(n_players, int) or n_players < 1:
        raise ValueError(f"n_players must be a positive int, got {n_players!r}")
    idx = torch.as_tensor(players, dtype=torch.long).flatten().cpu()
    if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= n_players):
        raise ValueError(f"players must be in 0..{n_players - 1}, got {idx.tolist()}")
    mask = torch.zeros(1, n_players, dtype=torch.bool)
    mask[0, idx] = True
    return mask


def coalition_table(game) -> torch.Tensor:
    """``v(S)`` for all ``2^n`` coalitions of a game (one evaluation each), float64 on the CPU, indexed like
    :func:`all_coalitions`: ``table[k]`` is the value of the coalition whose bit ``i`` is set iff player ``i`` is
    in, so ``table[0] = v(∅)`` and ``table[-1] = v(N)``. Evaluate once, then explore with :func:`lookup_game`."""
    n = getattr(game, "n_players", None)
    if not callable(game) or not isinstance(n, int):
        raise TypeError("game must be a Game with n_players (see image_game and as_game)")
    return game(all_coalitions(n)).detach().double().cpu()


def lookup_game(table: torch.Tensor) -> Game:
    """The game whose value of coalition ``S`` is ``table[sum_{i in S} 2^i]``: a table of :func:`coalition_table`
    played again without the model (the estimators cannot tell the difference), counting its evaluations."""
    if not isinstance(table, torch.Tensor) or table.dim() != 1:
        raise ValueError("table must be a 1-D tensor of 2^n values")
    n = int(table.numel()).bit_length() - 1
    if n < 1 or table.numel() != 2 ** n:
        raise ValueError(f"table must hold 2^n values (n >= 1), got {table.numel()}")
    table = table.detach().clone()
    bits = 1 << torch.arange(n)
    return as_game(lambda masks: table[(masks.long().cpu() * bits).sum(1)], n)


def region_explainer(estimate, segments: torch.Tensor, baseline=0.0):
    """An ``explain(model, x, target) -> (B, H, W)`` function from a game estimator: for each image, the game
    ``image_game(model, x[i:i+1], target[i], segments, baseline)``, its players' values ``estimate(game)`` ``(n,)``
    painted on their pixels (``values[segments]``). Lets the Shapley and LIME estimators be measured like any
    pixel map (lesson 06)."""
    if not callable(estimate):
        raise TypeError(f"estimate must be a callable estimate(game) -> (n,), got {type(estimate).__name__}")

    def explain(model, x, target):
        maps = []
        for i in range(len(x)):
            game = image_game(model, x[i:i + 1], target[i], segments, baseline)
            values = estimate(game).to(x.device)
            maps.append(values[game.segments])
        return torch.stack(maps)
    return explain
