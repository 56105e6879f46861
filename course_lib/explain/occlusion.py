"""Occlusion sensitivity (Zeiler & Fergus, ECCV 2014): cover a patch of the image, see how much the score drops.

No gradients: only forward passes, so it works for any model, and its answer is easy to state. The price is
one forward pass per window position and image.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from tqdm.auto import tqdm

from .._validate import check_images, check_logits, check_model
from ._common import as_baseline, check_batch_size, get_layer, target_from_logits
from .featurevis import _layer_output

__all__ = ["occlusion", "window_starts"]


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair (h, w) of positive ints, got {value!r}")
    return pair


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start positions ``0, s, 2s, ...`` along one axis: ``ceil((size - window) / stride) + 1`` of them.

    As in Captum's ``Occlusion``: windows slide until the image is covered, so the last window may stick out
    of the image and is cut off there. With ``stride > window`` some pixels are covered by no window.
    """
    return [i * stride for i in range(math.ceil((size - window) / stride) + 1)]


def _channels(channel, means: torch.Tensor) -> torch.Tensor:
    """``channel`` as a LongTensor ``(B,)``: ``None`` = the channel with the largest mean activation per image."""
    b, k = means.shape
    if channel is None:
        return means.argmax(1)
    if isinstance(channel, bool) or not isinstance(channel, (int, torch.Tensor)):
        raise TypeError(f"channel must be None, an int or a LongTensor (B,), got {type(channel).__name__}")
    t = torch.full((b,), channel, dtype=torch.long) if isinstance(channel, int) else channel.long().view(-1)
    if t.shape != (b,) or int(t.min()) < 0 or int(t.max()) >= k:
        raise ValueError(f"channel must be in 0..{k - 1}, one for each of the {b} images, got {channel!r}")
    return t.to(means.device)


def occlusion(model: nn.Module, x: torch.Tensor, target=None, window=8, stride=None, baseline=0.5,
              batch_size: int | None = None, progress=None, layer=None, channel=None) -> torch.Tensor:
    """Occlusion sensitivity (Zeiler & Fergus, ECCV 2014)::

        O_c(p) = mean over the windows W that cover pixel p of  [ y_c(x) - y_c(x with W set to the baseline) ]

    ``y_c`` is the target logit. Positive: hiding the pixel's neighbourhood lowers the class score (evidence
    for ``c``); negative: evidence against it. All channels of a window are occluded together.

    With ``layer`` given, the score is a feature map's activation instead of a logit, as Zeiler & Fergus also
    recorded (their Fig. 7: the strongest feature map of layer 5)::

        a_k(x) = mean_ij A^k(x)_ij     (A = the layer's output (B, K, h, w), k = ``channel``)
        O_k(p) = mean over the windows W that cover p of  [ a_k(x) - a_k(x with W set to the baseline) ]

    Args:
        model: classifier mapping ``[0, 1]`` images to logits, in eval mode.
        x: images ``(B, C, H, W)``, float in ``[0, 1]``.
        target: class ``c``: ``None`` (default) = the predicted class, an int, or a LongTensor ``(B,)``.
        window: window size, an int or ``(h, w)`` (default 8); at most the image size.
        stride: step between windows, an int or ``(h, w)``; ``None`` (default) = ``window`` (no overlap).
            Windows start at ``0, s, 2s, ...`` along each axis until they reach the image's far edge, the
            last one cut off at the border (Captum's rule, see :func:`window_starts`); pixels covered by no
            window (only possible when ``stride > window``) get 0.
        baseline: what an occluded region shows: a float (default 0.5, mid grey) or a tensor broadcastable
            to ``x`` (e.g. ``(C, 1, 1)`` mean colour, or ``(B, C, H, W)`` blurred images), in ``[0, 1]``.
        batch_size: occluded images per forward pass; ``None`` (default) = about 2^20 input values per pass
            (1337 MNIST images, 6 ImageNet images).
        progress: show a ``tqdm`` progress bar: ``None`` (default) = when more than 200 occluded images
            are evaluated, ``True`` always, ``False`` never.
        layer: ``None`` (default) = score the target logit; a layer name (e.g. ``"features.relu5"``) or module
            whose output ``(B, K, h, w)`` is scored by ``a_k`` above (``target`` must then be ``None``).
        channel: with ``layer``: the channel ``k``, an int or a LongTensor ``(B,)``; ``None`` (default) = for each
            image the strongest channel of the unoccluded image (largest ``a_k(x)``).

    Returns:
        ``(B, H, W)`` maps, detached, on ``x``'s device (Captum's ``Occlusion`` returns the same map repeated
        over the channels).
    """
    check_images(x)
    check_model(model, x)
    batch_size = check_batch_size(batch_size, x)
    b, _, h, w = x.shape
    wh, ww = _pair(window, "window")
    sh, sw = (wh, ww) if stride is None else _pair(stride, "stride")
    if wh > h or ww > w:
        raise ValueError(f"window {wh}x{ww} is larger than the images ({h}x{w})")
    base = as_baseline(baseline, x)
    windows = [(i, j) for i in window_starts(h, wh, sh) for j in window_starts(w, ww, sw)]
    if layer is None:
        if channel is not None:
            raise ValueError("channel= needs layer= (the layer whose feature map is scored)")

        def score(images, t):  # the target logit of each image, (N,)
            return check_logits(model(images), images.shape[0]).gather(1, t[:, None]).squeeze(1)
    else:
        if target is not None:
            raise ValueError("with layer= the score is a channel's mean activation, not a class: leave target=None "
                             "and choose the channel with channel=")
        module = get_layer(model, layer)

        def score(images, t):  # the mean activation of channel t of the layer, (N,)
            a = _layer_output(model, module, images)
            if a.dim() != 4:
                raise ValueError(f"layer must output feature maps (B, K, h, w), got {tuple(a.shape)}")
            return a.mean((2, 3)).gather(1, t[:, None]).squeeze(1)

    with torch.no_grad():
        if layer is None:
            logits = check_logits(model(x), x.shape[0])
            target = target_from_logits(logits, target)
            clean = logits.gather(1, target[:, None]).squeeze(1)  # (B,): one pass for the clean scores
        else:
            means = _layer_output(model, module, x)
            if means.dim() != 4:
                raise ValueError(f"layer must output feature maps (B, K, h, w), got {tuple(means.shape)}")
            means = means.mean((2, 3))  # (B, K)
            target = _channels(channel, means)
            clean = means.gather(1, target[:, None]).squeeze(1)  # (B,)
        total = torch.zeros(b, h, w, dtype=x.dtype, device=x.device)
        count = torch.zeros(h, w, dtype=x.dtype, device=x.device)
        per_pass = max(1, batch_size // b)  # window positions per forward pass
        chunks = range(0, len(windows), per_pass)
        show = len(windows) * b > 200 if progress is None else bool(progress)
        for start in tqdm(chunks, desc="occlusion", disable=not show, leave=False):
            chunk = windows[start:start + per_pass]
            k = len(chunk)
            masks = torch.zeros(k, h, w, dtype=torch.bool, device=x.device)
            for n, (i, j) in enumerate(chunk):
                masks[n, i:i + wh, j:j + ww] = True  # slicing cuts the window off at the border
            occluded = torch.where(masks[:, None, None], base, x)  # (k, B, C, H, W)
            drop = clean - score(occluded.flatten(0, 1), target.repeat(k)).view(k, b)  # (k, B)
            maskf = masks.to(x.dtype)
            total += torch.einsum("kb,khw->bhw", drop, maskf)
            count += maskf.sum(0)
    return torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total))
