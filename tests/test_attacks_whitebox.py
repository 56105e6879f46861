"""White-box attacks (FGSM, PGD, C&W) checked against their definitions, hand cases and invariants."""
import math

import pytest
import torch
import torch.nn.functional as F
from _toy import Linear
from torch import nn

from course_lib.attacks import attack_sweep, carlini_wagner, fgsm, pgd, success_mask, success_rate, transfer

# --------------------------------------------------------------------------- small models and data


def linear_model(k=3, shape=(1, 4, 4), seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return Linear(torch.randn(k, *shape, generator=g, dtype=dtype), torch.randn(k, generator=g, dtype=dtype)).eval()


def tiny_cnn(seed=0, dtype=torch.float32, channels=2, classes=4):
    """conv -> batch norm -> ReLU -> dropout -> linear: has train/eval-dependent layers, mixed frozen params."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(channels, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Dropout(0.5),
                          nn.Flatten(), nn.Linear(6 * 6 * 6, classes)).to(dtype).eval()
    model[0].weight.requires_grad_(False)  # a mix of frozen and trainable parameters: neither may change
    return model


def images(b=5, shape=(2, 6, 6), seed=0, dtype=torch.float32):
    """Random images in [0, 1] with exact 0 and 1 pixels (where clipping and the tanh change of variables bite)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, *shape, generator=g, dtype=dtype)
    x[x < 0.15] = 0.0
    x[x > 0.85] = 1.0
    return x


def snapshot(model):
    return model.training, [(p.requires_grad, p.detach().clone()) for p in model.parameters()]


def assert_untouched(model, snap):
    training, params = snap
    assert model.training == training
    for p, (rg, value) in zip(model.parameters(), params, strict=True):
        assert p.requires_grad == rg
        assert p.grad is None
        assert torch.equal(p.detach(), value)




@pytest.fixture(scope="module")
def digits(mnist_test, mnist_cnn):
    """64 held-out digits the model classifies correctly (from the end of the held-out split)."""
    x, y = mnist_test[0][-80:], mnist_test[1][-80:]
    with torch.no_grad():
        ok = mnist_cnn(x).argmax(1) == y
    return x[ok][:64], y[ok][:64]


# --------------------------------------------------------------------------- invariants over random cases
def _cases():
    g = torch.Generator().manual_seed(123)
    out = []
    for i in range(12):
        r = torch.rand(4, generator=g).tolist()
        norm = "l2" if i % 3 == 2 else "linf"
        eps = [0.0, 0.03, 0.3, 1.0][i % 4] * (3.0 if norm == "l2" else 1.0)
        out.append(dict(kind=["fgsm", "pgd", "pgd"][i % 3], eps=eps, alpha=0.01 + 0.5 * r[0], steps=int(r[1] * 4),
                        norm=norm, targeted=r[2] < 0.5, random_start=r[3] < 0.7, seed=i,
                        dtype=torch.float64 if i % 5 == 0 else torch.float32))
    return out


@pytest.mark.parametrize("case", _cases(), ids=lambda c: f"{c['kind']}-{c['norm']}-eps{c['eps']}-t{int(c['targeted'])}")
def test_invariants_over_random_cases(case):
    model, x = tiny_cnn(seed=case["seed"], dtype=case["dtype"]), images(seed=case["seed"], dtype=case["dtype"])
    y = torch.randint(0, 4, (x.shape[0],), generator=torch.Generator().manual_seed(case["seed"]))
    x0, y0, snap = x.clone(), y.clone(), snapshot(model)
    if case["kind"] == "fgsm":
        out = fgsm(model, x, y, case["eps"], targeted=case["targeted"])
    else:
        out = pgd(model, x, y, case["eps"], case["alpha"], case["steps"], norm=case["norm"],
                  random_start=case["random_start"], targeted=case["targeted"], seed=case["seed"])
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device and not out.requires_grad
    assert out.min() >= 0 and out.max() <= 1
    if case["norm"] == "linf":
        assert (out - x).abs().max() <= case["eps"] + 1e-6
    else:
        assert (out - x).flatten(1).norm(dim=1).max() <= case["eps"] + 1e-5
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert out.data_ptr() != x.data_ptr()
    assert_untouched(model, snap)


