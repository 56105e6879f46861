"""HopSkipJumpAttack: closed forms on a linear model (L2 and Linf), real digits, budgets, the trace, seeds, errors."""
import pytest
import torch
from _toy import linear_two_class

from course_lib.attacks.hsj import hop_skip_jump
from course_lib.attacks.oracle import Oracle

pytestmark = pytest.mark.usefixtures("one_thread")  # thousands of small forward passes (see conftest.one_thread)


@pytest.fixture(scope="module")
def digits(mnist_test, mnist_cnn):
    """Ten held-out digits the model classifies correctly, two 8s among them (uniform noise reads as 8)."""
    x, y = mnist_test[0][:60], mnist_test[1][:60]
    with torch.no_grad():
        ok = mnist_cnn(x).argmax(1) == y
    x, y = x[ok][:10], y[ok][:10]
    assert (y == 8).sum() == 2
    return x, y


def _dist(a, x, norm="l2"):
    diff = (a - x).flatten(1)
    return diff.norm(dim=1) if norm == "l2" else diff.abs().amax(1)


def _linear_two_class():
    """The shared linear model (tests/_toy.py) with its closed-form L2 and L-inf distances to the boundary."""
    model, x, y, gap, w = linear_two_class()
    return model, x, y, gap / w.norm(), gap / w.abs().sum()


@pytest.mark.parametrize("norm, budget, tol", [("l2", 3000, 1.02), ("linf", 5000, 1.06)])
def test_reaches_the_closed_form_minimum_on_a_linear_model(norm, budget, tol):
    """No adversarial image is closer than the closed form; HopSkipJump, with labels only, gets within a few
    percent of it (measured: L2 within 0.7 % at 3,000 queries, Linf within 1-4 % at 5,000). The optimum lies
    inside the box (images in [0.4, 0.6], distances below 0.35), so clipping does not move it."""
    model, x, y, l2, linf = _linear_two_class()
    best = l2 if norm == "l2" else linf
    assert best.max() < 0.35
    oracle = Oracle(model, "labels")
    out = hop_skip_jump(oracle, x, y, max_queries=budget, norm=norm, seed=0, progress=False)
    d = _dist(out, x, norm)
    with torch.no_grad():
        assert (model(out).argmax(1) != y).all()
    assert (d >= best - 1e-9).all()
    assert (d <= tol * best).all(), (d / best).tolist()
    assert (oracle.queries <= budget).all() and (oracle.queries > budget - 40).all()  # the budget is used
    _, trace = oracle.trace()
    assert torch.equal(trace[:, -1], d.double())  # the oracle's record (in this norm) is the returned image
    # a scores oracle gives the same attack: only the arg-max is read
    again = hop_skip_jump(Oracle(model), x, y, max_queries=budget, norm=norm, seed=0, progress=False)
    assert torch.equal(again, out)


def test_on_digits_the_walk_ends_below_its_start_the_8s_included(mnist_cnn, digits):
    x, y = digits
    x0, y0 = x.clone(), y.clone()
    flags = [p.requires_grad for p in mnist_cnn.parameters()]
    rng = torch.get_rng_state()
    oracle = Oracle(mnist_cnn, "labels")
    out = hop_skip_jump(oracle, x, y, max_queries=1000, seed=0, progress=False)
    assert torch.equal(torch.get_rng_state(), rng)  # private generator
    assert torch.equal(x, x0) and torch.equal(y, y0) and not mnist_cnn.training
    assert [p.requires_grad for p in mnist_cnn.parameters()] == flags
    assert out.shape == x.shape and out.dtype == x.dtype and out.min() >= 0 and out.max() <= 1
    assert not out.requires_grad
    with torch.no_grad():
        assert (mnist_cnn(out).argmax(1) != y).all()  # adversarial: true of the noise start already
    assert (oracle.queries <= 1000).all() and (oracle.queries > 1000 - 20).all()
    q, trace = oracle.trace(torch.arange(1, 1001))
    l2 = _dist(out, x)
    assert torch.equal(trace[:, -1], l2.double())
    # the start: the first adversarial query (noise), then 15 bisection steps (theta = 1 / 784^1.5)
    first = torch.isfinite(trace).long().argmax(1)
    noise, start = trace[torch.arange(10), first], trace[torch.arange(10), first + 15]
    assert (l2 < start).all()
    others = y != 8
    ratio = l2[others] / start[others]
    assert (ratio < 0.87).all() and ratio.median() < 0.8, ratio.tolist()  # measured: 0.65-0.82, median 0.78
    assert l2[others].median() < 1.1  # measured 0.90
    # the 8s: their start (dimmed or sparse noise, the digit faded out) is a thin adversarial sliver 9.6 and 11.7
    # away, 9.4 and 9.75 after bisection, and the walk from there is slow: measured 9.32 and 9.34 after 1,000
    # queries, the one at 9.75 moved 0.41. Returning the noise start (mean 10.7) or not walking fails here.
    eights = l2[~others].double()
    assert eights.mean() < 0.95 * noise[~others].mean() and eights.mean() < 9.8, eights.tolist()
    assert (eights < start[~others] - 0.2).any(), (eights - start[~others]).tolist()
    # the same seed replays the attack; another seed draws other noise and probes
    again = hop_skip_jump(Oracle(mnist_cnn, "labels"), x[:3], y[:3], max_queries=300, seed=0, progress=False)
    short = hop_skip_jump(Oracle(mnist_cnn, "labels"), x[:3], y[:3], max_queries=300, seed=0, progress=False)
    other = hop_skip_jump(Oracle(mnist_cnn, "labels"), x[:3], y[:3], max_queries=300, seed=1, progress=False)
    assert torch.equal(again, short) and not torch.equal(other, short)


