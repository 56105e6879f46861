"""Checks for lesson 01 (interpretability: transparent models, post-hoc explanations, their properties)."""
from __future__ import annotations

import torch
from torch import nn

from ._common import _close, _ok, _require

__all__ = ["check_linear_contributions", "QUESTIONS"]


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    _require(bool(linears), "the model has no nn.Linear layer: pass the linear softmax classifier of the lesson")
    return linears[-1]


def check_linear_contributions(fn, model: nn.Module) -> None:
    """Lesson 01: ``fn(model, x, c)`` must return ``(phi, b)`` with ``phi = w_c * x`` (one number per pixel) and
    ``b = b_c``, so that ``phi.sum() + b`` is exactly the logit ``f_c(x)`` of the linear model.

    Rejected (each with its own message): the weights of another class (e.g. the predicted one), the weight
    image ``w_c`` alone (that is the global explanation, the same for every image), the pixels alone, ``|w_c| * x``
    (signs lost), a missing bias (``b = 0``), the bias of another class, a changed input.
    """
    lin = _last_linear(model)
    w, bias = lin.weight.detach(), lin.bias.detach() if lin.bias is not None else None
    _require(bias is not None, "the model's linear layer has no bias: use the lesson's nn.Linear(784, 10)")
    k, d = w.shape
    dev = w.device
    from ..data import load_mnist  # local: the data is only needed when a student runs the check

    xs = load_mnist("test")[0][:3].to(dev)
    xs = torch.cat([xs, torch.rand(1, *xs.shape[1:], generator=torch.Generator().manual_seed(0)).to(dev)])
    _require(xs[0].numel() == d, f"the model's linear layer takes {d} inputs, but an MNIST image has "
             f"{xs[0].numel()} pixels: pass the lesson's nn.Sequential(nn.Flatten(), nn.Linear(784, 10))")
    with torch.no_grad():
        logits = model(xs)
    cases = [(0, 3), (1, 8), (2, int(logits[2].argmin())), (3, 7)]
    for i, c in cases:
        x = xs[i:i + 1]
        x_before = x.clone()
        out = fn(model, x, c)
        _require(torch.equal(x, x_before), "your function changed the image in place: compute w_c * x on a copy")
        _require(isinstance(out, (tuple, list)) and len(out) == 2,
                 f"return a pair (phi, b): the per-pixel contributions and the bias; got {type(out).__name__}")
        phi, b = out
        _require(isinstance(phi, torch.Tensor), f"phi must be a torch.Tensor, got {type(phi).__name__}")
        _require(phi.numel() == d, f"phi must hold one contribution per pixel ({d} values, e.g. shape (28, 28)), "
                 f"got shape {tuple(phi.shape)}")
        phi = phi.detach().reshape(-1).to(device=dev, dtype=w.dtype)
        flat = x.reshape(-1)
        truth = w[c] * flat
        if not _close(phi, truth, atol=1e-5):
            for other in range(k):
                if other != c and _close(phi, w[other] * flat, atol=1e-5):
                    raise AssertionError(f"for class c={c} you returned the contributions of class {other}: "
                                         "use the weight vector of the class you are asked about, w[c] (the row "
                                         "of the weight matrix), not the predicted or a neighbouring class")
            if _close(phi, w[c], atol=1e-5):
                raise AssertionError("phi equals the weight vector w_c alone: that is the *global* explanation, "
                                     "the same for every image. The contribution of pixel j to this image's logit "
                                     "is w_cj * x_j: multiply by the pixels")
            if _close(phi, flat, atol=1e-5):
                raise AssertionError("phi equals the pixels x: multiply them by the weights of class c")
            if _close(phi, w[c].abs() * flat, atol=1e-5) or _close(phi, truth.abs(), atol=1e-5):
                raise AssertionError("phi has lost the signs: a negative contribution (ink where class c has a "
                                     "negative weight) argues *against* c. Do not take absolute values")
            raise AssertionError(f"phi is not w_c * x for class c={c} (largest error "
                                 f"{float((phi - truth).abs().max()):.3g}): take row c of the weight matrix, flatten "
                                 "the image to 784 values and multiply them pixel by pixel")
        _require(isinstance(b, (int, float, torch.Tensor)) and torch.as_tensor(b).numel() == 1,
                 f"b must be one number (the bias b_c), got {type(b).__name__}")
        b = float(b.detach()) if isinstance(b, torch.Tensor) else float(b)
        logit = float(logits[i, c])
        if abs(float(phi.sum()) + b - logit) > 1e-4 * (1 + abs(logit)):
            if abs(b) < 1e-12:
                raise AssertionError(f"phi.sum() + b = {float(phi.sum()):.4f} but the logit is {logit:.4f}: you "
                                     f"forgot the bias. f_c(x) = sum_j w_cj x_j + b_c, and b_c = {float(bias[c]):.4f}")
            if any(abs(b - float(bias[o])) < 1e-6 for o in range(k) if o != c):
                raise AssertionError(f"b is the bias of another class: for class c={c} use bias[c] "
                                     f"= {float(bias[c]):.4f}")
            raise AssertionError(f"phi.sum() + b = {float(phi.sum()) + b:.4f} differs from the logit f_c(x) = "
                                 f"{logit:.4f}: b must be the bias b_c of the linear layer")
    _ok("phi = w_c * x and b = b_c, so the logit is exactly phi.sum() + b: for a linear model the explanation is "
        "complete and exact, no approximation involved.")


#: Multiple-choice questions of lesson 01: key -> (options, correct option, explanation shown on success).
QUESTIONS = {
    "01_occlusion_access": (
        ("gradients", "internals", "queries only"), "queries only",
        "Occlusion only compares the model's output on the image and on copies with a window greyed out: it never "
        "looks inside and needs no gradient, so it works on any model you can query (it is fully opaque in "
        "translucency and fully portable)."),
    "01_cam_portability": (
        ("any model", "any differentiable model", "cnns with gap"), "cnns with gap",
        "CAM reads the weights of the last linear layer and the feature maps that global average pooling "
        "summarises: it needs exactly that architecture (Grad-CAM relaxes it to any network with a spatial layer)."),
    "01_shapley_cost": (
        ("n", "n^2", "2^n"), "2^n",
        "The exact Shapley value averages marginal contributions over all coalitions of the n players, so it needs "
        "the model's output on all 2^n coalitions: 1,024 for 10 superpixels, a million for 20. Sampling estimators "
        "(lesson 05) trade exactness for a fixed budget of evaluations."),
}
