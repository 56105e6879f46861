"""defenses.masking_diagnostics: quiet on an undefended model (a checklist that cries wolf teaches the wrong
thing), red on every masking demo: the rows that must fire for each kind of masking fire."""
import pytest

from course_lib.defenses import BPDA, JPEG, BitDepth, Defended, RandomResizePad, masking_diagnostics


@pytest.fixture(scope="module")
def digits(mnist_test):
    return mnist_test[0][:48], mnist_test[1][:48]


@pytest.fixture(scope="module")
def aug():
    from course_lib.models import load_model

    return load_model("mnist_cnn_aug")


def red(report):
    return {row[0] for row in report.rows if row[2]}


@pytest.mark.usefixtures("one_thread")
def test_quiet_on_the_undefended_model_and_on_bpda(aug, digits):
    x, y = digits
    assert red(masking_diagnostics(aug, x, y, 0.1, steps=20, restarts=3, square_queries=300)) == set()
    # BPDA removes the symptom it was made for: the gradients are the identity's again
    rows = red(masking_diagnostics(Defended(aug, BPDA(BitDepth(3))), x, y, 0.1, steps=20, restarts=3,
                                   square_queries=300))
    assert "gradients zero or not finite" not in rows and "black box beats white box" not in rows


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("transform, must", [
    (BitDepth(3), {"gradients zero or not finite", "black box beats white box"}),
    (JPEG(50), {"gradients zero or not finite", "black box beats white box"}),
    (RandomResizePad(seed=0), {"the model is random"}),
], ids=["bit depth", "jpeg", "random resize and pad"])
def test_every_masking_demo_is_flagged(aug, digits, transform, must):
    x, y = digits
    report = masking_diagnostics(Defended(aug, transform), x, y, 0.1, steps=20, restarts=3, square_queries=300)
    assert report.flagged and must <= red(report), str(report)
    assert "masking?" in report._repr_html_() and "RED" in str(report)
