"""Checks for lesson 13 (detecting adversarial examples): the feature-squeezing score by hand, a threshold at a
given false-positive rate (and on which images it is set), and the adaptive attack's loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._common import _fresh_model, _ok, _require

__all__ = ["check_squeeze_score", "check_threshold", "check_adaptive_loss"]


def _digits(n: int = 16):
    from ..attacks import pgd
    from ..data import load_mnist

    x, y = load_mnist("test")
    x, y = x[1500:1500 + n].clone(), y[1500:1500 + n].clone()
    model = _fresh_model("mnist_cnn")
    adv = pgd(model, x[: n // 2], y[: n // 2], 0.1, 0.01, 20, seed=0)
    return model, torch.cat([x[n // 2:], adv])


def check_squeeze_score(fn) -> None:
    """Lesson 13: ``fn(model, x) -> (B,)`` must be Xu, Evans & Qi's feature-squeezing score with the MNIST
    squeezers (bit depth 1 and 2x2 median smoothing)::

        score(x) = max( ||p(x) - p(bits_1(x))||_1 , ||p(x) - p(median_2x2(x))||_1 ),   p = softmax(model(.))

    Checked on 8 clean and 8 PGD digits against :class:`course_lib.defenses.FeatureSqueezingDetector`; the usual
    slips are named: the L2 distance instead of L1, the mean or the sum over the squeezers instead of the
    maximum, one squeezer only, logits instead of probabilities."""
    from ..defenses import BitDepth, FeatureSqueezingDetector, MedianFilter

    model, x = _digits()
    keep = x.clone()
    with torch.no_grad():
        got = fn(model, x)
    _require(torch.equal(x, keep), "your function changed x in place: squeeze a copy")
    _require(isinstance(got, torch.Tensor) and tuple(got.shape) == (x.shape[0],),
             f"return one score per image, a tensor of shape ({x.shape[0]},), got "
             f"{getattr(got, 'shape', type(got).__name__)}")
    got = got.detach().double()
    want = FeatureSqueezingDetector(model).score(x).double()
    if torch.allclose(got, want, atol=1e-5):
        _ok(f"the squeezing score: L1 between softmax outputs, the larger of the two squeezers (clean median "
            f"{float(want[:8].median()):.3f}, PGD median {float(want[8:].median()):.3f}).")
        return
    with torch.no_grad():
        p = F.softmax(model(x), 1).double()
        z = model(x).double()
        pb, pm = (F.softmax(model(s(x)), 1).double() for s in (BitDepth(1), MedianFilter(2)))
        zb, zm = (model(s(x)).double() for s in (BitDepth(1), MedianFilter(2)))
    l1b, l1m = (p - pb).abs().sum(1), (p - pm).abs().sum(1)
    variants = {
        "you used the L2 distance: Xu et al. use the L1 distance, sum_k |p_k - p'_k| (between 0 and 2)":
            torch.maximum((p - pb).norm(dim=1), (p - pm).norm(dim=1)),
        "you averaged the two squeezers' distances: take the maximum, so that either squeezer alone can raise "
        "the alarm": (l1b + l1m) / 2,
        "you added the two squeezers' distances: take the maximum of the two": l1b + l1m,
        "you used the bit-depth squeezer only: the score is the maximum over both squeezers (bit depth 1 AND the "
        "2x2 median)": l1b,
        "you used the median squeezer only: the score is the maximum over both squeezers (bit depth 1 AND the "
        "2x2 median)": l1m,
        "you compared logits: compare the softmax probabilities (logits can differ by a constant without any "
        "change in the prediction)": torch.maximum((z - zb).abs().sum(1), (z - zm).abs().sum(1)),
    }
    for msg, value in variants.items():
        if torch.allclose(got, value, atol=1e-5):
            raise AssertionError(msg)
    gap = float((got - want).abs().max())
    raise AssertionError(f"your scores differ from the definition's by up to {gap:.3g}: score = max over the two "
                         "squeezers (BitDepth(1), MedianFilter(2)) of sum_k |softmax(model(x))_k - "
                         "softmax(model(squeezed x))_k|")


def check_threshold(threshold_at, threshold: float, detector, x_calibration, x_fit, x_adv, fpr: float = 0.05) -> None:
    """Lesson 13: ``threshold_at(scores, fpr) -> float`` must return a threshold that at most ``floor(fpr * n)``
    of the ``n`` scores exceed, and exactly that many where the scores are distinct (so ``score > threshold``
    flags a fraction ``fpr`` of the calibration images); ``threshold`` must be that rule applied to the detector's
    scores on ``x_calibration``, the held-out clean images, not on the images the detector was fitted on (their
    scores are optimistic) and not on adversarial images (the threshold controls false alarms on clean ones)."""
    scores = torch.arange(1.0, 101.0)[torch.randperm(100, generator=torch.Generator().manual_seed(1))]
    for f, k in ((0.05, 5), (0.1, 10), (0.005, 0)):
        t = threshold_at(scores.clone(), f)
        _require(isinstance(t, (int, float)) or (isinstance(t, torch.Tensor) and t.numel() == 1),
                 f"return one number (the threshold), got {type(t).__name__}")
        flagged = int((scores > float(t)).sum())
        if flagged != k:
            if flagged > 50:
                hint = ("you took the threshold from the low end: alarms are the HIGH scores, so the threshold "
                        "sits near the top, with a fraction fpr of the scores above it")
            elif flagged > k:
                hint = (f"that is {flagged}% of false alarms, more than fpr allows: at most floor(fpr * n) = {k} "
                        "scores may lie above the threshold (an interpolated quantile can land between two "
                        "scores and let one more through; take one of the scores themselves)")
            else:
                hint = (f"that is fewer alarms than fpr allows (floor(fpr * n) = {k}): the threshold is too high, "
                        "and every adversarial image between it and the right one goes undetected")
            raise AssertionError(f"at fpr = {f}, {flagged} of the 100 scores 1..100 lie above your threshold "
                                 f"{float(t):.4g}: {hint}")
    t = float(threshold)
    with torch.no_grad():
        ref = {name: float(threshold_at(detector.score(xs).detach(), fpr))
               for name, xs in (("calibration", x_calibration), ("fit", x_fit), ("adversarial", x_adv))}
    if abs(t - ref["calibration"]) <= 1e-6 * max(1.0, abs(ref["calibration"])):
        _ok(f"the threshold {t:.4g} flags a fraction {fpr} of held-out clean images; on the images the detector "
            f"was fitted on the same rule would give {ref['fit']:.4g}.")
        return
    if abs(t - ref["fit"]) <= 1e-6 * max(1.0, abs(ref["fit"])):
        raise AssertionError("you set the threshold on the images the detector was fitted on: it learnt them, so "
                             "their scores are lower than those of new clean digits, and the threshold ends up too "
                             "low (more false alarms than fpr on new images). Use the held-out calibration images.")
    if abs(t - ref["adversarial"]) <= 1e-6 * max(1.0, abs(ref["adversarial"])):
        raise AssertionError("you set the threshold on adversarial images: the false-positive rate is a rate on "
                             "CLEAN images, so the threshold comes from clean scores the detector never saw; "
                             "the attacks come only afterwards, to measure the detection rate.")
    raise AssertionError(f"your threshold {t:.4g} is not threshold_at(detector.score(x_calibration), {fpr}) = "
                         f"{ref['calibration']:.4g}")


def check_adaptive_loss(fn) -> None:
    """Lesson 13: ``fn(margin, score, threshold, kappa, c) -> (B,)`` must be the loss that an attack which knows
    the detector minimises (Carlini & Wagner, 2017)::

        L = max(margin, -kappa) + c * max(score - threshold, 0)      margin = z_y - max_{k != y} z_k

    It must reward fooling the classifier until it is wrong by ``kappa`` and no further, and push the score
    under the threshold (and not below it). Checked by the gradients on hand-made values, then by 30 steps of
    signed gradient descent with it against a PCA detector on 20 held-out digits (>= 80 % fooled and
    undetected)."""
    margin = torch.tensor([2.0, -1.0, -5.0, -5.0], dtype=torch.float64, requires_grad=True)
    score = torch.tensor([3.0, 3.0, 3.0, 0.5], dtype=torch.float64, requires_grad=True)
    out = fn(margin, score, 1.0, 2.0, 0.5)
    _require(isinstance(out, torch.Tensor) and tuple(out.shape) == (4,),
             f"return one loss per image, a tensor of shape (4,) here, got {getattr(out, 'shape', type(out).__name__)}")
    gm, gs = torch.autograd.grad(out.sum(), (margin, score), allow_unused=True)
    gm = torch.zeros(4, dtype=torch.float64) if gm is None else gm
    gs = torch.zeros(4, dtype=torch.float64) if gs is None else gs
    _require(not bool(gs.abs().sum() == 0), "your loss ignores the detector's score: that is the plain attack, which "
             "the detector catches. Add c * max(score - threshold, 0)")
    _require(float(gs[0]) > 0, "your loss rewards a HIGHER score: the attack minimises the loss, so the detector "
             "term must grow with the score, + c * max(score - threshold, 0)")
    _require(abs(float(gs[0]) - 0.5) < 1e-9, f"d loss / d score is {float(gs[0]):.3g} above the threshold, expected "
             "c = 0.5: weight the detector term by c")
    _require(float(gs[3]) == 0, "below the threshold your loss still pushes the score down: that costs "
             "perturbation for nothing (the detector decides by score > threshold); use the hinge "
             "max(score - threshold, 0)")
    _require(float(gm[0]) > 0, "your loss does not push the margin z_y - max_other z down: the classifier must be "
             "fooled (minimise max(margin, -kappa))")
    _require(float(gm[1]) > 0, "at margin -1 > -kappa = -2 the image is fooled, but only just: keep pushing until "
             "margin <= -kappa, so that the detector's term cannot undo it (max(margin, -kappa))")
    _require(float(gm[2]) == 0, "at margin -5 < -kappa the classifier is wrong by more than kappa, yet your loss "
             "still pushes: clamp it, max(margin, -kappa), so that the rest of the budget goes to the detector")

    from ..attacks._common import margin
    from ..attacks.pgd import project_linf
    from ..data import load_mnist
    from ..defenses import PCADetector

    model = _fresh_model("mnist_cnn")
    xt, _ = load_mnist("train")
    x_all, y_all = load_mnist("test")
    det = PCADetector().fit(xt[:2000]).calibrate(x_all[:500])
    x, y = x_all[1600:1620], y_all[1600:1620]
    eps, x_adv = 0.1, x.clone()
    for _ in range(30):
        xg = x_adv.clone().requires_grad_(True)
        z = model(xg)
        m = margin(z, y)
        loss = fn(m, det.score(xg), det.threshold, 2.0, 1.0)
        (g,) = torch.autograd.grad(loss.sum(), xg)
        x_adv = project_linf(x_adv - 0.01 * g.sign(), x, eps).detach()
    with torch.no_grad():
        ok = (model(x_adv).argmax(1) != y) & ~det.detect(x_adv)
    rate = float(ok.float().mean())
    _require(rate >= 0.8, f"30 signed steps on your loss fool the classifier AND stay under the PCA detector's "
             f"threshold on {rate:.0%} of 20 digits (the reference loss: 100 %)")
    _ok(f"the adaptive loss: the margin clamped at -kappa, the score hinged at the threshold; 30 steps of it fool "
        f"mnist_cnn unseen by the PCA detector on {rate:.0%} of 20 digits.")


#: Multiple-choice questions of lesson 13: key -> (options, correct option, explanation shown on success).
QUESTIONS = {
    "13_baselines": (
        ("a", "b", "c", "d"), "c",
        "The PCA detector flags random sign noise of the same size as often as PGD: what it measures is ink on "
        "pixels that are blank in every training digit, not adversarialness. A detector is informative about "
        "attacks only where it separates them from blind perturbations of the same size, which is why the "
        "baselines stand in the same table."),
    "13_adaptive": (
        ("a", "b", "c", "d"), "b",
        "A detection rate against an attack that ignores the detector only says that this attack leaves a trace. "
        "The attacker who knows the detector adds its score to the loss; what remains of the detector is the "
        "perturbation that attacker needs, which is the number to report."),
}
