"""Claims of lesson 12's prose, checked on its stored outputs (tests/_claims.py): the lesson prints what they
rest on, the test holds the threshold."""
from _claims import number, numbers, stored


def _curve(name):
    return numbers(stored("12"), rf"^ *{name}: +(0\.0: .*)$")[1::2]  # the accuracies, eps 0 .. 0.4


def test_the_robust_model_holds_to_its_budget_and_collapses_beyond():
    std, rob = _curve("standard: PGD-40"), _curve(r"robust \(eps 0\.3\): PGD-40")
    std_blind = _curve("standard: best blind")
    assert std[1] <= 0.05 and std[1] < std_blind[1], f"standard PGD curve {std}, blind {std_blind}"
    assert rob[3] >= 0.75 and rob[4] <= 0.1, f"robust PGD curve {rob}: 'keeps most at 0.3, collapses at 0.4'"


def test_the_ensemble_finds_more_than_pgd40():
    out = stored("12")
    pgd40 = number(out, r"on the 50 digits: PGD-40 (\S+),")
    ensemble = number(out, r"ensemble (\S+)$")
    assert ensemble < pgd40, f"section 3 says the ensemble broke digits PGD-40 left alone: {pgd40} vs {ensemble}"


def test_unseen_perturbations_as_described():
    out = stored("12")
    std = numbers(out, r"^ +standard +((?:[\d.]+ +){6}[\d.]+)$")
    rob = numbers(out, r"^ +robust \(eps 0\.3\) +((?:[\d.]+ +){6}[\d.]+)$")
    # clean, L2 PGD eps 2, L2 blind eps 2, brightness +0.4, rotation 30, patch success, noise patch success
    assert rob[1] > std[1] + 0.5, "L2 at eps 2: the robust model resists, the standard one does not"
    assert std[1] < std[2] and rob[1] <= rob[2], "the L2 attack does at least as well as the blind L2 baseline"
    assert rob[3] < std[3] - 0.3, "brightness +0.4: the robust model loses far more than the standard one"
    assert abs(rob[4] - std[4]) < 0.1, "rotation: both lose a little"
    assert rob[6] < rob[5] < std[5] and std[5] >= 3 * std[6], (
        "the patch works less often on the robust model but beats a noise patch on both")


def test_distillation_falls_to_cw():
    out = stored("12")
    pgd_acc, success, _ = numbers(out, r"^ +mnist_distilled +((?:[\d.]+ +){2}[\d.]+)$")
    assert pgd_acc >= 0.8 and success == 1.0, (pgd_acc, success)


def test_the_checklist_is_quiet_on_the_robust_model_and_not_on_the_distilled_one():
    out = stored("12")
    robust_part = out.split("mnist_pgd, eps 0.3:")[1].split("mnist_distilled, eps 0.1:")[0]
    distilled_part = out.split("mnist_distilled, eps 0.1:")[1]
    assert "RED" not in robust_part, robust_part
    assert distilled_part.count("RED") >= 2, distilled_part
