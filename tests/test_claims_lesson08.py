"""Claims lesson 08's prose makes about its results, checked on the outputs stored in the notebook (see _claims.py).
The lesson's cells print what each claim rests on; `make outputs` (or scripts/run_lessons.py) rewrites them."""
import re

from _claims import number, numbers, stored, text


def _captured(regex: str) -> str:
    return text(stored("08"), regex)


def test_both_models_classify_all_20_digits_correctly():
    out = stored("08")
    assert number(out, r"^classified correctly: mnist_cnn_aug (\d+) of 20") == 20
    assert number(out, r"^classified correctly: .*mnist_cnn_aug_b (\d+) of 20") == 20, (
        "the lesson says 'Both models classify all 20 correctly, so every success below is a real change of decision'")


def test_the_fast_configuration_fools_every_digit():
    assert number(stored("08"), r"^success (\S+);  L2: median") == 100, (
        "section 1 says 'Every digit is fooled' by the lesson's fast C&W configuration")


def test_pixels_that_start_at_0_move():
    assert number(stored("08"), r"of the 20 digits' pixels at 0, (\S+) moved") > 10, (
        "section 3 says pixels at exactly 0 can move (the shrunk atanh start): more than 10 % of them did")


C_VALUES = ["0.05", "0.20", "1.00", "5.00", "25.00"]


def test_a_larger_fixed_c_fools_more_digits_at_a_larger_distance():
    out = stored("08")
    success = [number(out, rf"^c = +{re.escape(c)}: success +(\S+), median") for c in C_VALUES]
    median = [number(out, rf"^c = +{re.escape(c)}: success +\S+, median L2 of the successes (\S+)$")
              for c in C_VALUES]
    assert success[0] < 50 and success[-1] == 100, f"section 4: success per c {success}"
    assert all(a < b for a, b in zip(median[:-1], median[1:], strict=True)), (
        f"section 4 says 'Success climbs with c, and so does the distance': medians {median}")


def test_pgd_is_at_least_as_successful_as_cw_at_equal_l2():
    out = stored("08")
    rows = [numbers(out, rf"^ +{b} +(\d+% +\d+%.*)$") for b in ("0.25", "0.50", "0.75", "1.00", "1.50")]
    assert all(r[0] >= r[1] for r in rows), (
        f"section 5 says L2-PGD is at least as successful as C&W at every budget (PGD, C&W: {[r[:2] for r in rows]})")


def test_kappa_buys_transfer_at_the_price_of_distance():
    out = stored("08")
    rows = {k: numbers(out, rf"^ +{k} +(\d+% +\d+\.\d+ +\d+%.*)$") for k in (0, 5, 10, 20)}
    medians = [rows[k][1] for k in (0, 5, 10, 20)]
    assert all(a < b for a, b in zip(medians[:-1], medians[1:], strict=True)), (
        f"section 6: the median L2 grows with kappa {medians}")
    assert rows[20][2] >= rows[0][2] + 30, (
        "section 6 says kappa = 20 transfers far better than kappa = 0 "
        f"({rows[0][2]} % -> {rows[20][2]} %)")


def test_a_short_search_fails_on_most_digits_without_blank_images():
    out = stored("08")
    assert number(out, r"^2 search steps from c = 0\.01: success (\S+),") < 50
    assert _captured(r"^a failure came back as a blank image: (\w+)$") == "False", (
        "the pitfalls say the short search fails on most digits and its failures come back as images near x, "
        "not blank")
