"""Claims of lesson 02's prose, checked on its stored outputs (see tests/_claims.py)."""
from _claims import number, numbers, stored

OUT = stored("02")


def test_deeper_layers_hold_more_of_the_answer():
    # section 1: "growing abstraction": the probe accuracy rises from relu1 to relu5, far above relu1 at the end
    acc = [number(OUT, rf"relu{i}: +\d+ channel means -> (\S+)") for i in range(1, 6)]
    assert acc[-1] > acc[0] + 0.2 and acc == sorted(acc)


def test_both_goldfish_images_reach_their_goal_and_only_the_regularised_one_survives_enlarging():
    # section 2: both the naive and the fully regularised image reach p(goldfish) > 0.9 as optimised; only the
    # regularised one keeps it at 224 x 224
    naive = numbers(OUT, r"^pixels, no transformations +(.*)$")
    full = numbers(OUT, r"^Fourier \+ colour \+ jitter/scale/rotate +(.*)$")
    assert naive[0] > 0.9 and full[0] > 0.9
    assert full[2] > naive[2] + 0.3


def test_jitter_trades_the_optimised_alignment_for_every_other():
    # exercise 3's follow-up: without jitter higher as optimised, lower on average over the 25 shifts
    with_j = numbers(OUT, r"^with jitter +activation as optimised (.*)$")
    without = numbers(OUT, r"^without +activation as optimised (.*)$")
    assert without[0] > with_j[0] and without[-2] < with_j[-2] and without[-1] < with_j[-1]
