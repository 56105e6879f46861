"""Checks for lesson 10 (adversarial patches)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._common import _check_input_gradient_hygiene, _fresh_model, _ok, _require

__all__ = ["check_paste", "check_digit_patch", "digit_patch_success", "check_eot_step", "QUESTIONS"]


def check_paste(fn) -> None:
    """Lesson 10: ``fn(x, patch, row, col)`` must return a copy of ``x`` with ``patch`` ``(C, s, s)`` pasted with
    its top-left pixel at ``(row, col)`` in every image, every other pixel unchanged, ``x`` itself untouched.

    Compared with :func:`course_lib.attacks.apply_patch` at corners and inside, with ``row != col`` and a
    non-square image. Rejects: pasting in place (``x`` modified), row and column swapped, an off-by-one
    window, a patch broadcast over the wrong axes, returning only the patched region.
    """
    from ..attacks import apply_patch

    g = torch.Generator().manual_seed(10)
    x = torch.rand(4, 3, 20, 30, generator=g)
    patch = torch.rand(3, 5, 5, generator=g)
    for row, col in [(0, 0), (2, 11), (15, 25), (7, 3)]:
        before = x.clone()
        out = fn(x, patch, row, col)
        _require(torch.equal(x, before), "your function changed x: clone it first (x.clone()), then paste into the "
                                         "copy: an attack must never modify the caller's images")
        _require(isinstance(out, torch.Tensor) and out.shape == x.shape,
                 f"return the whole batch of images, shape {tuple(x.shape)}, got "
                 f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
        expected = apply_patch(x, patch, location=(row, col))
        if not torch.equal(out, expected):
            swapped = (col + 5 <= 20) and torch.equal(out, apply_patch(x, patch, location=(col, row)))
            _require(not swapped, f"at row={row}, col={col} the patch landed at row={col}, col={row}: rows index "
                                  "dimension 2 (height), columns dimension 3 (width)")
            _require(False, f"at row={row}, col={col} the result differs from the expected paste: the patch must "
                            "cover out[:, :, row:row+s, col:col+s] exactly, every other pixel keeps its value")
    _ok("the patch lands where you asked, in every image, and nothing else changes.")


def digit_patch_success(patch: torch.Tensor, target: int, n: int = 500, places: int = 3) -> float:
    """The fraction of ``n`` held-out digits (from ``load_mnist("test")``, a held-out part of the official MNIST
    training set, those whose label is not ``target``) that mnist_cnn classifies as ``target`` with ``patch``
    pasted at random places (``places`` seeded draws, averaged)."""
    from ..attacks import patch_success
    from ..data import load_mnist
    from ..models import load_model

    x, y = load_mnist("test")
    return patch_success(load_model("mnist_cnn"), x[y != target][:n], patch, target, places=places, seed=0)


def check_digit_patch(patch, target: int, max_size: int = 10, min_success: float = 0.25) -> None:
    """Lesson 10: a patch ``(1, s, s)`` in ``[0, 1]`` with ``s <= max_size`` that makes mnist_cnn say ``target``
    on at least ``min_success`` of held-out digits at random places, and at least 5x as often as random noise
    of the same size does (so it is the pattern that works, not the occlusion).

    Rejects: a patch larger than allowed, three channels, values outside ``[0, 1]``, an untrained (random) or
    too weakly trained patch.
    """
    _require(isinstance(target, int) and 0 <= target <= 9, f"target must be a digit class 0-9, got {target!r}")
    _require(isinstance(patch, torch.Tensor) and patch.dim() == 3 and patch.shape[1] == patch.shape[2],
             "the patch must be a tensor (1, s, s): what train_patch returns")
    _require(patch.shape[0] == 1, f"digits have one channel, your patch has {patch.shape[0]}")
    _require(patch.shape[1] <= max_size, f"the patch is {patch.shape[1]}x{patch.shape[1]}: at most "
                                         f"{max_size}x{max_size} allowed (a bigger patch simply covers the digit)")
    patch = patch.detach().cpu().float()
    _require(patch.min() >= 0 and patch.max() <= 1, "patch values must be in [0, 1]: it has to be an image")
    rate = digit_patch_success(patch, target)
    noise = torch.rand(patch.shape, generator=torch.Generator().manual_seed(0))
    base = digit_patch_success(noise, target)
    _require(rate >= min_success, f"your patch turns {rate:.0%} of held-out digits into a {target}; at least "
                                  f"{min_success:.0%} needed: train longer (more steps) or with a larger lr")
    _require(rate >= 5 * base, f"{rate:.0%} success, but random noise of the same size already gets {base:.0%}: "
                               "the patch should work because of its pattern, not because it hides the digit")
    _ok(f"{rate:.0%} of held-out digits become a {target} wherever the patch lands (random noise: {base:.0%}).")


# --------------------------------------------------------------------------- one EOT step
def _eot_inputs():
    """Six held-out digits, a 6x6 patch with some pixels at exactly 0 and 1 (so a missing clamp shows), and six
    different transformations (places, scales, rotations) drawn as :func:`train_patch` draws them."""
    from ..attacks import sample_transforms
    from ..data import load_mnist

    x, y = load_mnist("test")
    x = x[y != 3][:6].clone()
    g = torch.Generator().manual_seed(10)
    patch = torch.rand(1, 6, 6, generator=g)
    patch[0, 0, :] = 0.0
    patch[0, -1, :] = 1.0
    centres, scales, angles = sample_transforms(6, 28, 28, 6, scale_range=(0.8, 1.2), max_angle=22.5, seed=11)
    return x, patch, centres, scales, angles


def _eot_gradient(model, patch, x, target, centres, scales, angles) -> torch.Tensor:
    """``grad_p (1/n) sum_i CE(f(place_patch(x_i, p, t_i)), target)``, from course_lib's :func:`place_patch`."""
    from ..attacks import place_patch

    p = patch.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(place_patch(x, p, centres, scales, angles))
        loss = F.cross_entropy(logits, torch.full((x.shape[0],), target, dtype=torch.long))
        (grad,) = torch.autograd.grad(loss, p)
    return grad


