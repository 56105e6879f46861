"""Claims of lesson 14's prose, checked on its stored outputs (tests/_claims.py): the lesson prints what they rest
on, the test holds the threshold. Issue 13's ordering (PGD >= exact >= CROWN >= IBP) and its targets for the
shipped models are among them."""
import pytest
from _claims import number, numbers, stored, text

SANDWICH = ("PGD \\(upper bound\\)", "exact \\(MILP\\)", "CROWN", "IBP")


def _sandwich():
    out = stored("14")
    rows = {k: numbers(out, rf"^{k} +((?:[\d.]+ *)+)$") for k in SANDWICH}
    rows["eps"] = numbers(out, r"^eps +((?:0\.\d+ *)+)$")
    rows["timeouts"] = numbers(out, r"^MILP timeouts +((?:\d+ *)+)$")
    return rows


def test_the_sandwich_holds_at_every_eps():
    r = _sandwich()
    for i, eps in enumerate(r["eps"]):
        pgd, exact, crown, ibp = (r[k][i] for k in SANDWICH)
        assert pgd >= exact >= crown >= ibp, (eps, pgd, exact, crown, ibp)


def test_the_prose_reading_of_the_sandwich():
    r = _sandwich()
    pgd, exact, crown, ibp = (r[k] for k in SANDWICH)
    no_timeout = [i for i, t in enumerate(r["timeouts"]) if t == 0]
    assert no_timeout and all(pgd[i] - exact[i] <= 0.1 for i in no_timeout), "PGD close to the exact answer"
    assert all(exact[i] - crown[i] <= 0.1 for i in no_timeout), "CROWN close below it"
    assert all(v <= 0.15 for v, e in zip(ibp, r["eps"], strict=True) if e >= 0.02), "IBP: almost nothing beyond 0.01"
    assert r["timeouts"][-1] > 0 and max(pgd[i] - crown[i] for i in range(len(pgd))) >= 0.1, "gaps at large eps"


def test_ibp_boxes_grow_faster_than_crown_and_less_on_the_ibp_trained_network():
    out = stored("14")
    nets = ("mnist_mlp", "mnist_ibp")
    mlp_crown, ibp_crown = (number(out, rf"^{m}: at the logits IBP / CROWN = ([\d.]+)x") for m in nets)
    mlp_seen, ibp_seen = (number(out, rf"^{m}: .*IBP / reached = ([\d.]+)x$") for m in nets)
    assert mlp_crown > 2 and mlp_crown > ibp_crown and mlp_seen > ibp_seen


def test_margins_are_tighter_and_crown_tighter_than_ibp():
    out = stored("14")
    naive, margin = numbers(out, r"^eps = 0\.01: (certified by subtracting logit intervals \S+ by IBP margin "
                                 r"bounds \S+)$")
    assert margin > naive
    for eps in ("0.01", "0.05"):
        w_ibp, w_crown, c_ibp, c_crown = numbers(out, rf"^eps = {eps}: (mean logit interval width.*)$")
        assert w_crown < w_ibp and c_crown >= c_ibp


def test_the_counterexample_is_real():
    out = stored("14")
    label, pred, dist, eps = numbers(out, r"^digit \d+: (label \d+, prediction on the counterexample \d+, "
                                          r"max \|x' - x\| = \S+ <= eps = \S+)$")
    assert label != pred and dist <= eps + 1e-6


def _cert_table():
    out = stored("14")
    eps = numbers(out, r"^ +eps +((?:\d\.\d+ *)+)$")
    rows = {}
    for name in ("mnist_cnn", "mnist_pgd", "mnist_ibp", "mnist_ibp_03"):
        rows[name] = {m: dict(zip(eps, numbers(out, rf"^{name} +{m} +((?:[\d.]+ *)+)$"), strict=True))
                      for m in ("IBP", "PGD")}
    return rows, number(out, r"^constant classifier \(certified at every eps\): (\S+)$")


def test_certified_training_reading_of_the_table():
    t, constant = _cert_table()
    line = numbers(stored("14"), r"^clean accuracy on the 2,000 held-out digits: (.*)$")
    clean = dict(zip(("mnist_cnn", "mnist_pgd", "mnist_ibp", "mnist_ibp_03"), line, strict=True))
    assert t["mnist_cnn"]["IBP"][0.05] <= 0.05 < t["mnist_cnn"]["PGD"][0.05], "mnist_cnn: PGD leaves some, IBP none"
    assert t["mnist_pgd"]["PGD"][0.1] >= 0.8 and t["mnist_pgd"]["IBP"][0.1] <= 0.1, "robust but not provably"
    assert t["mnist_ibp"]["IBP"][0.1] >= 0.9 and t["mnist_ibp_03"]["IBP"][0.3] >= 0.75
    for name, eps in (("mnist_ibp", 0.1), ("mnist_ibp_03", 0.3)):
        assert t[name]["PGD"][eps] >= t[name]["IBP"][eps]                      # upper >= lower, on the same digits
        assert t[name]["PGD"][eps] - t[name]["IBP"][eps] <= 0.08, f"{name}: bound close to the truth"
        assert clean[name] < clean["mnist_cnn"] - 0.01, f"{name}: the price in clean accuracy"
    assert t["mnist_ibp"]["IBP"][0.4] < t["mnist_ibp"]["IBP"][0.1], "no robustness beyond the trained budget"
    assert 0.08 <= constant <= 0.14


def test_smoothing_live_run_and_the_students_radii():
    out = stored("14")
    assert text(out, r"certified digits; same radii as smoothed_certify: (\S+)$") == "True"
    certified = number(out, r"^20 digits, n = 2,000: correct and certified (\d+),")
    assert certified >= 17


@pytest.mark.parametrize("name, sigma, radius, target", [("mnist_noise_025", "0.25", "0.5", 0.95),
                                                         ("mnist_noise_050", "0.5", "1.0", 0.85)])
def test_smoothing_targets_of_the_issue_and_the_baseline(name, sigma, radius, target):
    out = stored("14")
    got = number(out, rf"^{name} +sigma {sigma} +digits +500 .*\br = {radius}: ([\d.]+)")
    assert got >= target
    base = number(out, r"^mnist_cnn +sigma 0\.25 +digits +100 .*\br = 0\.5: ([\d.]+)")
    noise = number(out, r"^mnist_noise_025 +sigma 0\.25 +digits +500 .*\br = 0\.5: ([\d.]+)")
    assert base < noise - 0.2, "the model trained without noise gets far less from smoothing"
