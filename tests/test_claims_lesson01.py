"""Claims of lesson 01's prose, checked on its stored outputs (see tests/_claims.py)."""
from _claims import number, numbers, stored

OUT = stored("01")


def test_the_linear_model_is_good_but_worse_than_the_cnn():
    # section 3: "the usual price of transparency": a usable linear model that errs several times as often
    linear = number(OUT, r"linear softmax classifier \([\d,]+ parameters\): (\S+)")
    cnn = number(OUT, r"mnist_cnn +\([\d,]+ parameters\): (\S+)")
    assert 0.85 < linear < cnn


def test_linear_saliency_is_global_and_the_cnns_is_local():
    # section 4: the linear model's map is |w_3| for every image, the CNN's maps differ from image to image
    assert number(OUT, r"differences? between the linear model's three maps and \|w_3\|: (\S+)") < 1e-5
    assert number(OUT, r"^  linear model: (\S+)") > 0.999
    assert number(OUT, r"^  mnist_cnn: +(\S+)") < 0.9


def test_completeness_holds_for_the_contrast():
    # section 5: the contrastive IG sums to Delta(x) - Delta(black) up to the quadrature error
    assert number(OUT, r"largest completeness gap of the contrast: (\S+)") < 0.3


def test_the_counted_passes_match_the_formulas():
    # section 6: exact Shapley values over 9 players need 2^9 passes, saliency one
    assert numbers(OUT, r"^Shapley exact, n=9 +2\^9 = 512 +(\d+)$")[0] >= 512
    assert numbers(OUT, r"^saliency +1 +(\d+)$")[0] <= 2


def test_general_and_abnormal_parts_add_up_and_the_abnormal_part_decides():
    # section 7: the general part argues for the true class, the abnormal part tips the decision
    general = number(OUT, r"general part (\S+) \(bias included\)")
    abnormal = number(OUT, r"abnormal part (\S+), sum")
    total = number(OUT, r"abnormal part \S+, sum (\S+) = f_")
    logit_gap = number(OUT, r"abnormal part .* = f_\d - f_\d = (\S+)$")
    assert general < 0 < abnormal
    assert abs(total - logit_gap) < 0.02


def test_the_exact_worst_case_is_far_below_random_signs():
    # section 8: at eps = 0.1 the exact worst case wins on most digits, random signs of the same size rarely
    worst = numbers(OUT, r"^exact worst-case accuracy: (.*)$")
    blind = numbers(OUT, r"^random signs of size eps: (.*)$")
    assert worst == sorted(worst, reverse=True) and worst[3] < 0.2 and blind[3] > 0.6
