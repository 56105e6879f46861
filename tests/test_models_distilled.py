"""mnist_distilled, defensive distillation at T = 100 (Papernot et al., 2016), is the course's vanishing-gradient
demo: accurate, with logits about T times too large at T = 1, so the cross-entropy's input gradient underflows to
exactly 0 on most digits and PGD on the cross-entropy stalls, while PGD on the logit margin (Carlini & Wagner's
loss) breaks it. The masking checklist sees it."""
import pytest
import torch
import torch.nn.functional as F

from course_lib._grad import input_gradient
from course_lib.attacks import pgd
from course_lib.defenses import masking_diagnostics


@pytest.fixture(scope="module")
def distilled():
    from course_lib.models import load_model

    return load_model("mnist_distilled")


def test_shipped_listed_and_trained_as_documented(distilled):
    from course_lib.models import MODEL_SPECS, available_models, model_info

    assert "mnist_distilled" in available_models() and not distilled.training
    assert MODEL_SPECS["mnist_distilled"]["kwargs"] == MODEL_SPECS["mnist_cnn"]["kwargs"]
    info = model_info("mnist_distilled")
    assert info["training"]["distill"] == {"temperature": 100.0} and info["accuracy"] >= 0.98


@pytest.mark.usefixtures("one_thread")
def test_the_gradients_vanish_and_only_the_margin_loss_sees_through(distilled, mnist_cnn, mnist_test):
    x, y = mnist_test[0][:100], mnist_test[1][:100]

    def zero_share(model):
        g, logits = input_gradient(model, x, lambda z: F.cross_entropy(z, y, reduction="none"))
        return (g.flatten(1).abs().sum(1) == 0).float().mean().item(), logits

    share, logits = zero_share(distilled)
    top = logits.topk(2, 1).values
    assert (top[:, 0] - top[:, 1]).median() > 50                    # logits T times too large at T = 1
    assert share > 0.8 and zero_share(mnist_cnn)[0] == 0.0

    def acc(loss):
        x_adv = pgd(distilled, x, y, 0.1, 2.5 * 0.1 / 20, 20, seed=0, loss=loss)
        with torch.no_grad():
            return (distilled(x_adv).argmax(1) == y).float().mean().item()

    assert acc("ce") > 0.6 and acc("margin") < 0.1


@pytest.mark.usefixtures("one_thread")
def test_the_checklist_flags_it(distilled, mnist_test):
    x, y = mnist_test[0][:48], mnist_test[1][:48]
    report = masking_diagnostics(distilled, x, y, 0.1, steps=20, restarts=3, square_queries=300)
    red = {row[0] for row in report.rows if row[2]}
    assert {"gradients zero or not finite", "black box beats white box"} <= red, str(report)
