"""The utilities that have one home each: PGD's step and projections (students write them and compare), the
bookkeeping of the distance-minimising attacks, the blur, the input gradient, the checks, ``predict_labels``, and
the statistics that are computed in float64 on the CPU (devices such as MPS have no float64)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage
import scipy.stats
import torch
from torch import nn

from course_lib._blur import gaussian_blur
from course_lib._grad import input_gradient
from course_lib._validate import check_count, check_logits
from course_lib.attacks import attack_sweep, pgd, pgd_step, project_l2, project_linf, success_rate, transfer
from course_lib.attacks._search import ConstantSearch, keep_closest
from course_lib.explain import max_sensitivity, rank_correlation, saliency, selectivity
from course_lib.training import predict, predict_labels


def _images(b=3, shape=(1, 5, 5), seed=0, dtype=torch.float64):
    return torch.rand(b, *shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _linear(k=4, d=25, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, k)).to(dtype).eval()
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(k, d, generator=g, dtype=dtype))
        model[1].bias.copy_(torch.randn(k, generator=g, dtype=dtype))
    return model


# --------------------------------------------------------------------------- PGD: step and projections
def test_projections_by_hand():
    x = torch.tensor([[[[0.0, 0.5, 0.95]]]], dtype=torch.float64)
    far = torch.tensor([[[[-0.3, 0.9, 0.7]]]], dtype=torch.float64)
    # L-inf: clip to [max(x - eps, 0), min(x + eps, 1)] per pixel
    assert project_linf(far, x, 0.1).flatten().tolist() == pytest.approx([0.0, 0.6, 0.85])
    # L2: delta = far - x scaled to length eps (if longer), then clipped to [0, 1]
    delta = (far - x).flatten()
    scaled = (x.flatten() + delta * 0.2 / delta.norm()).clamp(0, 1)
    torch.testing.assert_close(project_l2(far, x, 0.2).flatten(), scaled)
    near = x + 0.01
    torch.testing.assert_close(project_l2(near.clamp(0, 1), x, 0.2), near.clamp(0, 1))  # inside: unchanged


def test_pgd_step_is_the_formula():
    x, x_t = _images(seed=1), _images(seed=2)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    eps, alpha = 0.1, 0.03
    lo, hi = (x - eps).clamp(min=0), (x + eps).clamp(max=1)
    torch.testing.assert_close(pgd_step(x_t, grad, x, eps, alpha), torch.minimum(torch.maximum(
        x_t + alpha * grad.sign(), lo), hi))
    g_unit = grad / grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    z = x_t + alpha * g_unit
    d = z - x
    shrink = (eps / d.flatten(1).norm(dim=1)).clamp(max=1).view(-1, 1, 1, 1)
    torch.testing.assert_close(pgd_step(x_t, grad, x, eps, alpha, norm="l2"), (x + d * shrink).clamp(0, 1))


@pytest.mark.parametrize("norm,eps,alpha", [("linf", 0.1, 0.02), ("l2", 0.5, 0.1)])
def test_a_loop_of_pgd_steps_is_pgd(norm, eps, alpha):
    """What a student writes, a loop of pgd_step from x, is pgd without a random start and with the last iterate."""
    model, x = _linear(), _images()
    y = torch.tensor([0, 1, 2])
    x_t = x
    for _ in range(5):
        grad, _ = input_gradient(model, x_t, lambda z: nn.functional.cross_entropy(z, y, reduction="none"))
        x_t = pgd_step(x_t, grad, x, eps, alpha, norm)
    out = pgd(model, x, y, eps, alpha, 5, norm=norm, random_start=False, keep_best=False)
    torch.testing.assert_close(out, x_t, rtol=0, atol=0)


# --------------------------------------------------------------------------- C&W / ZOO / HSJ bookkeeping
def test_constant_search_by_hand():
    search = ConstantSearch(1.0, 2, dtype=torch.float64)
    search.update(torch.tensor([False, True]))    # image 0: x10 until the first success; image 1: bisect [0, 1]
    assert search.c.tolist() == [10.0, 0.5]
    search.update(torch.tensor([True, False]))    # image 0: bisect [1, 10]; image 1: bisect [0.5, 1]
    assert search.c.tolist() == [5.5, 0.75]


def test_keep_closest_several_rows_per_image_first_of_ties_and_misses():
    best = torch.zeros(3, 2)
    best_d = torch.tensor([5.0, 1.0, math.inf])
    rows = torch.arange(12.0).view(6, 2)
    owner = torch.tensor([0, 0, 0, 1, 2, 2])
    dist = torch.tensor([4.0, 2.0, 2.0, 0.5, 3.0, 1.0])
    hit = torch.tensor([True, True, True, False, False, True])
    better = keep_closest(best, best_d, rows, dist, owner, hit)
    assert better.tolist() == [True, False, True]
    assert best_d.tolist() == [2.0, 1.0, 1.0]
    assert best[0].tolist() == rows[1].tolist()   # the first of the two rows at distance 2
    assert best[1].tolist() == [0.0, 0.0]         # its only row failed: unchanged
    assert best[2].tolist() == rows[5].tolist()   # its successful row (the other one failed)
    # equal distance is not better; no hit mask means every row succeeded; no rows changes nothing
    assert not keep_closest(best, best_d, rows[:1], torch.tensor([2.0]), torch.tensor([0])).any()
    assert not keep_closest(best, best_d, rows[:0], dist[:0], owner[:0]).any()


# --------------------------------------------------------------------------- the blur
@pytest.mark.parametrize("border,mode", [("reflect", "mirror"), ("replicate", "nearest")])
@pytest.mark.parametrize("sigma,truncate", [(1.0, 3.0), (2.0, 2.0), (0.5, 4.0)])
def test_gaussian_blur_is_scipys(border, mode, sigma, truncate):
    """scipy's radius is int(truncate sigma + 0.5), ours ceil(truncate sigma): these sigmas give the same one.
    torch's "reflect" (no repeated edge) is scipy's "mirror", "replicate" its "nearest"."""
    x = _images(b=2, shape=(2, 12, 9))
    ours = gaussian_blur(x, sigma, truncate, border).numpy()
    ref = scipy.ndimage.gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode=mode, truncate=truncate)
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
    assert gaussian_blur(x, 0.0) is x
    tiny = _images(b=1, shape=(1, 3, 3))  # the radius exceeds the image: reflect what fits, replicate the rest
    assert gaussian_blur(tiny, 5.0, 3.0, border).shape == tiny.shape
    with pytest.raises(ValueError, match="border"):
        gaussian_blur(x, 1.0, border="wrap")


# --------------------------------------------------------------------------- the input gradient, the checks
def test_input_gradient_of_a_linear_objective():
    model, x = _linear(), _images()
    t = torch.tensor([2, 0, 3])
    grad, logits = input_gradient(model, x, lambda z: z.gather(1, t[:, None]).squeeze(1))
    expected = model[1].weight[t].detach().view(3, 1, 5, 5)
    torch.testing.assert_close(grad, expected)
    torch.testing.assert_close(logits, model(x).detach())
    torch.testing.assert_close(saliency(model, x, t), expected.abs())
    assert all(p.grad is None for p in model.parameters()) and not grad.requires_grad
    with torch.no_grad():  # works inside no_grad
        torch.testing.assert_close(input_gradient(model, x, lambda z: z[:, 0])[0], model[1].weight[0].view(
            1, 1, 5, 5).detach().expand_as(x))


def test_check_count_and_check_logits():
    assert check_count(3, "steps") == 3 and check_count(np.int64(2), "n", 1) == 2
    with pytest.raises(TypeError, match="steps must be an int >= 0, got 2.5"):
        check_count(2.5, "steps")
    with pytest.raises(TypeError, match="steps must be an int"):
        check_count(True, "steps")
    with pytest.raises(ValueError, match="n_evals must be an int >= 7, got 6"):
        check_count(6, "n_evals", 7)
    logits = torch.zeros(4, 3)
    assert check_logits(logits, 4) is logits
    with pytest.raises(ValueError, match=r"model must return logits of shape \(2, num_classes\)"):
        check_logits(logits, 2)
    with pytest.raises(ValueError, match="logits of shape"):
        check_logits(torch.zeros(4), 4)


def test_predict_returns_logits_and_predict_labels_the_classes():
    model, x = _linear(), _images(b=7)
    torch.testing.assert_close(predict(model, x, batch_size=3), model(x).detach())
    assert torch.equal(predict_labels(model, x, batch_size=2), model(x).argmax(1))


# --------------------------------------------------------------------------- statistics in float64 on the CPU
def test_attack_statistics_are_exact_fractions_in_float64_on_the_cpu():
    model, x = _linear(k=3, dtype=torch.float32), _images(b=6, dtype=torch.float32)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    pred = model(x).argmax(1)
    assert success_rate(model, x, y) == (pred != y).sum().item() / 6
    res = attack_sweep(model, x, y, "fgsm", [0.0, 0.2], progress=False)
    for key in ("success_rate", "accuracy"):
        assert res[key].dtype == torch.float64 and res[key].device.type == "cpu"
    assert res["accuracy"][0].item() == (pred == y).sum().item() / 6
    r = transfer(model, model, x, y, "fgsm", eps=0.2)
    assert isinstance(r["transfer_rate"], float) and isinstance(r["source_clean_accuracy"], float)


def test_map_statistics_keep_their_values_dtype_and_device():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 40, generator=g)
    b = a + 0.5 * torch.randn(3, 40, generator=g)
    rho = rank_correlation(a, b)
    assert rho.dtype == torch.float32 and rho.device.type == "cpu"
    for i in range(3):
        assert rho[i].item() == pytest.approx(scipy.stats.spearmanr(a[i], b[i]).statistic, abs=1e-6)
    s = selectivity(a, top=0.1)
    mass = a.abs().double()
    expected = mass.topk(4, dim=1).values.sum(1) / mass.sum(1)
    torch.testing.assert_close(s, expected.float())
    # max-sensitivity: the same perturbations as drawn by hand from the seed (on the CPU, in float64)
    x = torch.rand(2, 1, 4, 4, generator=g)
    w = torch.randn(16, generator=g)

    def explain(z):
        return z.flatten(1) * w

    out = max_sensitivity(explain, x, radius=0.05, n_samples=3, seed=5)
    gen = torch.Generator().manual_seed(5)
    phi = explain(x).double()
    worst = torch.zeros(2, dtype=torch.float64)
    for _ in range(3):
        d = (2 * torch.rand(x.shape, generator=gen, dtype=torch.float64) - 1) * 0.05
        z = (x + d.float()).clamp(0, 1)
        worst = torch.maximum(worst, (explain(z).double() - phi).norm(dim=1) / phi.norm(dim=1))
    torch.testing.assert_close(out, worst.float())


def test_perturbation_norm_matches_hand_computed_sizes():
    from course_lib.attacks import perturbation_norm

    x = torch.zeros(2, 1, 2, 2)
    x_adv = x.clone()
    x_adv[0, 0, 0, 0], x_adv[0, 0, 1, 1] = 0.3, -0.4      # ||.||_2 = 0.5, ||.||_inf = 0.4
    x_adv[1, 0, 0, 1] = 0.2
    before = x_adv.clone()
    assert torch.allclose(perturbation_norm(x_adv, x), torch.tensor([0.5, 0.2]))
    assert torch.allclose(perturbation_norm(x_adv, x, norm="linf"), torch.tensor([0.4, 0.2]))
    assert torch.equal(x_adv, before)
    with pytest.raises(ValueError, match="same shape"):
        perturbation_norm(x_adv[:1], x)
    with pytest.raises(ValueError, match="norm"):
        perturbation_norm(x_adv, x, norm="l1")
