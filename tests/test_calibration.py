"""course_lib.training.calibration against hand-computed bins and ECE; plot_reliability draws those bins."""
import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib.plot import plot_reliability  # noqa: E402
from course_lib.training import calibration  # noqa: E402


def probs_with_confidence(conf, pred, k=4):
    """Rows whose largest probability is ``conf`` at class ``pred``, the rest spread evenly."""
    rows = torch.full((len(conf), k), 0.0, dtype=torch.float64)
    for i, (c, p) in enumerate(zip(conf, pred, strict=True)):
        rows[i] = (1 - c) / (k - 1)
        rows[i, p] = c
    return rows


def test_bins_and_ece_by_hand():
    # confidences 0.95, 0.92 (bin (0.9, 1]), 0.55, 0.6 (bins (0.5, 0.6]); 0.75 (bin (0.7, 0.8])
    conf = [0.95, 0.92, 0.55, 0.6, 0.75]
    pred = [0, 1, 2, 3, 0]
    y = torch.tensor([0, 0, 2, 0, 0])          # right, wrong, right, wrong, right
    before = probs_with_confidence(conf, pred)
    p = before.clone()
    cal = calibration(p, y, n_bins=10)
    assert torch.equal(p, before)
    assert cal["count"].tolist() == [0, 0, 0, 0, 0, 2, 0, 1, 0, 2]
    assert cal["confidence"][9].item() == pytest.approx(0.935) and cal["accuracy"][9].item() == pytest.approx(0.5)
    assert cal["confidence"][5].item() == pytest.approx(0.575) and cal["accuracy"][5].item() == pytest.approx(0.5)
    assert cal["accuracy"][7].item() == 1.0 and torch.isnan(cal["accuracy"][0])
    # ECE = 2/5 |0.5 - 0.935| + 2/5 |0.5 - 0.575| + 1/5 |1 - 0.75|
    assert cal["ece"] == pytest.approx(0.4 * 0.435 + 0.4 * 0.075 + 0.2 * 0.25)
    assert cal["mean_confidence"] == pytest.approx(sum(conf) / 5) and cal["overall_accuracy"] == pytest.approx(0.6)


def test_a_calibrated_predictor_has_ece_near_zero():
    gen = torch.Generator().manual_seed(0)
    conf = 0.5 + 0.5 * torch.rand(20000, generator=gen, dtype=torch.float64)
    right = torch.rand(20000, generator=gen, dtype=torch.float64) < conf   # right with probability = confidence
    p = torch.stack([conf, 1 - conf], 1)
    y = torch.where(right, 0, 1)
    assert calibration(p, y, n_bins=10)["ece"] < 0.02
    y_wrong = torch.ones(20000, dtype=torch.long)                           # always wrong: ECE = mean confidence
    assert calibration(p, y_wrong)["ece"] == pytest.approx(float(conf.mean()))


@pytest.mark.parametrize("probs, match", [(torch.ones(3, 2), "sum to 1"), (torch.ones(3), r"\(N, K\)"),
                                          (-torch.eye(3)[:, :2] + torch.tensor([1.0, 0.0]), "non-negative")])
def test_bad_probabilities_are_refused(probs, match):
    with pytest.raises(ValueError, match=match):
        calibration(probs, torch.zeros(len(probs), dtype=torch.long))


def test_plot_reliability_draws_one_bar_per_filled_bin():
    p = probs_with_confidence([0.95, 0.92, 0.55], [0, 1, 2])
    cal = calibration(p, torch.tensor([0, 0, 2]))
    ax = plot_reliability(cal, label="toy")
    heights = sorted(round(b.get_height(), 6) for b in ax.patches)
    assert heights == [0.5, 1.0]
    assert any("ECE" in text for text in ax.get_legend_handles_labels()[1])
