"""Checks for lesson 02 (feature visualisation: feature maps, activation maximisation, dataset examples)."""
from __future__ import annotations

import torch
from torch import nn

from ._common import _ok, _require

__all__ = ["check_top_activating", "check_total_variation"]


def _scores_match(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Same multiset of scores (so ties between images with equal activation are accepted)."""
    return bool(torch.allclose(got.sort(descending=True).values, want.sort(descending=True).values,
                               rtol=1e-4, atol=1e-6))


def check_top_activating(fn, model: nn.Module, x: torch.Tensor, layer: str = "features.relu5",
                         channel: int = 0, k: int = 8) -> None:
    """Lesson 02: ``fn(model, x, layer, channel, k)`` must return the indices (LongTensor ``(k,)``) of the ``k``
    images of ``x`` whose channel ``channel`` of ``layer`` has the largest *mean* activation over positions,
    most activating first. Tested on ``channel`` and on a second channel.

    Rejected: the least-activating images (ascending sort), indices not in descending order of activation,
    ranking by the maximum over positions instead of the mean, averaging over all channels (the wrong axis),
    returning channel indices or flat indices into ``(B * h * w)`` instead of image indices, returning the
    activations instead of the indices.
    """
    from ..explain import feature_maps

    maps = feature_maps(model, x, layer)
    _require(maps.dim() == 4, f"layer {layer!r} must give feature maps (B, K, h, w) for this check")
    b, n_channels = maps.shape[:2]
    _require(0 <= channel < n_channels and 0 < k < b, "check_top_activating: channel or k out of range")
    for ch in (channel, (channel + n_channels // 2 + 1) % n_channels):
        x_before = x.clone()
        out = fn(model, x, layer, ch, k)
        _require(torch.equal(x, x_before), "your function changed the images in place")
        _require(isinstance(out, torch.Tensor), f"return a LongTensor of image indices, got {type(out).__name__}")
        _require(not out.is_floating_point(),
                 "you returned floating-point values: return the *indices* of the images (topk(...).indices), "
                 "not their activations")
        out = out.detach().reshape(-1).to(torch.long).cpu()
        _require(out.numel() == k, f"return exactly k={k} indices, got {out.numel()}")
        score = maps[:, ch].mean((1, 2)).cpu()
        want = score.topk(k).values
        if int(out.min()) < 0 or int(out.max()) >= b:
            raise AssertionError(f"indices must point to images of x (0..{b - 1}), got values up to {int(out.max())}:"
                                 " did you take topk over the flattened (B * h * w) map? Average each image's map "
                                 "over the positions first, one score per image")
        _require(len(set(out.tolist())) == k, "the same image appears twice in your answer")
        got = score[out]
        if _scores_match(got, want):
            _require(bool((got[:-1] >= got[1:] - 1e-6).all()),
                     "these are the right images but not in order: put the most activating image first "
                     "(topk sorts; argsort needs descending=True)")
            continue
        if _scores_match(got, score.topk(k, largest=False).values):
            raise AssertionError("these are the *least* activating images: sort in descending order "
                                 "(topk(k) or argsort(descending=True)), not ascending")
        first_channels = maps[0].mean((1, 2)).cpu().topk(min(k, n_channels)).indices
        if k <= n_channels and torch.equal(out, first_channels):
            raise AssertionError("these are the channels that one image activates most (the wrong axis): fix the "
                                 "channel, A[:, channel], and rank the images (dimension 0)")
        by_max = maps[:, ch].amax((1, 2)).cpu()
        if _scores_match(by_max[out], by_max.topk(k).values):
            raise AssertionError("you ranked the images by the maximum over positions; this exercise (like "
                                 "activation maximisation, whose objective is the spatial mean) ranks by the mean "
                                 "activation of the channel over all positions, A[:, channel].mean((1, 2))")
        all_channels = maps.mean((1, 2, 3)).cpu()
        if _scores_match(all_channels[out], all_channels.topk(k).values):
            raise AssertionError("you averaged over all channels (the wrong axis): select the one channel first, "
                                 "A[:, channel], then average over the positions")
        raise AssertionError(f"these are not the {k} images with the largest mean activation of channel {ch} of "
                             f"{layer!r}: compute A = feature_maps(model, x, layer), the score "
                             "A[:, channel].mean((1, 2)) per image, and take its topk(k).indices")
    _ok(f"the top-{k} images by mean activation, most activating first: the dataset examples of a channel.")


def _tv_parts(x: torch.Tensor):
    dh = x[..., 1:, :] - x[..., :-1, :]
    dw = x[..., :, 1:] - x[..., :, :-1]
    return dh, dw


def check_total_variation(fn) -> None:
    """Lesson 02: ``fn(x)`` for images ``x`` (B, C, H, W) must return the anisotropic total variation per image,
    ``TV(x) = sum_{c,i,j} |x_{c,i+1,j} - x_{c,i,j}| + |x_{c,i,j+1} - x_{c,i,j}|``, shape (B,).

    Tested on random non-square images (so swapped height and width show). Rejected: squares instead of absolute
    values, one direction missing, means instead of sums, the isotropic norm sqrt(dh^2 + dw^2), wrap-around
    differences (torch.roll), one number for the whole batch, a changed input.
    """
    x = torch.rand(3, 2, 5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x_before = x.clone()
    out = fn(x)
    _require(torch.equal(x, x_before), "your function changed its input in place")
    _require(isinstance(out, torch.Tensor), f"return a torch.Tensor, got {type(out).__name__}")
    dh, dw = _tv_parts(x)
    want = dh.abs().sum((1, 2, 3)) + dw.abs().sum((1, 2, 3))
    out = out.detach().to(torch.float64)

    def same(a, b):
        return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-5, atol=1e-8))

    if out.numel() == 1 and abs(float(out) - float(want.sum())) < 1e-6 * float(want.sum()):
        raise AssertionError("you returned one number for the whole batch: sum over channels and positions only, "
                             "x.sum((1, 2, 3)), to get one TV per image (shape (B,))")
    _require(tuple(out.shape) == (x.shape[0],), f"return one value per image, shape ({x.shape[0]},), "
             f"got shape {tuple(out.shape)}")
    if not same(out, want):
        wrong = {
            "you squared the differences: TV sums absolute values |.|, which penalise an edge by its height "
            "(squares would favour many small steps over one sharp edge, a different regulariser)":
                (dh ** 2).sum((1, 2, 3)) + (dw ** 2).sum((1, 2, 3)),
            "only the vertical differences x[i+1, j] - x[i, j] are there: add the horizontal ones "
            "x[i, j+1] - x[i, j]": dh.abs().sum((1, 2, 3)),
            "only the horizontal differences x[i, j+1] - x[i, j] are there: add the vertical ones "
            "x[i+1, j] - x[i, j]": dw.abs().sum((1, 2, 3)),
            "you averaged the differences: the formula sums them (course_lib's penalty uses means so that its "
            "weight does not depend on the image size, but here the task is the sum)":
                dh.abs().mean((1, 2, 3)) + dw.abs().mean((1, 2, 3)),
            "you averaged the differences (over both directions together): the formula sums them":
                torch.cat([dh.abs().flatten(1), dw.abs().flatten(1)], 1).mean(1),
            "that is the isotropic TV sqrt(dh^2 + dw^2); the exercise asks for the anisotropic one, "
            "|dh| + |dw| summed separately":
                (dh[..., :, :-1] ** 2 + dw[..., :-1, :] ** 2).sqrt().sum((1, 2, 3)),
            "your differences wrap around the border (torch.roll compares the last row with the first): use "
            "slices x[..., 1:, :] - x[..., :-1, :] so only neighbours inside the image are compared":
                (x - x.roll(1, -2)).abs().sum((1, 2, 3)) + (x - x.roll(1, -1)).abs().sum((1, 2, 3)),
        }
        for msg, value in wrong.items():
            if same(out, value):
                raise AssertionError(msg)
        raise AssertionError(f"TV is not right (got {out.tolist()}, expected {want.tolist()}): sum |x[i+1, j] - "
                             "x[i, j]| and |x[i, j+1] - x[i, j]| over channels and positions, per image")
    flat = fn(torch.full((2, 3, 4, 6), 0.3))
    _require(float(flat.abs().max()) < 1e-9, "a constant image must have TV 0")
    _ok("TV(x) sums the absolute differences between vertical and horizontal neighbours, one value per image.")
