"""ZOO (Chen et al., 2017), checked against closed forms on linear models, the black-box contract (budget, oracle
continuation, trace) and the paper's two devices for large images (attack-space reduction, importance sampling)."""
import importlib
import math

import pytest
import torch
import torch.nn.functional as F
from _toy import Linear
from _toy import linear_two_class as _linear_two_class

from course_lib.attacks import Oracle, QueryBudgetExceeded, zoo
from course_lib.attacks.zoo import _coordinate_probs, _up, _upsampling

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def digits(mnist_test, mnist_cnn):
    """Held-out digits the model classifies correctly."""
    x, y = mnist_test[0][:60], mnist_test[1][:60]
    with torch.no_grad():
        ok = mnist_cnn(x).argmax(1) == y
    return x[ok][:10], y[ok][:10]


def _l2(a, b):
    return (a - b).flatten(1).norm(dim=1)


# --------------------------------------------------------------------------- closed forms
def test_zoo_reaches_the_closed_form_minimum_on_a_linear_model():
    """With two classes the log-probability margin is the logit margin, linear in x: the smallest adversarial
    change is the distance to the hyperplane, |gap| / ||w0 - w1||. Nothing adversarial is closer, and ZOO's closest
    query approaches it (to within about its Adam step, lr per coordinate: close for images at least 0.04 from
    the boundary)."""
    model, x, y, gap, w = _linear_two_class()
    dist = gap / w.norm()
    assert dist.max() < 0.35  # the closest point of the hyperplane lies inside [0, 1]^16
    oracle = Oracle(model)
    out = zoo(oracle, x, y, max_queries=6000, seed=0, coords=16, progress=False)
    l2 = _l2(out, x)
    with torch.no_grad():
        assert (model(out).argmax(1) != y).all()
    assert (l2 >= dist - 1e-9).all()
    far = dist > 0.04
    assert far.sum() >= 2 and (l2[far] <= 1.03 * dist[far]).all(), (l2 / dist).tolist()
    # the budget: 2 * 16 + 1 queries per iteration, the last iteration of each step shortened to fit; <= 2 left
    assert (oracle.queries <= 6000).all() and (oracle.queries >= 5998).all()
    # the oracle's record ends at the distance of the returned image
    _, d = oracle.trace([6000])
    torch.testing.assert_close(d[:, -1], l2.double(), rtol=1e-12, atol=1e-12)


def test_zoo_with_kappa_keeps_the_margin_and_the_trace_may_be_closer():
    """With the margin kappa the closest point is at (gap + kappa) / ||w|| (log-probability margin = logit margin
    for two classes). ZOO returns a query with that margin; the oracle records any query whose arg-max is wrong,
    so its trace ends at or below the returned distance (here strictly: probes crossed the boundary on the way)."""
    model, x, y, gap, w = _linear_two_class()
    kappa = 0.5
    oracle = Oracle(model)
    out = zoo(oracle, x, y, max_queries=6000, seed=0, coords=16, kappa=kappa, progress=False)
    with torch.no_grad():
        z = model(out)
    margin = (z.gather(1, (1 - y)[:, None]) - z.gather(1, y[:, None])).squeeze(1)
    assert (margin >= kappa - 1e-9).all()
    l2, need = _l2(out, x), (gap + kappa) / w.norm()
    assert (l2 >= need - 1e-9).all() and (l2 <= 1.05 * need).all(), (l2 / need).tolist()
    _, d = oracle.trace([6000])
    assert (d[:, -1] < l2.double() - 1e-3).all() and (d[:, -1] >= (gap / w.norm()).double() - 1e-9).all()


def test_zoo_reads_log_probabilities_where_probabilities_underflow():
    """Logits scaled by 1000 (a distilled model at T = 100 looks like this): every probability other than the
    top one underflows to exactly 0 in float32, so log(clamp(p, 1e-30)) would be a constant and ZOO's differences
    all 0. The oracle's log-probabilities are exact, and ZOO reaches the same closed form as without the scale
    (the boundary does not move; c = 1e-3 makes the objective the unscaled one's)."""
    model, x, y, gap, w = _linear_two_class(seed=11, scale=1000.0, dtype=torch.float32)
    probs = Oracle(model)(x)
    assert (probs.min(1).values == 0).all() and (gap * 1000 > 104).all()  # underflow: the old code stalled here
    dist = (gap / w.norm()).float()
    oracle = Oracle(model)
    out = zoo(oracle, x, y, max_queries=6000, seed=0, coords=16, c=1e-3, progress=False)
    with torch.no_grad():
        assert (model(out).argmax(1) != y).all()
    l2 = _l2(out, x)
    assert (l2 >= dist - 1e-5).all()
    far = dist > 0.04
    assert far.sum() >= 2 and (l2[far] <= 1.05 * dist[far]).all(), (l2 / dist).tolist()


