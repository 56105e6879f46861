"""Claims of lesson 09's prose, checked on its stored outputs (tests/_claims.py): the lesson prints what they
rest on, the test holds the threshold."""
from _claims import number, numbers, stored


def test_every_attacked_digit_is_classified_correctly_before_the_attack():
    got = number(stored("09"), r"mnist_cnn classifies (\d+) of 10 correctly")
    assert got == 10, (f"mnist_cnn classifies only {got:.0f} of the 10 digits correctly: the prose of section 0 "
                       "('every success below is a real change of decision') needs all ten")


def test_zoo_step_sits_near_the_bottom_of_the_error_valley():
    out = stored("09")
    sym = number(out, r"at ZOO's h = 1e-4: symmetric (\S+),")
    fwd = number(out, r"one-sided (\S+)$")
    assert sym < fwd and sym < 0.1, (f"symmetric {sym}, one-sided {fwd} at h = 1e-4: section 2's prose says the "
                                     "symmetric difference is a few percent off and better than the one-sided one")


def test_random_signs_at_eps_0_05_fool_few_digits_but_square_fools_most():
    out = stored("09")
    rate = number(out, r"eps = 0.05: +random signs fool (\S+) of")
    fooled = number(out, r"Square fools (\d+) of 10 \(queries")
    assert rate <= 30 and fooled >= 8, (f"random signs {rate}%, Square {fooled} of 10 at eps = 0.05: section 4 and "
                                        "the pitfalls contrast a weak blind baseline with a strong attack")


def test_label_only_attacks_end_close_to_white_box_cw():
    out = stored("09")
    ratio = numbers(out, r"^Boundary .*final / C&W's: (\S+)\)")
    assert ratio[0] < 1.5, f"Boundary ends at {ratio[0]} x C&W's median: section 6 says 'approach white-box C&W'"
