"""course_lib.defenses.transforms: the transforms against their definitions, BPDA's value and gradient, EOT's
average, and the composition with the attacks (a masked defense looks strong against plain PGD and falls to
BPDA-PGD)."""
import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from course_lib.attacks import pgd
from course_lib.defenses import BPDA, EOT, JPEG, BitDepth, Defended, RandomResizePad


def ramp(b=2, c=1, h=8, w=8):
    return torch.linspace(0, 1, b * c * h * w).view(b, c, h, w)


class Linear(nn.Module):
    """logits = W x.flatten(): a differentiable toy classifier whose input gradient is known (W's rows)."""

    def __init__(self, n, k=3, seed=0):
        super().__init__()
        self.w = nn.Parameter(torch.randn(k, n, generator=torch.Generator().manual_seed(seed)))
        self.eval()

    def forward(self, x):
        return x.flatten(1) @ self.w.T


@pytest.mark.parametrize("bits, levels", [(1, [0.0, 1.0]), (2, [0, 1 / 3, 2 / 3, 1]), (3, [k / 7 for k in range(8)])])
def test_bit_depth_rounds_to_the_nearest_level(bits, levels):
    x = ramp()
    out = BitDepth(bits)(x)
    lv = torch.tensor(levels)
    nearest = lv[(x[..., None] - lv).abs().argmin(-1)]
    assert torch.allclose(out, nearest, atol=1e-6)
    assert torch.equal(BitDepth(1)(torch.tensor([0.49, 0.51]).view(1, 1, 1, 2)).flatten(), torch.tensor([0.0, 1.0]))


def test_bit_depth_has_a_zero_gradient_and_bpda_the_identity():
    x = ramp().requires_grad_(True)
    (g,) = torch.autograd.grad(BitDepth(2)(x).sum(), x)
    assert torch.equal(g, torch.zeros_like(x))
    weights = torch.randn_like(x)
    out = BPDA(BitDepth(2))(x)
    assert torch.equal(out.detach(), BitDepth(2)(x.detach()))           # the value: exactly the transform
    (g,) = torch.autograd.grad((weights * out).sum(), x)
    assert torch.allclose(g, weights)                                   # the gradient: the identity's


def test_bpda_with_an_approximation_takes_its_gradient():
    x = ramp().requires_grad_(True)
    smooth = lambda z: torch.sigmoid(8 * (z - 0.5))                      # a smooth stand-in for BitDepth(1)  # noqa: E731
    out = BPDA(BitDepth(1), backward=smooth)(x)
    assert torch.equal(out.detach(), BitDepth(1)(x.detach()))
    (g,) = torch.autograd.grad(out.sum(), x)
    s = smooth(x.detach())
    assert torch.allclose(g, 8 * s * (1 - s), atol=1e-6)


def test_jpeg_matches_a_pillow_round_trip_and_has_a_zero_gradient():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g)
    out = JPEG(50)(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    for img, got in zip(x, out, strict=True):          # the round trip written out: channel order, 0..255, rounding
        arr = (img.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=50)
        ref = torch.from_numpy(np.asarray(Image.open(buf), dtype=np.float32) / 255).permute(2, 0, 1)
        assert torch.allclose(got, ref, atol=1e-6)
    assert (out - x).abs().mean() > 0.02                                # it does change the image
    assert (JPEG(100)(x) - x).abs().mean() < (out - x).abs().mean()
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(JPEG(50)(xg).sum(), xg)
    assert torch.equal(grad, torch.zeros_like(x))
    with pytest.raises(ValueError, match="quality"):
        JPEG(101)


def test_random_resize_pad_is_seeded_per_image_and_the_identity_at_scale_one():
    x = ramp(4, 1, 16, 16)
    assert torch.allclose(RandomResizePad(min_scale=1.0, seed=0)(x), x, atol=1e-5)
    a, b = RandomResizePad(seed=3), RandomResizePad(seed=3)
    first = a(x)
    assert torch.equal(first, b(x))                                      # same seed, same sequence of draws
    assert not torch.equal(first, a(x))                                  # each call draws anew
    torch.manual_seed(11)                                                # seed=None: the global RNG, as everywhere
    fresh = RandomResizePad()(x)
    torch.manual_seed(11)
    assert torch.equal(fresh, RandomResizePad()(x))
    ones = RandomResizePad(min_scale=0.5, seed=1)(torch.ones(6, 1, 16, 16))
    covered = ones.flatten(1).sum(1)
    assert len(set(covered.round().tolist())) > 1                        # one size per image
    assert (covered <= 16 * 16 + 1e-3).all() and (covered >= 0.25 * 16 * 16 - 16).all()
    assert RandomResizePad(min_scale=0.5, fill=0.3, seed=1)(torch.zeros(2, 1, 16, 16)).max() == pytest.approx(0.3)


def test_eot_averages_the_logits_of_its_draws():
    model = Linear(64)
    det = Defended(model, BitDepth(8))
    x = ramp(3, 1, 8, 8)
    assert torch.allclose(EOT(det, 5)(x), det(x), atol=1e-5)            # no randomness: the module itself
    rnd = Defended(model, RandomResizePad(min_scale=0.6, seed=7))
    draws = Defended(model, RandomResizePad(min_scale=0.6, seed=7))
    eot = EOT(rnd, 4, chunk=3)                                           # one copy of the batch per call
    manual = torch.stack([draws(x) for _ in range(4)]).mean(0)
    assert torch.allclose(eot(x), manual, atol=1e-5)
    batched = EOT(Defended(model, RandomResizePad(min_scale=0.6, seed=7)), 4)   # all copies in one call
    assert batched(x).shape == (3, 3)


def test_wrappers_take_the_mode_of_what_they_wrap_and_refuse_bad_arguments():
    model = Linear(64)
    assert not Defended(model, BitDepth(2)).training and not EOT(Defended(model, BPDA(JPEG())), 2).training
    with pytest.raises(TypeError):
        Defended(model, "jpeg")
    with pytest.raises(ValueError, match="bits"):
        BitDepth(0)
    with pytest.raises(ValueError, match="min_scale"):
        RandomResizePad(min_scale=1.5)
    with pytest.raises(ValueError, match="samples"):
        EOT(model, 0)


@pytest.mark.usefixtures("one_thread")
def test_bit_depth_masks_plain_pgd_and_bpda_breaks_it(mnist_cnn, mnist_test):
    """The lesson's claim in small: at 3 bits and eps 0.1 plain PGD through the rounding cannot move (zero
    gradient), BPDA-PGD brings the accuracy down to about the undefended model's."""
    x, y = mnist_test[0][:64], mnist_test[1][:64]
    masked, bpda = Defended(mnist_cnn, BitDepth(3)), Defended(mnist_cnn, BPDA(BitDepth(3)))
    kw = dict(eps=0.1, alpha=0.01, steps=20, seed=0)

    def acc(model, xs):
        with torch.no_grad():
            return float((masked(xs).argmax(1) == y).float().mean())  # always judged by the real defense

    plain = acc(masked, pgd(masked, x, y, **kw))
    broken = acc(bpda, pgd(bpda, x, y, **kw))
    assert plain > 0.5 and broken < 0.1 and plain - broken > 0.4
