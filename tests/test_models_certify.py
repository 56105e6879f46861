"""The verification unit's shipped models (lesson 14): the IBP-trained `mnist_ibp` and `mnist_ibp_03`, the noise-
trained `mnist_noise_025` and `mnist_noise_050` with their shipped smoothing certificates, and the small `mnist_mlp`
for exact verification. Each is trained as the manifest says and measures what it records; every bound stays
sound on it (random and PGD points of the ball), a certified digit is never broken by PGD, and the stored
certificates follow from their stored votes."""
import pytest
import torch
from scipy.stats import norm

from course_lib.attacks import pgd
from course_lib.certify import certified, crown_bounds, interval_bounds, verify_exact
from course_lib.certify.smoothing import lower_confidence_bound
from course_lib.data import load_result
from course_lib.models import IBPCNN, MLP, MODEL_SPECS, available_models, load_model, model_info
from course_lib.training import accuracy

pytestmark = pytest.mark.usefixtures("one_thread")
NEW = {"mnist_ibp": IBPCNN, "mnist_ibp_03": IBPCNN, "mnist_noise_025": IBPCNN, "mnist_noise_050": IBPCNN,
       "mnist_mlp": MLP}


def ball_points(x, eps, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        u = torch.rand(x.shape, generator=g)
        yield (x + eps * (torch.sign(u - 0.5) if i % 2 else 2 * u - 1)).clamp(0, 1)


@pytest.mark.parametrize("name", list(NEW))
def test_shipped_and_built_as_listed(name):
    model = load_model(name)
    assert name in available_models() and isinstance(model, NEW[name]) and not model.training
    assert MODEL_SPECS[name]["dataset"] == "mnist"
    info = model_info(name)
    assert info["training"]["seed"] == 0 and info["accuracy"] >= 0.9


@pytest.mark.parametrize("name, eps, min_certified", [("mnist_ibp", 0.1, 0.93), ("mnist_ibp_03", 0.3, 0.75)])
def test_ibp_models_certify_what_the_manifest_records(name, eps, min_certified, mnist_test):
    x, y = mnist_test
    model = load_model(name)
    info = model_info(name)
    assert info["training"]["certified"]["eps"] == eps
    cert = float(certified(model, x, y, eps).double().mean())
    assert abs(cert - info["ibp_certified_accuracy"]) < 1e-4, "the manifest's number is what the model measures"
    assert cert >= min_certified
    assert abs(accuracy(model, x, y) - info["accuracy"]) < 1e-4
    assert info["crown_certified_accuracy_first_100"] >= info["ibp_certified_accuracy_first_100"]


@pytest.mark.parametrize("name, eps", [("mnist_ibp", 0.1), ("mnist_ibp_03", 0.3), ("mnist_mlp", 0.05),
                                       ("mnist_noise_025", 0.02)])
def test_bounds_are_sound_on_the_shipped_models_and_certified_digits_resist_pgd(name, eps, mnist_test):
    model = load_model(name)
    x, y = mnist_test[0][:3], mnist_test[1][:3]
    lo, hi = interval_bounds(model, x, eps)
    c_lo, c_hi = crown_bounds(model, x, eps)
    assert (c_lo >= lo - 1e-4).all() and (c_hi <= hi + 1e-4).all()
    adv = pgd(model, x, y, eps, eps / 4, 40, seed=0)
    targeted = [pgd(model, x, torch.full_like(y, k), eps, eps / 4, 20, targeted=True, seed=k) for k in range(10)]
    for p in [*ball_points(x, eps, 20), adv, *targeted]:
        with torch.no_grad():
            z = model(p)
        assert ((p - x).abs() <= eps + 1e-6).all()
        assert (z >= c_lo - 1e-3).all() and (z <= c_hi + 1e-3).all(), "CROWN's bounds miss a point of the ball"
    # many digits: IBP-certified digits are never broken by PGD
    x, y = mnist_test[0][:200], mnist_test[1][:200]
    cert = certified(model, x, y, eps)
    adv = pgd(model, x, y, eps, eps / 4, 40, seed=0)
    with torch.no_grad():
        broken = model(adv).argmax(1) != y
    assert not (cert & broken).any()
    if name.startswith("mnist_ibp"):
        assert cert.float().mean() > 0.7                 # the test is not vacuous there


def test_mnist_mlp_exact_verification_agrees_with_pgd_and_crown(mnist_test):
    model = load_model("mnist_mlp")
    x, y = mnist_test[0][:12], mnist_test[1][:12]
    eps = 0.03
    res = verify_exact(model, x, y, eps, time_limit=20)
    crown = certified(model, x, y, eps, method="crown")
    adv = pgd(model, x, y, eps, eps / 4, 50, seed=0)
    with torch.no_grad():
        broken = model(adv).argmax(1) != y
    for i, r in enumerate(res):
        assert r.status in ("verified", "counterexample"), r
        if r.status == "verified":
            assert not broken[i], "PGD broke a digit that the MILP verified"
        else:
            ce = r.counterexample[None]
            assert ((ce - x[i]).abs().max() <= eps + 1e-6) and model(ce).argmax(1).item() != y[i].item()
        if crown[i]:
            assert r.status == "verified", "CROWN certified a digit that has a counterexample"
    assert sum(r.status == "verified" for r in res) >= 6


@pytest.mark.parametrize("name, sigma, min_acc", [("mnist_noise_025", 0.25, 0.97), ("mnist_noise_050", 0.5, 0.93)])
def test_noise_models_are_accurate_under_their_noise(name, sigma, min_acc, mnist_test):
    x, y = mnist_test
    model = load_model(name)
    info = model_info(name)
    assert info["training"]["noise"]["sigma"] == sigma
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        acc = float((model(x + sigma * torch.randn(x.shape, generator=g)).argmax(1) == y).double().mean())
    assert abs(acc - info["accuracy_under_noise"]) < 1e-4 and acc >= min_acc


def test_shipped_smoothing_certificates_follow_from_their_votes(mnist_test):
    res = load_result("smoothing_mnist")
    manifest_models = {name: model_info(name) for name in ("mnist_noise_025", "mnist_noise_050", "mnist_cnn")}
    assert (res["n0"], res["n"], res["alpha"]) == (100, 10_000, 0.001)
    x, y = mnist_test
    seen = set()
    for run in res["runs"]:
        name, sigma = run["model"], run["sigma"]
        seen.add(name)
        assert run["model_sha256"] == manifest_models[name]["sha256"], f"{name}: certificates of other weights"
        k = run["digits"]
        assert run["y"] == y[:k].tolist()
        labels, radii = torch.tensor(run["labels"]), torch.tensor(run["radii"], dtype=torch.float64)
        for c, lab, r in zip(run["counts"], labels.tolist(), radii.tolist(), strict=True):
            assert sum(c) == res["n"]                        # the n estimation votes, per class
            if lab == -1:                                    # abstained (the selected class is not stored)
                assert r == 0.0
            else:
                p = lower_confidence_bound(c[lab], res["n"], res["alpha"])
                assert p > 0.5 and r == pytest.approx(sigma * norm.ppf(p), abs=2e-6)
        ok = labels == y[:k]
        for key in ("0.5", "1.0"):
            assert run[f"certified_accuracy_r{key}"] == pytest.approx(
                float((ok & (radii >= float(key))).double().mean()), abs=1e-4)
        assert radii.max() <= sigma * norm.ppf(res["alpha"] ** (1 / res["n"])) + 1e-6    # the cap
    assert seen == {"mnist_noise_025", "mnist_noise_050", "mnist_cnn"}


def test_shipped_certificates_hold_up_on_a_fresh_run(mnist_test):
    """A rerun with other noise on the first digits of mnist_noise_025 gives nearly the same radii (within the
    Monte Carlo spread of the bound), and a digit certified at r is never flipped by a random point inside r."""
    from course_lib.certify import smoothed_certify, smoothed_predict

    run = next(r for r in load_result("smoothing_mnist")["runs"] if r["model"] == "mnist_noise_025")
    model = load_model("mnist_noise_025")
    x = mnist_test[0][:4]
    labels, radii = smoothed_certify(model, x, 0.25, n=10_000, seed=123)
    assert labels.tolist() == run["labels"][:4]
    assert torch.allclose(radii.double(), torch.tensor(run["radii"][:4], dtype=torch.float64), atol=0.05)
    i = int(torch.argmax(radii))
    d = torch.randn(x[i].shape, generator=torch.Generator().manual_seed(0))
    x_far = (x[i] + 0.95 * radii[i] * d / d.norm()).clamp(0, 1)[None]      # clamping only moves it closer
    assert smoothed_predict(model, x_far, 0.25, n=2_000, seed=1).item() in (labels[i].item(), -1)