# --------------------------------------------------------------------------- digits, seeds, targeted
def test_zoo_on_digits_invariants_seed_and_targeted(mnist_cnn, digits):
    x, y = digits[0][:3], digits[1][:3]
    x0 = x.clone()
    flags = [p.requires_grad for p in mnist_cnn.parameters()]
    rng = torch.get_rng_state()
    oracle = Oracle(mnist_cnn)
    kw = dict(seed=0, coords=64, c=10.0, lr=0.05, binary_search_steps=1, progress=False)  # short budget: big steps
    out = zoo(oracle, x, y, max_queries=3000, **kw)
    assert torch.equal(torch.get_rng_state(), rng) and not mnist_cnn.training and torch.equal(x, x0)
    assert [p.requires_grad for p in mnist_cnn.parameters()] == flags
    assert out.shape == x.shape and out.dtype == x.dtype and out.min() >= 0 and out.max() <= 1
    assert not out.requires_grad and (oracle.queries <= 3000).all()
    with torch.no_grad():
        assert (mnist_cnn(out).argmax(1) != y).all()
    _, d = oracle.trace([3000])
    torch.testing.assert_close(d[:, -1], _l2(out, x).double(), rtol=1e-6, atol=1e-6)
    # the same seed, the same attack; another seed, other coordinates (a short run shows it)
    short = zoo(Oracle(mnist_cnn), x, y, max_queries=300, **kw)
    assert torch.equal(zoo(Oracle(mnist_cnn), x, y, max_queries=300, **kw), short)
    kw["seed"] = 1
    assert not torch.equal(zoo(Oracle(mnist_cnn), x, y, max_queries=300, **kw), short)
    # targeted, on a 3-class linear model: the target's region is reached
    model = Linear(torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64),
                   torch.zeros(3, dtype=torch.float64)).eval()
    xs = 0.4 + 0.2 * torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    with torch.no_grad():
        t = (model(xs).argmax(1) + 1) % 3
    o = Oracle(model)
    adv = zoo(o, xs, t, targeted=True, max_queries=3000, seed=0, coords=16, progress=False)
    with torch.no_grad():
        assert torch.equal(model(adv).argmax(1), t)
    _, d = o.trace([3000])
    torch.testing.assert_close(d[:, -1], _l2(adv, xs).double(), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- the black-box contract
def test_zoo_spends_what_the_oracle_has_left_and_continues_its_count():
    model, x, y, gap, w = _linear_two_class()
    oracle = Oracle(model, max_queries=1000)
    oracle.reset(4)
    oracle(x[:1], owner=torch.tensor([0]))  # image 0 has spent 1 query before the attack
    zoo(oracle, x, y, max_queries=400, seed=0, coords=16, progress=False)
    q1 = oracle.queries.clone()
    assert (q1 <= torch.tensor([401, 400, 400, 400])).all() and (q1 >= torch.tensor([399, 398, 398, 398])).all()
    # a second attack continues the count (never resets it) and stops at the oracle's own limit: no exception
    out = zoo(oracle, x, y, max_queries=5000, seed=1, coords=16, progress=False)
    assert (oracle.queries <= 1000).all() and (oracle.queries >= 998).all()
    with pytest.raises(QueryBudgetExceeded):
        oracle(x.repeat(3, 1, 1, 1), owner=torch.arange(4).repeat(3))
    # one trace over both attacks, ending at the returned image (the best of the second attack, which
    # continues the record: the first attack's best can only be improved on)
    _, d = oracle.trace([400, 1000])
    fooled = torch.isfinite(d[:, -1])
    assert fooled.all() and (d[:, 1] <= d[:, 0]).all()
    with torch.no_grad():
        assert (model(out).argmax(1) != y).all()
    # an image with no query left comes back unchanged (never blank): here all of them
    full = Oracle(model, max_queries=2)
    assert torch.equal(zoo(full, x, y, seed=0, progress=False), x) and full.total == 0


def test_zoo_checks_its_arguments():
    model, x, y, _, _ = _linear_two_class()
    with pytest.raises(ValueError, match="access='scores'"):
        zoo(Oracle(model, "labels"), x, y, progress=False)
    with pytest.raises(TypeError, match="takes an Oracle"):
        zoo(model, x, y)
    with pytest.raises(ValueError, match="kappa"):
        zoo(Oracle(model), x, y, kappa=-1.0)
    with pytest.raises(ValueError, match="must not exceed"):
        zoo(Oracle(model), x, y, resize=5)
    with pytest.raises(ValueError, match="importance"):
        zoo(Oracle(model), x, y, importance=1.5)
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\)"):
        zoo(Oracle(model), x, torch.full_like(y, 2), max_queries=50, progress=False)


# --------------------------------------------------------------------------- attack-space reduction
def test_upsampling_is_bilinear_interpolation_and_its_transpose():
    g = torch.Generator().manual_seed(0)
    delta = torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64)
    space = (_upsampling(5, 17, "cpu", torch.float64), _upsampling(4, 13, "cpu", torch.float64))
    ref = F.interpolate(delta, size=(17, 13), mode="bilinear", align_corners=False)
    torch.testing.assert_close(_up(delta, space), ref, rtol=0, atol=1e-12)


