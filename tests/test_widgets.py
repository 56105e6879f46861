"""Widget logic, called without a browser."""
import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib.corruptions import corrupt  # noqa: E402
from course_lib.models import load_model  # noqa: E402
from course_lib.widgets import corruption_explorer, corruption_view  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return load_model("mnist_cnn")


def test_corruption_view_is_the_model_on_the_corrupted_image(model, mnist_test):
    x = mnist_test[0][:1]
    xc, p, idx = corruption_view(model, x, "rotation", 3, seed=2)
    assert torch.equal(xc, corrupt(x, "rotation", 3, seed=2))
    probs = torch.softmax(model(xc), 1)[0]
    assert torch.allclose(p, probs.topk(5).values) and torch.equal(idx, probs.topk(5).indices)
    assert p[0] >= p[1] >= p[4]


def test_corruption_view_takes_one_image(model, mnist_test):
    with pytest.raises(ValueError, match="one image"):
        corruption_view(model, mnist_test[0][:2], "jpeg", 1)


def test_explorer_builds_and_redraws(model, mnist_test):
    x, y = mnist_test[0][:3], mnist_test[1][:3]
    box = corruption_explorer(model, x, labels=y)
    pick, kind, sev = box.children[0].children
    sev.value = 5
    kind.value = "contrast"
    pick.value = 2
    assert sev.max == 5 and pick.max == 2 and "jpeg" in kind.options