def test_cw_invariants_and_side_effects():
    model, x = tiny_cnn(seed=3), images(seed=3)
    y = torch.tensor([0, 1, 2, 3, 0])
    x0, snap = x.clone(), snapshot(model)
    for targeted in (False, True):
        out = carlini_wagner(model, x, y, targeted=targeted, binary_search_steps=2, steps=10, lr=0.1)
        assert out.shape == x.shape and out.dtype == x.dtype and not out.requires_grad
        assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(x, x0)
    assert_untouched(model, snap)


@pytest.mark.parametrize("attack", ["fgsm", "pgd", "pgd_l2", "cw"])
def test_frozen_model_inside_no_grad(attack):
    model, x = tiny_cnn(seed=1), images(seed=1)
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        y = model(x).argmax(1)  # C&W leaves an image that is already misclassified as it is
        if attack == "fgsm":
            out = fgsm(model, x, y, 0.1)
        elif attack == "pgd":
            out = pgd(model, x, y, 0.1, 0.05, 3, seed=0)
        elif attack == "pgd_l2":
            out = pgd(model, x, y, 1.0, 0.5, 3, norm="l2", random_start=False)
        else:
            out = carlini_wagner(model, x, y, binary_search_steps=1, steps=5, lr=0.1)
        assert not torch.is_grad_enabled()  # the caller's grad mode is restored
    assert (out - x).abs().max() > 1e-3  # the attack really moved the images (a gradient was computed)
    assert all(not p.requires_grad and p.grad is None for p in model.parameters())


# --------------------------------------------------------------------------- FGSM
@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_equals_the_hand_formula_on_a_linear_model(targeted):
    model, x = linear_model(), images(b=6, shape=(1, 4, 4), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    w, b = model.weight.detach().flatten(1), model.bias.detach()
    # dL/dx of cross-entropy for logits z = W x + b:  W^T (softmax(z) - onehot(y))
    p = torch.softmax(x.flatten(1) @ w.T + b, dim=1)
    grad = ((p - F.one_hot(y, 3).double()) @ w).view_as(x)
    step = -0.1 * grad.sign() if targeted else 0.1 * grad.sign()
    expected = (x + step).clamp(0, 1)
    assert torch.equal(fgsm(model, x, y, 0.1, targeted=targeted), expected)


def test_fgsm_raises_the_loss_and_targeted_fgsm_lowers_the_target_loss(mnist_cnn, digits):
    x, y = digits[0][:32], digits[1][:32]
    t = (y + 1) % 10
    with torch.no_grad():
        ce = F.cross_entropy(mnist_cnn(x), y, reduction="none")
        ce_t = F.cross_entropy(mnist_cnn(x), t, reduction="none")
        up = F.cross_entropy(mnist_cnn(fgsm(mnist_cnn, x, y, 0.05)), y, reduction="none")
        down = F.cross_entropy(mnist_cnn(fgsm(mnist_cnn, x, t, 0.05, targeted=True)), t, reduction="none")
    assert (up > ce).float().mean() >= 0.9
    assert (down < ce_t).float().mean() >= 0.9


def test_fgsm_margin_loss_moves_along_the_margin_gradient():
    model, x = linear_model(k=2), images(b=4, shape=(1, 4, 4), dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1])
    w = model.weight.detach().flatten(1)
    # margin loss -(Z_y - Z_other): its gradient is w_other - w_y, whatever the softmax says
    direction = (w[1 - y] - w[y]).view_as(x)
    assert torch.equal(fgsm(model, x, y, 0.2, loss="margin"), (x + 0.2 * direction.sign()).clamp(0, 1))


# --------------------------------------------------------------------------- PGD
def test_pgd_without_steps_or_random_start_returns_x():
    model, x = tiny_cnn(), images()
    y = torch.tensor([0, 1, 2, 3, 0])
    for norm in ("linf", "l2"):
        assert torch.equal(pgd(model, x, y, 0.3, 0.1, 0, norm=norm, random_start=False), x)


def test_pgd_l2_projection_on_a_hand_case():
    """A 2-class linear model: the CE gradient for class 0 points along w1 - w0 for every x, so L2 PGD walks
    along d = (w1 - w0)/||w1 - w0|| and is projected back onto the sphere of radius eps: x' = x + eps d."""
    model, y = linear_model(k=2, seed=4), torch.tensor([0, 0])
    x = torch.full((2, 1, 4, 4), 0.5, dtype=torch.float64)
    d = (model.weight[1] - model.weight[0]).detach()
    d = d / d.norm()
    eps = 0.4  # |eps * d_i| < 0.5: the box is never reached, the ball projection alone acts
    out = pgd(model, x, y, eps, alpha=0.3, steps=5, norm="l2", random_start=False, keep_best=False)
    torch.testing.assert_close(out, x + eps * d.expand_as(x), rtol=0, atol=1e-12)
    # near the border of the box the clip acts after the ball projection: one long step, x' = clip(x + eps d)
    x = torch.full((2, 1, 4, 4), 0.95, dtype=torch.float64)
    out = pgd(model, x, y, eps, alpha=0.6, steps=1, norm="l2", random_start=False, keep_best=False)
    torch.testing.assert_close(out, (x + eps * d.expand_as(x)).clamp(0, 1), rtol=0, atol=1e-12)


