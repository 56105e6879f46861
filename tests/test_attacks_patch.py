"""Adversarial patches: exact pasting, the differentiable placement, and training on a model whose optimal
patch is known by construction (pure red, no green)."""
import math

import pytest
import torch
from torch import nn

from course_lib.attacks import apply_patch, place_patch, train_patch


class RedDetector(nn.Module):
    """Logits ``(1, 0.5, 30 * mean relu(R - G) - 6.5)``: uniform noise scores class 2 about -1.5, an image whose
    8x8 of 16x16 pixels are pure red (R=1, G=0) about +4.7, so class 2 wins only with a red patch, and the
    blue channel does not matter at all."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0, 0.0]).view(1, 3, 1, 1))
            self.conv.bias.zero_()
        self.relu = nn.ReLU()

    def forward(self, x):
        score = 30 * self.relu(self.conv(x)).mean((1, 2, 3)) - 6.5
        return torch.stack([torch.ones_like(score), torch.full_like(score, 0.5), score], 1)


@pytest.fixture
def images():
    return torch.rand(12, 3, 16, 16, generator=torch.Generator().manual_seed(0))


# --------------------------------------------------------------------------- apply_patch


def test_apply_patch_pastes_exactly_and_changes_nothing_else(images):
    patch = torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(1))
    before = images.clone()
    out = apply_patch(images, patch, location=(2, 9))
    assert torch.equal(images, before), "the input was modified"
    assert torch.equal(out[:, :, 2:7, 9:14], patch.expand(12, -1, -1, -1))
    mask = torch.ones_like(images, dtype=torch.bool)
    mask[:, :, 2:7, 9:14] = False
    assert torch.equal(out[mask], images[mask])


def test_apply_patch_default_is_the_centre_and_per_image_locations_work(images):
    patch = torch.ones(3, 4, 4)
    out = apply_patch(images[:2], patch)
    assert torch.equal(out[:, :, 6:10, 6:10], torch.ones(2, 3, 4, 4))
    out = apply_patch(images[:2], patch, location=torch.tensor([[0, 0], [12, 12]]))
    assert (out[0, :, :4, :4] == 1).all() and (out[1, :, 12:, 12:] == 1).all()
    assert torch.equal(out[0, :, 12:, 12:], images[0, :, 12:, 12:])


def test_random_locations_are_inside_seeded_and_vary(images):
    patch = torch.full((3, 6, 6), 2.0) / 2  # value 1.0: find it again in the output
    dark = images * 0.5
    a = apply_patch(dark, patch, location="random", seed=3)
    b = apply_patch(dark, patch, location="random", seed=3)
    c = apply_patch(dark, patch, location="random", seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    corners = set()
    for img in a:
        rows, cols = torch.nonzero(img[0] == 1.0, as_tuple=True)
        assert len(rows) == 36, "the whole patch lies inside the image"
        corners.add((rows.min().item(), cols.min().item()))
    assert len(corners) > 6, "random locations differ between images"


def test_scale_resizes_the_patch(images):
    out = apply_patch(images[:1] * 0.5, torch.ones(3, 4, 4), location=(0, 0), scale=2.0)
    assert (out[0, :, :8, :8] == 1).all() and (out[0, :, 8:, :] < 1).all()


@pytest.mark.parametrize("patch, location, match", [
    (torch.rand(1, 4, 4), None, "channels"),
    (torch.rand(3, 4, 5), None, "square"),
    (torch.rand(3, 20, 20), None, "does not fit"),
    (torch.rand(3, 4, 4) + 1, None, r"\[0, 1\]"),
    (torch.rand(3, 4, 4).double(), None, "patch.to"),
    (torch.rand(3, 4, 4), (14, 0), "inside"),
    (torch.rand(3, 4, 4), "middle", "random"),
    (torch.rand(3, 4, 4), torch.zeros(5, 2), r"\(12, 2\)"),
])
def test_apply_patch_rejects_bad_input(images, patch, location, match):
    with pytest.raises(ValueError, match=match):
        apply_patch(images, patch, location=location)


# --------------------------------------------------------------------------- place_patch


def test_place_patch_without_rotation_equals_pasting(images):
    patch = torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(2))
    b = images.shape[0]
    centre = torch.tensor([[2 + 2.5, 9 + 2.5]]).expand(b, 2)  # top-left (2, 9), side 5
    placed = place_patch(images, patch, centre, torch.ones(b), torch.zeros(b))
    assert torch.allclose(placed, apply_patch(images, patch, location=(2, 9)), atol=1e-6)


def test_place_patch_quarter_turn_is_a_rotated_paste(images):
    patch = torch.rand(3, 6, 6, generator=torch.Generator().manual_seed(5))
    b = images.shape[0]
    placed = place_patch(images, patch, torch.tensor([[8.0, 8.0]]).expand(b, 2), torch.ones(b),
                         torch.full((b,), math.pi / 2))
    expected = apply_patch(images, torch.rot90(patch, -1, (1, 2)).contiguous(), location=(5, 5))
    assert torch.allclose(placed, expected, atol=1e-5)


def test_place_patch_scale_two_covers_four_times_the_area():
    x = torch.zeros(1, 3, 32, 32)
    placed = place_patch(x, torch.ones(3, 4, 4), torch.tensor([[16.0, 16.0]]), torch.tensor([2.0]),
                         torch.zeros(1))
    assert torch.allclose(placed[0, 0].sum(), torch.tensor(64.0), atol=1e-4)
    # covers [12, 20) x [12, 20): 1 inside, a soft (bilinear) edge one pixel wide on both sides, 0 beyond
    assert (placed[0, :, 13:19, 13:19] == 1).all()
    assert placed[0, :, :11].sum() == placed[0, :, 21:].sum() == placed[0, :, :, :11].sum() == 0


def test_place_patch_gradient_counts_each_patch_pixel_once_per_image(images):
    patch = torch.rand(3, 4, 4, requires_grad=True)
    b = images.shape[0]
    out = place_patch(images, patch, torch.tensor([[6.0, 6.0]]).expand(b, 2), torch.ones(b), torch.zeros(b))
    (grad,) = torch.autograd.grad(out.sum(), patch)
    assert torch.allclose(grad, torch.full_like(grad, float(b)))


# --------------------------------------------------------------------------- train_patch


def test_train_patch_finds_the_known_optimum_and_fools_unseen_images(images):
    model = RedDetector().eval()
    flags = [p.requires_grad for p in model.parameters()]
    history = []
    patch = train_patch(model, images, target=2, size=8, steps=60, seed=0, batch_size=8, lr=0.1,
                        scale_range=(1.0, 1.0), max_angle=0.0, history=history, progress=False)
    assert patch.shape == (3, 8, 8) and patch.min() >= 0 and patch.max() <= 1
    # the optimum by construction: red at 1, green at 0 (blue has zero gradient and stays where it started)
    assert patch[0].min() > 0.95 and patch[1].max() < 0.05
    assert len(history) == 60 and history[-1]["loss"] < history[0]["loss"]
    unseen = torch.rand(50, 3, 16, 16, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        assert (model(unseen).argmax(1) == 2).float().mean() == 0
        hits = model(apply_patch(unseen, patch, location="random", seed=0)).argmax(1) == 2
    assert hits.float().mean() == 1
    assert not model.training and [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_train_patch_is_seeded_and_works_on_a_frozen_model(images):
    model = RedDetector().eval().requires_grad_(False)
    kw = dict(target=2, size=4, steps=5, batch_size=4, progress=False)
    a = train_patch(model, images, seed=1, **kw)
    b = train_patch(model, images, seed=1, **kw)
    c = train_patch(model, images, seed=2, **kw)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not any(p.requires_grad for p in model.parameters())


def test_train_patch_rejects_bad_input(images):
    model = RedDetector().eval()
    with pytest.raises(ValueError, match="target"):
        train_patch(model, images, target=3, size=4, steps=1, progress=False)
    with pytest.raises(ValueError, match="does not fit"):
        train_patch(model, images, target=2, size=17, steps=1, progress=False)
    with pytest.raises(ValueError, match="scale_range"):
        train_patch(model, images, target=2, size=4, steps=1, scale_range=(0, 1), progress=False)
    with pytest.raises(ValueError, match="eval"):
        train_patch(RedDetector().train(), images, target=2, size=4, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train_patch(model, images + 1, target=2, size=4, steps=1, progress=False)


def test_patch_success_counts_target_predictions_over_images_and_places(images):
    from course_lib.attacks import patch_success

    model = RedDetector().eval()
    red, green = torch.zeros(3, 8, 8), torch.zeros(3, 8, 8)
    red[0], green[1] = 1.0, 1.0
    assert patch_success(model, images, red, 2, places=3) == 1.0
    assert patch_success(model, images, green, 2, places=3) == 0.0
    some = red.clone()
    some[0, 4:] = 0.0  # red on 4 of 8 rows: class 2 wins on some (image, place) pairs (40 %), not on all
    hits = [model(apply_patch(images, some, "random", seed=5 + r)).argmax(1) == 2 for r in range(4)]
    expected = torch.cat(hits).float().mean().item()
    assert 0 < expected < 1
    assert patch_success(model, images, some, 2, places=4, seed=5) == pytest.approx(expected)


def test_random_locations_reach_every_position_and_a_full_size_patch_works():
    """'random' places the top-left corner uniformly on every position where the patch fits, the last row and
    column included; a patch as large as the image has one place."""
    out = apply_patch(torch.zeros(300, 1, 4, 4), torch.ones(1, 2, 2), "random", seed=0)
    corners = {tuple(int(v) for v in (img[0] > 0).nonzero()[0]) for img in out}
    assert corners == {(r, c) for r in range(3) for c in range(3)}
    assert torch.equal(apply_patch(torch.zeros(2, 1, 4, 4), torch.ones(1, 4, 4), "random", seed=0),
                       torch.ones(2, 1, 4, 4))


def test_centre_placement_rounds_down():
    """location=None puts the top-left corner at ((H - s) // 2, (W - s) // 2): for 7x7 and s = 2, at (2, 2)."""
    out = apply_patch(torch.zeros(1, 1, 7, 7), torch.ones(1, 2, 2))
    assert (out[0, 0] > 0).nonzero().tolist() == [[2, 2], [2, 3], [3, 2], [3, 3]]
