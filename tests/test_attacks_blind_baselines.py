"""blind_baselines, baseline_sweep and project_to_ball against hand-computed values, and the plot option.

The models are linear on a 1 x 1 x 2 image, so each baseline's effect on the logit gap is a sum of two pixel
changes that can be written down by hand."""
import math

import matplotlib
import pytest
import torch
from _toy import Linear

matplotlib.use("Agg")


def _model(w1, w2, bias_gap):
    """Two classes on a 1 x 1 x 2 image: z_0 - z_1 = w1 x_1 + w2 x_2 + bias_gap."""
    weight = torch.zeros(2, 1, 1, 2, dtype=torch.float64)
    weight[0, 0, 0] = torch.tensor([w1, w2], dtype=torch.float64)
    bias = torch.tensor([bias_gap, 0.0], dtype=torch.float64)
    return Linear(weight, bias).eval()


def _img(a, b):
    return torch.tensor([[[[a, b]]]], dtype=torch.float64)


Y0 = torch.tensor([0])


def test_brightness_model_is_fooled_by_the_darkening_shift_only():
    """z_0 - z_1 = x_1 + x_2 - 1 + 0.15 at x = (0.5, 0.5): the margin is 0.15; shift -eps lowers it by 2 eps,
    shift +eps raises it; random signs fool only at the vertex (-1, -1), probability 1/4."""
    from course_lib.attacks import blind_baselines

    model, x = _model(1.0, 1.0, 0.15 - 1.0), _img(0.5, 0.5)
    out = blind_baselines(model, x, Y0, 0.1, draws=2000, seed=0, corruptions=("brightness", "contrast"))
    assert set(out) == {"clean", "shift +eps", "shift -eps", "random noise", "corruptions", "best blind"}
    assert out["clean"].item() == 1 and out["shift +eps"].item() == 1 and out["shift -eps"].item() == 0
    assert abs(out["random noise"].item() - 0.75) < 4 * math.sqrt(0.75 * 0.25 / 2000)
    # brightness projected onto the ball is shift +eps; contrast of a constant image changes nothing
    assert out["corruptions"].item() == 1
    assert out["best blind"].item() == 0          # shift -eps fools, so the best blind candidate does
    # eps = 0.07: shift -eps leaves 0.15 - 0.14 = 0.01 > 0, and no vertex fools either
    small = blind_baselines(model, x, Y0, 0.07, draws=50, seed=0, corruptions=("brightness", "contrast"))
    assert all(v.item() == 1 for v in small.values())


def test_the_clip_to_the_pixel_range_stops_the_shift():
    """At x = (0, 0) with margin 0.05 the darkening shift cannot darken: clip(0 - eps) = 0. Without the clip it
    would lower the margin by 2 eps and fool."""
    from course_lib.attacks import blind_baselines

    model = _model(1.0, 1.0, 0.05)
    out = blind_baselines(model, _img(0.0, 0.0), Y0, 0.1, draws=20, seed=0, corruptions=())
    assert out["shift -eps"].item() == 1 and out["random noise"].item() == 1 and out["best blind"].item() == 1


def test_contrast_projected_onto_the_ball_fools_a_contrast_detector():
    """z_0 - z_1 = x_2 - x_1 - 0.6 + 0.15 at x = (0.2, 0.8): the margin is 0.15. Contrast at every severity moves
    the pixels towards their mean 0.5 by more than eps = 0.1 each, so the projection gives (0.3, 0.7): margin
    0.15 - 0.2 < 0. A uniform shift leaves x_2 - x_1 unchanged: no effect. Random signs fool at (+1, -1) only."""
    from course_lib.attacks import blind_baselines

    model, x = _model(-1.0, 1.0, -0.6 + 0.15), _img(0.2, 0.8)
    out = blind_baselines(model, x, Y0, 0.1, draws=2000, seed=1, corruptions=("contrast",), severities=(1, 3, 5))
    assert out["shift +eps"].item() == 1 and out["shift -eps"].item() == 1
    assert out["corruptions"].item() == 0 and out["best blind"].item() == 0
    assert abs(out["random noise"].item() - 0.75) < 4 * math.sqrt(0.75 * 0.25 / 2000)
    # at eps = 0.07 the projected contrast lowers the margin by 0.14 only: no longer fooled
    assert blind_baselines(model, x, Y0, 0.07, corruptions=("contrast",))["corruptions"].item() == 1


