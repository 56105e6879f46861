"""mnist_pgd, PGD adversarial training at eps 0.3 (Madry et al., 2018), is the course's robust model: accurate,
robust to PGD at its budget where the standard model is not, with usable gradients; the masking checklist must
stay quiet on it (a checklist that flags a truly robust model would teach the wrong thing)."""
import pytest
import torch
import torch.nn.functional as F

from course_lib._grad import input_gradient
from course_lib.attacks import pgd
from course_lib.defenses import masking_diagnostics
from course_lib.training import accuracy


@pytest.fixture(scope="module")
def robust():
    from course_lib.models import load_model

    return load_model("mnist_pgd")


def test_shipped_listed_and_trained_as_documented(robust):
    from course_lib.models import MODEL_SPECS, MadryCNN, available_models, model_info

    assert "mnist_pgd" in available_models() and not robust.training and isinstance(robust, MadryCNN)
    assert MODEL_SPECS["mnist_pgd"]["arch"] == "MadryCNN"
    info = model_info("mnist_pgd")
    assert info["training"]["adversarial"]["eps"] == 0.3 and info["accuracy"] >= 0.97


@pytest.mark.usefixtures("one_thread")
def test_robust_at_its_budget_where_the_standard_model_is_not(robust, mnist_test):
    from course_lib.models import load_model

    x, y = mnist_test[0][:100], mnist_test[1][:100]
    standard = load_model("mnist_cnn_aug")
    acc_robust = accuracy(robust, pgd(robust, x, y, 0.3, 0.01, 40, seed=0), y)
    acc_standard = accuracy(standard, pgd(standard, x, y, 0.3, 0.01, 40, seed=0), y)
    assert acc_standard <= 0.02 and acc_robust >= 0.8, (acc_standard, acc_robust)
    g, _ = input_gradient(robust, x, lambda z: F.cross_entropy(z, y, reduction="none"))
    assert bool(torch.isfinite(g).all()) and (g.flatten(1).abs().sum(1) > 0).all()   # no masking: real gradients


@pytest.mark.usefixtures("one_thread")
def test_the_masking_checklist_is_quiet_on_the_robust_model(robust, mnist_test):
    x, y = mnist_test[0][:64], mnist_test[1][:64]
    report = masking_diagnostics(robust, x, y, eps=0.3)
    assert not report.flagged, f"masking_diagnostics cries wolf on mnist_pgd:\n{report}"
