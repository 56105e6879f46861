"""course_lib.attacks.linear_worst_case is the exact maximum of the margin over the box (brute force over its
vertices), stays in the ball and in [0, 1]; training.count_images counts forward passes."""
import itertools

import pytest
import torch
from torch import nn

from course_lib.attacks import linear_worst_case
from course_lib.training import count_images


def brute_force_best_margin(w, b, x, y, eps):
    flat = x.flatten()
    lo, hi = (flat - eps).clamp(min=0), (flat + eps).clamp(max=1)
    best = -float("inf")
    for corner in itertools.product([0, 1], repeat=flat.numel()):
        z = torch.where(torch.tensor(corner, dtype=torch.bool), hi, lo)
        logits = w @ z + b
        best = max(best, float(torch.cat([logits[:y], logits[y + 1:]]).max() - logits[y]))
    return best


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_over_the_vertices(seed):
    g = torch.Generator().manual_seed(seed)
    w, b = torch.randn(3, 6, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)
    x = torch.rand(2, 1, 2, 3, generator=g, dtype=torch.float64)
    x[0, 0, 0, 0] = 0.0                                         # pixels at the ends of [0, 1]: the clip matters
    x[1, 0, 1, 2] = 1.0
    y = torch.tensor([0, 2])
    before = x.clone()
    adv = linear_worst_case(w, b, x, y, 0.2)
    assert torch.equal(x, before)
    assert (adv - x).abs().max() <= 0.2 + 1e-12 and adv.min() >= 0 and adv.max() <= 1
    for i in range(2):
        logits = w @ adv[i].flatten() + b
        ours = float(torch.cat([logits[:y[i]], logits[y[i] + 1:]]).max() - logits[y[i]])
        assert ours == pytest.approx(brute_force_best_margin(w, b, x[i], int(y[i]), 0.2), abs=1e-10)


def test_without_the_clip_the_margin_grows_by_eps_times_the_l1_norm():
    w = torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, -1.0]])
    b = torch.zeros(2)
    x = torch.full((1, 1, 1, 3), 0.5)                           # far from 0 and 1: no clip at eps = 0.1
    adv = linear_worst_case(w, b, x, torch.tensor([0]), 0.1)
    d = w[1] - w[0]
    gain = float(d @ (adv - x).flatten())
    assert gain == pytest.approx(0.1 * float(d.abs().sum()))


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="C \\* H \\* W"):
        linear_worst_case(torch.zeros(3, 5), torch.zeros(3), torch.zeros(1, 1, 2, 3), torch.tensor([0]), 0.1)
    with pytest.raises(ValueError, match="bias"):
        linear_worst_case(torch.zeros(3, 6), torch.zeros(2), torch.zeros(1, 1, 2, 3), torch.tensor([0]), 0.1)


def test_count_images_counts_every_forward_pass_and_removes_its_hook():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).eval()
    out, n = count_images(model, lambda: [model(torch.zeros(3, 1, 2, 2)), model(torch.zeros(5, 1, 2, 2))])
    assert n == 8 and len(out) == 2
    assert not model._forward_pre_hooks
    with pytest.raises(RuntimeError):
        count_images(model, lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert not model._forward_pre_hooks
