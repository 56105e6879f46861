"""Checks for lesson 00 (the landscape)."""
from __future__ import annotations

import torch

from ._common import _ok, _require

__all__ = ["check_gaussian_noise", "check_corrupted_accuracy", "QUESTIONS"]


def check_gaussian_noise(fn) -> None:
    """Lesson 00: ``fn(x, sigma, generator)`` must return ``clip(x + N(0, sigma^2), 0, 1)`` per pixel, seeded.

    Independent noise for every pixel of every image: rejected are noise of the wrong law or scale (uniform,
    sigma**2), one value per image, the same pattern for every image of the batch (a (1, C, H, W) draw
    broadcast), no clip, no use of the generator, changing x in place."""
    x = torch.full((64, 1, 28, 28), 0.5)
    x_before = x.clone()
    out = fn(x, 0.1, torch.Generator().manual_seed(0))
    _require(isinstance(out, torch.Tensor), f"return a torch.Tensor, got {type(out).__name__}")
    _require(out.shape == x.shape, f"the result must have the input's shape {tuple(x.shape)}, got {tuple(out.shape)}")
    _require(out.dtype == x.dtype, f"keep the dtype {x.dtype}, got {out.dtype}")
    _require(torch.equal(x, x_before), "your function changed its input in place: work on a copy (x + noise)")
    _require(not torch.equal(out, x), "the result equals the input: no noise was added")
    d = out - x
    _require(abs(float(d.mean())) < 0.01, f"the noise should have mean 0, got mean {float(d.mean()):.3f} "
             "(torch.rand is uniform on [0, 1); use torch.randn for a standard normal)")
    std = float(d.std())
    _require(abs(std - 0.1) < 0.01, f"with sigma=0.1 the noise should have standard deviation 0.1, got {std:.3f} "
             "(multiply a standard normal sample by sigma, not sigma**2)")
    flat = d.flatten(1)
    same_per_image = float(flat.std(dim=1).mean())
    _require(same_per_image > 0.05, "the noise is (nearly) constant within each image: draw one value per pixel, "
             "with the shape of x")
    # the same pattern added to every image (noise drawn with shape (1, C, H, W) and broadcast, or one image's
    # noise reused): the correlation between two images' noise is then 1 instead of about 0
    same_pattern = float(torch.corrcoef(flat[:8])[~torch.eye(8, dtype=torch.bool)].abs().max())
    _require(same_pattern < 0.5, f"every image got the same noise pattern (correlation {same_pattern:.2f} between "
             "two images' noise): draw independent noise for every pixel of every image, with the shape of the "
             "whole batch, torch.randn(x.shape, generator=generator), not (1, C, H, W)")
    kurt = float(((d - d.mean()) ** 4).mean() / d.var() ** 2)
    _require(kurt > 2.5, f"the noise does not look Gaussian (kurtosis {kurt:.2f}, a Gaussian has 3, a uniform 1.8)")
    bright = fn(torch.full((8, 1, 28, 28), 0.98), 0.3, torch.Generator().manual_seed(1))
    dark = fn(torch.full((8, 1, 28, 28), 0.02), 0.3, torch.Generator().manual_seed(1))
    _require(float(bright.max()) <= 1.0 and float(dark.min()) >= 0.0,
             "values left [0, 1]: clip the result with .clamp(0, 1) (images in this course live in [0, 1])")
    a = fn(x, 0.1, torch.Generator().manual_seed(5))
    b = fn(x, 0.1, torch.Generator().manual_seed(5))
    _require(torch.equal(a, b), "the same generator seed must give the same noise: pass generator=generator "
             "to torch.randn")
    _ok("zero-mean Gaussian noise of the right scale, per pixel, clipped to [0, 1], reproducible with a seed.")


def check_corrupted_accuracy(answer, model, x, y, name: str, severity: int, seed: int = 0) -> None:
    """Lesson 00: ``answer`` must be the accuracy (a fraction) of ``model`` on ``corrupt(x, name, severity, seed)``."""
    from ..corruptions import corrupt
    from ..training import accuracy

    if isinstance(answer, torch.Tensor):
        answer = float(answer)
    _require(isinstance(answer, (int, float)), f"give the accuracy as a number, got {type(answer).__name__}")
    _require(0.0 <= answer <= 1.0, f"give the accuracy as a fraction in [0, 1], got {answer} "
             "(for 97.3 % write 0.973)")
    expected = accuracy(model, corrupt(x, name, severity, seed=seed), y)
    clean = accuracy(model, x, y)
    if abs(answer - expected) > 1e-6:
        if abs(answer - clean) <= 1e-6:
            raise AssertionError(f"{answer:.4f} is the accuracy on the clean images: corrupt them first with "
                                 f"corrupt(x, {name!r}, {severity}, seed={seed})")
        raise AssertionError(f"{answer:.4f} is not the accuracy on {name} at severity {severity} (seed {seed}); "
                             "check the corruption, the severity, the seed and that you compare predictions "
                             "(argmax of the logits) with the true labels")
    _ok(f"accuracy under {name} (severity {severity}) is {expected:.4f}, against {clean:.4f} on clean images.")


#: Multiple-choice questions of lesson 00: key -> (options, correct option, explanation shown on success).
QUESTIONS = {
    "00_noise_confidence": (
        ("generalisation", "explainability", "plausibility"), "plausibility",
        "A network that gives a confident answer to an image no human would call a digit fails the plausibility "
        "test: its confidence carries no information about whether the input is like anything it was trained on."),
    "00_rotation": (
        ("generalisation", "explainability", "plausibility"), "generalisation",
        "The rotated digits are still obviously digits to a person; the model's accuracy falls because it does not "
        "generalise beyond the distribution it was trained on."),
}
