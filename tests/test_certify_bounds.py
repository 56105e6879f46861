"""course_lib.certify.bounds: soundness (every logit of every point of the ball, random, corner and PGD points,
lies between the bounds) on small networks of every supported layer type and on the shipped CNNs; exactness at
eps = 0; CROWN at least as tight as IBP; margin bounds that certify only what PGD cannot break; clear errors for
unsupported operations."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.attacks import pgd
from course_lib.certify import crown_bounds, interval_bounds, margin_bounds
from course_lib.models import Normalize

pytestmark = pytest.mark.usefixtures("one_thread")


class Functional(nn.Module):
    """The functional spellings: F.relu, F.max_pool2d with overlapping windows, F.avg_pool2d, view(x.size(0), -1),
    torch.flatten, constants on either side of - and *, division by a constant."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1, stride=1)
        self.fc1 = nn.Linear(3 * 2 * 2, 8)
        self.fc2 = nn.Linear(8, 4)
        self.register_buffer("scale", torch.tensor([0.5, -2.0, 1.5]).view(1, 3, 1, 1))

    def forward(self, x):
        h = F.relu(self.conv(1.0 - x) * self.scale)
        h = F.max_pool2d(h, 3, 1)                       # overlapping windows: 6x6 -> 4x4
        h = F.avg_pool2d(h, 2)
        h = h.view(h.size(0), -1) / 2.0
        return self.fc2(torch.relu(self.fc1(torch.flatten(h, 1)) - 0.1))


def nets():
    g = torch.Generator().manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(72, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 16), nn.ReLU(),
                        nn.Linear(16, 4))
    bn = nn.BatchNorm2d(4)
    bn.running_mean.uniform_(-0.5, 0.5, generator=g)
    bn.running_var.uniform_(0.5, 2.0, generator=g)
    bn.weight.data.uniform_(-1.0, 1.0, generator=g)          # negative scales too
    cnn = nn.Sequential(Normalize((0.5, 0.4), (0.3, 0.2)), nn.Conv2d(2, 4, 3, padding=1), bn, nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(4, 5, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Identity(), nn.Linear(5, 4))
    torch.manual_seed(1)
    return {"mlp": mlp.eval(), "cnn": cnn.eval(), "functional": Functional().eval()}


def points(x, eps, n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        u = torch.rand(x.shape, generator=g)
        d = torch.sign(u - 0.5) if i % 2 else 2 * u - 1      # corners and interior points
        yield (x + eps * d).clamp(0, 1)


@pytest.mark.parametrize("name", ["mlp", "cnn", "functional"])
@pytest.mark.parametrize("eps", [0.0, 0.02, 0.1])
def test_bounds_are_sound_and_crown_is_tighter(name, eps):
    model = nets()[name]
    x = torch.rand(3, 2, 6, 6, generator=torch.Generator().manual_seed(7))
    y = torch.tensor([0, 1, 3])
    lo, hi = interval_bounds(model, x, eps)
    clo, chi = crown_bounds(model, x, eps)
    ilo, ihi = crown_bounds(model, x, eps, intermediate="ibp")
    m_ibp, m_crown = margin_bounds(model, x, y, eps), margin_bounds(model, x, y, eps, method="crown")
    tol = 1e-5
    adv = pgd(model, x, y, eps, eps / 4, 20, seed=0) if eps > 0 else x
    for p in [*points(x, eps), adv]:
        with torch.no_grad():
            z = model(p)
        for a, b in ((lo, hi), (clo, chi), (ilo, ihi)):
            assert (z >= a - tol).all() and (z <= b + tol).all()
        margin = z.gather(1, y[:, None]) - z
        assert (margin >= m_ibp - tol).all() and (margin >= m_crown - tol).all()
    assert (clo >= lo - tol).all() and (chi <= hi + tol).all()              # CROWN never looser than IBP
    assert (m_crown >= m_ibp - tol).all()
    if eps == 0:
        with torch.no_grad():
            z = model(x)
        for a in (lo, hi, clo, chi):
            assert torch.allclose(a, z, atol=1e-5)


def test_margin_bound_is_tighter_than_subtracting_intervals(mnist_test):
    model = nets()["mlp"]
    x = torch.rand(4, 2, 6, 6, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 1, 2, 3])
    lo, hi = interval_bounds(model, x, 0.05)
    naive = lo.gather(1, y[:, None]) - hi
    m = margin_bounds(model, x, y, 0.05)
    others = F.one_hot(y, 4) == 0
    assert (m[others] >= naive[others] - 1e-6).all() and (m[others] > naive[others] + 1e-4).any()
    assert torch.equal(m[~others], torch.zeros(4))


def test_shipped_cnns_are_sound_and_certified_digits_resist_pgd(mnist_test):
    from course_lib.models import load_model

    x, y = mnist_test[0][:8], mnist_test[1][:8]
    for name, eps in (("mnist_cnn", 0.002), ("mnist_pgd", 0.1)):
        model = load_model(name)
        lo, hi = interval_bounds(model, x, eps)
        m = margin_bounds(model, x, y, eps, method="ibp")
        adv = pgd(model, x, y, eps, eps / 4, 40, seed=0)
        for p in [*points(x, eps, n=20), adv]:
            with torch.no_grad():
                z = model(p)
            assert (z >= lo - 1e-3).all() and (z <= hi + 1e-3).all()
        certified = (m + torch.eye(10)[y] * 1e9).amin(1) > 0
        with torch.no_grad():
            broken = model(adv).argmax(1) != y
        assert not (certified & broken).any()


def test_unsupported_operations_are_named():
    with pytest.raises(ValueError, match="Sigmoid.*not supported"):
        interval_bounds(nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.Sigmoid()).eval(), torch.rand(1, 1, 2, 2), 0.1)

    class Tanh(nn.Module):
        def forward(self, x):
            return torch.tanh(x).flatten(1)

    with pytest.raises(ValueError, match="tanh"):
        crown_bounds(Tanh().eval(), torch.rand(1, 1, 2, 2), 0.1)

    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 2), nn.Linear(4, 2)

        def forward(self, x):
            h = x.flatten(1)
            return self.a(h) + self.b(h)

    with pytest.raises(ValueError, match="branch"):
        interval_bounds(Branch().eval(), torch.rand(1, 1, 2, 2), 0.1)
    with pytest.raises(ValueError, match="training mode"):
        interval_bounds(nets()["mlp"].train(), torch.rand(1, 2, 6, 6), 0.1)
    with pytest.raises(ValueError, match="eps"):
        interval_bounds(nets()["mlp"], torch.rand(1, 2, 6, 6), -0.1)


