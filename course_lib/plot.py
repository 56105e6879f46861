"""Pictures the lessons use again and again: image grids, heat-map overlays, curves, top-k bars."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["to_numpy_image", "show_images", "show_heatmap", "outline_pixels", "plot_curves", "show_topk"]


def to_numpy_image(x: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` or ``(1, C, H, W)`` tensor in [0, 1] -> ``(H, W)`` or ``(H, W, 3)`` array for imshow."""
    x = x.detach().float().cpu()
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {x.shape[0]}")
        x = x[0]
    if x.dim() == 2:
        return x.numpy()
    if x.dim() != 3:
        raise ValueError(f"expected an image (C, H, W), got shape {tuple(x.shape)}")
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).clamp(0, 1).numpy()


def _name(i, class_names):
    i = int(i)
    return class_names[i] if class_names is not None and 0 <= i < len(class_names) else str(i)


def show_images(x: torch.Tensor, labels=None, preds=None, class_names=None, ncols: int = 8,
                title: str | None = None, size: float = 1.6, axes=None):
    """A grid of images; each titled with its label, or ``pred (label)`` in green/red when ``preds`` is given.

    Returns the matplotlib figure.
    """
    n = len(x)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    if axes is None:
        fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0)),
                                 squeeze=False)
        axes = axes.ravel()
    else:
        axes = np.asarray(axes).ravel()
        fig = axes[0].figure
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        img = to_numpy_image(x[i])
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        if preds is not None:
            text = _name(preds[i], class_names)
            color = "black"
            if labels is not None:
                ok = int(preds[i]) == int(labels[i])
                color = "tab:green" if ok else "tab:red"
                text = text if ok else f"{text}\n(true: {_name(labels[i], class_names)})"
            ax.set_title(text, fontsize=8, color=color)
        elif labels is not None:
            ax.set_title(_name(labels[i], class_names), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_heatmap(x: torch.Tensor, heat: torch.Tensor, alpha: float = 0.5, cmap: str = "jet", ax=None,
                 title: str | None = None, colorbar: bool = False, signed: bool = False,
                 clip_quantile: float | None = None):
    """Overlay one map ``heat`` (``(H, W)``) on the image ``x`` (``(C, H, W)`` or ``(1, C, H, W)``).

    ``signed=False`` (default): any range, rescaled to ``[0, 1]`` for display (``cmap``, default "jet"): for maps
    where only "how much" matters (saliency, Grad-CAM). ``signed=True``: not rescaled; a diverging map centred at 0
    (``cmap`` "RdBu_r" unless given: red raises the score, blue lowers it, white is 0) with the range
    ``[-max|heat|, max|heat|]``, on the image in grey: for attributions with a sign (IG, Shapley values, LIME).

    ``clip_quantile`` (default ``None``: no clipping), for display only: a photo's map has a few extreme values
    that would squeeze the rest into one colour, so values above the ``q``-quantile ``h_q`` of the map are drawn
    as ``h_q`` (``min(h, h_q)``; with ``signed=True`` the range becomes ``[-h_q, h_q]``, ``h_q`` the quantile of
    ``|h|``). ``clip_quantile=0.99`` clips at the 99th percentile.
    """
    img = to_numpy_image(x)
    h = heat.detach().float().cpu()
    while h.dim() > 2:
        if h.shape[0] != 1:
            raise ValueError(f"heat must be one map (H, W), got shape {tuple(heat.shape)}")
        h = h[0]
    h = h.numpy()
    if clip_quantile is not None:
        if not 0.0 < float(clip_quantile) <= 1.0:
            raise ValueError(f"clip_quantile must be in (0, 1], got {clip_quantile!r}")
        top = float(np.quantile(np.abs(h) if signed else h, float(clip_quantile)))
        h = np.clip(h, -top, top) if signed else np.minimum(h, top)
    if signed:
        cmap = "RdBu_r" if cmap == "jet" else cmap
        v = float(np.abs(h).max()) or 1.0
        lo, hi = -v, v
        img = img.mean(-1) if img.ndim == 3 else img  # colour would compete with red and blue
    else:
        lo, hi = float(h.min()), float(h.max())
        h = (h - lo) / (hi - lo) if hi > lo else np.zeros_like(h)
        lo, hi = 0.0, 1.0
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
    im = ax.imshow(h, cmap=cmap, alpha=alpha, vmin=lo, vmax=hi,
                   extent=(-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5))
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046)
    return ax


