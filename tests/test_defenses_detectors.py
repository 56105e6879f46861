"""course_lib.defenses.detectors: each score against its definition computed independently (NumPy, SciPy,
scikit-learn), the calibration's false-positive rate, the ROC curve against scikit-learn, the refusals (fitting
images, missing threshold, unknown layer), and the adaptive attack's promise (fooled, under the threshold, inside
the ball) where the plain attack is caught."""
import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, roc_curve

from course_lib.attacks import pgd
from course_lib.defenses import (
    BitDepth,
    DetectorNetwork,
    FeatureSqueezingDetector,
    MedianFilter,
    PCADetector,
    SoftmaxDetector,
    adaptive_attack,
    roc,
)
from course_lib.defenses.detectors import calibrated_threshold

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_median_filter_is_scipys(size):
    x = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(size), dtype=torch.float64)
    ref = ndi.median_filter(x.numpy(), size=(1, 1, size, size), mode="reflect")
    assert np.array_equal(MedianFilter(size)(x).numpy(), ref)


def test_median_filter_passes_gradients_to_the_median_pixel():
    x = torch.tensor([[0.1, 0.9], [0.5, 0.3]]).view(1, 1, 2, 2).requires_grad_(True)
    out = MedianFilter(2)(x)
    # bottom-right output: window = all four pixels, upper median (rank 2 of 0.1, 0.3, 0.5, 0.9) = 0.5
    assert float(out[0, 0, 1, 1].detach()) == pytest.approx(0.5)
    (g,) = torch.autograd.grad(out[0, 0, 1, 1], x)
    assert torch.equal(g, torch.tensor([[0.0, 0.0], [1.0, 0.0]]).view(1, 1, 2, 2))


def test_calibrated_threshold_flags_exactly_the_allowed_count():
    s = torch.arange(1.0, 101.0)[torch.randperm(100, generator=torch.Generator().manual_seed(0))]
    thr = calibrated_threshold(s, 0.05)
    assert thr == 95.0 and int((s > thr).sum()) == 5
    assert int((s > calibrated_threshold(s, 0.001)).sum()) == 0


def test_softmax_score_is_one_minus_the_top_probability(mnist_cnn, mnist_test):
    x = mnist_test[0][:16]
    with torch.no_grad():
        p = F.softmax(mnist_cnn(x), 1).numpy()
    assert np.allclose(SoftmaxDetector(mnist_cnn).score(x).numpy(), 1 - p.max(1), atol=1e-6)


def test_pca_score_matches_numpy_and_sees_the_always_zero_border():
    g = torch.Generator().manual_seed(0)
    # 4x4 "images" whose border is always 0 and whose centre varies
    x = torch.zeros(500, 1, 4, 4)
    x[:, :, 1:3, 1:3] = torch.rand(500, 1, 2, 2, generator=g)
    det = PCADetector(n_components=2, reg=1e-4).fit(x)
    flat = x.reshape(500, -1).double().numpy()
    mu = flat.mean(0)
    lam, vec = np.linalg.eigh(np.cov(flat, rowvar=False))
    tail_vec, tail_lam = vec[:, :14], lam[:14]                    # eigh is ascending: all but the 2 largest
    probe = torch.rand(5, 1, 4, 4, generator=g)
    c = (probe.reshape(5, -1).double().numpy() - mu) @ tail_vec
    expected = (c ** 2 / (np.clip(tail_lam, 0, None) + 1e-4)).sum(1) / 14
    assert np.allclose(det.score(probe).double().numpy(), expected, rtol=1e-4)
    inside = x[:5].clone()
    border = inside.clone()
    border[:, :, 0, 0] = 0.1                                       # one border pixel, faint
    assert (det.score(border) > 10 * det.score(inside).max()).all()