def test_pgd_linf_walks_to_the_clipped_corner_on_a_linear_model():
    model, y = linear_model(k=2, seed=5), torch.tensor([0, 0, 0])
    x = images(b=3, shape=(1, 4, 4), seed=5, dtype=torch.float64)
    s = (model.weight[1] - model.weight[0]).detach().sign()
    out = pgd(model, x, y, 0.2, alpha=0.07, steps=4, random_start=False, keep_best=False)
    torch.testing.assert_close(out, (x + 0.2 * s).clamp(0, 1), rtol=0, atol=1e-12)


def test_pgd_40_fools_mnist_cnn_and_beats_fgsm(mnist_cnn, digits):
    x, y = digits
    adv = pgd(mnist_cnn, x, y, 0.3, 0.01, 40, seed=0)
    pgd_rate = success_rate(mnist_cnn, adv, y)
    assert pgd_rate >= 0.95
    assert pgd_rate >= success_rate(mnist_cnn, fgsm(mnist_cnn, x, y, 0.3), y)


def test_pgd_seed_reproducible_and_global_rng_untouched():
    model, x = tiny_cnn(seed=2), images(seed=2)
    y = torch.tensor([0, 1, 2, 3, 0])
    for norm, eps in (("linf", 0.1), ("l2", 0.5)):
        state = torch.get_rng_state()
        a = pgd(model, x, y, eps, 0.01, 1, norm=norm, seed=7)
        b = pgd(model, x, y, eps, 0.01, 1, norm=norm, seed=7)
        c = pgd(model, x, y, eps, 0.01, 1, norm=norm, seed=8)
        assert torch.equal(torch.get_rng_state(), state)
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


def test_pgd_l2_single_step_has_length_alpha():
    """One L2 step from x moves by exactly alpha along the normalised gradient (here w1 - w0 of a linear model:
    the gradient of the cross-entropy of class 0 points along it), whatever the gradient's size."""
    model = linear_model(k=2, seed=4)
    x = torch.full((2, 1, 4, 4), 0.5, dtype=torch.float64)
    y = torch.zeros(2, dtype=torch.long)
    d = (model.weight[1] - model.weight[0]).detach()
    d = d / d.norm()
    out = pgd(model, x, y, 1.0, alpha=0.1, steps=1, norm="l2", random_start=False, keep_best=False)
    torch.testing.assert_close(out, x + 0.1 * d, atol=1e-12, rtol=0)


def test_pgd_linf_random_start_is_uniform_in_the_box():
    """Each pixel's random start is uniform in [-eps, eps]: half of |delta| below eps/2, none at the faces."""
    x = torch.full((1, 1, 100, 40), 0.5)
    delta = (pgd(linear_model(k=2, shape=(1, 100, 40), dtype=torch.float32), x, torch.zeros(1, dtype=torch.long),
                 0.3, 0.01, 0, seed=0) - x).abs()
    assert abs((delta <= 0.15).float().mean().item() - 0.5) < 0.03
    assert (delta >= 0.3 - 1e-6).float().mean().item() < 0.01


def test_pgd_l2_random_start_is_uniform_in_the_ball():
    """steps=0: the start itself. Uniform in a d-ball means ||delta|| / eps ~ u^(1/d), i.e. P(r <= s) = s^d."""
    model, y = linear_model(k=2, shape=(1, 2, 1)), torch.zeros(4000, dtype=torch.long)
    x = torch.full((4000, 1, 2, 1), 0.5, dtype=torch.float64)
    out = pgd(model, x, y, 0.3, 0.1, 0, norm="l2", seed=0)
    r = (out - x).flatten(1).norm(dim=1) / 0.3
    for s in (0.3, 0.6, 0.9):
        assert abs((r <= s).double().mean().item() - s ** 2) < 0.03
    angle = torch.atan2((out - x)[:, 0, 1, 0], (out - x)[:, 0, 0, 0])
    assert abs((angle > 0).double().mean().item() - 0.5) < 0.03


