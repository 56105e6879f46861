"""Claims lesson 07's prose makes about its results, checked on the outputs stored in the notebook (see _claims.py).
The lesson's cells print what each claim rests on; `make outputs` (or scripts/run_lessons.py) rewrites them."""
from _claims import number, numbers, stored, text


def _captured(regex: str) -> str:
    return text(stored("07"), regex)


def test_pgd_with_one_step_of_size_eps_is_fgsm():
    assert _captured(r"^PGD with one step of size eps and no random start equals FGSM: (\w+)$") == "True", (
        "section 2 says 'PGD with a single step of size alpha = eps and no random start IS FGSM'")


def test_loss_rises_faster_along_the_fgsm_direction_than_along_random_signs():
    out = stored("07")
    for digit in (3, 7):
        line = rf"^digit {digit}: loss at t = 0: \S+;   t = 0\.1: sign\(grad\) (\S+), random signs"
        rnd = rf"^digit {digit}: .*t = 0\.1: sign\(grad\) \S+, random signs (\S+);"
        assert number(out, line) > 5 * number(out, rnd), (
            "section 2's loss slices: at t = eps = 0.1 the loss along sign(grad) is far above the loss along random "
            f"signs (digit {digit})")


def test_pgd_is_below_fgsm_at_every_eps():
    out = stored("07")
    for name in ("digits", "fashion"):
        fgsm = numbers(out, rf"^{name} +eps:.*\n +FGSM: +(.*)$")
        pgd = numbers(out, rf"^{name} +eps:.*\n(?:.*\n){{1}} +PGD: +(.*)$")
        assert len(fgsm) == len(pgd) > 3
        assert all(p <= f + 0.02 for f, p in zip(fgsm, pgd, strict=True)), (
            f"section 5 says 'PGD is below FGSM everywhere' ({name}: FGSM {fgsm}, PGD {pgd}; 2 points of slack for "
            "the random start)")


def test_targeted_pgd_turns_the_cat_into_a_toaster():
    assert _captured(r"^top class after the attack: (.+)$") == "toaster", (
        "section 6 says targeted PGD at eps = 4/255 moves imagenet_lite0 from 'Egyptian cat' to 'toaster'")


def test_twenty_student_pgd_steps_are_course_lib_pgd():
    out = stored("07")
    mine = number(out, r"^20 steps of my_pgd_step: accuracy (\S+);")
    lib = number(out, r"^20 steps of my_pgd_step: .*course_lib's pgd: (\S+);")
    diff = number(out, r"largest pixel difference (\S+)$")
    assert mine == lib and diff < 1e-4, (
        "after Exercise 2 the prose says twenty of the student's steps give what pgd(random_start=False, "
        "keep_best=False) returns")