def test_squeezing_score_by_hand(mnist_cnn, mnist_test):
    x = mnist_test[0][:8]
    det = FeatureSqueezingDetector(mnist_cnn)
    xs = x.numpy()
    binar = np.round(xs)
    med = ndi.median_filter(xs, size=(1, 1, 2, 2), mode="reflect")
    with torch.no_grad():
        p = F.softmax(mnist_cnn(x), 1).numpy()
        pb = F.softmax(mnist_cnn(torch.from_numpy(binar)), 1).numpy()
        pm = F.softmax(mnist_cnn(torch.from_numpy(med)), 1).numpy()
    expected = np.maximum(np.abs(p - pb).sum(1), np.abs(p - pm).sum(1))      # L1, then the maximum
    assert np.allclose(det.score(x).numpy(), expected, atol=1e-5)


def test_attack_score_equals_score_and_carries_a_gradient(mnist_cnn, mnist_test):
    x = mnist_test[0][:4]
    det = FeatureSqueezingDetector(mnist_cnn, squeezers=[BitDepth(1)])
    xg = x.clone().requires_grad_(True)
    s_att = det.attack_score(xg)
    assert torch.allclose(s_att.detach(), det.score(x), atol=1e-6)
    (g_att,) = torch.autograd.grad(s_att.sum(), xg)
    xg2 = x.clone().requires_grad_(True)
    s = det.score(xg2)
    (g,) = torch.autograd.grad(s.sum(), xg2)
    # the plain score's gradient only sees the unsqueezed branch; the BPDA one sees the squeezed branch too
    assert g_att.abs().sum() > 0 and not torch.allclose(g, g_att)


def test_roc_matches_sklearn_with_ties():
    g = torch.Generator().manual_seed(1)
    s_clean = torch.randint(0, 20, (200,), generator=g).double()
    s_adv = torch.randint(5, 30, (150,), generator=g).double()

    class Fixed(SoftmaxDetector):
        def __init__(self):
            self.threshold, self.fitted, self._seen, self.channels = None, True, set(), None

        def _score(self, x):
            return x.flatten(1)[:, 0].double()

    xc = (s_clean / 100).view(-1, 1, 1, 1).float()
    xa = (s_adv / 100).view(-1, 1, 1, 1).float()
    fpr, tpr, auc = roc(Fixed(), xc, xa)
    t = np.r_[np.zeros(200), np.ones(150)]
    s = np.r_[xc.flatten().numpy(), xa.flatten().numpy()]
    assert auc == pytest.approx(roc_auc_score(t, s), abs=1e-12)
    ref_fpr, ref_tpr, _ = roc_curve(t, s, drop_intermediate=False)
    assert np.allclose(fpr.numpy(), ref_fpr) and np.allclose(tpr.numpy(), ref_tpr)


def test_calibration_holds_on_other_clean_images(mnist_cnn, mnist_test):
    x = mnist_test[0]
    det = FeatureSqueezingDetector(mnist_cnn).calibrate(x[:1000], fpr=0.05)
    fpr = float(det.detect(x[1000:]).float().mean())
    assert 0.03 <= fpr <= 0.07


def test_refusals(mnist_cnn, mnist_test):
    x = mnist_test[0][:200]
    det = PCADetector(n_components=50).fit(x[:100])
    with pytest.raises(ValueError, match="used to fit"):
        det.calibrate(x[50:150])
    with pytest.raises(RuntimeError, match="calibrate"):
        det.detect(x[100:])
    with pytest.raises(RuntimeError, match="not fitted"):
        PCADetector().score(x)
    with pytest.raises(ValueError, match="fpr"):
        det.calibrate(x[100:], fpr=5)
    with pytest.raises(ValueError, match="values in"):
        det.score(x * 2)
    with pytest.raises(ValueError, match="no layer named 'feature.relu3'.*features.relu3"):
        DetectorNetwork(mnist_cnn, "feature.relu3")
    with pytest.raises(ValueError, match="threshold"):
        adaptive_attack(mnist_cnn, det, x[:4], mnist_test[1][:4], 0.1)


