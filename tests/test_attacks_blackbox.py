"""Black-box access (Oracle) and the Boundary attack, checked against definitions, budgets and a closed form."""
import pytest
import torch
from _toy import Linear, linear_two_class
from torch import nn

from course_lib.attacks import Oracle, QueryBudgetExceeded, boundary_attack, noise_start
from course_lib.attacks.boundary import _propose

pytestmark = pytest.mark.usefixtures("one_thread")  # thousands of small forward passes (see conftest.one_thread)


@pytest.fixture(scope="module")
def digits(mnist_test, mnist_cnn):
    """The first 10 held-out digits the model classifies correctly (classes 6, 4, 8 and 3; the 8s matter: uniform
    noise reads as 8)."""
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
def _linear_two_class():
    """The shared linear model (tests/_toy.py) with its closed-form L2 distance to the boundary."""
    model, x, y, gap, w = linear_two_class()
    return model, x, y, gap / w.norm()


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
            assert (mnist_cnn(out).argmax(1) != y).all()  # adversarial: true of the noise start already
        assert (oracle.queries <= budget).all()
        assert (oracle.queries > budget - 2).double().mean() >= 0.7  # the budget is used, unless a walk converged
    # the walk, not only the start: with the trace at every query count, an image's first finite distance is its
    # noise start (about 15.5 in L2, 9.6 and 11.7 for the 8s: dim noise); by query 30 the start and its
    # bisection are done. Measured (900 queries): every image ends below 0.6 x its start distance, the 8s at
    # 4.6 and 5.7 from 9.8 and 9.4 at query 30 (a walk that never moved would keep those)
    q, d = long_oracle.trace(torch.arange(1, 901))
    start = torch.stack([row[torch.isfinite(row)][0] for row in d])
    d_out = (long - x).flatten(1).norm(dim=1).double()
    assert (d_out < 0.75 * start).all(), (d_out / start).tolist()
    eights = y == 8
    assert eights.sum() == 2
    assert d_out[eights].mean() < 7.5 and d_out[eights].mean() < 0.75 * d[eights, 29].mean()
    assert d_out[~eights].median() < 0.85 * d[~eights, 29].median()  # measured 0.81 / 1.14
    # a longer walk gets closer (not image by image: restarts draw other random numbers once budgets differ)
    d_short, d_long = (short - x).flatten(1).norm(dim=1), (long - x).flatten(1).norm(dim=1)
    assert d_long.median() < 0.9 * d_short.median() and (d_long < d_short).float().mean() >= 0.7
    # the oracle's trace ends at the distance of the returned image, and never rises
    q, d = long_oracle.trace()
    torch.testing.assert_close(d[:, -1], d_long.double(), rtol=1e-5, atol=1e-6)
    assert (d[:, 1:] <= d[:, :-1]).all()
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


# --------------------------------------------------------------------------- the oracle's budget and trace
def test_oracle_trace_records_the_closest_adversarial_query_by_hand(mnist_cnn, digits):
    """Hand-built queries: the trace is the running minimum of the distances of the adversarial queries, at the
    query number of the row that reached it, per image; non-adversarial rows never count."""
    x, y = digits[0][:2], digits[1][:2]
    o = Oracle(mnist_cnn, "labels")
    o.watch(x, y)
    with torch.no_grad():
        pred = lambda t: mnist_cnn(t).argmax(1)  # noqa: E731
    dark = x * 0.0  # an all-black image: "1" for mnist_cnn, adversarial unless the digit is a 1
    assert pred(dark[:1]).item() == 1 and y[0].item() != 1 and y[1].item() != 1
    noisy = (x + 0.01).clamp(0, 1)  # barely changed: still correct
    assert torch.equal(pred(noisy), y)
    o(torch.cat([noisy[:1], dark[:1], noisy[1:]]), owner=torch.tensor([0, 0, 1]))  # queries: image 0: 1, 2; image 1: 1
    half = x * 0.5 if pred(x[1:] * 0.5).item() != y[1].item() else dark[1:]
    o(torch.cat([half[-1:], dark[1:]]), owner=torch.tensor([1, 1]))                  # image 1: queries 2 and 3
    q, d = o.trace([1, 2, 3, 4])
    d0 = float((dark[0] - x[0]).norm())
    d1 = min(float((half[-1] - x[1]).norm()), float((dark[1] - x[1]).norm()))
    expected = torch.tensor([[float("inf"), d0, d0, d0], [float("inf"), float((half[-1] - x[1]).norm()), d1, d1]],
                            dtype=torch.float64)
    torch.testing.assert_close(d, expected)
    with pytest.raises(ValueError, match="increasing"):
        o.trace([3, 2])
    with pytest.raises(RuntimeError, match="nothing is being traced"):
        Oracle(mnist_cnn).trace()


