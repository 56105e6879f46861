"""Checks for lesson 11 (gradient masking and how it is broken): the straight-through quantiser of BPDA, the
gradient of an expectation over a random defense (EOT), and reading the diagnostics table."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import _ok, _require

__all__ = ["check_straight_through", "check_eot_gradient"]


def _quantise(x: torch.Tensor, bits: int) -> torch.Tensor:
    levels = 2 ** bits - 1
    return torch.round(x * levels) / levels


def check_straight_through(fn) -> None:
    """Lesson 11: ``fn(x, bits)`` must quantise ``x`` to ``bits`` bits in the forward pass,
    ``round(x (2^b - 1)) / (2^b - 1)``, and pass gradients through unchanged in the backward pass (BPDA with the
    identity as the approximation, Athalye, Carlini & Wagner, 2018): ``d fn(x) / d x = I``.

    Checked at 1, 3 and 5 bits on random images: the forward values, the vector-Jacobian product with a random
    vector (it must equal that vector), and that ``x`` is not modified. The usual slips are named: plain rounding
    (zero gradient), the identity without quantising, ``floor`` instead of ``round``, the ``detach`` on the wrong
    term."""
    g = torch.Generator().manual_seed(11)
    for bits in (1, 3, 5):
        x = torch.rand(4, 1, 6, 6, generator=g, dtype=torch.float64)
        levels = 2 ** bits - 1
        # keep away from the rounding ties, where round-half-to-even and other conventions may differ
        x = torch.where(((x * levels) % 1 - 0.5).abs() < 1e-3, x + 2e-3 / levels, x).clamp(0, 1)
        w = torch.randn(x.shape, generator=g, dtype=torch.float64)
        xg = x.clone().requires_grad_(True)
        before = xg.detach().clone()
        out = fn(xg, bits)
        _require(isinstance(out, torch.Tensor) and out.shape == x.shape,
                 f"return a tensor of the input's shape {tuple(x.shape)}, got {getattr(out, 'shape', type(out))}")
        _require(torch.equal(xg.detach(), before), "your function changed its input in place: compute a new tensor")
        want = _quantise(x, bits)
        if not torch.allclose(out.detach(), want, atol=1e-9):
            if torch.allclose(out.detach(), x, atol=1e-9):
                raise AssertionError("the forward pass returns the input unchanged: the defense's forward pass must "
                                     "stay the quantisation, round(x * (2^bits - 1)) / (2^bits - 1); only the "
                                     "backward pass is replaced")
            if torch.allclose(out.detach(), torch.floor(x * levels) / levels, atol=1e-9):
                raise AssertionError("you rounded down (floor): BitDepth rounds to the nearest level, "
                                     "torch.round(x * levels) / levels")
            bad = (out.detach() - want).abs().max().item()
            raise AssertionError(f"the forward pass at {bits} bits is not the quantised image "
                                 f"round(x * {levels}) / {levels} (largest difference {bad:.3g})")
        _require(out.requires_grad, "no gradient reaches x: the output does not depend on x through autograd. The "
                 "straight-through trick is x + (quantised - x).detach(): the value of the quantised image, the "
                 "gradient of x")
        (grad,) = torch.autograd.grad((w * out).sum(), xg, allow_unused=True)
        grad = torch.zeros_like(x) if grad is None else grad
        if not torch.allclose(grad, w, atol=1e-9):
            if grad.abs().max() == 0:
                raise AssertionError("the gradient is exactly 0: the derivative of round is 0 almost everywhere, "
                                     "which is the masking itself. Keep the quantised value but take the "
                                     "gradient of the identity: x + (quantised - x).detach() (the detach on the "
                                     "difference, not on x)")
            raise AssertionError(f"the backward pass at {bits} bits is not the identity: the vector-Jacobian product "
                                 "with a vector v must give v back (BPDA replaces the transform's derivative by "
                                 "that of g(x) = x)")
    _ok("the forward pass is the quantised image, the backward pass the identity: any attack can now take "
        "gradients through the bit-depth reduction (Defended(model, BPDA(BitDepth(bits))) does the same).")


class _NoisyLinear(nn.Module):
    """A random defense for the check: Gaussian noise (sigma 1) on the input, then ReLU and a fixed linear map."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(0.5 * torch.randn(10, 64, generator=g, dtype=torch.float64))

    def forward(self, x):
        h = x.flatten(1)
        return F.relu(h + torch.randn_like(h)) @ self.weight.T


def _expected_gradient(model, x, y, n):
    xr = x.repeat(n, 1, 1, 1).requires_grad_(True)
    loss = F.cross_entropy(model(xr), y.repeat(n), reduction="sum")
    (grad,) = torch.autograd.grad(loss, xr)
    return grad.view(n, *x.shape).mean(0)


