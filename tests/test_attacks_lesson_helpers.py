"""The functions lessons 09 and 10 call instead of notebook helpers: the oracle's log-probability margin, the
Boundary attack's public proposal, the EOT transformations of a patch, and print-and-photograph."""
import math

import pytest
import torch
from _toy import Linear

from course_lib.attacks import Oracle, boundary_proposal, oracle_margin, place_patch, sample_transforms
from course_lib.attacks.boundary import _propose
from course_lib.corruptions import PRINT_PHOTO, gaussian_blur, print_and_photograph

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# --------------------------------------------------------------------------- oracle_margin
def _logits_model():
    g = torch.Generator().manual_seed(0)
    return Linear(torch.randn(4, 16, generator=g), torch.randn(4, generator=g)).eval()


def test_oracle_margin_is_the_logit_margin_and_counts_one_query_per_row():
    model = _logits_model()
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3, 0])
    with torch.no_grad():
        z = model(x)
    other = z.scatter(1, y[:, None], float("-inf")).amax(1)
    own = z.gather(1, y[:, None]).squeeze(1)
    oracle = Oracle(model, access="scores")
    assert torch.allclose(oracle_margin(oracle, x, y), own - other, atol=1e-5)  # log p differences = logit differences
    assert oracle.queries.tolist() == [1] * 5
    assert torch.allclose(oracle_margin(oracle, x, y, targeted=True), other - own, atol=1e-5)
    assert oracle.queries.tolist() == [2] * 5


def test_oracle_margin_broadcasts_one_label_and_charges_the_owner():
    model = _logits_model()
    x0 = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    oracle = Oracle(model, access="scores")
    f0 = oracle_margin(oracle, x0, torch.tensor([2]))
    rows = x0.expand(3, -1, -1, -1)
    f = oracle_margin(oracle, rows, torch.tensor([2]), owner=torch.zeros(3, dtype=torch.long))
    assert torch.allclose(f, f0.expand(3)) and oracle.queries.tolist() == [4]
    assert not f.requires_grad


def test_oracle_margin_rejects_label_oracles_and_bad_labels():
    model = _logits_model()
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match="access='scores'"):
        oracle_margin(Oracle(model, access="labels"), x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="LongTensor of shape"):
        oracle_margin(Oracle(model), x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="class indices"):
        oracle_margin(Oracle(model), x, torch.tensor([0, 7]))


# --------------------------------------------------------------------------- boundary_proposal
def test_boundary_proposal_is_the_papers_step_and_the_attacks_own():
    g = torch.Generator().manual_seed(3)
    x = 0.3 + 0.4 * torch.rand(4, 1, 8, 8, generator=g)
    x_adv = x + 0.05 * torch.randn(4, 1, 8, 8, generator=g)
    before = (x.clone(), x_adv.clone())
    x_s, x_new = boundary_proposal(x, x_adv, 0.1, 0.2, seed=7)
    assert torch.equal(x, before[0]) and torch.equal(x_adv, before[1])
    d = (x_adv - x).flatten(1).norm(dim=1)
    assert torch.allclose((x_s - x).flatten(1).norm(dim=1), d, rtol=1e-4)          # on the sphere (no clip here)
    assert torch.allclose((x_new - x).flatten(1).norm(dim=1), 0.8 * d, rtol=1e-4)  # (1 - epsilon) d
    # the same numbers as the attack's inner function with the same generator
    ref = _propose(x, x_adv, torch.full((4,), 0.1), torch.full((4,), 0.2), torch.Generator().manual_seed(7))
    assert torch.equal(x_s, ref[0]) and torch.equal(x_new, ref[1])
    again = boundary_proposal(x, x_adv, torch.full((4,), 0.1), torch.full((4,), 0.2), seed=7)
    assert torch.equal(again[1], x_new)


def test_boundary_proposal_checks_its_arguments():
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match="x_adv must have"):
        boundary_proposal(x, torch.rand(3, 1, 4, 4), 0.1, 0.1)
    with pytest.raises(ValueError, match="delta"):
        boundary_proposal(x, torch.rand(2, 1, 4, 4), torch.tensor([0.1, 0.1, 0.1]), 0.1)
    with pytest.raises(ValueError, match="epsilon must be at most 1"):
        boundary_proposal(x, torch.rand(2, 1, 4, 4), 0.1, 1.5)


