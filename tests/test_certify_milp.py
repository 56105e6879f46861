"""course_lib.certify.verify_exact (MILP): its verified / counterexample answers agree with brute force on tiny
networks (a fine grid over the box, corners included) and with PGD and CROWN on small conv nets; the minimal margin
lies between the bounds and the grid's minimum; counterexamples are real adversarial images in the ball;
max-pooling (overlapping and padded windows) is encoded exactly; a tiny time limit gives "timeout"; bad inputs
get clear errors."""
import pytest
import torch
from torch import nn

from course_lib.attacks import pgd
from course_lib.certify import VerificationResult, margin_bounds, verify_exact
from course_lib.models import Normalize

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-4


def mlp(seed, hidden=(8, 6), k=3):
    torch.manual_seed(seed)
    layers, width = [nn.Flatten()], 4
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, k)).eval()


def pooled(seed):
    """Conv 1x1 -> ReLU -> MaxPool2d(2, stride 1, padding 1) (overlapping, padded windows) -> MaxPool2d(3) -> Linear,
    on a 2x2 image."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 3, 1), nn.ReLU(), nn.MaxPool2d(2, stride=1, padding=1), nn.Conv2d(3, 4, 2),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 3)).eval()
    with torch.no_grad():
        model[-1].weight.mul_(3.0)                          # classes that change inside the box, for some seeds
    return model


def margins(model, x, y):
    with torch.no_grad():
        z = model(x)
    others = z.clone()
    others[torch.arange(len(y)), y] = float("-inf")
    return z.gather(1, y[:, None])[:, 0] - others.max(1).values


def grid_min_margin(model, x, y, eps, n=17):
    """The smallest margin over a grid of n^4 points of the box of a 1x2x2 image (its corners included)."""
    g = torch.linspace(0, 1, n)
    grid = torch.cartesian_prod(g, g, g, g).view(-1, 1, 2, 2)
    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    return float(margins(model, lo + (hi - lo) * grid, y.expand(len(grid))).min())


def assert_real(model, x, y, eps, r):
    """The counterexample of r lies in the ball and [0, 1] and the model misclassifies it."""
    c = r.counterexample
    assert c is not None and c.shape == x.shape
    assert float((c - x).abs().max()) <= eps + 1e-7 and float(c.min()) >= 0 and float(c.max()) <= 1
    assert int(model(c[None]).argmax(1)) != int(y)
    assert float(margins(model, c[None], y[None])) < 0


@pytest.mark.parametrize("make", [mlp, pooled], ids=["mlp", "maxpool"])
def test_agrees_with_brute_force(make):
    seen = set()
    for seed in range(4):
        model = make(seed)
        x = torch.rand(3, 1, 2, 2, generator=torch.Generator().manual_seed(seed))
        y = model(x).argmax(1)
        for eps in (0.05, 0.2, 0.5):
            exact = verify_exact(model, x, y, eps, exact_margin=True)
            fast = verify_exact(model, x, y, eps)                # skips certified classes, stops at a counterexample
            crown = margin_bounds(model, x, y, eps, method="crown")
            ibp = margin_bounds(model, x, y, eps)
            for b in range(len(x)):
                r, f = exact[b], fast[b]
                assert r.status == f.status and r.status in ("verified", "counterexample"), (r, f)
                seen.add(r.status)
                grid = grid_min_margin(model, x[b], y[b], eps)
                if r.status == "verified":
                    assert grid > 0 and r.margin > 0 and f.margin > 0 and r.counterexample is None
                if grid < 0:
                    assert r.status == "counterexample"
                for res in (r, f):
                    if res.status == "counterexample":
                        assert_real(model, x[b], y[b], eps, res)
                others = [k for k in range(3) if k != y[b]]
                bound = float(crown[b, others].min())
                assert float(ibp[b, others].min()) <= bound + TOL
                assert bound - TOL <= r.margin <= grid + TOL          # CROWN <= exact minimum <= grid minimum
                # fast: a lower bound when verified, the margin at its counterexample (>= the minimum) otherwise
                assert f.margin <= r.margin + TOL if f.status == "verified" else f.margin >= r.margin - TOL
    assert seen == {"verified", "counterexample"}


def test_bounds_option_and_binaries():
    """IBP bounds give the same answers with at least as many binaries; at eps = 0 nothing is unstable."""
    model = mlp(0, hidden=(8, 8))
    x = torch.rand(4, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    y = model(x).argmax(1)
    crown = verify_exact(model, x, y, 0.3, exact_margin=True)
    ibp = verify_exact(model, x, y, 0.3, exact_margin=True, bounds="ibp")
    for a, b in zip(crown, ibp, strict=True):
        assert a.status == b.status and abs(a.margin - b.margin) < TOL and b.unstable >= a.unstable
    zero = verify_exact(model, x, y, 0.0, exact_margin=True)
    assert all(r.unstable == 0 and r.status == "verified" for r in zero)
    assert [r.margin for r in zero] == pytest.approx(margins(model, x, y).tolist(), abs=1e-5)


def small_cnn(seed, pool=False):
    torch.manual_seed(seed)
    layers = [Normalize((0.5,), (0.25,)), nn.Conv2d(1, 4, 3, stride=2 if not pool else 1, padding=1), nn.ReLU()]
    if pool:
        layers += [nn.MaxPool2d(2)]
    layers += [nn.Conv2d(4, 4, 3, stride=2 if pool else 1, padding=1), nn.ReLU(), nn.Flatten()]
    layers += [nn.Linear(4 * 2 * 2 if pool else 4 * 3 * 3, 10)]
    return nn.Sequential(*layers).eval()


@pytest.mark.parametrize("pool", [False, True], ids=["conv", "conv-maxpool"])
def test_conv_net_agrees_with_pgd_and_crown(pool):
    """6x6 images: PGD-broken => counterexample, CROWN-certified => verified, verified => PGD fails."""
    model = small_cnn(0, pool)
    x = torch.rand(8, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    x = x[:4] if pool else x[4:]                            # 4 images, a mix of answers at these eps (< 5 s each)
    y = model(x).argmax(1)
    statuses = []
    for eps in (0.01, 0.03) if pool else (0.03, 0.1):
        res = verify_exact(model, x, y, eps, time_limit=20)
        adv = pgd(model, x, y, eps, eps / 4, 30, seed=0, restarts=2)
        broken = (model(adv).argmax(1) != y).tolist()
        crown = margin_bounds(model, x, y, eps, method="crown")
        certified = (crown + 1e9 * nn.functional.one_hot(y, 10)).min(1).values > 0
        for b, r in enumerate(res):
            statuses.append(r.status)
            if broken[b]:
                assert r.status == "counterexample"
            if certified[b]:
                assert r.status == "verified" and r.margin >= float(crown[b][torch.arange(10) != y[b]].min()) - TOL
            if r.status == "verified":
                assert not broken[b]
            if r.status == "counterexample":
                assert_real(model, x[b], y[b], eps, r)
            assert r.seconds > 0 and isinstance(r, VerificationResult)
    assert {"verified", "counterexample"} <= set(statuses) and "timeout" not in statuses


def test_time_limit_gives_timeout():
    """No time left after building the program: "timeout" (deterministic); a conv net with max-pooling at eps 0.1
    (about 200 binaries, 20 s are not enough to decide it) stops at a 0.3 s limit without a verdict."""
    model = small_cnn(0, pool=True)
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    y = model(x).argmax(1)
    for r in verify_exact(model, x, y, 0.05, time_limit=1e-6):
        assert r.status == "timeout" and r.counterexample is None and r.unstable > 0
        assert "no time left" in r.message
    for r in verify_exact(model, x, y, 0.1, time_limit=0.3):
        assert r.status in ("timeout", "counterexample") and r.seconds < 5       # never a rushed "verified"
        if r.status == "timeout":
            assert r.counterexample is None and "time" in r.message


def test_batch_contract():
    model = mlp(1)
    x = torch.rand(3, 1, 2, 2, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    y = model(x).argmax(1)
    grads = [p.requires_grad for p in model.parameters()]
    res = verify_exact(model, x, y, 0.1)
    assert isinstance(res, list) and len(res) == 3 and all(isinstance(r, VerificationResult) for r in res)
    assert len(verify_exact(model, x[:1], y[:1], 0.1)) == 1
    assert not model.training and [p.requires_grad for p in model.parameters()] == grads
    for r in res:
        if r.counterexample is not None:
            assert not r.counterexample.requires_grad and r.counterexample.device == x.device


def test_bad_inputs():
    model = mlp(0)
    x = torch.rand(2, 1, 2, 2)
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="training mode"):
        verify_exact(model.train(), x, y, 0.1)
    model.eval()
    with pytest.raises(ValueError, match="eps"):
        verify_exact(model, x, y, -0.1)
    for bad in (0, -1.0, True):
        with pytest.raises(ValueError, match="time_limit"):
            verify_exact(model, x, y, 0.1, time_limit=bad)
    with pytest.raises(ValueError, match="bounds"):
        verify_exact(model, x, y, 0.1, bounds="lp")
    with pytest.raises(ValueError, match=r"\(2,\)"):
        verify_exact(model, x, y[:1], 0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        verify_exact(model, x * 2, y, 0.1)
    tanh = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)).eval()
    with pytest.raises(ValueError, match="Tanh.*module '2'"):
        verify_exact(tanh, x, y, 0.1)
    with pytest.raises(ValueError, match=r"affine layer '1'.* 8 x 4 matrix"):
        verify_exact(model, x, y, 0.1, max_entries=30)


def test_a_misclassified_clean_image_is_its_own_counterexample():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    x = torch.rand(6, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        wrong = (model(x).argmax(1) + 1) % 3
    for r, xb in zip(verify_exact(model, x, wrong, 0.01), x, strict=True):
        assert r.status == "counterexample" and torch.equal(r.counterexample, xb) and r.margin < 0
