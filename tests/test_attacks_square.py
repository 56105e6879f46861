"""The Square attack (Andriushchenko et al., ECCV 2020): closed forms on a linear model, a replay of every query
against the algorithm's definition, the eps-ball, budgets, the trace, seeds and errors."""
import math

import pytest
import torch
from _toy import Linear
from torch import nn

from course_lib.attacks import Oracle
from course_lib.attacks.square import p_schedule, square_attack

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def digits(mnist_test, mnist_cnn):
    """One held-out digit of each class that the model classifies correctly (the 8 included)."""
    x, y = mnist_test[0][:300], mnist_test[1][:300]
    with torch.no_grad():
        ok = mnist_cnn(x).argmax(1) == y
    pick = torch.stack([(ok & (y == k)).nonzero()[0, 0] for k in range(10)])
    return x[pick], y[pick]


class Spy(nn.Module):
    """Records every batch the model is asked about (the oracle's queries, in order)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, x):
        self.calls.append(x.detach().clone())
        return self.model(x)


def _linear(n=12, side=6, seed=0):
    """f = W x + b, two classes, images (1, side, side) in float64 at L-infinity distances from 0.02 to 0.2 from
    the boundary (in the sense of the closed form below), the first ten well inside the box (room 0.1 in every
    pixel), the last two with pixels near the faces (the box limits them). Returns the model, x, y, w = W_0 - W_1."""
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(2, 1, side, side, generator=g, dtype=torch.float64)
    bias = torch.stack([-0.5 * (weight[0] - weight[1]).sum(), torch.zeros((), dtype=torch.float64)])
    w = weight[0] - weight[1]
    shift = torch.linspace(0.02, 0.2, n, dtype=torch.float64) * torch.tensor([1.0, -1.0]).repeat(n // 2 + 1)[:n]
    x = 0.5 + 0.05 * (2 * torch.rand(n, 1, side, side, generator=g, dtype=torch.float64) - 1)
    x = x + shift[:, None, None, None] * w.sign()
    model = Linear(weight, bias).eval()
    y = _margin_sign_label(model, x)
    # in the last two, the first row's pixels sit 0.03 from the face the attack must move them towards
    toward = torch.where(y[-2:, None] == 0, -w[0, 0], w[0, 0]).sign()
    x[-2:, 0, 0, :3] = torch.where(toward[:, :3] > 0, 0.97, 0.03)
    y2 = _margin_sign_label(model, x)
    assert torch.equal(y, y2)  # the label did not change
    return model, x, y, w


def _margin_sign_label(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


def _best_vertex(x, y, w, eps):
    """The closed form: the margin z_y - z_other is linear, w_y . x + const with w_y = +-w, so its minimum over the
    L-infinity ball within [0, 1] moves every pixel by its full room against the sign of w_y:
    x* = clip(x - eps * sign(w_y)), margin(x*) = margin(x) - sum_i |w_i| * room_i."""
    wy = torch.where(y[:, None, None, None] == 0, w, -w)
    return (x - eps * wy.sign()).clamp(0, 1)


def _margin(model, x, y):
    with torch.no_grad():
        z = model(x)
    return z.gather(1, y[:, None]).squeeze(1) - z.gather(1, 1 - y[:, None]).squeeze(1)


def test_p_schedule_is_the_reference_codes_rescaled_schedule():
    def reference(p_init, it, n_iters):  # max-andr/square-attack, attack.py, p_selection (verbatim logic)
        it = int(it / n_iters * 10000)
        for lo, hi, k in ((10, 50, 1), (50, 200, 2), (200, 500, 3), (500, 1000, 4), (1000, 2000, 5),
                          (2000, 4000, 6), (4000, 6000, 7), (6000, 8000, 8), (8000, 10000, 9)):
            if lo < it <= hi:
                return p_init / 2 ** k
        return p_init

    for n in (7, 1000, 4999, 12345):
        budgets = torch.full((3,), n)
        for i in range(n):  # every iteration of the budget
            got = p_schedule(0.8, i, budgets)
            want = reference(0.8, i, n)
            assert got.shape == (3,) and (got == want).all(), (n, i, got, want)
    # one budget per image
    assert p_schedule(0.8, 20, torch.tensor([100, 1000, 10_000])).tolist() == [0.8 / 2 ** 5, 0.8 / 2 ** 2, 0.8 / 2]


def test_square_fools_a_linear_model_exactly_where_the_closed_form_allows():
    """On f = W x + b every move of a pixel against sign(w_y) lowers the margin, so random search over vertices
    reaches the best vertex of the ball: the attack must succeed exactly where margin(x) < sum_i |w_i| room_i (an
    eps-perturbation can cross the boundary) and fail everywhere else, ending at that best vertex."""
    model, x, y, w = _linear()
    eps = 0.1
    best = _best_vertex(x, y, w, eps)
    floor = _margin(model, best, y)                # the smallest margin in the ball (closed form)
    reach = _margin(model, x, y) - floor          # how far an eps-perturbation can lower it
    possible, impossible = floor < -0.05 * reach, floor > 0.05 * reach   # away from the edge case
    assert possible.sum() >= 3 and impossible.sum() >= 3 and (possible | impossible).all()
    assert (x[:-2] - eps > 0).all() and (x[:-2] + eps < 1).all()      # room eps everywhere for most images
    assert ((best - x).abs() < eps - 0.05)[-2:].flatten(1).sum(1).min() >= 3  # the box binds for the last two
    oracle = Oracle(model)
    out = square_attack(oracle, x, y, eps, max_queries=1000, seed=0, progress=False)
    fooled = _margin(model, out, y) < 0
    assert torch.equal(fooled, possible)
    # where it cannot succeed it spends the budget and ends at the closed-form best vertex, exactly
    assert (oracle.queries[impossible] == 1000).all()
    torch.testing.assert_close(out[impossible], best[impossible], rtol=0, atol=1e-15)  # (one ulp: see below)
    # where it succeeds it stops at once: the returned point is adversarial and in the ball
    assert (oracle.queries[possible] < 1000).all()
    assert (out - x).abs().amax((1, 2, 3)).max() <= eps and out.min() >= 0 and out.max() <= 1


def test_every_query_replays_the_algorithm_and_the_loss_never_increases(mnist_cnn, digits):
    """Replay one digit's queries (a spy sees them in order): the start is vertical stripes of +-eps; each later
    query is the best point so far with one square (side <= the schedule's s_i) set to clip(x +- eps), one sign per
    channel, and changed somewhere; the best point is the lowest-margin query so far, so its loss never rises;
    the attack returns it."""
    x, y = digits[0][:1], digits[1][:1]
    eps, budget = 0.02, 300  # too small to fool this digit: the whole budget is spent
    spy = Spy(mnist_cnn).eval()
    out = square_attack(Oracle(spy), x, y, eps, max_queries=budget, seed=1, progress=False)
    queries = torch.cat(spy.calls)
    assert queries.shape[0] == budget and all(c.shape[0] == 1 for c in spy.calls)  # one query per iteration
    with torch.no_grad():
        z = mnist_cnn(queries)
    margin = z[:, y[0]] - z.scatter(1, y.expand(budget)[:, None], float("-inf")).amax(1)
    assert (margin > 0).all()
    up, down = (x[0] + eps).clamp(max=1), (x[0] - eps).clamp(min=0)  # the vertices (to rounding: 1e-7)

    def near(a, b):
        return (a - b).abs() <= 1e-6

    start = queries[0]
    assert (near(start, up) | near(start, down)).all()
    assert (near(start, up) == near(start, up)[:, :1, :]).all()  # stripes: one sign per column
    best, best_m, bests = start, margin[0], [margin[0]]
    sides = []
    for i in range(1, budget):
        q = queries[i]
        changed = (q != best)[0]
        assert changed.any()
        rows, cols = changed.any(1).nonzero().flatten(), changed.any(0).nonzero().flatten()
        side = int(round(math.sqrt(float(p_schedule(0.8, i - 1, budget)) * 28 * 28)))
        assert rows.max() - rows.min() < side and cols.max() - cols.min() < side  # inside one s_i x s_i window
        sides.append(side)
        box = (slice(None), slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
        assert near(q[box], up[box]).all() or near(q[box], down[box]).all()  # one vertex, one sign
        if margin[i] < best_m:
            best, best_m = q, margin[i]
        bests.append(best_m)
    assert torch.equal(out[0], best)
    # every query was built from the lowest-margin query before it (else a query would differ from `best` outside
    # one window): the attack kept exactly the improvements, so its loss never increased, and it did decrease
    assert bests[-1] < 0.8 * bests[0]
    assert sides[0] == 25 and sides[-1] == 1  # the schedule's squares shrink from p = 0.8 to p = 0.8 / 512
    assert (queries - x).abs().max() <= eps


def test_digits_fooled_at_eps_03_with_invariants_trace_and_seeds(mnist_cnn, digits):
    x, y = digits
    x0, y0 = x.clone(), y.clone()
    flags = [p.requires_grad for p in mnist_cnn.parameters()]
    rng = torch.get_rng_state()
    spy = Spy(mnist_cnn).eval()
    oracle = Oracle(spy)
    out = square_attack(oracle, x, y, 0.3, max_queries=1000, seed=0, progress=False)
    assert torch.equal(torch.get_rng_state(), rng)  # private generator
    assert torch.equal(x, x0) and torch.equal(y, y0) and not mnist_cnn.training
    assert [p.requires_grad for p in mnist_cnn.parameters()] == flags
    assert out.shape == x.shape and out.dtype == x.dtype and not out.requires_grad
    assert out.min() >= 0 and out.max() <= 1
    linf = (out - x).abs().amax((1, 2, 3))
    assert (linf <= 0.3).all() and (linf.double() <= 0.3).all()  # exactly, in float32 and in float64
    with torch.no_grad():
        fooled = mnist_cnn(out).argmax(1) != y
    assert fooled.all()  # all ten digits, the 8 included
    # one query per iteration per image, all images in one batch: call k holds the images still running
    assert oracle.total == sum(c.shape[0] for c in spy.calls) == int(oracle.queries.sum())
    assert len(spy.calls) == int(oracle.queries.max())
    running = [(oracle.queries > k).sum().item() for k in range(len(spy.calls))]
    assert [c.shape[0] for c in spy.calls] == running
    assert oracle.queries.double().mean() < 100  # measured: 16 (nine digits at the start, one at 155)
    # the trace: each image's only adversarial query is the one returned
    q, d = oracle.trace()
    torch.testing.assert_close(d[:, -1], linf.double(), rtol=0, atol=0)
    first = torch.tensor([int(q[torch.isfinite(d[i])][0]) for i in range(len(x))])
    assert (first >= oracle.queries).all()  # finite only from the last query on
    # seeds: the same seed, the same attack; another seed, another one
    again = square_attack(Oracle(mnist_cnn), x, y, 0.3, max_queries=1000, seed=0, progress=False)
    assert torch.equal(again, out)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(square_attack(Oracle(mnist_cnn), x, y, 0.3, max_queries=1000, seed=gen, progress=False), out)
    other = square_attack(Oracle(mnist_cnn), x, y, 0.3, max_queries=1000, seed=1, progress=False)
    assert not torch.equal(other, out)


def test_cross_entropy_and_targeted(mnist_cnn, digits):
    x, y = digits[0][:5], digits[1][:5]
    out = square_attack(Oracle(mnist_cnn), x, y, 0.3, max_queries=1000, seed=0, loss="ce", progress=False)
    with torch.no_grad():
        assert (mnist_cnn(out).argmax(1) != y).all()
    target = (y + 1) % 10
    oracle = Oracle(mnist_cnn)
    out = square_attack(oracle, x, target, 0.3, targeted=True, max_queries=1000, seed=0, progress=False)
    with torch.no_grad():
        hit = mnist_cnn(out).argmax(1) == target
    assert hit.sum() >= 4, hit  # measured: 4 of 5
    assert ((out - x).abs() <= 0.3).all()
    q, d = oracle.trace()
    assert torch.isfinite(d[hit, -1]).all() and torch.isinf(d[~hit, -1]).all()


def test_budget_rules_oracle_limit_running_count_and_no_budget(mnist_cnn, digits):
    x, y = digits[0][:4], digits[1][:4]
    eps = 0.01  # too small to fool them: every query is spent
    small = Oracle(mnist_cnn, max_queries=50)
    out = square_attack(small, x, y, eps, max_queries=1000, seed=0, progress=False)  # never raises
    assert small.queries.tolist() == [50] * 4
    with torch.no_grad():
        assert (mnist_cnn(out).argmax(1) == y).all()
    # the count continues: a second attack on the same oracle gets what is left, and nothing once it is gone
    running = Oracle(mnist_cnn, max_queries=100)
    square_attack(running, x, y, eps, max_queries=30, seed=0, progress=False)
    assert running.queries.tolist() == [30] * 4
    square_attack(running, x, y, eps, max_queries=1000, seed=0, progress=False)
    assert running.queries.tolist() == [100] * 4
    spent = running.total
    again = square_attack(running, x, y, eps, max_queries=1000, seed=0, progress=False)
    assert torch.equal(again, x) and running.total == spent  # no query left: x itself, unchanged count
    # max_queries=1: the stripes only
    one = Oracle(mnist_cnn)
    start = square_attack(one, x, y, eps, max_queries=1, seed=0, progress=False)
    assert one.queries.tolist() == [1] * 4
    assert ((start - x).abs().amax((1, 2, 3)) <= eps).all() and not torch.equal(start, x)
    # eps = 0: nothing to try but x itself, one query
    zero = Oracle(mnist_cnn)
    assert torch.equal(square_attack(zero, x, y, 0.0, max_queries=100, seed=0, progress=False), x)
    assert zero.queries.tolist() == [1] * 4


def test_errors(mnist_cnn, digits):
    x, y = digits[0][:2], digits[1][:2]
    o = Oracle(mnist_cnn)
    with pytest.raises(TypeError, match="takes an Oracle"):
        square_attack(mnist_cnn, x, y, 0.1)
    with pytest.raises(ValueError, match="access='scores'"):
        square_attack(Oracle(mnist_cnn, "labels"), x, y, 0.1, progress=False)
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        square_attack(o, x, y, -0.1)
    with pytest.raises(ValueError, match="max_queries must be an int >= 1"):
        square_attack(o, x, y, 0.1, max_queries=0)
    with pytest.raises(ValueError, match="norm must be one of"):
        square_attack(o, x, y, 0.1, norm="l1")
    with pytest.raises(NotImplementedError, match="L-infinity attack only"):
        square_attack(o, x, y, 0.1, norm="l2")
    with pytest.raises(ValueError, match=r"p_init must be in \(0, 1\]"):
        square_attack(o, x, y, 0.1, p_init=1.5)
    with pytest.raises(ValueError, match="p_init must be a finite number > 0"):
        square_attack(o, x, y, 0.1, p_init=0)
    with pytest.raises(ValueError, match="loss must be one of"):
        square_attack(o, x, y, 0.1, loss="hinge")
    with pytest.raises(TypeError, match="seed must be"):
        square_attack(o, x, y, 0.1, seed=1.5)
    with pytest.raises(TypeError, match="targeted must be True or False"):
        square_attack(o, x, y, 0.1, targeted="yes")
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        square_attack(o, x * 2, y, 0.1)
    with pytest.raises(ValueError, match="shape"):
        square_attack(o, x, y[:1], 0.1)
    assert o.total == 0  # none of these spent a query
    with pytest.raises(ValueError, match=r"class indices in \[0, 10\)"):
        square_attack(Oracle(mnist_cnn), x, torch.tensor([3, 10]), 0.1, progress=False)
