"""certified_training: the schedule it promises (clean warm-up, eps and kappa ramps), a loss that is the IBP
objective (its certified accuracy beats standard training's on the same data and budget), soundness kept, and
clear errors."""
import pytest
import torch
from torch import nn

from course_lib.certify import certified_training, margin_bounds
from course_lib.data import make_loader
from course_lib.training import train

pytestmark = pytest.mark.usefixtures("one_thread")


def toy(n=400, seed=0):
    """Two classes of 3x3 images: brightness about 0.35 or 0.65 with pixel noise of +-0.15."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = (0.35 + 0.3 * y.view(-1, 1, 1, 1) + 0.15 * (2 * torch.rand(n, 1, 3, 3, generator=g) - 1)).clamp(0, 1)
    return x, y


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(9, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))


def certified(model, x, y, eps):
    m = margin_bounds(model, x, y, eps)
    return float(((m + torch.eye(2)[y] * 1e9).amin(1) > 0).float().mean())


def test_ibp_training_certifies_more_than_standard_training():
    x, y = toy()
    xt, yt = toy(200, seed=1)
    eps = 0.1
    standard = mlp()
    train(standard, make_loader(x, y, batch_size=50, seed=0), 12, lr=1e-2, progress=False)
    standard.eval()
    ibp = mlp()
    hist: dict = {}
    certified_training(ibp, make_loader(x, y, batch_size=50, seed=0), eps, 12, lr=1e-2, progress=False,
                       history=hist)
    assert not ibp.training
    with torch.no_grad():
        assert float((ibp(xt).argmax(1) == yt).float().mean()) >= 0.95
    c_std, c_ibp = certified(standard, xt, yt, eps), certified(ibp, xt, yt, eps)
    assert c_ibp >= 0.9 and c_ibp > c_std + 0.1, (c_std, c_ibp)


def test_the_schedule():
    x, y = toy(200)
    hist: dict = {}
    loader = make_loader(x, y, batch_size=50, seed=0)             # 4 steps per epoch
    certified_training(mlp(), loader, 0.1, 6, warmup_epochs=1, ramp_epochs=2, kappa_end=0.5, progress=False,
                       history=hist)
    e, k = hist["eps"], hist["kappa"]
    assert len(e) == 24 and e[:4] == [0.0] * 4 and k[:4] == [1.0] * 4            # warm-up: clean training
    assert e[4:12] == pytest.approx([0.11 * i / 8 for i in range(8)])            # ramp to 1.1 eps over 2 epochs
    assert e[12:] == pytest.approx([0.11] * 12) and k[12:] == pytest.approx([0.5] * 12)


def test_errors():
    x, y = toy(50)
    loader = make_loader(x, y, batch_size=50)
    with pytest.raises(ValueError, match="eps"):
        certified_training(mlp(), loader, 0.0, 1, progress=False)
    with pytest.raises(ValueError, match="kappa_end"):
        certified_training(mlp(), loader, 0.1, 1, kappa_end=2.0, progress=False)
    bn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="BatchNorm"):
        certified_training(bn, loader, 0.1, 2, warmup_epochs=0, progress=False)


# --------------------------------------------------------------------------- noise_training (for smoothing)
def _noise_run(**kw):
    from course_lib.certify import noise_training

    x, y = toy(200)
    model = mlp()
    seen = []
    hist: dict = {}
    noise_training(model, make_loader(x, y, batch_size=20, seed=0), sigma=0.3, epochs=1, progress=False,
                   history=hist, augment=lambda m, xb, yb: seen.append(xb.clone()) or xb, **kw)
    return model, seen, hist


class Spy(nn.Module):
    """mlp() that appends every batch it is trained on (in training mode) to ``record``."""

    def __init__(self, record: list):
        super().__init__()
        self.net, self.record = mlp(), record

    def forward(self, z):
        if self.training:
            self.record.append(z.detach().clone())
        return self.net(z)


def test_noise_training_trains_on_noisy_copies_and_consistency_changes_the_loss():
    from course_lib.certify import noise_training

    x, y = toy(200)
    copies: list = []
    spy = Spy(copies)
    noise_training(spy, make_loader(x, y, batch_size=20, shuffle=False, seed=0), sigma=0.3, epochs=1, copies=2,
                   consistency=1.0, progress=False)
    assert not spy.training
    first = copies[0]
    assert first.shape == (40, 1, 3, 3)                    # two noisy copies of the 20 images
    a, b = first[:20] - x[:20], first[20:] - x[:20]
    noise = torch.cat([a, b]).flatten()
    assert abs(float(noise.std()) - 0.3) < 0.04 and abs(float(noise.mean())) < 0.05   # N(0, sigma^2), not clipped
    assert not torch.allclose(a, b)                        # independent draws per copy
    assert (first < 0).any() or (first > 1).any()          # not clipped to [0, 1], as at certification
    # the loss: plain vs consistency on the same model and batch differ by consistency * KL >= 0
    _, _, h_plain = _noise_run(copies=2)
    _, _, h_cons = _noise_run(copies=2, consistency=5.0)
    assert h_cons["loss"][0] > h_plain["loss"][0]


def test_noise_training_same_seed_same_weights_and_errors():
    from course_lib.certify import noise_training

    m1, _, _ = _noise_run(copies=2, consistency=1.0)
    m2, _, _ = _noise_run(copies=2, consistency=1.0)
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters(), strict=True))
    x, y = toy(40)
    loader = make_loader(x, y, batch_size=20, seed=0)
    with pytest.raises(ValueError, match="sigma"):
        noise_training(mlp(), loader, sigma=0, epochs=1, progress=False)
    with pytest.raises(ValueError, match="copies >= 2"):
        noise_training(mlp(), loader, sigma=0.25, epochs=1, consistency=1.0, progress=False)
    with pytest.raises(TypeError, match="augment"):
        noise_training(mlp(), loader, sigma=0.25, epochs=1, augment=3, progress=False)


@pytest.mark.parametrize("consistency, entropy", [(0.0, 0.0), (3.0, 0.0), (2.0, 0.7)])
def test_noise_training_loss_is_the_definition_on_the_batch_it_saw(consistency, entropy):
    """One batch, learning rate 0 (the weights stay): the loss recorded equals, computed by hand on the noisy
    copies the network received, 1/m sum_i CE(f(x_i), y) + consistency * 1/m sum_i KL(p_bar || p_i)
    + entropy * H(p_bar)."""
    import torch.nn.functional as F

    from course_lib.certify import noise_training

    x, y = toy(20)
    seen: list = []
    spy, hist = Spy(seen), {}
    noise_training(spy, make_loader(x, y, batch_size=20, shuffle=False, seed=0), sigma=0.3, epochs=1, copies=2,
                   consistency=consistency, entropy=entropy, lr=0.0, progress=False, history=hist)
    with torch.no_grad():
        p = [F.softmax(spy.net(part), 1) for part in seen[0].chunk(2)]
    p_bar = (p[0] + p[1]) / 2
    ce = sum(F.nll_loss(q.log(), y) for q in p) / 2
    kl = sum((p_bar * (p_bar.log() - q.log())).sum(1).mean() for q in p) / 2
    h = -(p_bar * p_bar.log()).sum(1).mean()
    assert hist["loss"][0] == pytest.approx(float(ce + consistency * kl + entropy * h), rel=1e-5)
    assert kl > 1e-5   # the copies disagree: with consistency > 0 the term moves the loss by >> the tolerance