@pytest.fixture(scope="module")
def detector_network(mnist_cnn, mnist_test):
    x = mnist_test[0]
    before = [p.requires_grad for p in mnist_cnn.parameters()]
    det = DetectorNetwork(mnist_cnn, "features.relu3", eps=0.1, epochs=5, progress=False).fit(x[:600])
    assert [p.requires_grad for p in mnist_cnn.parameters()] == before and not mnist_cnn.training
    return det.calibrate(x[600:1000])


def test_detector_network_separates_pgd_it_never_saw(detector_network, mnist_cnn, mnist_test):
    x, y = mnist_test[0][1000:1200], mnist_test[1][1000:1200]
    adv = pgd(mnist_cnn, x, y, 0.1, 0.0125, 20, seed=3)
    _, _, auc = roc(detector_network, x, adv)
    assert auc >= 0.95


def test_adaptive_attack_evades_what_plain_pgd_cannot(detector_network, mnist_cnn, mnist_test):
    x, y = mnist_test[0][1200:1240], mnist_test[1][1200:1240]
    det = detector_network
    plain = pgd(mnist_cnn, x, y, 0.1, 0.01, 40, seed=0)
    assert float(det.detect(plain).float().mean()) >= 0.8
    # an L2 attack (the detector learnt the look of L-inf PGD) no larger than plain PGD's perturbation in L2
    adv = adaptive_attack(mnist_cnn, det, x, y, 2.0, norm="l2", steps=200, seed=0)
    assert (adv - x).flatten(1).norm(dim=1).max() <= 2.0 + 1e-4 and adv.min() >= 0 and adv.max() <= 1
    assert (plain - x).flatten(1).norm(dim=1).median() > 2.0
    with torch.no_grad():
        fooled = mnist_cnn(adv).argmax(1) != y
    hidden = ~det.detect(adv)
    assert float((fooled & hidden).float().mean()) >= 0.9


def test_detectors_leave_inputs_alone(mnist_cnn, mnist_test):
    x = mnist_test[0][:300].clone()
    keep = x.clone()
    for det in (SoftmaxDetector(mnist_cnn), PCADetector(20), FeatureSqueezingDetector(mnist_cnn)):
        det.fit(x[:200]).calibrate(x[200:])
        det.detect(x)
    assert torch.equal(x, keep)


def test_scores_are_differentiable_where_the_method_allows(mnist_cnn, mnist_test):
    x = mnist_test[0][:3]
    for det in (SoftmaxDetector(mnist_cnn), PCADetector(20).fit(mnist_test[0][100:400])):
        xg = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(det.score(xg).sum(), xg)
        assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert not SoftmaxDetector(mnist_cnn).score(x).requires_grad


def test_plot_roc_draws_each_curve_with_its_auc():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_lib.plot import plot_roc
    curves = {"a": (torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0.0, 0.9, 1.0]), 0.7),
              "b": (torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]), 0.5)}
    ax = plot_roc(curves, title="t")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["a (AUC 0.70)", "b (AUC 0.50)"] and "chance" in labels
    assert list(ax.lines[0].get_xdata()) == [0.0, 0.5, 1.0]
    plt.close(ax.figure)


def test_pca_pixel_weights_are_the_score_of_one_pixel():
    g = torch.Generator().manual_seed(2)
    x = torch.zeros(300, 1, 4, 4)
    x[:, :, 1:3, 1:3] = torch.rand(300, 1, 2, 2, generator=g)
    det = PCADetector(n_components=2, reg=1e-3).fit(x)
    w = det.pixel_weights()
    mu = x.mean(0, keepdim=True)
    for i, j in [(0, 0), (1, 2), (3, 1)]:
        probe = mu.clone()
        probe[0, 0, i, j] += 0.01                           # score of mu + delta = delta^2 * w_ij / (D - k)
        assert float(det.score(probe)) == pytest.approx(1e-4 * float(w[0, i, j]) / 14, rel=1e-3)
    assert w[0, 0, 0] > 100 * w[0, 1, 1]                    # the always-blank border weighs the most
