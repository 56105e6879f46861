"""Black-box access (Oracle) and the Boundary attack, checked against definitions, budgets and a closed form."""
import pytest
import torch
from _toy import Linear
from torch import nn

from course_lib.attacks import Oracle, QueryBudgetExceeded, boundary_attack, zoo


@pytest.fixture(scope="module")
def digits(mnist_test, mnist_cnn):
    """Held-out digits the model classifies correctly, all ten classes (the 8s too: uniform noise reads as 8)."""
    x, y = mnist_test[0][:60], mnist_test[1][:60]
    with torch.no_grad():
        ok = mnist_cnn(x).argmax(1) == y
    return x[ok][:10], y[ok][:10]


class GradSpy(nn.Module):
    """Records whether autograd was on during each forward pass."""

    def __init__(self, model):
        super().__init__()
        self.model, self.grad_on = model, []

    def forward(self, x):
        self.grad_on.append(torch.is_grad_enabled() or x.requires_grad)
        return self.model(x)


# --------------------------------------------------------------------------- Oracle
def test_oracle_answers_probabilities_or_labels_and_never_a_gradient(mnist_cnn, digits):
    x = digits[0][:5].clone().requires_grad_(True)
    spy = GradSpy(mnist_cnn).eval()
    with torch.no_grad():
        probs = mnist_cnn(x).softmax(1)
    scores = Oracle(spy)(x)
    torch.testing.assert_close(scores, probs)
    assert not scores.requires_grad
    labels = Oracle(spy, access="labels")(x)
    assert labels.dtype == torch.long and torch.equal(labels, probs.argmax(1))
    assert spy.grad_on == [False, False]  # the model ran without autograd, on a detached input


def test_oracle_counts_per_image_and_stops_at_the_budget(mnist_cnn, digits):
    x = digits[0]
    o = Oracle(mnist_cnn, "labels", max_queries=3)
    o.reset(2)
    o(x[:3], owner=torch.tensor([0, 0, 1]))
    o(x[:2], owner=torch.tensor([1, 1]))
    assert o.queries.tolist() == [2, 3] and o.total == 5 and o.remaining().tolist() == [1, 0]
    with pytest.raises(QueryBudgetExceeded, match="image 1 would need 4 queries; the budget is 3"):
        o(x[:2], owner=torch.tensor([0, 1]))
    assert o.queries.tolist() == [2, 3]  # a refused call costs nothing
    o(x[:1], owner=torch.tensor([0]))
    assert o.queries.tolist() == [3, 3]
    with pytest.raises(ValueError, match="pass owner"):
        o(x[:3])
    with pytest.raises(ValueError, match=r"indices in \[0, 2\)"):
        o(x[:1], owner=torch.tensor([2]))
    fresh = Oracle(mnist_cnn)
    fresh(x[:4])  # used directly: one image per row
    assert fresh.queries.tolist() == [1, 1, 1, 1] and fresh.remaining() is None


def test_oracle_rejects_bad_arguments(mnist_cnn, digits):
    with pytest.raises(ValueError, match="access must be one of"):
        Oracle(mnist_cnn, access="logits")
    with pytest.raises(ValueError, match="max_queries"):
        Oracle(mnist_cnn, max_queries=0)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        Oracle(mnist_cnn)(digits[0] * 2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))  # training mode
    with pytest.raises(ValueError, match="training mode"):
        Oracle(model)


# --------------------------------------------------------------------------- the Boundary attack
def _linear_two_class(seed=3):
    """f = W x + b with two classes whose boundary passes through the centre of the box, and 4 images far from
    the box's faces; returns the model, x, y and the closed-form distance of each image to the boundary."""
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)
    bias = torch.stack([-0.5 * (weight[0] - weight[1]).sum(), torch.zeros((), dtype=torch.float64)])
    model = Linear(weight, bias).eval()
    x = 0.4 + 0.2 * torch.rand(4, 1, 4, 4, generator=g, dtype=torch.float64)
    with torch.no_grad():
        z = model(x)
    w = (weight[0] - weight[1]).flatten()
    return model, x, z.argmax(1), (z[:, 0] - z[:, 1]).abs() / w.norm()