def test_linf_on_digits_records_linf_distances(mnist_cnn, digits):
    x, y = digits[0][:3], digits[1][:3]
    oracle = Oracle(mnist_cnn, "labels")
    out = hop_skip_jump(oracle, x, y, max_queries=600, norm="linf", seed=0, progress=False)
    with torch.no_grad():
        assert (mnist_cnn(out).argmax(1) != y).all()
    d = _dist(out, x, "linf")
    _, trace = oracle.trace()
    assert torch.equal(trace[:, -1], d.double())
    assert (d < 0.5).all()  # a digit's Linf start (blended uniform noise) is close to 1


def test_targeted_starts_from_init_and_keeps_the_target(mnist_cnn, mnist_test, digits):
    x, y = digits[0][:4], digits[1][:4]
    target = (y + 1) % 10
    pool_x = mnist_test[0][100:400]
    with torch.no_grad():
        pool_pred = mnist_cnn(pool_x).argmax(1)
    init = torch.stack([pool_x[(pool_pred == t).nonzero()[0, 0]] for t in target.tolist()])
    oracle = Oracle(mnist_cnn, "labels")
    out = hop_skip_jump(oracle, x, target, targeted=True, init=init, max_queries=1000, seed=0, progress=False)
    with torch.no_grad():
        assert torch.equal(mnist_cnn(out).argmax(1), target)
    d_out, d_init = _dist(out, x), _dist(init, x)
    ratio = d_out / d_init
    assert (ratio < 0.95).all() and ratio.median() < 0.75, ratio.tolist()  # measured 0.54-0.86, median 0.67
    _, trace = oracle.trace()
    assert torch.equal(trace[:, -1], d_out.double())
    assert (oracle.queries <= 1000).all()


def test_budget_rules_the_oracle_limit_and_a_running_count(mnist_cnn, digits):
    x, y = digits[0][:3], digits[1][:3]
    # the oracle's own limit is lower than the attack's: the attack stops there, it never raises
    small = Oracle(mnist_cnn, "labels", max_queries=150)
    out = hop_skip_jump(small, x, y, max_queries=1000, seed=0, progress=False)
    assert (small.queries <= 150).all() and (small.queries > 150 - 20).all()
    with torch.no_grad():
        assert (mnist_cnn(out).argmax(1) != y).all()
    # a count already running (different per image) is continued, not reset
    running = Oracle(mnist_cnn, "labels", max_queries=400)
    running.reset(3)
    running(x[[0, 0, 0, 1]], owner=torch.tensor([0, 0, 0, 1]))
    assert running.queries.tolist() == [3, 1, 0]
    hop_skip_jump(running, x, y, max_queries=300, seed=0, progress=False)
    spent = running.queries
    assert (spent <= torch.tensor([303, 301, 300])).all() and (spent > torch.tensor([303, 301, 300]) - 20).all()
    # nothing left: x comes back unchanged, no query
    hop_skip_jump(running, x, y, max_queries=1, seed=0, progress=False)  # may spend the last query or not
    empty = Oracle(mnist_cnn, "labels", max_queries=2)
    empty(x[:3])
    empty(x[:3])
    assert torch.equal(hop_skip_jump(empty, x, y, max_queries=50, progress=False), x)
    assert empty.queries.tolist() == [2, 2, 2]


def test_an_image_that_is_already_wrong_is_returned_after_one_query(mnist_cnn, mnist_test):
    x, y = mnist_test[0], mnist_test[1]
    with torch.no_grad():
        wrong = (mnist_cnn(x[:1500]).argmax(1) != y[:1500]).nonzero().flatten()[:2]
    assert len(wrong) == 2
    oracle = Oracle(mnist_cnn, "labels")
    out = hop_skip_jump(oracle, x[wrong], y[wrong], max_queries=50, seed=0, progress=False)
    assert torch.equal(out, x[wrong]) and oracle.queries.tolist() == [1, 1]
    _, trace = oracle.trace()
    assert trace[:, -1].tolist() == [0.0, 0.0]


def test_rejects_bad_arguments(mnist_cnn, digits):
    x, y = digits[0][:2], digits[1][:2]
    oracle = Oracle(mnist_cnn, "labels")
    with pytest.raises(TypeError, match="takes an Oracle"):
        hop_skip_jump(mnist_cnn, x, y)
    with pytest.raises(ValueError, match="norm must be one of"):
        hop_skip_jump(oracle, x, y, norm="l1")
    with pytest.raises(ValueError, match="max_queries must be an int >= 1"):
        hop_skip_jump(oracle, x, y, max_queries=0)
    with pytest.raises(ValueError, match="gamma must be a finite number > 0"):
        hop_skip_jump(oracle, x, y, gamma=0.0)
    with pytest.raises(ValueError, match="init_evals must be an int >= 1"):
        hop_skip_jump(oracle, x, y, init_evals=0)
    with pytest.raises(ValueError, match="needs init"):
        hop_skip_jump(oracle, x, (y + 1) % 10, targeted=True)
    with pytest.raises(ValueError, match="init must have the shape of x"):
        hop_skip_jump(oracle, x, y, init=x[:1])
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        hop_skip_jump(oracle, x * 2, y)
    with pytest.raises(ValueError, match="already be adversarial"):
        hop_skip_jump(Oracle(mnist_cnn, "labels"), x, (y + 1) % 10, targeted=True, init=x.clone(), progress=False)
    counting = Oracle(mnist_cnn, "labels")
    counting(digits[0][:5])
    with pytest.raises(ValueError, match="counting queries for 5 image"):
        hop_skip_jump(counting, x, y)
    assert oracle.queries.numel() == 0  # nothing was asked before the arguments were checked