# --------------------------------------------------------------------------- sample_transforms
def test_sample_transforms_draws_inside_the_image_within_the_ranges_and_is_seeded():
    c, s, a = sample_transforms(500, 28, 40, 10, scale_range=(0.8, 1.2), max_angle=30, seed=0)
    assert c.shape == (500, 2) and s.shape == (500,) and a.shape == (500,)
    assert s.min() >= 0.8 and s.max() <= 1.2 and a.abs().max() <= math.radians(30) + 1e-6
    half = s * 10 / 2 * (a.cos().abs() + a.sin().abs())
    assert (c[:, 0] >= half - 1e-4).all() and (c[:, 0] <= 28 - half + 1e-4).all()
    assert (c[:, 1] >= half - 1e-4).all() and (c[:, 1] <= 40 - half + 1e-4).all()
    again = sample_transforms(500, 28, 40, 10, scale_range=(0.8, 1.2), max_angle=30, seed=0)
    assert all(torch.equal(u, v) for u, v in zip((c, s, a), again, strict=True))
    # the patch placed with them lies entirely inside: the images' borders are untouched
    x = torch.zeros(500, 1, 28, 40)
    placed = place_patch(x, torch.ones(1, 10, 10), c, s, a)
    assert placed.sum((1, 2, 3)).min() > 0.5 * 64  # at least most of a 0.8-scaled patch is visible


def test_sample_transforms_checks_its_arguments():
    with pytest.raises(ValueError, match="scale_range"):
        sample_transforms(4, 28, 28, 10, scale_range=(1.2, 0.8))
    with pytest.raises(ValueError, match="max_angle"):
        sample_transforms(4, 28, 28, 10, max_angle=-1)
    with pytest.raises(ValueError, match="n must be"):
        sample_transforms(0, 28, 28, 10)


# --------------------------------------------------------------------------- print_and_photograph
def test_print_and_photograph_severity_zero_is_a_copy_and_the_result_is_an_image():
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    out0 = print_and_photograph(x, 0, seed=0)
    assert torch.equal(out0, x) and out0 is not x
    for s in range(1, 6):
        out = print_and_photograph(x, s, seed=0)
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
        assert torch.equal(out, print_and_photograph(x, s, seed=0))  # seeded


def test_print_and_photograph_follows_its_formula_step_by_step():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    k = 2  # severity 3
    lo, hi = PRINT_PHOTO["lo"][k], PRINT_PHOTO["hi"][k]
    printed = print_and_photograph(x, 3, skip=("blur", "noise", "jpeg"))
    assert torch.allclose(printed, lo + (hi - lo) * x, atol=1e-6)   # the printer's range
    assert printed.min() >= lo - 1e-6 and printed.max() <= hi + 1e-6
    from course_lib import _blur
    blurred = print_and_photograph(x, 3, skip=("print", "noise", "jpeg"))
    assert torch.allclose(blurred, _blur.gaussian_blur(x, PRINT_PHOTO["blur"][k] * 32 / 224, truncate=3.0,
                                                       border="reflect").clamp(0, 1), atol=1e-6)
    noisy = print_and_photograph(x, 3, seed=1, skip=("print", "blur", "jpeg"))
    assert abs(float((noisy - x)[(x > 0.2) & (x < 0.8)].std()) - PRINT_PHOTO["noise"][k]) < 0.005
    full = print_and_photograph(x, 3, seed=1)
    from course_lib.corruptions import _jpeg_roundtrip
    assert torch.equal(full, _jpeg_roundtrip(print_and_photograph(x, 3, seed=1, skip="jpeg"), PRINT_PHOTO["jpeg"][k]))


def test_print_and_photograph_grows_with_severity_and_leaves_x_alone():
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    before = x.clone()
    dist = [float((print_and_photograph(x, s, seed=0) - x).abs().mean()) for s in range(6)]
    assert torch.equal(x, before)
    assert dist[0] == 0 and all(a < b for a, b in zip(dist[:-1], dist[1:], strict=True))


def test_print_and_photograph_checks_its_arguments():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="severity"):
        print_and_photograph(x, 6)
    with pytest.raises(ValueError, match="skip"):
        print_and_photograph(x, 1, skip=("lens",))
    with pytest.raises(ValueError, match="channels"):
        print_and_photograph(torch.rand(1, 2, 8, 8), 1)
    assert gaussian_blur(x, 0).equal(x)  # the existing corruptions are untouched by the addition


# --------------------------------------------------------------------------- one meaning of seed
def _draws():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(8))
    xa = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(9))).clamp(0, 1)
    return {
        "sample_transforms": lambda seed: torch.cat([t.flatten() for t in sample_transforms(3, 28, 28, 6, seed=seed)]),
        "print_and_photograph": lambda seed: print_and_photograph(x, 2, seed=seed),
        "boundary_proposal": lambda seed: boundary_proposal(x, xa, 0.1, 0.1, seed=seed)[1],
    }


@pytest.mark.parametrize("name", ["sample_transforms", "print_and_photograph", "boundary_proposal"])
def test_seed_means_what_it_means_in_the_whole_package(name):
    draw = _draws()[name]
    assert torch.equal(draw(3), draw(3))
    assert torch.equal(draw(torch.Generator().manual_seed(3)), draw(3))
    torch.manual_seed(0)
    first = draw(None)
    torch.manual_seed(0)
    assert torch.equal(draw(None), first)        # None: from torch's global RNG, so manual_seed reproduces it
    assert not torch.equal(draw(None), first)    # and two calls in a row differ