def check_eot_gradient(fn) -> None:
    """Lesson 11: ``fn(model, x, y, samples)`` must estimate the gradient of the *expected* loss of a randomised
    model (Expectation over Transformation, Athalye et al., 2018)::

        grad_x E_r[ L(f_r(x), y) ]  ~=  (1 / samples) * sum_{s=1..samples} grad_x L(f_{r_s}(x), y)

    with ``L`` the cross-entropy of each image (summed over the batch, so each image gets its own gradient) and a
    fresh draw of the randomness for every sample. The check runs it with ``samples = 200`` on a model that adds
    Gaussian noise to its input, and compares the result with an estimate from 20,000 draws: every image's
    gradient must point the same way (cosine > 0.95) and have the same size (within 15 %). A single draw, a sum
    instead of a mean, or the mean over the batch are named."""
    torch.manual_seed(1234)
    model = _NoisyLinear().eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(8, 1, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (8,), generator=g)
    ref = _expected_gradient(model, x, y, 20_000)
    x_in, y_in = x.clone(), y.clone()
    out = fn(model, x_in, y_in, 200)
    _require(isinstance(out, torch.Tensor) and out.shape == x.shape,
             f"return the gradient, a tensor of the input's shape {tuple(x.shape)}, got "
             f"{getattr(out, 'shape', type(out))}")
    _require(torch.equal(x_in, x) and not x_in.requires_grad,
             "your function changed the caller's x (values or requires_grad): work on a copy, "
             "xg = x.detach().clone().requires_grad_(True)")
    _require(not model.training, "your function put the model in training mode: leave it in eval mode")
    _require(model.weight.grad is None, "your function left gradients in the model's parameters: use "
             "torch.autograd.grad(loss, xg) (or clear them) so that only the input's gradient is computed")
    out = out.detach()
    _require(bool(torch.isfinite(out).all()), "your gradient has NaN or inf entries")
    cos = F.cosine_similarity(out.flatten(1), ref.flatten(1), dim=1)
    ratio = out.flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)
    if float(cos.min()) < 0.95:
        raise AssertionError(f"your estimate does not point where the expected gradient points (smallest cosine "
                             f"{float(cos.min()):.2f} over the 8 images, a correct 200-sample mean gives about 0.99): "
                             "it varies like one or a few draws. Call the model once per sample (each call draws "
                             "new noise), take the gradient of each loss, and average them; do not fix the seed "
                             "inside the loop")
    med = float(ratio.median())
    if abs(med / 200 - 1) < 0.15:
        raise AssertionError("your gradient is 200 times too large: you summed the samples' gradients; EOT "
                             "averages them (divide by samples)")
    if abs(med * 8 - 1) < 0.15:
        raise AssertionError("your gradient is 8 times too small (the batch size): you averaged the loss over the "
                             "batch; sum it over images (reduction='sum') so that each image gets its own gradient")
    _require(bool(((ratio - 1).abs() < 0.15).all()),
             f"your gradient points the right way but its size is off (ratio to the expected gradient "
             f"{[round(float(r), 2) for r in ratio]}): average the gradients of the per-image cross-entropy")
    _ok(f"200 draws give the expected gradient within cosine {float(cos.min()):.3f}: the average of the gradients "
        "is the gradient of the average loss, which PGD can climb although every single draw is noisy.")


#: Multiple-choice questions of lesson 11: key -> (options, correct option, explanation shown on success).
QUESTIONS = {
    "11_square_beats_pgd": (
        ("a", "b", "c", "d"), "b",
        "Square stays inside the same eps-ball and found adversarial examples for almost every digit, so they exist; "
        "PGD missed them because the gradient it follows is zero (rounding is flat between levels). That is "
        "gradient masking: the PGD number measures the attack's blindness, not the model's robustness. Square is "
        "not better in general (on an undefended model PGD is as strong and much cheaper); it is the check that "
        "needs no gradient."),
    "11_binarisation": (
        ("a", "b", "c", "d"), "c",
        "Under the ensemble, with gradient-free attacks included, a large share of digits survive at eps = 0.3: a "
        "pixel at 0 needs +0.5 to cross the threshold, so the L-inf ball cannot flip most pixels. That robustness is "
        "real but belongs to this threat model and to nearly binary images: at eps = 0.4 every pixel between 0.1 "
        "and 0.9 can cross the threshold, and the accuracy falls fast. Robustness is always 'against these attacks, "
        "in this threat model, with these budgets'."),
}
