"""The black-box plotting helpers of lesson 09: plane coordinates against hand-computed values, query curves that
plot what they claim (medians with inf, success fractions, a log x-axis, reference lines)."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import plot  # noqa: E402


def teardown_function():
    plt.close("all")


def test_plane_coordinates_hand_computed():
    # origin 0, a on the first axis, b = (1, 1, 0): the plane is z = 0 and e1, e2 are the unit vectors x, y
    o, a, b = torch.zeros(3), torch.tensor([2.0, 0, 0]), torch.tensor([1.0, 1.0, 0])
    pts = torch.tensor([[3.0, 4.0, 5.0], [0, 0, 7.0], [-1.0, 2.0, 0]])
    got = plot.plane_coordinates(pts, o, a, b)
    np.testing.assert_allclose(got.numpy(), [[3, 4], [0, 0], [-1, 2]])
    assert got.dtype == torch.float64 and got.shape == (3, 2)


def test_plane_coordinates_shifted_rotated_origin_and_image_shapes():
    # origin (1, 1), a = origin + (1, 1) (first axis along the diagonal), b = origin + (0, 2)
    o = torch.tensor([1.0, 1.0])
    a = o + torch.tensor([1.0, 1.0])
    b = o + torch.tensor([0.0, 2.0])
    s = 1 / math.sqrt(2)
    # b - o = (0, 2): along e1 = (s, s) it has 2s = sqrt(2); its remainder (-1, 1) gives e2 = (-s, s)
    got = plot.plane_coordinates(torch.stack([o, a, b, o + torch.tensor([3.0, -1.0])]), o, a, b)
    np.testing.assert_allclose(got.numpy(), [[0, 0], [math.sqrt(2), 0], [math.sqrt(2), math.sqrt(2)],
                                             [2 * s, -4 * s]], atol=1e-12)
    # images (N, C, H, W) and one image (C, H, W) are flattened the same way
    img_o, img_a, img_b = o.view(1, 1, 2), a.view(1, 1, 2), b.view(1, 1, 2)
    one = plot.plane_coordinates(img_b, img_o, img_a, img_b)
    np.testing.assert_allclose(one.numpy(), [[math.sqrt(2), math.sqrt(2)]], atol=1e-12)


def test_plane_coordinates_keep_in_plane_distances_and_shrink_others():
    g = torch.Generator().manual_seed(0)
    o, a, b = torch.rand(3, 50, generator=g)
    in_plane = o + 0.3 * (a - o) - 1.7 * (b - o)
    off = in_plane + 0.5 * torch.randn(50, generator=g)
    c = plot.plane_coordinates(torch.stack([a, b, in_plane, off]), o, a, b)
    assert c[0, 1].abs() < 1e-12 and c[1, 1] > 0                       # a on the first axis, b above it
    np.testing.assert_allclose(c[0, 0], (a - o).norm().double(), rtol=1e-6)
    np.testing.assert_allclose(c[2].norm(), (in_plane - o).norm().double(), rtol=1e-6)  # exact in the plane
    np.testing.assert_allclose(c[1].norm(), (b - o).norm().double(), rtol=1e-6)
    assert c[3].norm() < (off - o).norm()                              # off the plane: projected, shorter


def test_plane_coordinates_reject_degenerate_planes():
    o = torch.zeros(4)
    with pytest.raises(ValueError, match="parallel"):
        plot.plane_coordinates(o[None], o, torch.ones(4), 2 * torch.ones(4))
    with pytest.raises(ValueError, match="equals origin"):
        plot.plane_coordinates(o[None], o, o, torch.ones(4))
    with pytest.raises(ValueError, match="same number"):
        plot.plane_coordinates(o[None], o, torch.ones(5), torch.ones(4))


def test_query_curves_plot_the_median_with_inf_and_a_log_axis():
    q = torch.tensor([1, 10, 100])
    d = torch.tensor([[math.inf, 3.0, 1.0],
                      [math.inf, math.inf, 2.0],
                      [5.0, 4.0, 0.5]], dtype=torch.float64)
    ax = plot.plot_query_curves({"A": (q, d), "B": (q, torch.tensor([2.0, 1.0, 0.5]))},
                                reference={"white box": 0.25}, title="t")
    assert ax.get_xscale() == "log" and ax.get_title() == "t"
    line_a, line_b, ref = ax.get_lines()
    np.testing.assert_allclose(line_a.get_xdata(), [1, 10, 100])
    # medians of the columns: inf (2 of 3 unfooled: not drawn), 4, 1
    ya = line_a.get_ydata()
    assert np.isnan(ya[0]) and ya[1] == 4.0 and ya[2] == 1.0
    np.testing.assert_allclose(line_b.get_ydata(), [2.0, 1.0, 0.5])
    assert list(ref.get_ydata()) == [0.25, 0.25] and ref.get_linestyle() == "--"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["A", "B", "white box"]


def test_query_curves_within_plots_success_fractions():
    q = torch.tensor([1, 2, 3, 4])
    d = torch.tensor([[math.inf, 0.3, 0.2, 0.1],
                      [math.inf, math.inf, math.inf, 0.3],
                      [0.1, 0.1, 0.1, 0.1],
                      [math.inf, math.inf, 0.25, 0.25]])
    ax = plot.plot_query_curves({"A": (q, d)}, within=0.25)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [0.25, 0.25, 0.75, 0.75])
    assert "0.25" in ax.get_ylabel()


def test_query_curves_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="query counts"):
        plot.plot_query_curves({"A": (torch.tensor([1, 2]), torch.ones(3, 3))})
