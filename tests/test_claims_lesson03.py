"""Claims of lesson 03's prose, checked on the outputs stored in the notebook (see tests/_claims.py)."""
from _claims import number, numbers, stored


def test_taylor_prediction_is_exact_in_the_linear_region_and_off_beyond():
    out = stored("03")
    tiny = number(out, r"^ +1\.0e-07 +\S+ +\S+ +(\S+)$")
    at_001 = number(out, r"^ +1\.0e-02 +\S+ +\S+ +(\S+)$")
    largest = number(out, r"^ +3\.2e-01 +\S+ +\S+ +(\S+)$")
    assert tiny < 1e-6, "section 1 says the linear prediction is exact (float64 rounding) for the smallest steps"
    assert at_001 > 0.1 and largest > 1, (
        "section 1 says the Taylor error is a sizeable share of the prediction at eps = 0.01 and exceeds it at 0.32")


def test_ig_completeness_gap_at_50_steps_is_small():
    out = stored("03")
    median = number(out, r"relative completeness gap at 50 steps: median (\S+),")
    worst = number(out, r"relative completeness gap at 50 steps: .*, worst (\S+)$")
    assert median < 2 and worst < 10, (
        "'Completeness, checked' and the summary say the 50-step gap is small (median below 2 %, worst below 10 %)")


def test_saliency_passes_the_randomization_check():
    out = stored("03")
    after_fc, all_random = numbers(out, r"^saliency +after fc: (\S+ +all layers random: \S+)$")
    assert all_random < 0.5 and after_fc < 0.5, (
        "section 6 says saliency passes: its rank correlation falls far below 1 once the layers are randomised")


def test_input_and_edge_detector_stay_at_one_by_construction():
    out = stored("03")
    for name in ["input itself", "Sobel edges"]:
        low = number(out, rf"^{name}: smallest correlation over all steps and digits (\S+)$")
        assert low > 0.999, f"section 6 says the {name} 'explanation' is identical for every randomised model"


def test_ig_depends_on_the_model_on_the_ink_pixels():
    out = stored("03")
    all_pixels = numbers(out, r"^IG, all pixels: +\[(.*)\]$")
    ink = numbers(out, r"^IG, ink pixels: +\[(.*)\]$")
    assert min(all_pixels) > 0.9 and max(ink) < 0.7, (
        "section 6 says IG keeps ~1 on all pixels (shared zeros) but drops on the ink pixels")