def outline_pixels(ax, top: int, left: int, size: int = 2, pad: int = 1, color: str = "white", **style):
    """Draw a dashed box around the ``size`` x ``size`` block of pixels whose top-left pixel is (``top``,
    ``left``) on an image axis (pixel ``(r, c)`` spans ``[c - 0.5, c + 0.5] x [r - 0.5, r + 0.5]``, as imshow
    draws it), ``pad`` pixels wider on each side so that the map under the block stays visible, e.g. the 2 x 2
    mark of ``course_lib.data.add_mark``: ``outline_pixels(ax, *MARK_POSITIONS[c])``. Returns the Rectangle."""
    from matplotlib.patches import Rectangle

    if size < 1 or pad < 0:
        raise ValueError(f"size must be >= 1 and pad >= 0, got size={size!r}, pad={pad!r}")
    style = {"fill": False, "lw": 1.2, "ls": "--", **style}
    box = Rectangle((left - 0.5 - pad, top - 0.5 - pad), size + 2 * pad, size + 2 * pad, edgecolor=color, **style)
    ax.add_patch(box)
    return box


def plot_curves(xs, curves: dict, xlabel: str = "severity", ylabel: str = "accuracy", title: str | None = None,
                ax=None, ylim=(0, 1.02), chance: float | None = None, baselines: dict | None = None):
    """One line per entry of ``curves`` (``{label: [y for each x]}``), e.g. accuracy vs severity or eps.

    ``baselines`` (optional, same form, e.g. the accuracies of :func:`course_lib.attacks.baseline_sweep`): drawn
    dashed with cross markers beside the curves, labelled "blind: ...", so that an attack's curve is read against
    what a perturbation chosen without the model achieves at the same x."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    for label, ys in curves.items():
        ax.plot(list(xs), list(ys), marker="o", ms=3, label=label)
    for k, (label, ys) in enumerate((baselines or {}).items()):
        ys = ys.tolist() if isinstance(ys, torch.Tensor) else list(ys)
        ax.plot(list(xs), ys, ls="--", marker="x", ms=4, lw=1.1, color=f"C{len(curves) + k}",
                label=f"blind: {label}")
    if chance is not None:
        ax.axhline(chance, color="gray", ls=":", lw=1, label="chance")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def topk_bars(probs: torch.Tensor, class_names=None, k: int = 5, ax=None, title: str | None = None,
              true: int | None = None):
    """Horizontal bars of the ``k`` largest of ``probs`` ``(K,)`` (one image's softmax), best on top; the bar of
    class ``true`` (if given and shown) in green."""
    probs = probs.detach().cpu()
    k = min(k, probs.numel())  # a 10-class model has no top-20
    p, idx = probs.topk(k)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 0.35 * k + 0.6))
    colors = ["tab:green" if true is not None and int(i) == int(true) else "tab:blue" for i in idx]
    ax.barh(range(k)[::-1], p.numpy(), color=colors)
    ax.set_yticks(range(k)[::-1], [_name(i, class_names) for i in idx], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


@torch.no_grad()
def show_topk(model, x: torch.Tensor, class_names=None, k: int = 5, ax=None, title: str | None = None,
              true: int | None = None):
    """Horizontal bars of the model's top-``k`` softmax probabilities for one image ``x`` ``(1, C, H, W)``;
    the true class ``true`` (optional) in green."""
    return topk_bars(torch.softmax(model(x), dim=1)[0], class_names, k=k, ax=ax, title=title, true=true)


# --------------------------------------------------------------------------- black-box attacks (lesson 09)
def plane_coordinates(points: torch.Tensor, origin: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Coordinates ``(N, 2)`` of ``points`` in the plane through ``origin`` spanned by ``a - origin`` and
    ``b - origin`` (e.g. the original image, the Boundary attack's start and its current point), by Gram-Schmidt::

        e1 = (a - o) / ||a - o||,    e2 = r / ||r||  with  r = (b - o) - <b - o, e1> e1
        coordinates of p:  (<p - o, e1>, <p - o, e2>)

    so ``origin`` is at ``(0, 0)``, ``a`` on the positive first axis at ``(||a - o||, 0)`` and ``b`` in the upper
    half plane. A point off the plane lands where its orthogonal projection onto the plane lies (distances within
    the plane are exact; a point's distance to ``origin`` can only shrink).

    Args:
        points: ``(N, ...)``: N images (or vectors) of the shape of ``origin``, or one of that shape.
        origin, a, b: one image (or vector) each, of the same shape; ``a - origin`` and ``b - origin`` must not be
            parallel (a ``ValueError`` says so).
    Returns:
        float64 ``(N, 2)`` on the CPU.
    """
    o = origin.detach().cpu().double().flatten()
    pts = points.detach().cpu().double().reshape(-1, o.numel())
    u, v = a.detach().cpu().double().flatten(), b.detach().cpu().double().flatten()
    if u.numel() != o.numel() or v.numel() != o.numel():
        raise ValueError(f"origin, a and b must have the same number of values, got {o.numel()}, {u.numel()}, "
                         f"{v.numel()}")
    u, v = u - o, v - o
    nu = u.norm()
    if nu == 0:
        raise ValueError("a equals origin: the first axis a - origin is undefined")
    e1 = u / nu
    r = v - (v @ e1) * e1
    if r.norm() <= 1e-12 * max(float(v.norm()), 1.0):
        raise ValueError("b - origin is parallel to a - origin: the two points span no plane")
    e2 = r / r.norm()
    rel = pts - o
    return torch.stack([rel @ e1, rel @ e2], dim=1)


def plot_query_curves(curves: dict, ax=None, title: str | None = None, within: float | None = None,
                      reference: dict | None = None, xlabel: str = "queries per image",
                      ylabel: str | None = None, ylim=None):
    """Query-vs-distortion curves of black-box attacks, one line per entry, on a log x-axis.

    Args:
        curves: ``{label: (queries, distances)}``, as ``Oracle.trace()`` returns them: ``queries`` ``(Q,)`` and
            ``distances`` ``(n, Q)`` (the best distance of each of n images after each number of queries, ``inf``
            where none was adversarial yet) or ``(Q,)`` (already one value per count).
        within: ``None`` (default): plot the **median** distance over the images (``torch.median``: for an even
            number of images the lower of the two middle values; ``inf`` counts as the largest, so the median is
            ``inf``, and not drawn, until half the images are fooled); a number ``eps``:
            plot the **fraction** of images with distance ``<= eps`` instead (the success rate at budget eps).
        reference: ``{label: value}`` drawn as dashed horizontal lines (e.g. a white-box attack's median distance,
            or a zero-query baseline's success rate).
        ax, title, xlabel, ylabel, ylim: the usual; ``ylabel`` defaults to what is plotted.
    Returns:
        the axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8))
    for label, (q, d) in curves.items():
        q = torch.as_tensor(q).detach().cpu().double().flatten()
        d = torch.as_tensor(d).detach().cpu().double()
        if d.dim() == 1:
            d = d[None]
        if d.shape[-1] != q.numel():
            raise ValueError(f"curve {label!r}: {q.numel()} query counts but distances of shape {tuple(d.shape)}")
        if within is None:
            # torch.median: for an even n the lower of the two middle values (as tensor.median() in the lessons)
            y = d.median(dim=0).values
            y = torch.where(torch.isfinite(y), y, torch.full_like(y, float("nan")))
        else:
            y = (d <= within).double().mean(0)
        ax.plot(q.numpy(), y.numpy(), label=label)
    for k, (label, value) in enumerate((reference or {}).items()):
        ax.axhline(float(value), ls="--", lw=1.2, color=f"C{len(curves) + k}", label=label)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel or ("median distance over the images" if within is None
                             else f"fraction of images fooled within {within:g}"))
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return ax


__all__ += ["plane_coordinates", "plot_query_curves"]


def plot_reliability(cal: dict, ax=None, label: str | None = None, title: str | None = None, color=None):
    """A reliability diagram (Guo et al., 2017) from :func:`course_lib.training.calibration`'s result: per
    confidence bin, the accuracy (bars) against the diagonal of perfect calibration; a bar below the diagonal is
    over-confidence. Bins without predictions are left empty; the share of predictions in each bin is written
    above its bar and the expected calibration error in the legend. Returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    edges = cal["edges"].double()
    width = float(edges[1] - edges[0])
    acc, count = cal["accuracy"].double(), cal["count"]
    filled = count > 0
    share = count.double() / max(int(count.sum()), 1)
    ax.bar(edges[:-1][filled].numpy(), acc[filled].numpy(), width=width, align="edge", alpha=0.6,
           edgecolor="black", lw=0.6, color=color,
           label=f"{label + ': ' if label else ''}accuracy per bin (ECE {cal['ece']:.3f})")
    for left, a, s in zip(edges[:-1][filled].tolist(), acc[filled].tolist(), share[filled].tolist(), strict=True):
        ax.text(left + width / 2, min(a, 0.93) + 0.02, f"{s:.0%}", ha="center", fontsize=6)
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence (largest softmax probability)")
    ax.set_ylabel("accuracy of the predictions in the bin")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    return ax


__all__ += ["plot_reliability"]


def outline_segments(x: torch.Tensor, segments: torch.Tensor, color=(1, 1, 0),
                     upscale: int | None = None) -> np.ndarray:
    """One image ``(1, C, H, W)`` or ``(C, H, W)`` as an RGB array ``(H', W', 3)`` with the borders between its
    regions (``segments`` ``(H, W)``, e.g. the players of lesson 05) drawn in ``color`` (default yellow), by
    ``skimage.segmentation.mark_boundaries``. Small images are enlarged first, each pixel becoming an
    ``upscale x upscale`` block (default: 8 when the image is narrower than 100 pixels, else 1), so borders stay
    thin; grey images are shown as grey RGB."""
    from skimage.segmentation import mark_boundaries

    img = x[0] if x.dim() == 4 else x
    if img.dim() != 3 or tuple(segments.shape) != tuple(img.shape[-2:]):
        raise ValueError(f"x must be one image (1, C, H, W) and segments (H, W) of its size, got {tuple(x.shape)} "
                         f"and {tuple(segments.shape)}")
    img, seg = img.detach().cpu().double(), segments.detach().cpu()
    k = upscale if upscale is not None else (8 if img.shape[-1] < 100 else 1)
    if k > 1:
        img, seg = (t.repeat_interleave(k, -1).repeat_interleave(k, -2) for t in (img, seg))
    return mark_boundaries(img.permute(1, 2, 0).expand(-1, -1, 3).numpy(), seg.numpy(), color=color)


def annotate_regions(ax, values, segments: torch.Tensor, fmt: str = "{:.2f}", fontsize: int = 8):
    """Write ``values[i]`` at the centre (mean pixel position) of region ``i`` of ``segments`` ``(H, W)`` on an
    image axis, on a light box: the numbers behind a per-region heat map. Returns the list of Text objects."""
    values = torch.as_tensor(values).detach().cpu().flatten()
    seg = segments.detach().cpu()
    if int(seg.max()) + 1 != values.numel():
        raise ValueError(f"one value per region: segments has {int(seg.max()) + 1} regions, got {values.numel()} "
                         "values")
    texts = []
    for i, value in enumerate(values.tolist()):
        rows, cols = (seg == i).nonzero(as_tuple=True)
        texts.append(ax.text(float(cols.float().mean()), float(rows.float().mean()), fmt.format(value),
                             ha="center", va="center", fontsize=fontsize,
                             bbox=dict(facecolor="white", alpha=0.7, lw=0, pad=1)))
    return texts


__all__ += ["outline_segments", "annotate_regions"]


def plot_roc(curves: dict, ax=None, title: str | None = None, fpr_mark: float | None = 0.05):
    """ROC curves, one per entry of ``curves`` (``{label: (fpr, tpr, auc)}``, as :func:`course_lib.defenses.roc`
    returns them), with the chance diagonal and, if ``fpr_mark`` is given, a vertical line at that false-positive
    rate (where a calibrated detector operates). The legend gives each AUC."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    for label, (fpr, tpr, auc) in curves.items():
        f = fpr.cpu().numpy() if isinstance(fpr, torch.Tensor) else np.asarray(fpr)
        t = tpr.cpu().numpy() if isinstance(tpr, torch.Tensor) else np.asarray(tpr)
        ax.step(f, t, where="post", label=f"{label} (AUC {auc:.2f})")
    ax.plot([0, 1], [0, 1], color="gray", ls=":", lw=1, label="chance")
    if fpr_mark is not None:
        ax.axvline(fpr_mark, color="k", lw=0.8, ls="--")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("false-positive rate (clean flagged)")
    ax.set_ylabel("true-positive rate (adversarial flagged)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return ax
__all__ += ["plot_roc"]
