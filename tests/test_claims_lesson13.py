"""Claims of lesson 13's prose, checked on its stored outputs (tests/_claims.py): the lesson prints what they
rest on, the test holds the threshold. Issue 12's targets for the detectors are among them."""
from _claims import number, numbers, stored

DETECTORS = ("softmax", "PCA", "detector net", "squeezing")


def _table():
    """{detector: [FPR, then AUC, detection for FGSM, PGD, C&W, noise, shift]} from section 6's table."""
    out = stored("13")
    return {d: numbers(out, rf"^{d} +(0\.\d+ +(?:[\d.]+ / [\d.]+ *){{5}})$") for d in DETECTORS}


def _cell(row, column):
    cols = ["FGSM", "PGD", "C&W", "noise", "shift"]
    i = 1 + 2 * cols.index(column)
    return row[i], row[i + 1]                       # AUC, detection rate


def test_calibration_holds_on_other_clean_digits():
    for d, row in _table().items():
        assert 0.03 <= row[0] <= 0.07, f"{d}: measured FPR {row[0]} is not within 5 % +- 2 points"


def test_detection_targets_of_the_issue():
    t = _table()
    for attack in ("PGD", "C&W"):
        assert _cell(t["squeezing"], attack)[1] >= 0.9, f"feature squeezing detects {attack} at >= 90 %"
    assert _cell(t["detector net"], "PGD")[0] >= 0.95, "the detector network's AUC on its training attack"


def test_the_prose_reading_of_the_table():
    t = _table()
    assert _cell(t["softmax"], "PGD")[0] < 0.5 < _cell(t["softmax"], "C&W")[0], "softmax: fails on PGD, not C&W"
    for d in ("PCA", "detector net"):
        assert _cell(t[d], "C&W")[0] < 0.9 <= _cell(t[d], "PGD")[0], f"{d} weakens on C&W"
        assert min(_cell(t[d], "noise")[1], _cell(t[d], "shift")[1]) >= 0.9, f"{d} flags the blind changes"
    assert min(_cell(t["squeezing"], a)[0] for a in ("FGSM", "PGD", "C&W")) >= 0.95, "squeezing strong everywhere"


def test_pca_works_through_the_blank_border():
    out = stored("13")
    assert number(out, r"blank pixels, median (\S+)") >= 0.5, "most of PGD's PCA score comes from the blank pixels"


def test_every_adaptive_attack_meets_the_target():
    out = stored("13")
    for d in DETECTORS:
        fooled, detected, both = numbers(out, rf"^{d} +(?:linf|l2) +[\d.]+ +([\d.]+ +[\d.]+ +[\d.]+) ")
        assert fooled >= 0.9 and detected <= 0.1 and both >= 0.9, (d, fooled, detected, both)
        plain = numbers(out, rf"^{d} +(?:linf|l2)(?: +\S+){{5}} +(\S+)$")[0]
        if d != "softmax":
            assert plain >= 0.9, f"{d} catches plain PGD ({plain}) but not the adaptive attack"


def test_budgets_as_described():
    out = stored("13")
    plain_l2 = number(out, r"plain PGD \(Linf 0\.1\): median L2 (\S+);")
    cw_l2 = number(out, r"C&W: median L2 (\S+)$")
    net_eps = numbers(out, r"^detector net +l2 +([\d.]+) ")[0]
    sq_eps = numbers(out, r"^squeezing +l2 +([\d.]+) ")[0]
    assert net_eps < plain_l2, "the detector network falls to an L2 budget below plain PGD's L2"
    assert sq_eps >= 1.8 * plain_l2 and sq_eps >= 6 * cw_l2, "squeezing: twice plain PGD's, seven times C&W's"
