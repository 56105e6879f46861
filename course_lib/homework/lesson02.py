"""Checks for lesson 02 (feature visualisation: feature maps, activation maximisation, dataset examples)."""
from __future__ import annotations

import torch
from torch import nn

from ._common import _check_input_gradient_hygiene, _fresh_model, _ok, _require

__all__ = ["check_top_activating", "check_total_variation", "check_ascent_step"]


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


# --------------------------------------------------------------------------- Exercise: one ascent step
def _channel_objective(model: nn.Module, layer: str, channel: int, images: torch.Tensor) -> torch.Tensor:
    """mean_{i,j} A_k(images)_{ij} per image, through a forward hook on the named module (written here from the
    definition, independently of course_lib.explain)."""
    store = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        model(images)
    finally:
        handle.remove()
    a = store["a"][:, channel]
    return a.flatten(1).mean(1)


def _ascent_variants(model: nn.Module, layer: str, channel: int, x: torch.Tensor, lr: float, shift) -> dict:
    """The right step and the plausible wrong ones, each as the image it returns."""
    def grad(images_of, wrt):
        with torch.enable_grad():
            return torch.autograd.grad(_channel_objective(model, layer, channel, images_of(wrt)).sum(), wrt)[0]

    xg = x.detach().clone().requires_grad_(True)
    g = grad(lambda z: torch.roll(z, shift, dims=(-2, -1)), xg)                 # through the roll
    g_plain = grad(lambda z: z, x.detach().clone().requires_grad_(True))        # no jitter at all
    g_rolled = grad(lambda z: z, torch.roll(x, shift, dims=(-2, -1)).detach().requires_grad_(True))  # not rolled back

    def step(d, norm="image", sign=1.0, clamp=True):
        if norm == "image":
            d = d / (d.abs().mean((1, 2, 3), keepdim=True) + 1e-8)
        elif norm == "batch":
            d = d / (d.abs().mean() + 1e-8)
        out = x + sign * lr * d
        return out.clamp(0, 1) if clamp else out

    return {
        "right": step(g),
        "you stepped down the gradient (x - lr * ...): activation MAXIMISATION climbs, x + lr * g / mean|g|":
            step(g, sign=-1.0),
        "your step ignores the shift: the gradient must be that of the channel's activation on the SHIFTED image "
        "torch.roll(x, shift, dims=(-2, -1)), differentiated with respect to x itself (so autograd rolls the "
        "gradient back)": step(g_plain),
        "you took the gradient with respect to the rolled image and added it to the unrolled x: the two are "
        "misaligned by the shift. Make x the leaf (xg = x.clone().requires_grad_(True)), roll xg inside the "
        "graph, and take torch.autograd.grad(objective, xg)": step(g_rolled),
        "your result leaves [0, 1]: clamp the new image, x.clamp(0, 1), after the step": step(g, clamp=False),
        "your step is not normalised: divide g by the mean of |g| over each image's pixels, so that lr is the "
        "typical change of a pixel whatever the gradient's scale": step(g, norm=None),
        "you normalised with one number for the whole batch: divide each image's gradient by ITS OWN mean |g| "
        "(g.abs().mean((1, 2, 3), keepdim=True))": step(g, norm="batch"),
    }


def check_ascent_step(fn, layer: str = "features.bn5", channel: int = 5) -> None:
    """Lesson 02: ``fn(model, layer, channel, x, lr, shift)`` must return one step of pixel-space activation
    maximisation with jitter, for a batch of images x (B, C, H, W) in [0, 1]:

        g = d/dx  sum_b mean_{i,j} A_k(roll(x, shift))_{b,ij}          (roll over height and width)
        x_new = clamp(x + lr * g / mean_pixels|g|, 0, 1)                 (the mean per image)

    The check computes the step from the definition on two digits and two shifts (so any correct implementation
    passes, whatever random shifts the student's loop draws) and names the plausible mistakes: descent instead of
    ascent, no jitter, the gradient of the rolled image added unrolled, no clamp, no or per-batch normalisation,
    and the hygiene of an input gradient (x, the model's mode and its parameters' .grad untouched).
    """
    from ..data import load_mnist

    model = _fresh_model("mnist_cnn")
    x = load_mnist("test")[0][[3, 10]].clone()
    x[1] = 0.5 * x[1] + 0.2                   # two images whose gradients differ in scale
    for lr, shift in [(0.05, (2, -3)), (0.2, (-1, 1))]:
        x_before = x.clone()
        out = fn(model, layer, channel, x, lr, shift)
        _require(isinstance(out, torch.Tensor) and out.shape == x.shape,
                 f"return the new images as a tensor of shape {tuple(x.shape)}, got "
                 f"{getattr(out, 'shape', type(out).__name__)}")
        _require(torch.equal(x, x_before), "your function changed x in place: return a new tensor")
        _check_input_gradient_hygiene(model, x, out, score="the objective")
        variants = _ascent_variants(model, layer, channel, x, lr, shift)
        out = out.detach().to(x.dtype)
        if torch.allclose(out, variants["right"], atol=1e-5):
            continue
        for msg, value in variants.items():
            if msg != "right" and torch.allclose(out, value, atol=1e-5):
                raise AssertionError(msg)
        gap = float((out - variants["right"]).abs().max())
        raise AssertionError(f"the step is not right (largest pixel difference {gap:.3g} at lr={lr}, shift={shift}):"
                             " g = gradient w.r.t. x of the channel's mean activation on roll(x, shift); x_new = "
                             "clamp(x + lr * g / mean|g| per image, 0, 1)")
    _ok("one ascent step with jitter: the gradient flows back through the shift, each image moves by lr per pixel on "
        "average, and stays in [0, 1].")