def test_zoo_resize_perturbs_in_the_upsampled_space_and_reaches_its_closed_form():
    """resize=3 on 12x12 images: x' - x = U delta with U bilinear upsampling from 3x3. On a linear model the
    smallest such change that crosses the hyperplane has length |gap| / ||P w|| (P: the projection onto U's
    columns), larger than the unrestricted |gap| / ||w||; ZOO approaches it."""
    model, x, y, gap, w = _linear_two_class(seed=4, side=12)
    u = torch.kron(_upsampling(3, 12, "cpu", torch.float64), _upsampling(3, 12, "cpu", torch.float64))  # (144, 9)
    pw = u @ torch.linalg.lstsq(u, w[:, None]).solution
    best = gap / pw.norm()
    assert (best < 0.5).all() and (best > 1.5 * gap / w.norm()).all()
    oracle = Oracle(model)
    out = zoo(oracle, x, y, max_queries=3000, seed=0, coords=9, resize=3, progress=False)
    pert = (out - x).flatten(1)
    delta = torch.linalg.lstsq(u, pert.T).solution                       # (9, 4)
    torch.testing.assert_close(u @ delta, pert.T, rtol=0, atol=1e-9)     # exactly an upsampled 3x3 perturbation
    with torch.no_grad():
        assert (model(out).argmax(1) != y).all()
    l2 = pert.norm(dim=1)
    far = best > 0.1  # closer ones: one Adam step (lr on a delta coordinate moves ~16 pixels) is already a lot
    assert (l2 >= best - 1e-9).all() and far.sum() >= 2 and (l2[far] <= 1.05 * best[far]).all(), (l2 / best).tolist()
    _, d = oracle.trace([3000])
    torch.testing.assert_close(d[:, -1], l2, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- importance sampling
def test_coordinate_probabilities_are_max_pooled_magnitudes_mixed_with_uniform():
    pert = torch.zeros(1, 2, 16, 16, dtype=torch.float64)
    pert[0, 0, 0, 0] = -3.0   # region (0, 0) of channel 0: 2x2 pixels at 3
    pert[0, 1, 5, 9] = 1.0    # region (2, 4) of channel 1: 2x2 pixels at 1
    pert[0, 1, 4, 8] = 0.5    # the same region: the max counts
    p = _coordinate_probs(pert, 0.5).view(2, 16, 16)
    uniform = 0.5 / 512
    expect = torch.full((2, 16, 16), uniform, dtype=torch.float64)
    expect[0, :2, :2] += 0.5 * 3 / 16
    expect[1, 4:6, 8:10] += 0.5 * 1 / 16
    torch.testing.assert_close(p, expect)
    torch.testing.assert_close(_coordinate_probs(torch.zeros(3, 1, 8, 8), 0.7), torch.full((3, 64), 1 / 64))


def test_importance_draws_distinct_coordinates_with_the_intended_probabilities(monkeypatch):
    """The draws of one iteration are distinct; the first of them follows the probabilities (sampling without
    replacement draws one at a time): a chi-square test on 4,000 draws."""
    zoo_module = importlib.import_module("course_lib.attacks.zoo")  # the package's `zoo` is the function

    pert = torch.zeros(1, 1, 8, 8)
    pert[0, 0, :4, :4] = torch.rand(4, 4, generator=torch.Generator().manual_seed(0)) + 0.5
    wa = pert.flatten(1).repeat(4000, 1)
    xa = torch.zeros_like(wa)
    gen = torch.Generator().manual_seed(0)
    cols = zoo_module._draw(wa, xa, None, (1, 8, 8), 10, 0.5, gen)
    assert all(len(set(r.tolist())) == 10 for r in cols)
    p = _coordinate_probs(pert, 0.5)[0].double()
    counts = torch.bincount(cols[:, 0], minlength=64).double()
    chi2 = ((counts - 4000 * p) ** 2 / (4000 * p)).sum()
    assert chi2 < 110, chi2  # 63 degrees of freedom: P(chi2 > 110) < 1e-4
    # the attack uses them: with importance the draws concentrate where the perturbation is
    seen = []
    real = zoo_module._draw
    monkeypatch.setattr(zoo_module, "_draw", lambda *a: seen.append(a[5]) or real(*a))
    model, x, y, _, _ = _linear_two_class()
    zoo(Oracle(model), x, y, max_queries=200, seed=0, coords=4, importance=True, progress=False)
    assert seen and all(m == 0.5 for m in seen)


def test_importance_and_resize_fool_digits(mnist_cnn, digits):
    x, y = digits[0][:2], digits[1][:2]
    for kw in (dict(importance=True), dict(resize=14), dict(resize=14, importance=0.8)):
        oracle = Oracle(mnist_cnn)
        out = zoo(oracle, x, y, max_queries=2000, seed=0, coords=64, c=10.0, lr=0.05, binary_search_steps=1,
                  progress=False, **kw)
        with torch.no_grad():
            assert (mnist_cnn(out).argmax(1) != y).all(), kw
        _, d = oracle.trace([2000])
        torch.testing.assert_close(d[:, -1], _l2(out, x).double(), rtol=1e-6, atol=1e-6)
        assert math.isfinite(float(d.max()))