def test_boundary_attack_approaches_the_closed_form_minimum_on_a_linear_model():
    """Two classes, f = W x + b: the smallest L2 change of class is the distance to the hyperplane
    |(w0 - w1).x + b0 - b1| / ||w0 - w1||. No adversarial image can be closer; the walk along the boundary must
    get close to it with labels only."""
    model, x, y, dist = _linear_two_class()
    assert dist.max() < 0.35  # the closest point of the hyperplane lies inside [0, 1]^16
    oracle = Oracle(model, "labels")
    out = boundary_attack(oracle, x, y, max_queries=3000, seed=0, progress=False)
    l2 = (out - x).flatten(1).norm(dim=1)
    with torch.no_grad():
        assert (model(out).argmax(1) != y).all()
    assert (l2 >= dist - 1e-9).all()
    assert (l2 <= 1.001 * dist).all(), (l2 / dist).tolist()  # measured: within 1e-6 of the optimum
    assert (oracle.queries <= 3000).all()


def test_boundary_attack_invariants_budget_and_monotone_progress(mnist_cnn, digits):
    x, y = digits
    x0, y0 = x.clone(), y.clone()
    flags = [p.requires_grad for p in mnist_cnn.parameters()]
    rng = torch.get_rng_state()
    short_oracle, long_oracle = Oracle(mnist_cnn, "labels"), Oracle(mnist_cnn, "labels")
    short = boundary_attack(short_oracle, x, y, max_queries=300, seed=0, progress=False)
    long = boundary_attack(long_oracle, x, y, max_queries=900, seed=0, progress=False)
    assert torch.equal(torch.get_rng_state(), rng)  # private generator
    assert torch.equal(x, x0) and torch.equal(y, y0) and not mnist_cnn.training
    assert [p.requires_grad for p in mnist_cnn.parameters()] == flags
    for out, oracle, budget in ((short, short_oracle, 300), (long, long_oracle, 900)):
        assert out.min() >= 0 and out.max() <= 1
        with torch.no_grad():
            assert (mnist_cnn(out).argmax(1) != y).all()  # every digit fooled, the 8s included
        assert (oracle.queries <= budget).all()
        assert (oracle.queries > budget - 2).double().mean() >= 0.7  # the budget is used, unless a walk converged
    # the same seed replays the same walk, and a longer walk only ever gets closer
    d_short, d_long = (short - x).flatten(1).norm(dim=1), (long - x).flatten(1).norm(dim=1)
    assert (d_long <= d_short + 1e-6).all() and (d_long < d_short).float().mean() >= 0.8
    again = boundary_attack(Oracle(mnist_cnn, "labels"), x, y, max_queries=300, seed=0, progress=False)
    assert torch.equal(again, short)
    # scores access gives the same walk (the arg-max is all the attack uses)
    assert torch.equal(boundary_attack(Oracle(mnist_cnn), x, y, max_queries=300, seed=0, progress=False), short)


def test_boundary_attack_targeted_starts_from_init_and_keeps_the_target(mnist_cnn, mnist_test, digits):
    x, y = digits[0][:4], digits[1][:4]
    target = (y + 1) % 10
    with pytest.raises(ValueError, match="needs init"):
        boundary_attack(Oracle(mnist_cnn, "labels"), x, target, targeted=True, progress=False)
    pool_x = mnist_test[0][100:400]
    with torch.no_grad():
        pool_pred = mnist_cnn(pool_x).argmax(1)
    init = torch.stack([pool_x[(pool_pred == t).nonzero()[0, 0]] for t in target.tolist()])
    with pytest.raises(ValueError, match="max_queries must be >= 2"):
        boundary_attack(Oracle(mnist_cnn, "labels"), x, target, targeted=True, init=x.clone(), max_queries=1)
    with pytest.raises(ValueError, match="already be adversarial"):
        boundary_attack(Oracle(mnist_cnn, "labels"), x, target, targeted=True, init=x.clone(), progress=False)
    out = boundary_attack(Oracle(mnist_cnn, "labels"), x, target, targeted=True, init=init, max_queries=500,
                          seed=1, progress=False)
    with torch.no_grad():
        assert torch.equal(mnist_cnn(out).argmax(1), target)
    d_out, d_init = (out - x).flatten(1).norm(dim=1), (init - x).flatten(1).norm(dim=1)
    assert (d_out < d_init).all() and d_out.median() < 0.8 * d_init.median()  # targeted walks are slow