def test_oracle_log_scores_are_exact_where_probabilities_underflow():
    model, x, y, _ = _linear_two_class()
    big = Linear(model.weight.detach() * 1e4, model.bias.detach() * 1e4).eval()  # logit gaps far above 88
    o = Oracle(big)
    p, logp = o(x), o(x, log=True)
    assert (p == 0).any()  # softmax underflows to exactly 0 ...
    with torch.no_grad():
        torch.testing.assert_close(logp, big(x).log_softmax(1))  # ... its logarithm is still exact and finite
    assert torch.isfinite(logp).all() and o.queries.tolist() == [2, 2, 2, 2]
    with pytest.raises(ValueError, match="log=True"):
        Oracle(big, "labels")(x, log=True)


def test_attacks_continue_the_oracles_count_and_respect_its_budget(mnist_cnn, digits):
    """Budgets are one thing: an attack spends at most min(max_queries, what the oracle has left), never resets a
    running count, and returns its best so far instead of raising."""
    x, y = digits[0][:4], digits[1][:4]
    o = Oracle(mnist_cnn, "labels", max_queries=150)
    o(x)  # the caller spent one query per image already
    out = boundary_attack(o, x, y, max_queries=1000, seed=0, progress=False)  # asks for more than the oracle has
    assert o.queries.max() <= 150 and (o.queries >= 140).float().mean() >= 0.5  # continued, capped, no exception
    with torch.no_grad():
        assert (mnist_cnn(out).argmax(1) != y).all()
    o.queries = torch.full((4,), 150)  # nothing left at all: returns its start (x) at once, no exception
    assert torch.equal(boundary_attack(o, x, y, max_queries=1000, seed=0, progress=False), x)
    assert o.queries.tolist() == [150] * 4
    o2 = Oracle(mnist_cnn, "labels")
    o2(x)
    boundary_attack(o2, x, y, max_queries=100, seed=0, progress=False)
    assert o2.queries.max() <= 101 and o2.queries.min() >= 90  # 1 before + at most 100 of its own
    with pytest.raises(ValueError, match="counting queries for 4 image"):
        boundary_attack(o2, digits[0][:3], digits[1][:3], progress=False)


