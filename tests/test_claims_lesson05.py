"""Claims that lesson 05's prose makes about its results, checked on the outputs stored in the notebook
(tests/_claims.py). The lesson prints what each claim rests on; these tests replace the asserts that used to sit
in its teaching cells."""
from _claims import _captured, number, numbers, stored


def sci(text: str, regex: str) -> float:
    """The one number in scientific or plain notation (e.g. 1.18e-14) that the single group of regex captures."""
    return float(_captured(text, regex))


def test_the_four_axioms_hold_on_the_toy_game():
    out = stored("05")
    assert sci(out, r"^efficiency: .*gap (\S+)$") < 1e-9, \
        "section 1 says efficiency holds to the last digit on the toy game: sum of phi = v(N) - v(empty)"
    assert sci(out, r"^symmetry: .*gap (\S+)$") < 1e-9, "section 1: the interchangeable b and c get equal values"
    assert number(out, r"^dummy: +phi_d = (\S+)$") == 0, "section 1: the dummy d gets exactly 0"
    assert sci(out, r"^additivity: +max \|phi\(v \+ w\) - phi\(v\) - phi\(w\)\| = (\S+)$") < 1e-9, \
        "section 1: the values of v + w are the sums of the values of v and of w"


def test_efficiency_holds_on_the_digit():
    out = stored("05")
    total, gain = numbers(out, r"^efficiency: sum of phi = (\S+ = v\(N\) - v\(empty\) = \S+)$")
    assert abs(total - gain) < 1e-5, "section 2 says the 12 exact values of the 4 share exactly v(N) - v(empty)"


def test_patches_without_ink_are_exact_dummies():
    out = stored("05")
    players = numbers(out, r"^players without ink \(black = the baseline\): (.*)$")
    values = numbers(out, r"^their Shapley values: (.*)$")
    assert players and len(values) == len(players), "section 2 lists the patches without ink and their values"
    assert all(v == 0 for v in values), "section 2 says dummy holds exactly: the patches without ink get exactly 0"


def test_additivity_holds_on_the_image():
    out = stored("05")
    gap = sci(out, r"^additivity: max \|phi\(f_4 - f_9\) - \(phi\(f_4\) - phi\(f_9\)\)\| = (\S+)$")
    assert gap < 1e-9, "section 2 says additivity holds to rounding for the game f_4 - f_9"


def test_estimators_keep_efficiency_and_the_budget():
    out = stored("05")
    assert sci(out, r"^largest efficiency gap over all \d+ estimates: (\S+);") < 1e-6, \
        "section 3 says both estimators keep efficiency to rounding error in all 350 estimates"
    assert number(out, r"estimates over budget: (\d+)$") == 0, "section 3 says no estimate exceeds its budget"


def test_the_students_weighted_fit_is_limes():
    out = stored("05")
    assert sci(out, r"^your fit vs lime: largest coefficient difference (\S+),") < 1e-8, \
        "exercise 3 says the weighted fit of the solution reproduces lime to rounding"
    a, b = numbers(out, r"^your fit vs lime: .*intercepts (\S+ and \S+)$")
    assert a == b, "exercise 3: the same intercept as lime"