class Recorder(nn.Module):
    """Wraps a model and records every batch it sees, to replay PGD's iterates."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.model(x)


def test_pgd_keep_best_returns_the_last_adversarial_iterate(mnist_cnn, digits):
    x, y = digits[0][:16], digits[1][:16]
    rec = Recorder(mnist_cnn).eval()
    # a huge step makes the iterates jump between corners of the ball: fooled at one step, not at the next
    out = pgd(rec, x, y, 0.15, 0.15, 6, seed=1)
    iterates = [s for s in rec.seen if s.shape[0] == x.shape[0]]  # x^0 .. x^5: one forward pass per step
    assert len(iterates) == len(rec.seen) == 6  # no pass beyond the budget
    last = pgd(mnist_cnn, x, y, 0.15, 0.15, 6, seed=1, keep_best=False)  # x^6, the paper's answer
    with torch.no_grad():
        fooled = torch.stack([mnist_cnn(s).argmax(1) != y for s in iterates + [last]])  # (steps + 1, B)
    expected = last.clone()
    lost = 0
    for i in range(x.shape[0]):
        hits = fooled[:-1, i].nonzero().flatten()
        if len(hits):
            expected[i] = iterates[hits[-1]][i]
            lost += int(not fooled[-1, i])
    assert torch.equal(out, expected)
    assert lost > 0  # some image was fooled on the way but not at the end: the rule was exercised
    # the success set: fooled at the end or at any step on the way
    assert torch.equal(success_mask(mnist_cnn, out, y), fooled.any(0))
    assert (success_mask(mnist_cnn, out, y).sum() > success_mask(mnist_cnn, last, y).sum())


def test_pgd_restarts_keep_the_first_success_else_the_highest_loss(mnist_cnn, digits):
    """Replay the restarts by hand with the same generator: restart 1 on every image, restart 2 on the images
    restart 1 did not fool; per image the first success wins, else the higher cross-entropy."""
    x, y = digits[0][:24], digits[1][:24]
    out = pgd(mnist_cnn, x, y, 0.05, 0.025, 2, seed=torch.Generator().manual_seed(5), restarts=2)
    g = torch.Generator().manual_seed(5)
    first = pgd(mnist_cnn, x, y, 0.05, 0.025, 2, seed=g)
    ok = success_mask(mnist_cnn, first, y)
    todo = (~ok).nonzero().flatten()
    assert 0 < len(todo) < len(y)
    second = pgd(mnist_cnn, x[todo], y[todo], 0.05, 0.025, 2, seed=g)
    with torch.no_grad():
        loss1 = F.cross_entropy(mnist_cnn(first[todo]), y[todo], reduction="none")
        loss2 = F.cross_entropy(mnist_cnn(second), y[todo], reduction="none")
    take = success_mask(mnist_cnn, second, y[todo]) | (loss2 > loss1)
    expected = first.clone()
    expected[todo[take]] = second[take]
    assert torch.equal(out, expected)
    assert take.any()  # the second restart changed something


# --------------------------------------------------------------------------- Carlini & Wagner
def test_cw_finds_the_closed_form_minimum_on_a_linear_two_class_model():
    """For Z = W x + b with two classes the smallest L2 change of class is the distance to the hyperplane
    (w0 - w1).x + b0 - b1 = 0, namely |(w0 - w1).x + b0 - b1| / ||w0 - w1||; no successful x' can be closer."""
    model = linear_model(k=2, shape=(1, 4, 4), seed=6)
    g = torch.Generator().manual_seed(6)
    x = 0.4 + 0.2 * torch.rand(6, 1, 4, 4, generator=g, dtype=torch.float64)  # far from the box's faces
    with torch.no_grad():
        y = model(x).argmax(1)
        gap = model(x).gather(1, y[:, None]).squeeze(1) - model(x).gather(1, 1 - y[:, None]).squeeze(1)
    dist = gap / (model.weight[0] - model.weight[1]).detach().norm()
    assert dist.max() < 0.3  # the closest point of the plane is inside [0, 1]: the closed form is the answer
    out = carlini_wagner(model, x, y, binary_search_steps=9, steps=300, lr=0.01)
    l2 = (out - x).flatten(1).norm(dim=1)
    assert (model(out).argmax(1) != y).all()
    assert (l2 >= dist - 1e-9).all()
    assert (l2 <= 1.03 * dist).all()