def test_boundary_step_is_length_corrected_where_the_box_binds():
    """The source step lands at exactly (1 - epsilon) d from x even where clipping pulled the orthogonal
    candidate inside the sphere (the paper's and Foolbox's length correction), and the orthogonal candidate is on
    the sphere wherever the box does not bind."""
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(6, 1, 8, 8, dtype=torch.float64)  # all pixels at 0: the clip binds on about half the noise
    xa = torch.rand(6, 1, 8, 8, generator=g, dtype=torch.float64) * 0.5
    d = (xa - x).flatten(1).norm(dim=1)
    eps = torch.full((6,), 0.05, dtype=torch.float64)
    sph, cand = _propose(x, xa, torch.full((6,), 0.3, dtype=torch.float64), eps, g)
    r = (sph - x).flatten(1).norm(dim=1)
    assert (r < d - 1e-6).all()  # clipped inside the sphere
    dc = (cand - x).flatten(1).norm(dim=1)
    torch.testing.assert_close(dc, torch.minimum((1 - eps) * d, r))  # never further than (1 - eps) d
    x2 = torch.full((6, 1, 8, 8), 0.5, dtype=torch.float64)  # far from the faces: no clipping at all
    xa2 = x2 + 0.01 * torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64)
    d2 = (xa2 - x2).flatten(1).norm(dim=1)
    sph2, cand2 = _propose(x2, xa2, torch.full((6,), 0.1, dtype=torch.float64), eps, g)
    torch.testing.assert_close((sph2 - x2).flatten(1).norm(dim=1), d2)
    torch.testing.assert_close((cand2 - x2).flatten(1).norm(dim=1), (1 - eps) * d2)
    eta = (sph2 - x2).flatten(1) - (xa2 - x2).flatten(1)
    # the orthogonal candidate's displacement, before renormalisation, was orthogonal: its angle to x'-x is delta
    cos = ((sph2 - x2).flatten(1) * (xa2 - x2).flatten(1)).sum(1) / (d2 * d2)
    torch.testing.assert_close(cos, 1 / torch.sqrt(torch.tensor(1 + 0.1 ** 2, dtype=torch.float64)).expand(6))
    assert eta.norm(dim=1).min() > 0


def test_boundary_attack_costs_1_plus_1_over_check_every_queries_per_step(monkeypatch):
    """One query per step for the full candidate, plus one every check_every steps for the orthogonal candidate
    (Foolbox: about 1.1 per step), not two per step."""
    import course_lib.attacks.boundary as boundary

    model, x, y, _ = _linear_two_class()
    o = Oracle(model, "labels")
    steps, at_first = [], []
    real = boundary._propose

    def counting(xo, *args):
        if not at_first:
            at_first.append(o.total)
        steps.append(xo.shape[0])
        return real(xo, *args)

    monkeypatch.setattr(boundary, "_propose", counting)
    for check_every, expected in ((5, 1.2), (1, 2.0)):
        o.queries, steps[:], at_first[:] = torch.zeros(0, dtype=torch.long), [], []
        boundary_attack(o, x, y, max_queries=1000, seed=0, check_every=check_every, restarts=0, progress=False)
        per_step = (o.total - at_first[0]) / sum(steps)
        assert per_step == pytest.approx(expected, abs=0.02), per_step


def test_boundary_attack_takes_an_init_attack_and_restarts_crawling_walks(mnist_cnn, digits):
    x, y = digits
    calls = []

    def my_start(oracle, x, y, targeted=False, max_queries=0, seed=None):
        calls.append(max_queries)
        return noise_start(oracle, x, y, targeted=targeted, max_queries=max_queries, seed=seed)

    o = Oracle(mnist_cnn, "labels")
    out = boundary_attack(o, x, y, max_queries=300, seed=0, init=my_start, progress=False)
    assert len(calls) == 1 and 0 < calls[0] < 300
    with torch.no_grad():
        assert (mnist_cnn(out).argmax(1) != y).all()
    eights = y == 8
    assert eights.any()
    # the 8s: noise starts are far (every noise image is an "8" for mnist_cnn, the starts are dim noise in thin
    # slivers of other classes); restarting stuck walks from occlusions and new noise more than halves their distance
    x8, y8 = x[eights], y[eights]
    no = boundary_attack(Oracle(mnist_cnn, "labels"), x8, y8, max_queries=2000, seed=0, restarts=0, progress=False)
    yes = boundary_attack(Oracle(mnist_cnn, "labels"), x8, y8, max_queries=2000, seed=0, progress=False)
    d_no, d_yes = (no - x8).flatten(1).norm(dim=1), (yes - x8).flatten(1).norm(dim=1)
    assert (d_yes <= d_no + 1e-6).all() and d_yes.median() < 0.6 * d_no.median(), (d_no, d_yes)