def test_boundary_attack_keeps_an_image_that_is_already_wrong_and_needs_an_oracle(mnist_cnn, mnist_test):
    x, y = mnist_test[0], mnist_test[1]
    with torch.no_grad():
        wrong = (mnist_cnn(x[:1500]).argmax(1) != y[:1500]).nonzero().flatten()[:2]
    assert len(wrong) == 2
    oracle = Oracle(mnist_cnn, "labels")
    out = boundary_attack(oracle, x[wrong], y[wrong], max_queries=50, seed=0, progress=False)
    assert torch.equal(out, x[wrong]) and oracle.queries.tolist() == [1, 1]
    with pytest.raises(TypeError, match="takes an Oracle"):
        boundary_attack(mnist_cnn, x[:2], y[:2])


# --------------------------------------------------------------------------- ZOO
def test_zoo_reaches_the_closed_form_minimum_on_a_linear_model():
    """With two classes the log-probability margin is the logit margin, linear in x: ZOO's estimated gradients are
    exact up to rounding, and the closest adversarial point it queries approaches the distance to the hyperplane
    (to within about its Adam step, lr per coordinate: close for the images at least 0.04 from the boundary)."""
    model, x, y, dist = _linear_two_class()
    assert dist.max() < 0.35
    oracle = Oracle(model)
    out = zoo(oracle, x, y, max_queries=6000, seed=0, coords=16, progress=False)
    l2 = (out - x).flatten(1).norm(dim=1)
    with torch.no_grad():
        assert (model(out).argmax(1) != y).all()
    assert (l2 >= dist - 1e-9).all()  # nothing adversarial is closer than the hyperplane
    far = dist > 0.04
    assert far.sum() >= 2 and (l2[far] <= 1.03 * dist[far]).all(), (l2 / dist).tolist()
    assert (oracle.queries <= 6000).all() and (oracle.queries > 6000 - 33).all()  # 2 * 16 + 1 per iteration


def test_zoo_on_digits_invariants_seed_and_targeted(mnist_cnn, digits):
    x, y = digits[0][:3], digits[1][:3]
    flags = [p.requires_grad for p in mnist_cnn.parameters()]
    rng = torch.get_rng_state()
    oracle = Oracle(mnist_cnn)
    out = zoo(oracle, x, y, max_queries=4000, seed=0, coords=64, c=10.0, lr=0.05, binary_search_steps=1,
              progress=False)  # a short budget: large steps
    assert torch.equal(torch.get_rng_state(), rng) and not mnist_cnn.training
    assert [p.requires_grad for p in mnist_cnn.parameters()] == flags
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert (oracle.queries <= 4000).all()
    with torch.no_grad():
        fooled = mnist_cnn(out).argmax(1) != y
    assert fooled.all()
    again = zoo(Oracle(mnist_cnn), x, y, max_queries=4000, seed=0, coords=64, c=10.0, lr=0.05, binary_search_steps=1,
                progress=False)
    assert torch.equal(again, out)
    # targeted, on the 3-class linear model: the target's region is reached
    model = Linear(torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64),
                   torch.zeros(3, dtype=torch.float64)).eval()
    xs = 0.4 + 0.2 * torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    with torch.no_grad():
        t = (model(xs).argmax(1) + 1) % 3
    adv = zoo(Oracle(model), xs, t, targeted=True, max_queries=3000, seed=0, coords=16, progress=False)
    with torch.no_grad():
        assert torch.equal(model(adv).argmax(1), t)


def test_zoo_needs_scores():
    model, x, y, _ = _linear_two_class()
    with pytest.raises(ValueError, match="access='scores'"):
        zoo(Oracle(model, "labels"), x, y, progress=False)
    with pytest.raises(TypeError, match="takes an Oracle"):
        zoo(model, x, y)