def test_cw_binary_search_on_c_by_hand(monkeypatch):
    """Replace the inner optimisation by a fake that succeeds exactly when c >= a per-image threshold, and
    follow the search: x10 until the first success, then bisect between the last failure and success."""
    import course_lib.attacks.cw as cw

    seen = []

    def fake(model, x, y, w_start, const, *args):
        seen.append(const.clone())
        return w_start.clone(), const >= torch.tensor([0.5, 1e-3, 1e9], dtype=const.dtype)

    monkeypatch.setattr(cw, "_optimise", fake)
    model, x = tiny_cnn(), images(b=3)
    carlini_wagner(model, x, torch.tensor([0, 1, 2]), c=0.01, binary_search_steps=6)
    expected = [[0.01, 0.01, 0.01], [0.1, 0.005, 0.1], [1.0, 0.0025, 1.0],
                [0.55, 0.00125, 10.0], [0.325, 0.000625, 100.0], [0.4375, 0.0009375, 1000.0]]
    torch.testing.assert_close(torch.stack(seen), torch.tensor(expected), rtol=1e-5, atol=0)


@pytest.mark.parametrize("targeted,kappa", [(False, 0.0), (False, 2.0), (True, 0.0)])
def test_cw_successes_meet_the_margin(mnist_cnn, digits, targeted, kappa):
    x, y = digits[0][:4], digits[1][:4]
    label = (y + 3) % 10 if targeted else y
    out = carlini_wagner(mnist_cnn, x, label, targeted=targeted, kappa=kappa, c=1.0, binary_search_steps=2,
                         steps=40, lr=0.05)
    with torch.no_grad():
        z = mnist_cnn(out)
    z_l = z.gather(1, label[:, None]).squeeze(1)
    z_other = z.scatter(1, label[:, None], -math.inf).amax(1)
    changed = (out - x).flatten(1).norm(dim=1) > 1e-3
    assert changed.all()
    margin = z_l - z_other if targeted else z_other - z_l
    success = z.argmax(1) == label if targeted else z.argmax(1) != label
    assert success.sum() >= 3
    assert (margin[success] >= kappa - 1e-3).all()


def test_cw_moves_pixels_that_start_at_0_and_1(mnist_cnn, digits):
    """An unreachable margin (kappa = 1e4) makes C&W return its last iterate: pixels that start exactly at 0 or 1
    must have moved (a tanh parametrisation with w = ±inf there would freeze them: zero gradient)."""
    x = digits[0][:4]
    for images_ in (x, 1 - x):  # the digits, then inverted: most pixels at 0, then at 1
        with torch.no_grad():
            label = mnist_cnn(images_).argmax(1)
        out = carlini_wagner(mnist_cnn, images_, label, kappa=1e4, c=10.0, binary_search_steps=1, steps=60, lr=0.1,
                             abort_early=False)
        saturated = (images_ == 0) | (images_ == 1)
        assert saturated.sum() > 1000
        assert ((out - images_).abs() > 1e-2)[saturated].sum() >= 100


def test_cw_warm_start_gives_saturated_pixels_the_whole_budget(mnist_cnn, digits):
    """Adam moves w by about lr per iteration and a pixel at 0 starts at w = -7.25: 20 iterations at lr 0.1
    move it by less than 1e-4, three search steps that each continue from the last w move it visibly."""
    x = digits[0][:4]
    with torch.no_grad():
        y = mnist_cnn(x).argmax(1)
    kw = dict(kappa=1e4, c=10.0, binary_search_steps=3, steps=20, lr=0.1, abort_early=False)  # never succeeds
    warm = carlini_wagner(mnist_cnn, x, y, **kw)
    cold = carlini_wagner(mnist_cnn, x, y, warm_start=False, **kw)
    assert ((warm - x).abs() > 1e-2)[x == 0].sum() >= 100
    assert ((cold - x).abs() > 1e-2)[x == 0].sum() == 0


