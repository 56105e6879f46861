"""Claims of lesson 11's prose, checked on its stored outputs (tests/_claims.py): the lesson prints what they
rest on, the test holds the threshold."""
from _claims import number, numbers, stored

DEFENSES = {"bit depth": r"bit depth \(3 bits\)", "JPEG": r"JPEG \(quality 50\)",
            "random resize": r"random resize \+ pad", "distillation": r"distillation \(T=100\)"}


def _row(name_regex):
    return numbers(stored("11"), rf"^ +{name_regex} +([\d.]+ +[\d.]+ +[\d.]+)$")  # clean, best blind, PGD-40


def test_every_defense_keeps_its_clean_accuracy_and_three_look_strong_against_pgd():
    undefended = _row("undefended")
    assert undefended[2] <= 0.05, f"undefended PGD-40 accuracy {undefended[2]}: PGD leaves almost nothing"
    for name, regex in DEFENSES.items():
        clean, _, pgd = _row(regex)
        assert clean >= 0.95, f"{name}: clean accuracy {clean}; the lesson says the defenses cost almost nothing clean"
        if name != "random resize":
            assert pgd >= 0.8, f"{name}: PGD-40 leaves {pgd}; section 1 says three defenses look like a great success"


def test_a_blind_shift_beats_pgd_on_the_distilled_model_only():
    _, blind, pgd = _row(DEFENSES["distillation"])
    assert blind < pgd - 0.5, f"distilled: best blind {blind} vs PGD {pgd}: a blind shift does far better"
    for name in ("bit depth", "JPEG", "random resize"):
        _, blind, _ = _row(DEFENSES[name])
        assert blind >= 0.45, f"{name}: best blind {blind}"


def test_gradients_are_zero_for_shattered_and_vanishing_and_random_for_resizing():
    out = stored("11")
    for name in ("bit depth", "JPEG"):
        assert numbers(out, rf"^ +{DEFENSES[name]}: +(\S+) +\S+ +\S+$") == [1.0], f"{name}: every gradient is 0"
    assert number(out, rf"^ +{DEFENSES['distillation']}: +(\S+) +\S+ +\S+$") >= 0.9, "distilled: 'zero on most digits'"
    zero, _, cos = numbers(out, rf"^ +{DEFENSES['random resize']}: +(\S+ +\S+ +\S+)$")
    assert zero == 0 and cos < 0.7, f"random resize: zero share {zero}, cosine {cos}: 'two calls disagree'"
    assert number(out, r"^ +undefended: +\S+ +\S+ +(\S+)$") == 1.0


def test_the_checklist_is_quiet_on_the_undefended_model_and_flags_every_defense():
    out = stored("11")
    assert number(out, r"^ +undefended: (\d+) of 7 checks flagged") == 0
    for name, regex in DEFENSES.items():
        assert number(out, rf"^ +{regex}: (\d+) of 7 checks flagged") >= 1, f"{name} raised no flag"


def test_adaptive_attacks_bring_three_defenses_down_to_the_undefended_level():
    out = stored("11")
    for name in ("bit depth", "JPEG", "distillation"):
        plain, adaptive = numbers(out, rf"^ +{DEFENSES[name]} +(\S+ +\S+) +\(")
        assert adaptive <= 0.12 and plain - adaptive >= 0.7, f"{name}: plain {plain}, adaptive {adaptive}"
    plain, adaptive = numbers(out, rf"^ +{DEFENSES['random resize']} +(\S+ +\S+) +\(")
    assert adaptive < plain, f"random resize: EOT {adaptive} must be below plain PGD {plain}"


def test_binarisation_is_real_but_narrow():
    out = stored("11")
    undefended = number(out, r"PGD-50: +undefended (\S+),")
    bpda = number(out, r"BPDA-PGD (\S+)$")
    ensemble = number(out, r"^robust accuracy (\S+) \(")
    wider = number(out, r"BPDA-PGD-50 leaves (\S+)$")
    assert undefended <= 0.02 and ensemble >= 0.3, (undefended, ensemble)
    assert ensemble < bpda, "section 5: the ensemble finds more than BPDA-PGD (Square beats the identity's gradient)"
    assert wider <= bpda - 0.15, f"BPDA-PGD at eps 0.4 {wider} vs {bpda} at 0.3: the same attack does much better"
    assert "black box beats white box          RED" in out.split("pixels within 0.3")[1], (
        "section 5 says the checklist on the BPDA version flags the black-box row")
