"""Widget logic, called without a browser."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import explain  # noqa: E402
from course_lib.corruptions import corrupt  # noqa: E402
from course_lib.models import load_model  # noqa: E402
from course_lib.plot import to_numpy_image  # noqa: E402
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


def redrawn(control, value):
    """Set a widget's control to a new value and return the figure that its redraw drew (with every other figure
    closed first, the only one open), so a test reads what was drawn: images, titles, bars."""
    plt.close("all")
    assert control.value != value, "an unchanged value does not redraw"
    control.value = value
    nums = plt.get_fignums()
    assert len(nums) == 1, f"one change should draw one figure, got {len(nums)}"
    return plt.figure(nums[0])


def drawn_image(ax, layer=0):
    return np.asarray(ax.images[layer].get_array())


def drawn_bars(ax):
    """Bar lengths from top to bottom and their labels (topk_bars draws the best on top)."""
    bars = sorted(ax.patches, key=lambda r: -r.get_y())
    labels = dict(zip(ax.get_yticks(), [t.get_text() for t in ax.get_yticklabels()], strict=True))
    return [r.get_width() for r in bars], [labels[round(r.get_y() + r.get_height() / 2)] for r in bars]


def assert_all_differ(images):
    for i, a in enumerate(images):
        for b in images[i + 1:]:
            assert not np.array_equal(a, b), "two different selections drew the same image"


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


def caption(capsys):
    """The caption line that the last redraw printed above its figure."""
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines, "the redraw printed no caption"
    return lines[-1]


def test_explorer_draws_what_the_controls_select(model, mnist_test, capsys):
    """After each change the figure shows corruption_view's image, title and top-5 bars for the selected image,
    corruption and severity (a draw() that ignored a control would show the previous image again)."""
    x, y = mnist_test[0][:3], mnist_test[1][:3]
    box = corruption_explorer(model, x, labels=y, seed=4)
    pick, kind, sev = box.children[0].children
    assert sev.max == 5 and pick.max == 2 and "jpeg" in kind.options
    images = []
    for control, value in [(sev, 2), (sev, 5), (kind, "contrast"), (pick, 2)]:
        a, b = redrawn(control, value).axes
        xc, p, idx = corruption_view(model, x[pick.value:pick.value + 1], kind.value, sev.value, seed=4)
        np.testing.assert_array_equal(drawn_image(a), to_numpy_image(xc))
        assert a.get_title() == f"{kind.value}, severity {sev.value}"
        assert caption(capsys) == (f"image {pick.value} (true: {int(y[pick.value])}), {kind.value} at severity "
                                   f"{sev.value}: the model says {int(idx[0])} ({float(p[0]):.1%})")
        widths, names = drawn_bars(b)
        np.testing.assert_allclose(widths, p.numpy(), rtol=1e-6)
        assert names == [str(int(i)) for i in idx]
        images.append(drawn_image(a))
    assert_all_differ(images)
    plt.close("all")


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
    # the values, by hand: occlusion windows of size // 7 (at least 2) with half-window strides
    assert explanation_defaults("occlusion", x) == {"window": 4, "stride": 2, "progress": False}
    assert explanation_defaults("occlusion", torch.zeros(1, 3, 224, 160)) == {"window": 22, "stride": 11,
                                                                             "progress": False}
    assert explanation_defaults("occlusion", torch.zeros(1, 1, 9, 9)) == {"window": 2, "stride": 1, "progress": False}
    assert explanation_defaults("smoothgrad", x) == {"n_samples": 16, "seed": 0}
    assert explanation_defaults("integrated_gradients", x) == {"steps": 24}
    assert explanation_defaults("grad_cam", x) == {} and explanation_defaults("saliency", x) == {}


def test_explanation_explorer_builds_and_redraws(model, mnist_test, capsys):
    x, y = mnist_test[0][:3], mnist_test[1][:3]
    fast = {m: {"n_samples": 2, "seed": 0} if m == "smoothgrad" else {"steps": 4} if m == "integrated_gradients"
            else {"window": 14, "progress": False} if m == "occlusion" else {} for m in EXPLANATION_METHODS}
    box = explanation_explorer(model, x, class_names=[f"digit {i}" for i in range(10)], labels=y, method_kwargs=fast)
    pick, method, target = box.children[0].children
    assert pick.max == 2 and method.value == "grad_cam" and target.value == -1
    assert ("digit 7", 7) in target.options
    for m in EXPLANATION_METHODS[:-1]:  # each method draws (an error in the drawing would raise here)
        if m != method.value:
            method.value = m
    # what is drawn follows the controls: the image, the heat map of explanation_view for the selected method and
    # class (rescaled to [0, 1] by show_heatmap), its title and the model's top 5
    heats = []
    for control, value in [(method, "saliency"), (target, 3), (target, 5), (method, "occlusion"), (pick, 2)]:
        a, b, c = redrawn(control, value).axes
        xi = x[pick.value:pick.value + 1]
        with torch.no_grad():
            probs = torch.softmax(model(xi), 1)[0]
        t = int(probs.argmax()) if target.value == -1 else target.value
        heat = explanation_heat(explanation_view(model, xi, method.value, target=t, **fast[method.value])).numpy()
        heat = (heat - heat.min()) / (heat.max() - heat.min())
        np.testing.assert_array_equal(drawn_image(a), to_numpy_image(xi))
        np.testing.assert_allclose(drawn_image(b, 1), heat, atol=1e-6)
        assert b.get_title() == f"{method.value} for 'digit {t}'"
        top = int(probs.argmax())
        assert caption(capsys) == (f"image {pick.value} (true: digit {int(y[pick.value])}): {method.value} for "
                                   f"'digit {t}'; the model says digit {top} ({float(probs[top]):.1%})")
        widths, names = drawn_bars(c)
        np.testing.assert_allclose(widths, probs.topk(5).values.numpy(), rtol=1e-6)
        assert names == [f"digit {i}" for i in probs.topk(5).indices.tolist()]
        heats.append(drawn_image(b, 1))
    assert_all_differ(heats)
    plt.close("all")


# --------------------------------------------------------------------------- attack explorer (lesson 07)
from course_lib.attacks import fgsm, pgd  # noqa: E402
from course_lib.widgets import (  # noqa: E402
    ATTACK_NAMES,
    amplify_perturbation,
    attack_explorer,
    attack_view,
    show_attack,
)


@pytest.mark.parametrize("attack", ATTACK_NAMES)
@pytest.mark.parametrize("eps", [0.05, 0.2])
def test_attack_view_stays_in_the_ball_and_in_range(model, mnist_test, attack, eps):
    x = mnist_test[0][5:6]
    x_adv, p, idx = attack_view(model, x, eps, attack, steps=5, seed=1)
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert float((x_adv - x).abs().max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert not torch.equal(x_adv, x)
    probs = torch.softmax(model(x_adv), 1)[0].detach()
    assert torch.allclose(p, probs.topk(5).values) and torch.equal(idx, probs.topk(5).indices)


def test_attack_view_is_course_lib_attacks(model, mnist_test):
    x, y = mnist_test[0][7:8], mnist_test[1][7:8]
    pred = model(x).argmax(1)
    # default label: the model's own prediction
    assert torch.equal(attack_view(model, x, 0.1, "fgsm")[0], fgsm(model, x, pred, 0.1))
    assert torch.equal(attack_view(model, x, 0.1, "fgsm", y=y)[0], fgsm(model, x, y, 0.1))
    assert torch.equal(attack_view(model, x, 0.1, "fgsm", y=int(y))[0], fgsm(model, x, y, 0.1))
    got = attack_view(model, x, 0.1, "pgd", steps=4, seed=3)[0]
    assert torch.equal(got, pgd(model, x, pred, 0.1, 2.5 * 0.1 / 4, 4, seed=3))
    got = attack_view(model, x, 0.1, "pgd", steps=4, alpha=0.01, seed=3)[0]
    assert torch.equal(got, pgd(model, x, pred, 0.1, 0.01, 4, seed=3))


@pytest.mark.parametrize("attack", ATTACK_NAMES)
def test_attack_view_eps_zero_gives_x_back(model, mnist_test, attack):
    x = mnist_test[0][2:3]
    x_adv, p, idx = attack_view(model, x, 0.0, attack)
    assert torch.equal(x_adv, x)
    assert int(idx[0]) == int(model(x).argmax())


def test_attack_view_rejects(model, mnist_test):
    x = mnist_test[0][:1]
    with pytest.raises(ValueError, match="unknown attack 'cw'.*fgsm"):
        attack_view(model, x, 0.1, "cw")
    with pytest.raises(ValueError, match="one image"):
        attack_view(model, mnist_test[0][:2], 0.1)
    with pytest.raises(ValueError, match="eps"):
        attack_view(model, x, -0.1)


def test_amplify_perturbation():
    d = torch.tensor([-0.1, -0.05, 0.0, 0.05, 0.1, 0.3]).view(1, 1, 1, 6)
    assert torch.allclose(amplify_perturbation(d, 0.1), torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0, 1.0]).view(1, 1, 1, 6))
    assert torch.equal(amplify_perturbation(d, 0.0), torch.full_like(d, 0.5))


def test_show_attack_draws_four_panels(model, mnist_test):
    import matplotlib.pyplot as plt

    x, y = mnist_test[0][:1], mnist_test[1][:1]
    x_adv = attack_view(model, x, 0.2, "pgd", steps=3)[0]
    fig = show_attack(model, x, x_adv, 0.2, class_names=[f"digit {i}" for i in range(10)], label=int(y), title="t")
    assert len(fig.axes) == 4 and fig.axes[0].get_title().startswith("original: digit")
    plt.close(fig)
    fig, axes = plt.subplots(2, 4)
    assert show_attack(model, x, x, 0.0, axes=axes[1]) is fig
    assert "none" in axes[1, 1].get_title()
    plt.close(fig)


def test_attack_explorer_builds_and_redraws(model, mnist_test, capsys):
    x, y = mnist_test[0][:3], mnist_test[1][:3]
    box = attack_explorer(model, x, class_names=[f"digit {i}" for i in range(10)], labels=y, steps=2)
    pick, kind, eps = box.children[0].children
    assert pick.max == 2 and kind.value == "fgsm" and eps.max == pytest.approx(0.3)
    assert ("PGD", "pgd") in kind.options
    # what is drawn follows the controls: the original, the amplified perturbation and the adversarial image of
    # attack_view for the selected image, attack and budget, and the model's top 5 on the adversarial image
    advs = []
    for control, value in [(eps, 0.05), (eps, 0.25), (kind, "pgd"), (eps, 0.0), (pick, 2)]:
        axes = redrawn(control, value).axes
        i = pick.value
        x_adv = attack_view(model, x[i:i + 1], eps.value, kind.value, y=y[i:i + 1], steps=2, seed=0)[0]
        np.testing.assert_array_equal(drawn_image(axes[0]), to_numpy_image(x[i:i + 1]))
        np.testing.assert_array_equal(drawn_image(axes[1]),
                                      to_numpy_image(amplify_perturbation(x_adv - x[i:i + 1], eps.value)))
        np.testing.assert_array_equal(drawn_image(axes[2]), to_numpy_image(x_adv))
        with torch.no_grad():
            probs = torch.softmax(model(x_adv), 1)[0]
        widths, names = drawn_bars(axes[3])
        np.testing.assert_allclose(widths, probs.topk(5).values.numpy(), rtol=1e-6)
        assert names == [f"digit {j}" for j in probs.topk(5).indices.tolist()]
        top = int(probs.argmax())
        assert caption(capsys) == (f"image {i} (true: digit {int(y[i])}), {kind.value.upper()} at eps = "
                                   f"{eps.value:.3f}: the model says digit {top} ({float(probs[top]):.1%}) on the "
                                   "adversarial image")
        advs.append(drawn_image(axes[2]))
    assert_all_differ(advs)
    plt.close("all")


def test_attack_explorer_on_colour_images_defaults_to_a_small_budget():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval()
    x = torch.rand(2, 3, 8, 8)
    plt.close("all")
    box = attack_explorer(net, x)
    eps = box.children[0].children[2]
    assert eps.max == pytest.approx(16 / 255) and eps.value == pytest.approx(round(16 / 255 / 3, 4))
    # the first drawing already uses that budget: FGSM on image 0 at eps = 0.0209, within it
    axes = plt.figure(plt.get_fignums()[0]).axes
    x_adv = attack_view(net, x[:1], eps.value, "fgsm")[0]
    np.testing.assert_array_equal(drawn_image(axes[2]), to_numpy_image(x_adv))
    assert float((x_adv - x[:1]).abs().max()) == pytest.approx(eps.value, abs=1e-6)
    plt.close("all")


# --------------------------------------------------------------------------- attack_grid (lesson 07)
from course_lib.widgets import attack_grid  # noqa: E402


@pytest.mark.parametrize("photos", [False, True])
def test_attack_grid_draws_originals_perturbations_and_adversarials(model, mnist_test, photos):
    x, y = mnist_test[0][:3], mnist_test[1][:3]
    eps = 0.2
    advs = {"FGSM": fgsm(model, x, y, eps), "PGD": pgd(model, x, y, eps, 0.05, 3, seed=0)}
    x_before = x.clone()
    fig = attack_grid(model, x, y, advs, eps, [f"d{i}" for i in range(10)], title="grid", photos=photos)
    assert torch.equal(x, x_before) and not model.training
    assert len(fig.axes) == 3 * 5 and fig._suptitle.get_text() == "grid"
    grid = np.array(fig.axes).reshape((3, 5) if photos else (5, 3))
    kinds = grid.T if photos else grid          # kinds in rows: original, FGSM δ, FGSM, PGD δ, PGD
    for i in range(3):
        np.testing.assert_allclose(drawn_image(kinds[0, i]), to_numpy_image(x[i]), atol=1e-6)
        np.testing.assert_allclose(drawn_image(kinds[1, i]),
                                   to_numpy_image(amplify_perturbation(advs["FGSM"][i] - x[i], eps)), atol=1e-6)
        np.testing.assert_allclose(drawn_image(kinds[4, i]), to_numpy_image(advs["PGD"][i]), atol=1e-6)
        # images carry the model's prediction (green when right, red when wrong); perturbations carry none
        pred = int(model(advs["PGD"][i:i + 1]).argmax(1))
        assert kinds[4, i].get_title().startswith(f"d{pred}")
        assert kinds[3, i].get_title() == ""
    labels = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert labels == ["original", "FGSM δ", "FGSM", "PGD δ", "PGD"]
    plt.close(fig)


def test_attack_grid_rejects_bad_advs(model, mnist_test):
    x, y = mnist_test[0][:2], mnist_test[1][:2]
    with pytest.raises(ValueError, match="non-empty dict"):
        attack_grid(model, x, y, {}, 0.1)
    with pytest.raises(ValueError, match="x's shape"):
        attack_grid(model, x, y, {"FGSM": x[:1]}, 0.1)
