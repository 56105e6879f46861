"""Widget logic, called without a browser."""
import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import explain  # noqa: E402
from course_lib.corruptions import corrupt  # noqa: E402
from course_lib.models import load_model  # noqa: E402
from course_lib.widgets import (  # noqa: E402
    EXPLANATION_METHODS,
    corruption_explorer,
    corruption_view,
    explanation_defaults,
    explanation_explorer,
    explanation_heat,
    explanation_view,
)


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


# --------------------------------------------------------------------------- explanation explorer (lessons 03-04)
@pytest.mark.parametrize("method, kw", [
    ("saliency", {}), ("smoothgrad", {"n_samples": 4, "seed": 3}), ("integrated_gradients", {"steps": 8}),
    ("grad_cam", {}), ("grad_cam", {"layer": "features.relu3"}), ("cam", {}),
    ("occlusion", {"window": 7, "stride": 7, "progress": False}),
])
def test_explanation_view_is_course_lib_explain(model, mnist_test, method, kw):
    x = mnist_test[0][3:4]
    for target in (None, 2):
        got = explanation_view(model, x, method, target=target, **kw)
        want = getattr(explain, method)(model, x, target=target, **kw)
        assert torch.equal(got, want), (method, target)
    assert method in EXPLANATION_METHODS


def test_explanation_view_rejects_bad_method_and_batches(model, mnist_test):
    x = mnist_test[0][:1]
    with pytest.raises(ValueError, match="unknown method 'gradcam'.*grad_cam"):
        explanation_view(model, x, "gradcam")
    with pytest.raises(ValueError, match="one image"):
        explanation_view(model, mnist_test[0][:2], "saliency")


def test_explanation_heat():
    a = torch.tensor([[[[1.0, -2.0]], [[-3.0, 0.5]]]])  # (1, 2, 1, 2)
    assert torch.equal(explanation_heat(a), torch.tensor([[4.0, 2.5]]))
    m = torch.rand(1, 5, 6)
    assert torch.equal(explanation_heat(m), m[0])
    with pytest.raises(ValueError, match="one map"):
        explanation_heat(torch.rand(2, 5, 6))


def test_explanation_defaults_are_accepted_by_each_method(model, mnist_test):
    x = mnist_test[0][:1]
    for method in EXPLANATION_METHODS:
        out = explanation_view(model, x, method, **explanation_defaults(method, x))
        assert out.shape[-2:] == (28, 28) and torch.isfinite(out).all()


def test_explanation_explorer_builds_and_redraws(model, mnist_test):
    x, y = mnist_test[0][:3], mnist_test[1][:3]
    fast = {m: {"n_samples": 2, "seed": 0} if m == "smoothgrad" else {"steps": 4} if m == "integrated_gradients"
            else {"window": 14, "progress": False} if m == "occlusion" else {} for m in EXPLANATION_METHODS}
    box = explanation_explorer(model, x, class_names=[f"digit {i}" for i in range(10)], labels=y, method_kwargs=fast)
    pick, method, target = box.children[0].children
    assert pick.max == 2 and method.value == "grad_cam" and target.value == -1
    assert ("digit 7", 7) in target.options
    for m in EXPLANATION_METHODS:  # each change redraws (an error in the drawing would raise here)
        method.value = m
    target.value = 3
    pick.value = 2
    assert method.value == EXPLANATION_METHODS[-1] and target.value == 3
