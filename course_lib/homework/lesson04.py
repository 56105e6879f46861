"""Checks for lesson 04 (CAM, Grad-CAM, occlusion, and a model that learned a shortcut)."""
from __future__ import annotations

import torch
from torch import nn

from ._common import _close, _ok, _require

__all__ = ["check_grad_cam_by_hand", "check_occlusion_drop", "check_worst_window", "QUESTIONS"]


def _fashion(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    from ..data import load_fashion_mnist

    x, y = load_fashion_mnist("test")
    return x[:n].clone(), y[:n].clone()


def _grad_cam_inputs(model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: str = "features"):
    """The two ingredients of Grad-CAM for ``layer``: its activations ``A`` and ``dA = d y_target / d A``,
    both ``(B, K, h, w)``, detached (:func:`course_lib.explain.grad_cam_ingredients`)."""
    from ..explain.cam import grad_cam_ingredients

    return grad_cam_ingredients(model, x, target, layer)


def check_grad_cam_by_hand(fn) -> None:
    """Lesson 04: ``fn(A, dA)`` (activations and their gradients, ``(B, K, h, w)``) must return the Grad-CAM map
    ``ReLU(sum_k alpha_k A^k)`` with ``alpha_k = (1/Z) sum_ij dA^k_ij``, shape ``(B, h, w)``, not upsampled.

    Compared, raw (so the scale matters), with ``course_lib.explain.grad_cam(..., upsample=False)`` on
    fashion_cnn, for the predicted class and for an unlikely class (whose map has large negative parts).
    Rejects: summing the gradients instead of averaging them (a map Z = h*w times too large, which a display
    rescaled to [0, 1] would hide), forgetting the ReLU, averaging |gradients|, weighting each position by its
    own gradient (no pooling), averaging over channels instead of positions, upsampling.
    """
    from ..models import load_model

    model = load_model("fashion_cnn")
    x, _ = _fashion()
    with torch.no_grad():
        logits = model(x)
    # three images explained for their predicted class, three for their least likely class
    target = torch.cat([logits[:3].argmax(1), logits[3:].argmin(1)])
    # the last feature maps (as in the paper) and an earlier, signed layer (batch norm before a ReLU): there the
    # gradient varies over positions, so skipping the pooling or the ReLU shows
    for layer in ("features", "features.bn4"):
        _check_grad_cam_layer(fn, model, x, target, layer)
    _ok("alpha_k is the spatial mean of the gradient (1/Z sum_ij), and the ReLU keeps the positions whose "
        "features raise the class score; checked on the last feature maps (7x7) and on features.bn4 (14x14).")


def _check_grad_cam_layer(fn, model, x, target, layer) -> None:
    from ..explain import grad_cam

    a, da = _grad_cam_inputs(model, x, target, layer)
    a_in, da_in = a.clone(), da.clone()
    out = fn(a_in, da_in)
    _require(isinstance(out, torch.Tensor), f"return a torch.Tensor, got {type(out).__name__}")
    _require(torch.equal(a_in, a) and torch.equal(da_in, da), "your function changed A or dA in place: work on "
             "new tensors")
    b, k, h, w = a.shape
    _require(tuple(out.shape) != (b, 28, 28), "return the map at the layer's resolution (B, h, w) = "
             f"{(b, h, w)}: the upsampling to the image size comes afterwards, for display")
    _require(tuple(out.shape) == (b, h, w), f"the map has one value per position of the layer: shape {(b, h, w)}, "
             f"got {tuple(out.shape)} (sum over the channel axis k = dim 1 after weighting)")
    out = out.detach()
    expected = grad_cam(model, x, target, layer=layer, upsample=False)
    if _close(out, expected):
        return
    z = h * w
    candidates = [
        (z * expected, f"your map is exactly Z = h*w = {z} times too large (layer {layer}): you summed the "
         "gradient over the positions instead of averaging it (alpha_k = (1/Z) sum_ij dA^k_ij). The shape of the "
         "map is the same, so a plot rescaled to [0, 1] hides the mistake; raw values, compared between images "
         "or layers, do not"),
        ((da.mean((2, 3), keepdim=True) * a).sum(1), "the map has negative values: apply the ReLU, "
         "L = ReLU(sum_k alpha_k A^k), to keep only the positions whose features raise the class score"),
        ((da.abs().mean((2, 3), keepdim=True) * a).sum(1).clamp_min(0), "you averaged |dA|: alpha_k keeps the "
         "sign of the gradient, so a feature map that lowers the class score gets a negative weight"),
        ((da * a).sum(1).clamp_min(0), f"you weighted each position by its own gradient (dA * A): Grad-CAM first "
         f"averages the gradient over all positions, one weight alpha_k per channel (at the last layer of a "
         f"GAP + linear model the two agree, because there the gradient is the same at every position; at "
         f"{layer} it is not)"),
        ((da.mean(1, keepdim=True) * a).sum(1).clamp_min(0), "you averaged the gradient over the channels (dim 1): "
         "alpha_k is an average over the positions i, j (dims 2 and 3), one weight per channel k"),
    ]
    for wrong, msg in candidates:
        _require(not _close(out, wrong), msg)
    raise AssertionError(f"the map differs from Grad-CAM at layer {layer}: alpha = dA.mean((2, 3), keepdim=True), "
                         "then ReLU((alpha * A).sum(1))")


def _drop_reference(model, x, target, top, left, size, baseline):
    """y_t(x) - y_t(x with the window set to baseline), written out plainly (the check's brute force)."""
    occluded = x.clone()
    occluded[:, :, top:top + size, left:left + size] = baseline
    with torch.no_grad():
        clean = model(x).gather(1, target[:, None]).squeeze(1)
        hidden = model(occluded).gather(1, target[:, None]).squeeze(1)
    return clean - hidden, occluded


def check_occlusion_drop(fn) -> None:
    """Lesson 04: ``fn(model, x, target, top, left, size, baseline=0.5)`` must return, per image, the drop of the
    target logit when the ``size x size`` window with top-left pixel (``top``, ``left``) is set to ``baseline``:
    ``y_t(x) - y_t(x with the window set to baseline)``, shape ``(B,)``.

    Checked against a brute-force computation and against ``course_lib.explain.occlusion`` (with
    ``stride = window`` each pixel is covered by one window, so the map there is exactly that window's drop).
    Rejects: the opposite sign, the softmax probability instead of the logit, ignoring ``baseline`` (black),
    swapping rows and columns, changing ``x`` in place.
    """
    from ..explain import occlusion
    from ..models import load_model

    model = load_model("fashion_cnn")
    x, _ = _fashion(4)
    with torch.no_grad():
        target = model(x).argmax(1)
    for top, left, size, baseline in [(3, 12, 6, 0.5), (16, 2, 5, 0.3)]:
        before = x.clone()
        out = fn(model, x, target, top, left, size, baseline=baseline)
        _require(isinstance(out, torch.Tensor), f"return a torch.Tensor, got {type(out).__name__}")
        _require(torch.equal(x, before), "your function changed x in place: occlude a copy, x.clone()")
        _require(tuple(out.shape) == (len(x),), f"return one drop per image, shape ({len(x)},), "
                 f"got {tuple(out.shape)}")
        out = out.detach().to(x.dtype)
        expected, occluded = _drop_reference(model, x, target, top, left, size, baseline)
        if _close(out, expected):
            continue
        _require(not _close(out, -expected), "the sign is reversed: the drop is y(x) - y(occluded), positive when "
                 "hiding the window lowers the class score")
        with torch.no_grad():
            p_drop = (model(x).softmax(1) - model(occluded).softmax(1)).gather(1, target[:, None]).squeeze(1)
        _require(not _close(out, p_drop), "you measured the drop of the softmax probability: occlusion in this "
                 "course (as in course_lib.explain.occlusion) uses the logit y_t, which does not saturate")
        _require(not _close(out, _drop_reference(model, x, target, top, left, size, 0.0)[0]),
                 f"you set the window to black (0): use the baseline argument (here {baseline}); on images with a "
                 "black background, black hides nothing there")
        _require(not _close(out, _drop_reference(model, x, target, left, top, size, baseline)[0]),
                 "you swapped rows and columns: top is the row (dim 2), left the column (dim 3)")
        raise AssertionError(f"the drop for the window at (top={top}, left={left}, size={size}) is wrong: set "
                             "x[:, :, top:top + size, left:left + size] of a copy to the baseline and subtract its "
                             "target logit from the clean one")
    size = 7
    ref_map = occlusion(model, x, target, window=size, stride=size, baseline=0.5, progress=False)
    mine = fn(model, x, target, 14, 7, size, baseline=0.5).detach().to(x.dtype)
    _require(_close(mine, ref_map[:, 14, 7]), "your drop disagrees with course_lib.explain.occlusion for the "
             "window at (14, 7) of size 7")
    _ok("the drop of the target logit when one window is hidden, as course_lib.explain.occlusion computes it for "
        "every window.")


def _window_drops(model, x, target, size: int, stride: int, baseline: float) -> dict:
    """{(top, left): drop of the target logit of the single image x} for every window that fits, one batch."""
    h, w = x.shape[-2:]
    starts = [(r, c) for r in range(0, h - size + 1, stride) for c in range(0, w - size + 1, stride)]
    batch = x.repeat(len(starts), 1, 1, 1)
    for n, (r, c) in enumerate(starts):
        batch[n, :, r:r + size, c:c + size] = baseline
    with torch.no_grad():
        t = int(target[0]) if isinstance(target, torch.Tensor) else int(target)
        drops = model(x)[0, t] - model(batch)[:, t]
    return dict(zip(starts, drops.tolist(), strict=True))


def check_worst_window(answer, model, x, target, size: int, stride: int, baseline: float = 0.5) -> None:
    """Lesson 04: ``answer = (top, left)`` must be the window (of ``size``, starting at multiples of ``stride``
    that fit in the image) whose occlusion lowers the target logit of the single image ``x`` the most.

    Rejects: the window that *raises* the logit most (argmin), (left, top) swapped, a window off the grid.
    """
    _require(isinstance(answer, (tuple, list)) and len(answer) == 2, f"give the window as a pair (top, left), "
             f"got {answer!r}")
    top, left = (int(v) for v in answer)
    h, w = x.shape[-2:]
    drops = _window_drops(model, x, target, size, stride, baseline)
    best = max(drops, key=drops.get)
    worst = min(drops, key=drops.get)
    _require((top, left) in drops, f"({top}, {left}) is not a window start: rows and columns start at multiples "
             f"of the stride {stride} and the {size}x{size} window must fit in the {h}x{w} image")
    if abs(drops[(top, left)] - drops[best]) <= 1e-5:
        _ok(f"hiding the {size}x{size} window at {best} drops the logit by {drops[best]:.2f} "
            f"(the median window: {sorted(drops.values())[len(drops) // 2]:.2f}).")
        return
    _require((top, left) != worst, "that window *raises* the logit most (the smallest drop): you took the argmin; "
             "the most important window is the one whose occlusion lowers the logit most")
    _require((left, top) != best, "rows and columns are swapped: give (top, left) = (row, column)")
    raise AssertionError(f"hiding ({top}, {left}) drops the logit by {drops[(top, left)]:.2f}, but another window "
                         f"drops it by {drops[best]:.2f}: compute the drop for every window of the grid and take "
                         "the largest")


#: Multiple-choice questions of lesson 04: key -> (options, correct option, explanation shown on success).
QUESTIONS = {
    "04_shortcut_evidence": (
        ("a", "b", "c", "d"), "b",
        "An intervention is the evidence: moving the mark to another class's position moves the prediction with "
        "it. The 100 % accuracy (a) looks like success, not like a shortcut; noisy saliency (c) says little; and "
        "maps on unmarked images (d) explain a situation the shortcut never sees. The heat maps pointed us to the "
        "corner; only the experiment shows the model *uses* it."),
}