def test_l2_shift_spreads_eps_over_the_pixels():
    """In L2 a uniform shift of norm eps moves each of the n = 2 pixels by eps / sqrt(2), so the margin 0.15
    falls by sqrt(2) eps: 0.1414 at eps = 0.1 (not fooled), 0.1556 at eps = 0.11 (fooled)."""
    from course_lib.attacks import blind_baselines

    model, x = _model(1.0, 1.0, 0.15 - 1.0), _img(0.5, 0.5)
    kw = dict(norm="l2", draws=10, seed=0, corruptions=())
    assert blind_baselines(model, x, Y0, 0.10, **kw)["shift -eps"].item() == 1
    assert blind_baselines(model, x, Y0, 0.11, **kw)["shift -eps"].item() == 0


def test_an_image_wrong_before_counts_as_fooled_by_every_baseline():
    from course_lib.attacks import blind_baselines

    model, x = _model(1.0, 1.0, 0.15 - 1.0), _img(0.5, 0.5)
    out = blind_baselines(model, x, torch.tensor([1]), 0.0, draws=5, corruptions=("contrast",))
    assert all(v.item() == 0 for v in out.values())


def test_project_to_ball():
    from course_lib.attacks import project_to_ball

    x = _img(0.5, 0.95)
    far = _img(0.1, 1.0)
    assert torch.allclose(project_to_ball(x, far, 0.2), _img(0.3, 1.0))       # clamp to +-eps, then to [0, 1]
    # L2: delta = (-0.4, 0.05), norm 0.4031; scaled to norm 0.1
    d = torch.tensor([-0.4, 0.05], dtype=torch.float64)
    expected = torch.tensor([0.5, 0.95], dtype=torch.float64) + d * 0.1 / d.norm()
    assert torch.allclose(project_to_ball(x, far, 0.1, norm="l2").flatten(), expected)
    # a perturbation already inside the ball is left alone
    assert torch.allclose(project_to_ball(x, _img(0.45, 0.9), 0.1), _img(0.45, 0.9))
    with pytest.raises(ValueError, match="norm"):
        project_to_ball(x, far, 0.1, norm="l1")


@pytest.mark.usefixtures("one_thread")
def test_on_mnist_cnn_every_baseline_stays_in_the_ball_and_is_seeded(mnist_cnn, mnist_test):
    """On real digits: the sweep is the mean of the per-image values, seeds reproduce, and each baseline's
    accuracy is at least the best-blind accuracy (it is the minimum over them)."""
    from course_lib.attacks import baseline_sweep, blind_baselines

    x, y = mnist_test[0][:40], mnist_test[1][:40]
    a = blind_baselines(mnist_cnn, x, y, 0.1, draws=4, seed=3)
    b = blind_baselines(mnist_cnn, x, y, 0.1, draws=4, seed=3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    for k in ("shift +eps", "shift -eps", "random noise", "corruptions"):
        assert (a["best blind"] <= a[k]).all() and (a[k] <= a["clean"]).all()
    sweep = baseline_sweep(mnist_cnn, x, y, [0.0, 0.1], draws=4, seed=3, per_image=True)
    assert sweep["eps"] == [0.0, 0.1]
    assert torch.allclose(sweep["shift +eps"][1], a["shift +eps"].mean())
    assert torch.equal(sweep["per_image"]["best blind"][0], a["clean"])      # eps = 0: nothing moves
    with pytest.raises(ValueError, match="eps"):
        blind_baselines(mnist_cnn, x, y, -0.1)
    with pytest.raises(ValueError, match="corruption"):
        blind_baselines(mnist_cnn, x, y, 0.1, corruptions=("fog",))
    # seed=None means what it means everywhere (course_lib._rng): fresh draws, reproduced by the global seed
    # (draws=1 on images near the boundary: the per-image noise result changes between two fresh calls)
    x_edge = (x + 0.15).clamp(0, 1)
    torch.manual_seed(5)
    c = blind_baselines(mnist_cnn, x_edge, y, 0.2, draws=1, seed=None, corruptions=("gaussian_noise",))
    torch.manual_seed(5)
    d = blind_baselines(mnist_cnn, x_edge, y, 0.2, draws=1, seed=None, corruptions=("gaussian_noise",))
    assert all(torch.equal(c[k], d[k]) for k in c)
    fresh = [blind_baselines(mnist_cnn, x, y, 0.06, draws=1, seed=None, corruptions=())["random noise"]
             for _ in range(4)]
    assert any(not torch.equal(fresh[0], f) for f in fresh[1:])


def test_plot_curves_draws_the_baselines_dashed():
    import matplotlib.pyplot as plt

    from course_lib.plot import plot_curves

    ax = plot_curves([0, 0.1], {"PGD": [1.0, 0.2]}, baselines={"shift +eps": torch.tensor([1.0, 0.9])})
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["PGD", "blind: shift +eps"]
    assert lines[0].get_linestyle() == "-" and lines[1].get_linestyle() == "--"
    assert list(lines[1].get_ydata()) == pytest.approx([1.0, 0.9])
    plt.close("all")