def test_cw_returns_the_closest_success_it_saw():
    """Per image the result is the successful iterate with the smallest L2 distance among all those the attack
    evaluated (replayed through a recorder), not merely the last success."""
    model = linear_model(k=3, seed=11)
    rec = Recorder(model).eval()
    x = images(b=6, shape=(1, 4, 4), seed=11, dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)
    out = carlini_wagner(rec, x, y, binary_search_steps=4, steps=50, lr=0.05, abort_early=False)
    seen = torch.stack([s for s in rec.seen if s.shape[0] == x.shape[0]])           # (passes, B, 1, 4, 4)
    with torch.no_grad():
        fooled = torch.stack([model(s).argmax(1) != y for s in seen])                # (passes, B)
    dist = (seen - x).flatten(2).norm(dim=2).masked_fill(~fooled, float("inf"))    # (passes, B)
    assert torch.isfinite(dist.min(0).values).all()
    torch.testing.assert_close((out - x).flatten(1).norm(dim=1), dist.min(0).values, atol=1e-9, rtol=0)


def test_cw_returns_the_last_iterate_when_every_c_fails(mnist_cnn, digits):
    x, y = digits[0][:3], digits[1][:3]
    out = carlini_wagner(mnist_cnn, x, y, c=1e-9, binary_search_steps=1, steps=1)
    assert (mnist_cnn(out).argmax(1) == y).all()  # the attack failed...
    assert (out - x).abs().max() < 0.01  # ...and returns its attempt, next to x, not a blank image
    assert (out.flatten(1).sum(1) > 10).all()


# --------------------------------------------------------------------------- evaluation helpers
def _shift(model, x, y, eps, targeted=False):
    """A fake attack with a known result: brighten every pixel by eps."""
    return (x + eps).clamp(0, 1)


def test_transfer_rate_counts_only_images_the_target_got_right():
    """f(x) = (0.5 - x, x - 0.5) on one pixel: class 0 below 0.5. The target gets 0.1 and 0.3 right and 0.6,
    0.9 wrong; shifted by 0.3 the 0.3 crosses (0.6), the 0.1 does not (0.4): 1 transfer of 2 eligible images."""
    model = Linear(torch.tensor([[[[-1.0]]], [[[1.0]]]], dtype=torch.float64),
                   torch.tensor([0.5, -0.5], dtype=torch.float64)).eval()
    x = torch.tensor([0.1, 0.3, 0.6, 0.9], dtype=torch.float64).view(4, 1, 1, 1)
    y = torch.zeros(4, dtype=torch.long)
    res = transfer(model, model, x, y, lambda m, x, y, targeted=False: _shift(m, x, y, 0.3))
    assert res["n_eligible"] == 2
    assert res["transfer_mask"].tolist() == [False, True, True, True]
    assert res["transfer_rate"] == 0.5


def test_success_mask_and_rate_by_hand():
    model = linear_model(k=3, seed=7)
    x = images(b=6, shape=(1, 4, 4), seed=7, dtype=torch.float64)
    pred = model(x).argmax(1)
    y = pred.clone()
    y[:2] = (pred[:2] + 1) % 3  # two images "misclassified"
    assert success_mask(model, x, y).tolist() == [True, True, False, False, False, False]
    assert success_rate(model, x, y) == pytest.approx(2 / 6)
    assert success_rate(model, x, pred, targeted=True) == 1.0


def test_attack_sweep_against_hand_computed_accuracies():
    model = linear_model(k=3, seed=8)
    x = images(b=6, shape=(1, 4, 4), seed=8, dtype=torch.float64)
    y = model(x).argmax(1)
    y[0] = (y[0] + 1) % 3
    eps_values = [0.0, 0.1, 0.5]
    res = attack_sweep(model, x, y, _shift, eps_values, progress=False, return_adv=True)
    for i, eps in enumerate(eps_values):
        pred = model((x + eps).clamp(0, 1)).argmax(1)
        assert res["success"][i].tolist() == (pred != y).tolist()
        assert res["accuracy"][i].item() == pytest.approx((pred == y).double().mean().item())
        assert torch.equal(res["x_adv"][i], (x + eps).clamp(0, 1))
    assert res["eps"] == eps_values
    torch.testing.assert_close(res["success_rate"], 1 - res["accuracy"])
    # by name: the same as calling the attack itself
    res = attack_sweep(model, x, y, "fgsm", [0.0, 0.2], progress=False)
    assert res["success"][1].tolist() == success_mask(model, fgsm(model, x, y, 0.2), y).tolist()
    assert res["accuracy"][0].item() == pytest.approx(5 / 6)
    res = attack_sweep(model, x, y, pgd, [0.0, 0.2], progress=False, steps=3, seed=0)
    assert res["success"][1].tolist() == success_mask(model, pgd(model, x, y, 0.2, 2.5 * 0.2 / 3, 3, seed=0),
                                                      y).tolist()
    # targeted: success = classified as the target; accuracy only with the true labels
    t = (y + 1) % 3
    res = attack_sweep(model, x, t, _shift, [0.3], targeted=True, progress=False)
    assert res["accuracy"] is None
    assert res["success"][0].tolist() == (model((x + 0.3).clamp(0, 1)).argmax(1) == t).tolist()
    res = attack_sweep(model, x, t, _shift, [0.3], targeted=True, y_true=y, progress=False)
    assert res["accuracy"][0].item() == pytest.approx((model((x + 0.3).clamp(0, 1)).argmax(1) == y).double().mean())