def test_inputs_and_model_are_left_alone():
    model = nets()["cnn"]
    x = torch.rand(2, 2, 6, 6)
    keep, params = x.clone(), [p.clone() for p in model.parameters()]
    crown_bounds(model, x, 0.05)
    margin_bounds(model, x, torch.tensor([0, 1]), 0.05, method="crown")
    assert torch.equal(x, keep) and not model.training
    assert all(torch.equal(a, b) and b.grad is None for a, b in zip(params, model.parameters(), strict=True))


def _sample_between(lo, hi, n, g):
    """n points between lo and hi (batch dimension first), the two ends among them."""
    t = torch.rand((n, *lo.shape), generator=g, dtype=lo.dtype)
    t[0], t[1] = 0.0, 1.0
    t[2:n // 2] = (t[2:n // 2] > 0.5).to(lo.dtype)                # corners
    return lo + t * (hi - lo)


def test_relu_relaxation_bounds_every_point():
    from course_lib.certify.bounds import _relu_back

    g = torch.Generator().manual_seed(0)
    lo = torch.randn(1, 50, generator=g, dtype=torch.float64)
    hi = lo + 2 * torch.rand(1, 50, generator=g, dtype=torch.float64)          # many straddle 0
    lam = torch.randn(1, 3, 50, generator=g, dtype=torch.float64)             # 3 specifications, mixed signs
    lam_in, bias = _relu_back(lam, lo, hi)
    for z in _sample_between(lo[0], hi[0], 400, g):
        exact = (lam[0] * z.clamp_min(0)).sum(1)
        linear = (lam_in[0] * z).sum(1) + bias[0]
        assert (exact >= linear - 1e-9).all()                             # a lower bound for every point


@pytest.mark.parametrize("pool", [(2, 2, 0, 1), (3, 1, 0, 1), (2, 2, 1, 1)])
def test_maxpool_relaxation_bounds_every_point(pool):
    from course_lib.certify.bounds import _maxpool_back, _Step

    g = torch.Generator().manual_seed(1)
    lo = torch.randn(1, 2, 6, 6, generator=g, dtype=torch.float64)
    hi = lo + torch.rand(1, 2, 6, 6, generator=g, dtype=torch.float64) * (torch.rand(1, 2, 6, 6, generator=g) < 0.5)
    k, s, p, d = pool
    out_shape = F.max_pool2d(lo, k, s, p, d).shape[1:]
    step = _Step("maxpool", "pool", pool=pool)
    step.in_shape, step.out_shape = tuple(lo.shape[1:]), tuple(out_shape)
    lam = torch.randn(1, 4, *out_shape, generator=g, dtype=torch.float64)
    lam_in, bias = _maxpool_back(step, lam, lo, hi)
    for z in _sample_between(lo[0], hi[0], 400, g):
        exact = (lam[0] * F.max_pool2d(z[None], k, s, p, d)).flatten(1).sum(1)
        linear = (lam_in[0] * z).flatten(1).sum(1) + bias[0]
        assert (exact >= linear - 1e-9).all()


def test_per_layer_boxes_end_at_the_logits_contain_the_activations_and_crown_is_inside_ibp():
    from course_lib.models import IBPCNN, MLP

    torch.manual_seed(0)
    for model in (MLP(hidden=(20, 20)).eval(), IBPCNN(widths=(4, 8), hidden=16).eval()):
        x = torch.rand(2, 1, 28, 28)
        eps = 0.05
        ibp = interval_bounds(model, x, eps, per_layer=True)
        lo, hi = interval_bounds(model, x, eps)
        assert torch.equal(ibp[-1][1], lo) and torch.equal(ibp[-1][2], hi)
        crown = crown_bounds(model, x, eps, per_layer=True)
        c_lo, c_hi = crown_bounds(model, x, eps)
        assert torch.equal(crown[-1][1], c_lo) and torch.equal(crown[-1][2], c_hi)
        boxes = {name: (l, h) for name, l, h in ibp}
        pts = points(x, eps, n=50)
        acts = [{name: a for name, a, _ in interval_bounds(model, p, 0.0, per_layer=True)} for p in pts]
        for name, l, h in crown:                       # every CROWN entry names an IBP entry, and is inside it
            bl, bh = boxes[name]
            assert (l >= bl - 1e-5).all() and (h <= bh + 1e-5).all()
            for a in acts:                              # and contains the activations of points of the ball
                assert (a[name] >= l - 1e-4).all() and (a[name] <= h + 1e-4).all()
        first = crown[0][0]                             # the first affine layer: IBP is exact, CROWN equals it
        assert torch.allclose(crown[0][1], boxes[first][0], atol=1e-5)
        assert torch.allclose(crown[0][2], boxes[first][1], atol=1e-5)


def test_certified_is_every_margin_bound_positive():
    from course_lib.certify import certified

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4)).eval()
    x = torch.rand(40, 1, 4, 4)
    with torch.no_grad():
        pred = model(x).argmax(1)
    for eps in (0.0, 0.01, 0.05):
        for method in ("ibp", "crown"):
            m = margin_bounds(model, x, pred, eps, method=method)
            want = torch.tensor([all(bool(m[i, k] > 0) for k in range(4) if k != pred[i]) for i in range(len(x))])
            got = certified(model, x, pred, eps, method=method)
            assert got.dtype == torch.bool and torch.equal(got, want)
    assert certified(model, x, pred, 0.0).all()                 # eps 0: the prediction itself (strict margins)
    assert not certified(model, x, (pred + 1) % 4, 0.0).any()   # a wrong label is never certified
    assert certified(model, x, pred, 0.01).any() and not certified(model, x, pred, 0.5).all()


