"""Claims that lesson 06's prose makes about its results, checked on the outputs stored in the notebook
(tests/_claims.py): the measured table of section 3 and the contrastive wrapper of section 4. These tests replace
the asserts that used to sit in its teaching cells."""
import pytest
from _claims import _captured, numbers, stored

METHODS = ["saliency", "SmoothGrad", "Integrated Gradients", "Grad-CAM", "occlusion", "KernelSHAP", "LIME"]
COLUMNS = ["deletion", "insertion", "max-sensitivity", "sanity", "selectivity", "consistency", "ms/image"]


def row(name: str) -> dict:
    """One row of the table of section 3 (seven numbers after the method's name), as {column: value}."""
    values = numbers(stored("06"), rf"^{name}((?: +-?[\d.]+){{7}})$")
    assert len(values) == 7, f"the table of section 3 must print 7 numbers for {name}"
    return dict(zip(COLUMNS, values, strict=True))


@pytest.mark.parametrize("name", METHODS)
def test_every_method_beats_the_random_map_at_deletion(name):
    assert row(name)["deletion"] < row("random map")["deletion"], \
        f"section 3 reads every method against the random map; {name} must delete better than random noise"


def test_the_edge_map_fails_and_the_random_map_passes_the_sanity_check():
    assert row("Sobel edges")["sanity"] > 0.99, "section 3 says the edge detector fails the sanity check (1.000)"
    assert abs(row("random map")["sanity"]) < 0.2, "section 3 says the random map passes it (about 0)"


def test_saliency_is_cheaper_than_kernelshap():
    assert row("saliency")["ms/image"] < row("KernelSHAP")["ms/image"], \
        "section 3 says KernelSHAP and LIME are the most expensive rows, whatever the machine"


def test_the_contrastive_wrapper_equals_the_difference_of_two_ig_maps():
    gap = float(_captured(stored("06"), r"^wrapper vs IG\(4\) - IG\(9\): max difference (\S+)$"))
    assert gap < 1e-4, "section 4 says the wrapper model and IG(4) - IG(9) agree to rounding"