def test_transfer_against_hand_computed_accuracies():
    source, target = linear_model(k=3, seed=9), linear_model(k=3, seed=10)
    x = images(b=8, shape=(1, 4, 4), seed=9, dtype=torch.float64)
    y = source(x).argmax(1)
    res = transfer(source, target, x, y, lambda m, x, y, targeted=False: _shift(m, x, y, 0.4))
    adv = (x + 0.4).clamp(0, 1)
    src_a = source(adv).argmax(1)
    tgt_c, tgt_a = target(x).argmax(1), target(adv).argmax(1)
    assert res["source_clean_accuracy"] == 1.0
    assert res["source_adv_accuracy"] == pytest.approx((src_a == y).double().mean().item())
    assert res["target_clean_accuracy"] == pytest.approx((tgt_c == y).double().mean().item())
    assert res["target_adv_accuracy"] == pytest.approx((tgt_a == y).double().mean().item())
    assert res["source_success_rate"] == pytest.approx((src_a != y).double().mean().item())
    eligible = tgt_c == y
    assert res["n_eligible"] == int(eligible.sum()) and 0 < res["n_eligible"] < 8
    assert res["transfer_rate"] == pytest.approx((tgt_a != y)[eligible].double().mean().item())
    assert res["transfer_mask"].tolist() == (tgt_a != y).tolist()
    assert torch.equal(res["x_adv"], adv)
    # by name, with the budget in kw
    res = transfer(source, target, x, y, "fgsm", eps=0.3)
    assert torch.equal(res["x_adv"], fgsm(source, x, y, 0.3))


# --------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors():
    model, x = tiny_cnn(), images()
    y = torch.tensor([0, 1, 2, 3, 0])
    cases = [
        (lambda: fgsm(model, x[0], y, 0.1), ValueError, "(B, C, H, W)"),
        (lambda: fgsm(model, x * 2, y, 0.1), ValueError, "[0, 1]"),
        (lambda: fgsm(model, (x * 255).to(torch.uint8), y, 0.1), TypeError, "floating-point"),
        (lambda: fgsm(model, x, y.float(), 0.1), TypeError, "torch.long"),
        (lambda: fgsm(model, x, y[:3], 0.1), ValueError, "shape (5,)"),
        (lambda: fgsm(model, x, y + 4, 0.1), ValueError, "[0, 4)"),
        (lambda: pgd(model, x, y + 4, 0.1, 0.01, 3), ValueError, "[0, 4)"),       # checked on the first step
        (lambda: pgd(model, x, y + 4, 0.1, 0.01, 0), ValueError, "[0, 4)"),       # no step: by the probe pass
        (lambda: fgsm(nn.Identity().eval(), x, y, 0.1), ValueError, "logits of shape"),
        (lambda: fgsm(model, x, y, -0.1), ValueError, "eps"),
        (lambda: fgsm(model, x, y, float("nan")), ValueError, "eps"),
        (lambda: fgsm(model, x, y, 0.1, loss="hinge"), ValueError, "loss"),
        (lambda: pgd(model, x, y, 0.1, 0.0, 3), ValueError, "alpha"),
        (lambda: pgd(model, x, y, 0.1, 0.01, -1), ValueError, "steps"),
        (lambda: pgd(model, x, y, 0.1, 0.01, 2.5), TypeError, "steps"),             # not an int: a TypeError
        (lambda: pgd(model, x, y, 0.1, 0.01, 3, norm="l1"), ValueError, "norm"),
        (lambda: pgd(model, x, y, 0.1, 0.01, 3, restarts=0), ValueError, "restarts"),
        (lambda: pgd(model, x, y, 0.1, 0.01, 3, seed="a"), TypeError, "seed"),
        (lambda: pgd(model, x, y, float("inf"), 0.01, 3), ValueError, "eps"),
        (lambda: carlini_wagner(model, x, y, c=0.0), ValueError, "c must"),
        (lambda: carlini_wagner(model, x, y, binary_search_steps=0), ValueError, "binary_search_steps"),
        (lambda: carlini_wagner(model, x, y, kappa=-1.0), ValueError, "kappa"),
        (lambda: carlini_wagner(model, x, y, lr=0), ValueError, "lr"),
        (lambda: attack_sweep(model, x, y, "deepfool", [0.1], progress=False), ValueError, "attack"),
        (lambda: attack_sweep(model, x, y, "cw", [0.1], progress=False), ValueError, "no budget"),
        (lambda: attack_sweep(model, x, y, "fgsm", [0.1, -1], progress=False), ValueError, "eps_values"),
        (lambda: attack_sweep(model, x, y, "fgsm", [], progress=False), ValueError, "eps_values"),
        (lambda: transfer(model, tiny_cnn().train(), x, y, "fgsm", eps=0.1), ValueError, "target_model is in training"),
    ]
    for call, error, text in cases:
        model.eval()
        with pytest.raises(error, match=None) as info:
            call()
        assert text in str(info.value), (text, str(info.value))
    model.train()
    with pytest.raises(ValueError, match="training mode"):
        pgd(model, x, y, 0.1, 0.01, 3)
    model.eval()


