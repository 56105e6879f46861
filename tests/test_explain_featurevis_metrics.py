"""Feature maps, activation maximisation and the explanation metrics (deletion/insertion, max-sensitivity,
the randomisation sanity check, rank correlation, selectivity), checked against hand-computed values,
brute-force re-implementations, scipy, and the side-effect rules."""
import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from course_lib.explain._common import target_gradient
from course_lib.explain.featurevis import activation_maximization, feature_maps
from course_lib.explain.metrics import (
    deletion_auc,
    edge_map,
    insertion_auc,
    max_sensitivity,
    randomization_check,
    rank_correlation,
    selectivity,
    time_per_image,
)
from course_lib.models import load_model


# --------------------------------------------------------------------------- helpers
class Linear2(nn.Module):
    """Logit 0 = sum_p w_p x_p (a known function of the pixels), logit 1 = 0."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x):
        s = (x * self.w).flatten(1).sum(1)
        return torch.stack([s, torch.zeros_like(s)], 1)




@pytest.fixture(scope="module")
def digits(mnist_test):
    x, y = mnist_test
    return x[:4].clone(), y[:4].clone()


def gradient(model, x, target):
    return target_gradient(model, x, target)[0]


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}, [p.requires_grad for p in model.parameters()]


def assert_untouched(model, before, training=False):
    state, flags = before
    after = model.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert model.training == training
    assert all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in model.modules())


def brute_curve(model, x, scores, steps, fill, insert):
    """Deletion/insertion curve by the definition, one image, pixel by pixel in Python."""
    _, h, w = x.shape
    n = h * w
    order = sorted(range(n), key=lambda p: (-float(scores.flatten()[p]), p))
    out = []
    for k in range(steps + 1):
        chosen = set(order[:round(k * n / steps)])
        img = (x if not insert else fill).clone()
        for p in chosen:
            img[:, p // w, p % w] = fill[:, p // w, p % w] if not insert else x[:, p // w, p % w]
        out.append(float(model(img[None])[0, 0].detach()))
    return out


# --------------------------------------------------------------------------- deletion / insertion
def test_deletion_and_insertion_by_hand():
    # four pixels of value 1 with weights 4, 3, 2, 1: deleting in order leaves 10, 6, 3, 1, 0
    model = Linear2(torch.tensor([4.0, 3.0, 2.0, 1.0]).view(1, 1, 1, 4)).eval()
    x = torch.ones(1, 1, 1, 4)
    true, rev = torch.tensor([[[4.0, 3, 2, 1]]]), torch.tensor([[[1.0, 2, 3, 4]]])
    kw = dict(target=0, steps=4, output="logit")
    auc, curve = deletion_auc(model, x, true, baseline=0.0, return_curves=True, **kw)
    assert curve.tolist() == [[10, 6, 3, 1, 0]]
    assert auc.item() == pytest.approx(0.25 * (10 / 2 + 6 + 3 + 1 + 0 / 2))  # 3.75
    assert deletion_auc(model, x, rev, **kw).item() == pytest.approx(0.25 * (5 + 9 + 7 + 4))  # 6.25
    auc, curve = insertion_auc(model, x, true, start=0.0, return_curves=True, **kw)
    assert curve.tolist() == [[0, 4, 7, 9, 10]]
    assert auc.item() == pytest.approx(6.25)
    assert insertion_auc(model, x, rev, start=0.0, **kw).item() == pytest.approx(3.75)
    # ties: an all-equal map deletes in pixel order (row-major), deterministically
    _, curve = deletion_auc(model, x, torch.zeros(1, 1, 4), return_curves=True, **kw)
    assert curve.tolist() == [[10, 6, 3, 1, 0]]


@pytest.mark.parametrize("steps", [4, 5])
def test_deletion_and_insertion_match_brute_force(steps):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(1, 2, 3, 4, generator=g)
    model = Linear2(w).eval()
    x = torch.rand(3, 2, 3, 4, generator=g)
    attr = torch.randn(3, 2, 3, 4, generator=g)
    attr[0, :, 0, :2] = 0.0  # some ties
    fill = torch.rand(2, 3, 4, generator=g)
    d_auc, d = deletion_auc(model, x, attr, 0, steps, baseline=fill, output="logit", batch_size=5,
                            return_curves=True)
    i_auc, i = insertion_auc(model, x, attr, 0, steps, start=fill, output="logit", batch_size=7,
                             return_curves=True)
    for b in range(3):
        scores = attr[b].sum(0)  # channels summed, signed
        bd = brute_curve(model, x[b], scores, steps, fill, insert=False)
        bi = brute_curve(model, x[b], scores, steps, fill, insert=True)
        assert d[b].tolist() == pytest.approx(bd, abs=1e-5)
        assert i[b].tolist() == pytest.approx(bi, abs=1e-5)
        assert d_auc[b].item() == pytest.approx(np.trapezoid(bd, dx=1 / steps), abs=1e-5)
        assert i_auc[b].item() == pytest.approx(np.trapezoid(bi, dx=1 / steps), abs=1e-5)


def test_true_importance_beats_reversed_ranking():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(1, 1, 6, 6, generator=g)
    model = Linear2(w).eval()
    x = torch.rand(2, 1, 6, 6, generator=g)
    contribution = (w * x)[:, 0]  # exact share of each pixel in the logit
    for output in ("logit", "probability"):
        kw = dict(target=0, steps=6, output=output)
        assert (deletion_auc(model, x, contribution, **kw) < deletion_auc(model, x, -contribution, **kw)).all()
        assert (insertion_auc(model, x, contribution, **kw) > insertion_auc(model, x, -contribution, **kw)).all()


def test_curves_start_and_end_at_the_score_of_x(mnist_cnn, digits):
    x, _ = digits
    before = snapshot(mnist_cnn)
    x0 = x.clone()
    p = mnist_cnn(x).softmax(1).max(1).values
    attr = gradient(mnist_cnn, x, mnist_cnn(x).argmax(1)).abs()
    a0 = attr.clone()
    d_auc, d = deletion_auc(mnist_cnn, x, attr, steps=7, return_curves=True)
    i_auc, i = insertion_auc(mnist_cnn, x, attr, steps=7, return_curves=True)
    assert d.shape == i.shape == (4, 8) and d_auc.shape == i_auc.shape == (4,)
    assert torch.allclose(d[:, 0], p, atol=1e-5) and torch.allclose(i[:, -1], p, atol=1e-5)
    assert torch.allclose(d[:, -1], mnist_cnn(torch.zeros(1, 1, 28, 28)).softmax(1)[0, mnist_cnn(x).argmax(1)],
                          atol=1e-5)
    blurred_start = i[:, 0]
    assert not torch.allclose(blurred_start, p)
    # a gradient ranking removes evidence faster than a random one (on these digits)
    rnd = torch.rand(attr.shape, generator=torch.Generator().manual_seed(0))
    assert d_auc.mean() < deletion_auc(mnist_cnn, x, rnd, steps=7).mean()
    assert torch.equal(x, x0) and torch.equal(attr, a0)
    assert_untouched(mnist_cnn, before)


def test_metrics_work_frozen_and_under_no_grad(mnist_cnn, digits):
    x, _ = digits
    attr = torch.rand(4, 28, 28, generator=torch.Generator().manual_seed(0))
    ref = deletion_auc(mnist_cnn, x, attr, steps=4)
    frozen = load_model("mnist_cnn").requires_grad_(False)
    with torch.no_grad():
        assert torch.allclose(deletion_auc(frozen, x, attr, steps=4), ref)
        assert insertion_auc(frozen, x, attr, steps=4, start=torch.full((1, 28, 28), 0.5)).shape == (4,)
    assert all(not p.requires_grad and p.grad is None for p in frozen.parameters())


def test_deletion_insertion_bad_input(mnist_cnn, digits):
    x, _ = digits
    attr = torch.rand(4, 28, 28)
    with pytest.raises(ValueError, match="attribution must have shape"):
        deletion_auc(mnist_cnn, x, attr[:, :27])
    with pytest.raises(ValueError, match="steps"):
        deletion_auc(mnist_cnn, x, attr, steps=0)
    with pytest.raises(ValueError, match="output"):
        insertion_auc(mnist_cnn, x, attr, output="softmax")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        deletion_auc(mnist_cnn, x, attr, baseline=2.0)
    with pytest.raises(ValueError, match="start"):
        insertion_auc(mnist_cnn, x, attr, start="noise")
    with pytest.raises(ValueError, match="NaN"):
        deletion_auc(mnist_cnn, x, torch.full((4, 28, 28), math.nan))
    with pytest.raises(ValueError, match="target"):
        deletion_auc(mnist_cnn, x, attr, target=10)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        deletion_auc(mnist_cnn, x * 2, attr)
    train = load_model("mnist_cnn").train()
    with pytest.raises(ValueError, match="training mode"):
        deletion_auc(train, x, attr)


# --------------------------------------------------------------------------- rank correlation, selectivity
def test_rank_correlation_matches_scipy_with_ties():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (6, 3, 7), generator=g).float()
    b = torch.randint(0, 4, (6, 3, 7), generator=g).float() + 0.1 * a
    rho = rank_correlation(a, b)
    expected = [scipy.stats.spearmanr(a[i].flatten(), b[i].flatten())[0] for i in range(6)]
    assert rho.shape == (6,) and rho.tolist() == pytest.approx(expected, abs=1e-6)
    c = torch.randn(2, 50, generator=g)
    assert rank_correlation(c, c.exp()).tolist() == pytest.approx([1.0, 1.0])  # monotone map: rho = 1
    assert rank_correlation(c, -c).tolist() == pytest.approx([-1.0, -1.0])
    assert torch.isnan(rank_correlation(torch.ones(1, 5), torch.rand(1, 5))).all()  # as scipy: undefined
    with pytest.raises(ValueError, match="same shape"):
        rank_correlation(a, b[:, :2])


def test_selectivity_hand_values():
    one_hot = torch.zeros(2, 10, 10)
    one_hot[0, 3, 4] = 5.0
    one_hot[1, 0, 0] = -2.0
    assert selectivity(one_hot).tolist() == pytest.approx([1.0, 1.0])
    assert selectivity(torch.full((1, 10, 10), 0.3), top=0.05).item() == pytest.approx(0.05)
    m = torch.tensor([[[4.0, -3.0], [2.0, 1.0]]])
    assert selectivity(m, top=0.25).item() == pytest.approx(4 / 10)
    assert selectivity(m, top=0.5).item() == pytest.approx(7 / 10)
    assert selectivity(m, top=0.3).item() == pytest.approx(7 / 10)  # ceil(0.3 * 4) = 2 pixels
    # (B, C, H, W): channels summed first (signed), then |.|
    a = torch.tensor([[[[3.0, 1.0]], [[-1.0, 1.0]]]])
    assert selectivity(a, top=0.5).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="top"):
        selectivity(m, top=0.0)


# --------------------------------------------------------------------------- max-sensitivity
def test_max_sensitivity_constant_explanation_is_zero():
    x = torch.rand(3, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    s = max_sensitivity(lambda z: torch.ones(z.shape[0], 7), x, seed=0)
    assert s.tolist() == [0.0, 0.0, 0.0]


def test_max_sensitivity_of_a_linear_explanation_by_hand():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 4, 4, generator=g)
    x[0, 0, 0] = 1.0  # some pixels at the border of [0, 1]: clipping applies
    x[1, 1, 1] = 0.0
    seen = []

    def twice(z):
        seen.append(z.clone())
        return 2 * z

    x0 = x.clone()
    s = max_sensitivity(twice, x, radius=0.05, n_samples=6, seed=3)
    assert torch.equal(x, x0) and len(seen) == 7 and torch.equal(seen[0], x)
    # Phi(x) = 2x: ||Phi(z) - Phi(x)|| / ||Phi(x)|| = ||z - x|| / ||x||, maximised over the perturbed z
    ratios = torch.stack([(z - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1) for z in seen[1:]])
    assert torch.allclose(s, ratios.max(0).values, atol=1e-6)
    for z in seen[1:]:
        assert z.min() >= 0 and z.max() <= 1 and (z - x).abs().max() <= 0.05 + 1e-6
    assert (s <= 0.05 * math.sqrt(48) / x.flatten(1).norm(dim=1) + 1e-6).all() and (s > 0).all()
    assert torch.equal(s, max_sensitivity(lambda z: 2 * z, x, radius=0.05, n_samples=6, seed=3))
    assert not torch.equal(s, max_sensitivity(lambda z: 2 * z, x, radius=0.05, n_samples=6, seed=4))
    # a map that is 0 on x but not nearby is infinitely sensitive
    assert torch.isinf(max_sensitivity(lambda z: z - x, x, seed=0)).all()


def test_max_sensitivity_leaves_global_rng_alone_and_checks_input():
    x = torch.rand(1, 1, 4, 4)
    state = torch.get_rng_state()
    max_sensitivity(lambda z: z, x, seed=0)
    assert torch.equal(state, torch.get_rng_state())
    with pytest.raises(ValueError, match="radius"):
        max_sensitivity(lambda z: z, x, radius=-1)
    with pytest.raises(ValueError, match="explain_fn must return"):
        max_sensitivity(lambda z: z[0], torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        max_sensitivity(lambda z: z, x + 1)


# --------------------------------------------------------------------------- randomisation sanity check
def test_randomization_check_gradient_falls_and_identity_does_not(mnist_cnn, digits):
    x, _ = digits
    before = snapshot(mnist_cnn)
    x0 = x.clone()
    res = randomization_check(mnist_cnn, x, gradient, seed=0)
    assert res["layers"] == ["fc", "features.conv5", "features.conv4", "features.conv3", "features.conv2",
                             "features.conv1"]
    corr = res["correlation"]
    assert corr.shape == (6, 4)
    assert corr.mean() < 0.5 and corr[-1].mean() < corr[0].mean()
    # an explanation that ignores the model is the failure case: it survives randomisation
    ident = randomization_check(mnist_cnn, x, lambda m, z, target: z, layers=["fc", "features"])
    assert ident["layers"] == ["fc", "features"]
    assert torch.allclose(ident["correlation"], torch.ones(2, 4))
    assert_untouched(mnist_cnn, before)
    assert torch.equal(x, x0)
    again = randomization_check(mnist_cnn, x, gradient, seed=0)["correlation"]
    assert torch.equal(corr, again)


def test_randomization_check_randomises_cumulatively_with_fixed_target():
    torch.manual_seed(0)  # only to build the toy model
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2)).eval()
    x = torch.rand(2, 1, 2, 2)
    models, targets = [], []

    def record(m, z, target):
        models.append({k: v.clone() for k, v in m.state_dict().items()})
        targets.append(target.clone())
        return z

    res = randomization_check(model, x, record, target=torch.tensor([1, 0]))
    assert res["layers"] == ["4", "1"]  # the BatchNorm goes with the Linear before it
    orig, first, second = models
    assert torch.equal(orig["1.weight"], model[1].weight) and torch.equal(orig["4.weight"], model[4].weight)
    assert not torch.equal(first["4.weight"], orig["4.weight"]) and torch.equal(first["1.weight"], orig["1.weight"])
    assert torch.equal(second["4.weight"], first["4.weight"]) and not torch.equal(second["1.weight"], orig["1.weight"])
    assert torch.equal(second["2.running_var"], torch.ones(3))
    assert all(t.tolist() == [1, 0] for t in targets)
    with pytest.raises(ValueError, match="no layer named"):
        randomization_check(model, x, record, layers=["nope"])


# --------------------------------------------------------------------------- feature maps
def test_feature_maps_equal_the_hooked_output(mnist_cnn, digits):
    x, _ = digits
    before = snapshot(mnist_cnn)
    expected = mnist_cnn.features(mnist_cnn.normalize(x))
    assert torch.allclose(feature_maps(mnist_cnn, x, "features"), expected)
    assert torch.allclose(feature_maps(mnist_cnn, x), expected)  # None = model.cam_layer
    a = feature_maps(mnist_cnn, x, mnist_cnn.features.relu2)
    assert torch.allclose(a, mnist_cnn.features[:6](mnist_cnn.normalize(x))) and a.shape == (4, 16, 28, 28)
    assert not a.requires_grad
    assert_untouched(mnist_cnn, before)


def test_feature_maps_bad_input_and_hooks_removed_on_error(mnist_cnn, digits):
    x, _ = digits
    model = load_model("mnist_cnn")
    model.unused = nn.Conv2d(1, 1, 1)  # part of the model, never called in forward
    with pytest.raises(ValueError, match="not called"):
        feature_maps(model, x, "unused")
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="no layer named"):
        feature_maps(mnist_cnn, x, "features.conv9")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        feature_maps(mnist_cnn, x[0])
    with pytest.raises(TypeError, match="floating"):
        feature_maps(mnist_cnn, (x * 255).to(torch.uint8))


# --------------------------------------------------------------------------- activation maximisation
def channel_activation(model, x, layer, k):
    a = feature_maps(model, x, layer)
    return a[:, k].mean((1, 2)) if a.dim() == 4 else a[:, k]


def test_activation_maximization_finds_its_channel(mnist_cnn):
    before = snapshot(mnist_cnn)
    rng = torch.get_rng_state()
    kw = dict(steps=30, lr=0.1, init=0.1, progress=False)
    imgs = activation_maximization(mnist_cnn, "fc", [0, 7], (1, 28, 28), seed=0, **kw)
    assert imgs.shape == (2, 1, 28, 28) and imgs.min() >= 0 and imgs.max() <= 1 and not imgs.requires_grad
    random = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    logits, random_logits = mnist_cnn(imgs).detach(), mnist_cnn(random).detach()
    for i, k in enumerate([0, 7]):
        own, foreign = logits[i, k], logits[1 - i, k]
        assert own > random_logits[:, k].max() + 5 and own > foreign + 3, (k, own, foreign)
    # a conv channel (mean over its map), with the pixel parameterisation
    img = activation_maximization(mnist_cnn, "features.bn5", 7, (1, 1, 28, 28), seed=1, param="pixel", **kw)
    assert img.shape == (1, 1, 28, 28)
    assert channel_activation(mnist_cnn, img, "features.bn5", 7) > \
        channel_activation(mnist_cnn, random, "features.bn5", 7).max() + 1
    assert_untouched(mnist_cnn, before)
    assert torch.equal(rng, torch.get_rng_state())


def test_activation_maximization_is_seeded(mnist_cnn):
    kw = dict(steps=5, progress=False)
    a = activation_maximization(mnist_cnn, "fc", 4, (1, 28, 28), seed=5, **kw)
    b = activation_maximization(mnist_cnn, "fc", 4, (1, 28, 28), seed=5, **kw)
    c = activation_maximization(mnist_cnn, "fc", 4, (1, 28, 28), seed=6, **kw)
    assert a.shape == (1, 1, 28, 28) and torch.equal(a, b) and not torch.equal(a, c)


def test_activation_maximization_frozen_model_no_grad_and_regularisers():
    model = load_model("mnist_cnn").requires_grad_(False)
    with torch.no_grad():
        img = activation_maximization(model, "features.relu5", 0, (1, 16, 16), steps=3, seed=0, blur=0.5,
                                      tv=0.1, l2=0.1, jitter=0, scale=(1, 1), rotate=0, progress=False)
    assert img.shape == (1, 1, 16, 16) and 0 <= img.min() and img.max() <= 1
    assert all(not p.requires_grad and p.grad is None for p in model.parameters())
    rgb = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU()).eval()
    assert activation_maximization(rgb, "0", 1, (3, 12, 12), steps=3, seed=0, progress=False).shape == (1, 3, 12, 12)


def test_activation_maximization_bad_input(mnist_cnn):
    kw = dict(steps=2, progress=False)
    with pytest.raises(ValueError, match="channel must be in"):
        activation_maximization(mnist_cnn, "features.conv3", 99, (1, 28, 28), **kw)
    assert all(not m._forward_hooks for m in mnist_cnn.modules())
    with pytest.raises(ValueError, match="shape"):
        activation_maximization(mnist_cnn, "fc", 0, (28, 28), **kw)
    with pytest.raises(ValueError, match="shape"):
        activation_maximization(mnist_cnn, "fc", 0, (2, 1, 28, 28), **kw)
    with pytest.raises(ValueError, match="channel"):
        activation_maximization(mnist_cnn, "fc", -1, (1, 28, 28), **kw)
    with pytest.raises(ValueError, match="param"):
        activation_maximization(mnist_cnn, "fc", 0, (1, 28, 28), param="wavelet", **kw)
    with pytest.raises(ValueError, match="no layer named"):
        activation_maximization(mnist_cnn, "fc2", 0, (1, 28, 28), **kw)
    with pytest.raises(ValueError, match="init"):
        activation_maximization(mnist_cnn, "fc", 0, (1, 28, 28), init=0.0, **kw)
    with pytest.raises(ValueError, match="training mode"):
        activation_maximization(load_model("mnist_cnn").train(), "fc", 0, (1, 28, 28), **kw)
    dead = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU()).eval()
    with torch.no_grad():
        dead[0].weight.fill_(0.0)
        dead[0].bias.fill_(-1.0)
    with pytest.warns(UserWarning, match="no gradient"):
        activation_maximization(dead, "1", 0, (1, 8, 8), **kw)


# --------------------------------------------------------------------------- cost
def test_time_per_image_divides_by_batch_and_checks_input():
    """Timed calls that sleep 30, 30, 30 and 90 ms on B = 6 images: the median, 30 ms, is 5 ms per image. Wrong
    versions give other values: no division 30 ms, by the 4 repeats 7.5 ms, by the 6 x 2 values 2.5 ms, the mean
    instead of the median 7.5 ms; sleep only oversleeps, hence the bounds [5, 6.5) ms. The 4 warm-up calls sleep
    80 ms each: timed, they would move the median to 55 ms."""
    import time

    calls = []
    sleeps = [0.08] * 4 + [0.03, 0.09, 0.03, 0.03]

    def fn(z):
        calls.append(z.shape)
        time.sleep(sleeps[len(calls) - 1])

    t = time_per_image(fn, torch.zeros(6, 2), repeats=4, warmup=4)
    assert calls == [(6, 2)] * 8
    assert 0.005 <= t < 0.0065, t
    with pytest.raises(ValueError, match="repeats"):
        time_per_image(lambda z: z, torch.zeros(1, 1), repeats=0)


def test_edge_map_is_the_sobel_magnitude_of_each_channel():
    import scipy.ndimage

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 9, 7, generator=g, dtype=torch.float64)
    out = edge_map(None, x)  # the model is ignored: any value goes
    assert out.shape == x.shape
    for b in range(2):
        for c in range(3):
            img = x[b, c].numpy()
            gy = scipy.ndimage.sobel(img, axis=0, mode="constant", cval=0.0)
            gx = scipy.ndimage.sobel(img, axis=1, mode="constant", cval=0.0)
            np.testing.assert_allclose(out[b, c].numpy(), np.hypot(gx, gy), atol=1e-12)
    # by hand: a vertical step 0 -> 1 between columns 1 and 2 gives 4 on both sides of it inside the image
    step = torch.zeros(1, 1, 5, 4, dtype=torch.float64)
    step[..., 2:] = 1.0
    assert edge_map(None, step)[0, 0, 2].tolist()[:3] == [0.0, 4.0, 4.0]
