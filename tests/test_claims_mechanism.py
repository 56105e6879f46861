"""The claim helpers of tests/_claims.py reject what they must (a missing, ambiguous or non-numeric capture)."""
import pytest
from _claims import number, numbers, stored

OUT = "  FGSM:  0.90 0.55 0.12\n  PGD:  0.90 0.20 0.00\nsteps 2,809\nsteps 2,809\nsteps 3\n"


def test_numbers_read_a_printed_row():
    assert numbers(OUT, r"^ +FGSM: +(.*)$") == [0.90, 0.55, 0.12]


def test_number_reads_thousands_separators_and_requires_one_value():
    assert number("steps 2,809\n", r"steps (\S+)") == 2809
    with pytest.raises(AssertionError, match="one number"):
        number(OUT, r"^ +PGD: +(.*)$")


@pytest.mark.parametrize("regex, msg", [(r"steps (\S+)", "different texts"), (r"nothing (\S+)", "nothing"),
                                        (r"steps \S+", "exactly one group")])
def test_a_bad_capture_is_an_error(regex, msg):
    with pytest.raises(AssertionError, match=msg):
        numbers(OUT, regex)


def test_stored_reads_a_lesson_and_refuses_an_unknown_one():
    assert "accuracy" in stored("00")
    with pytest.raises(AssertionError, match="no single lesson"):
        stored("99")


def test_numbers_read_signs_and_exponents():
    assert numbers("gap 0.0e+00, shift +1.53 and -3.65; 1.5E-07\n", r"gap (.*)$") == [0.0, 1.53, -3.65, 1.5e-07]
    assert numbers("accuracy 0.983.\n", r"accuracy (.*)$") == [0.983]