def test_layer_widths_orders_reached_crown_ibp_and_is_exact_at_the_first_layer():
    from course_lib.certify import layer_widths
    from course_lib.models import MLP

    torch.manual_seed(0)
    model = MLP(hidden=(20, 20)).eval()
    x = torch.rand(1, 1, 28, 28)
    w = layer_widths(model, x, 0.05, samples=200)
    assert w["layers"] == ["fc1", "fc2", "fc3"]
    for r, c, i in zip(w["reached"], w["crown"], w["ibp"], strict=True):
        assert 0 < r <= c + 1e-5 and c <= i + 1e-5
    assert w["crown"][0] == pytest.approx(w["ibp"][0], rel=1e-5)          # a linear map of a box: exact
    assert w["ibp"][-1] > 1.5 * w["crown"][-1]                             # and looser after the first ReLU
    assert layer_widths(model, x, 0.05, samples=200) == w                  # seeded
    with pytest.raises(ValueError, match="one image"):
        layer_widths(model, torch.rand(2, 1, 28, 28), 0.05)


@pytest.mark.parametrize("name", ["mnist_cnn", "mnist_cnn_b", "mnist_cnn_aug", "mnist_cnn_aug_b", "mnist_distilled",
                                  "mnist_pgd", "fashion_cnn", "fashion_marked"])
def test_every_shipped_cnn_gets_sound_ibp_and_crown_bounds(name, mnist_test):
    """IBP and CROWN's backward pass (with IBP's intermediate bounds: full CROWN takes over a minute per digit on
    these five-convolution networks) contain the logits of random, corner and PGD points of the ball."""
    from course_lib.data import load_fashion_mnist
    from course_lib.models import MODEL_SPECS, load_model

    model = load_model(name)
    x, y = mnist_test if MODEL_SPECS[name]["dataset"] == "mnist" else load_fashion_mnist("test")
    x, y = x[:2], y[:2]
    eps = 0.003
    lo, hi = interval_bounds(model, x, eps)
    c_lo, c_hi = crown_bounds(model, x, eps, intermediate="ibp")
    assert (c_lo >= lo - 1e-4).all() and (c_hi <= hi + 1e-4).all()
    assert (c_hi - c_lo).mean() < (hi - lo).mean()                    # and tighter than IBP
    adv = pgd(model, x, y, eps, eps / 4, 20, seed=0)
    for p in [*points(x, eps, n=20), adv]:
        with torch.no_grad():
            z = model(p)
        assert (z >= c_lo - 1e-3).all() and (z <= c_hi + 1e-3).all(), name
