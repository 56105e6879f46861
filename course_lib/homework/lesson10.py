"""Checks for lesson 10 (adversarial patches)."""
from __future__ import annotations

import torch

from ._common import _ok, _require

__all__ = ["check_paste", "check_digit_patch", "digit_patch_success", "QUESTIONS"]


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