# --------------------------------------------------------------------------- loss_slice (lesson 07's landscapes)
def test_loss_slice_is_the_cross_entropy_at_each_point():
    from course_lib.attacks import loss_slice

    model, x = tiny_cnn(), images(3)
    y = torch.tensor([0, 1, 3])
    d = torch.randn(3, 2, *x.shape[1:], generator=torch.Generator().manual_seed(1))
    ts = [-0.3, 0.0, 0.1, 0.25]
    x_before, d_before, snap = x.clone(), d.clone(), snapshot(model)
    out = loss_slice(model, x, y, d, ts)
    assert out.shape == (3, 2, 4) and not out.requires_grad
    assert torch.equal(x, x_before) and torch.equal(d, d_before)
    assert_untouched(model, snap)
    with torch.no_grad():
        for b in range(3):
            for k in range(2):
                for j, t in enumerate(ts):
                    point = (x[b] + t * d[b, k]).clamp(0, 1)[None]
                    ref = F.cross_entropy(model(point), y[b:b + 1])
                    assert torch.allclose(out[b, k, j], ref, atol=1e-5)
        # t = 0 is the clean loss along every direction; without the clip the points leave [0, 1]
        clean = F.cross_entropy(model(x), y, reduction="none")
    assert torch.allclose(out[:, :, 1], clean[:, None].expand(3, 2), atol=1e-5)
    free = loss_slice(model, x, y, d, ts, clip=False)
    with torch.no_grad():
        ref = F.cross_entropy(model(x + 0.25 * d[:, 0]), y, reduction="none")
    assert torch.allclose(free[:, 0, 3], ref, atol=1e-5)
    # one direction per image may come as (B, C, H, W)
    assert torch.allclose(loss_slice(model, x, y, d[:, 0], ts), out[:, :1], atol=1e-6)


def test_loss_slice_is_linear_on_a_linear_model_without_clip():
    """On a linear classifier with two classes the logit margin is affine in t; the CE is softplus of it."""
    from course_lib.attacks import loss_slice

    model = linear_model(k=2)
    x = images(2, shape=(1, 4, 4), dtype=torch.float64)
    y = torch.tensor([0, 1])
    d = torch.sign(torch.randn(2, *x.shape[1:], generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    ts = torch.linspace(-1, 1, 9, dtype=torch.float64)
    ce = loss_slice(model, x, y, d, ts, clip=False)[:, 0]
    margin = torch.log(torch.expm1(ce))  # CE = softplus(-m) with m the margin: log(exp(CE) - 1) = -m, affine in t
    second = margin[:, 2:] - 2 * margin[:, 1:-1] + margin[:, :-2]
    assert torch.allclose(second, torch.zeros_like(second), atol=1e-8)


def test_loss_slice_validates():
    from course_lib.attacks import loss_slice

    model, x = tiny_cnn(), images(2)
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="directions must have shape"):
        loss_slice(model, x, y, torch.zeros(2, 1, 3, 6, 6), [0.0])
    with pytest.raises(ValueError, match="ts must be"):
        loss_slice(model, x, y, torch.zeros_like(x), [])
    with pytest.raises(ValueError, match="training mode"):
        loss_slice(model.train(), x, y, torch.zeros_like(x), [0.0])