def _step_matches(out: torch.Tensor, patch: torch.Tensor, grad: torch.Tensor, lr: float, direction: float = -1.0,
                  clamp: bool = True) -> bool:
    """``out`` is ``patch + direction * lr * g / (|g| + 1e-8)`` (Adam's first step; ``lr * sign(g)`` wherever the
    gradient is not tiny), clamped to ``[0, 1]`` if ``clamp``. Where ``|g| < 1e-5`` the two rules differ: there any
    move of at most ``lr`` is accepted."""
    if not isinstance(out, torch.Tensor) or out.shape != patch.shape:
        return False
    expected = patch + direction * lr * grad / (grad.abs() + 1e-8)
    if clamp:
        expected = expected.clamp(0, 1)
    out = out.detach().to(patch)
    big = grad.abs() >= 1e-5
    ok_big = bool(((out - expected).abs() <= 1e-4 * max(lr, 1.0))[big].all())
    ok_small = bool(((out - patch).abs() <= lr + 1e-6)[~big].all())
    return ok_big and ok_small


def check_eot_step(fn) -> None:
    """Lesson 10: ``fn(model, patch, x, target, centres, scales, angles, lr)`` must be one step of expectation
    over transformations for a patch, with the random transformations passed in::

        L(p) = (1/n) sum_i CE( f( place_patch(x_i, p, centre_i, scale_i, angle_i) ), target )
        p'   = clip_[0,1]( p - lr * sign( grad_p L(p) ) )

    (the first step of :func:`course_lib.attacks.train_patch`'s Adam is ``lr * g / (|g| + 1e-8)``, the sign of
    the gradient wherever it is not tiny; either form is accepted). Compared with a reference from
    :func:`course_lib.attacks.place_patch` on six held-out digits and ``mnist_cnn``, with a 6x6 patch whose
    border rows are exactly 0 and 1. A sum instead of the mean gives the same signs and is accepted.
    Rejects: a step up the target's loss (away from the target); one transformation for every image instead of
    each image's own; no clamp to ``[0, 1]``; the gradient taken with respect to the placed images instead of
    the patch; changing the caller's patch or images; leaving the model in training mode or ``.grad`` in its
    weights; a result still attached to the graph.
    """
    x, patch, centres, scales, angles = _eot_inputs()
    model = _fresh_model("mnist_cnn")
    target, lr = 3, 0.05
    x_before, patch_before = x.clone(), patch.clone()
    out = fn(model, patch, x, target, centres, scales, angles, lr)
    _require(torch.equal(patch, patch_before), "your function changed the caller's patch: work on a copy, "
             "p = patch.detach().clone().requires_grad_(True), and return the new patch")
    _require(torch.equal(x, x_before), "your function changed the images x: place_patch returns new images; "
             "never write into x")
    _require(isinstance(out, torch.Tensor), f"return the new patch as a tensor, got {type(out).__name__}")
    _check_input_gradient_hygiene(model, patch, out, score="loss")
    if out.shape != patch.shape:
        _require(out.shape not in (x.shape, x.shape[1:]),
                 f"you returned images of shape {tuple(out.shape)}: the gradient was taken with respect to the "
                 "placed images. The attack updates the patch: make the patch require a gradient, place it with "
                 "place_patch, and differentiate the loss with respect to the patch, "
                 "torch.autograd.grad(loss, p), which has the patch's shape")
        _require(False, f"return the new patch, shape {tuple(patch.shape)}, got {tuple(out.shape)}")
    grad = _eot_gradient(model, patch, x, target, centres, scales, angles)
    if _step_matches(out, patch, grad, lr):
        _ok("the mean targeted loss over all six placements, its gradient with respect to the patch, a step "
            "down that loss and the clamp to [0, 1]: one step of expectation over transformations.")
        return
    _require(not _step_matches(out, patch, grad, lr, direction=+1.0),
             "your step went *up* the target's loss: the patch moved away from the target class. The patch "
             "should make the model say the target, so it descends the cross-entropy to the target: "
             "p - lr * sign(grad)")
    _require(not _step_matches(out, patch, grad, lr, clamp=False),
             f"values in [{float(out.min()):.3g}, {float(out.max()):.3g}]: clamp the new patch to [0, 1] "
             "(.clamp(0, 1)); the patch is printed, it has to stay an image")
    for k in range(x.shape[0]):
        one = _eot_gradient(model, patch, x, target, centres[k:k + 1].expand(x.shape[0], 2),
                            scales[k:k + 1].expand(x.shape[0]), angles[k:k + 1].expand(x.shape[0]))
        alone = _eot_gradient(model, patch, x[k:k + 1], target, centres[k:k + 1], scales[k:k + 1], angles[k:k + 1])
        _require(not _step_matches(out, patch, alone, lr),
                 f"your step uses one image with one transformation (number {k}) only: the loss is the mean over "
                 "all images, each placed with its own centres[i], scales[i], angles[i]. The average over many "
                 "places, scales and rotations is what makes the patch work wherever it lands")
        _require(not _step_matches(out, patch, one, lr),
                 f"every image got the same transformation (number {k}): image i must be placed with its own "
                 "centres[i], scales[i], angles[i]. The average over *different* places, scales and rotations is "
                 "what makes the patch work wherever it lands")
    _require(False, "the new patch differs from one EOT step: place the patch on every image with its own "
                    "transformation (place_patch(x, p, centres, scales, angles)), take the mean cross-entropy to "
                    "the target, its gradient with respect to the patch, then p - lr * sign(grad), clamped to [0, 1]")


QUESTIONS = {
    "10_threat": (
        {"a", "b", "c", "d"}, "c",
        "Training the patch needs the model's gradients (white box), but using it does not: one patch, "
        "printed once, fools the model on images the attacker never saw, anywhere in the picture. It is not "
        "bounded by an eps-ball: it changes a small region completely.",
    ),
    "10_eot": (
        {"a", "b", "c"}, "b",
        "Expectation over transformations optimises the average over random places, scales and rotations, so "
        "the patch works under all of them; trained at one fixed place it would be an ordinary adversarial "
        "example that breaks when moved.",
    ),
}
