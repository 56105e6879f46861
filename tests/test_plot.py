"""Plots show what they claim: the right number of panels, titles, colours, normalised heat maps."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import plot  # noqa: E402


def teardown_function():
    plt.close("all")


def test_show_images_titles_and_colours():
    x = torch.rand(5, 1, 8, 8)
    fig = plot.show_images(x, labels=[0, 1, 2, 3, 4], preds=[0, 1, 9, 3, 4], class_names=list("abcdefghij"),
                           ncols=3)
    axes = fig.axes
    assert len(axes) == 6 and not axes[5].images  # 2 rows x 3, last panel empty
    assert axes[0].get_title() == "a" and axes[0].title.get_color() == "tab:green"
    assert axes[2].get_title() == "j\n(true: c)" and axes[2].title.get_color() == "tab:red"
    np.testing.assert_allclose(axes[1].images[0].get_array(), x[1, 0].numpy())


def test_show_images_rgb():
    x = torch.rand(2, 3, 8, 8)
    fig = plot.show_images(x, labels=[1, 2])
    assert fig.axes[0].images[0].get_array().shape == (8, 8, 3)


def test_heatmap_is_rescaled_to_unit_range():
    ax = plot.show_heatmap(torch.rand(1, 3, 8, 8), torch.arange(64.0).view(8, 8) * 3 - 5)
    heat = ax.images[1].get_array()
    assert float(heat.min()) == 0 and float(heat.max()) == 1


def test_signed_heatmap_keeps_values_and_centres_the_colours_at_zero():
    heat = torch.tensor([[-2.0, 0.0], [1.0, 0.5]])
    ax = plot.show_heatmap(torch.rand(1, 3, 2, 2), heat, signed=True)
    base, overlay = ax.images
    np.testing.assert_array_equal(overlay.get_array(), heat.numpy())  # not rescaled
    assert overlay.get_clim() == (-2.0, 2.0) and overlay.get_cmap().name == "RdBu_r"
    assert base.get_array().ndim == 2  # the photo in grey under the red and blue
    zero = plot.show_heatmap(torch.rand(1, 1, 2, 2), torch.zeros(2, 2), signed=True).images[1]
    assert zero.get_clim() == (-1.0, 1.0)  # an all-zero map draws white, no division by zero


def test_heatmap_rejects_a_batch():
    with pytest.raises(ValueError, match="one map"):
        plot.show_heatmap(torch.rand(1, 3, 8, 8), torch.rand(2, 8, 8))


def test_heatmap_clip_quantile_clips_the_extreme_values_for_display():
    heat = torch.tensor([[0.0, 1.0], [2.0, 100.0]])   # quantile 0.5 of (0, 1, 2, 100) = 1.5 (linear)
    drawn = plot.show_heatmap(torch.rand(1, 1, 2, 2), heat, clip_quantile=0.5).images[1].get_array()
    np.testing.assert_allclose(drawn, [[0.0, 1 / 1.5], [1.0, 1.0]])   # min(h, 1.5), then rescaled to [0, 1]
    signed = torch.tensor([[-4.0, 1.0], [2.0, 3.0]])   # |h| = (4, 1, 2, 3): quantile 0.5 = 2.5
    ov = plot.show_heatmap(torch.rand(1, 1, 2, 2), signed, signed=True, clip_quantile=0.5).images[1]
    np.testing.assert_allclose(ov.get_array(), [[-2.5, 1.0], [2.0, 2.5]])
    assert ov.get_clim() == (-2.5, 2.5)
    unclipped = plot.show_heatmap(torch.rand(1, 1, 2, 2), heat).images[1].get_array()
    np.testing.assert_allclose(unclipped, [[0.0, 0.01], [0.02, 1.0]])   # default: no clipping
    with pytest.raises(ValueError, match="clip_quantile"):
        plot.show_heatmap(torch.rand(1, 1, 2, 2), heat, clip_quantile=1.5)


def test_outline_pixels_frames_the_block_with_a_margin():
    _, ax = plt.subplots()
    box = plot.outline_pixels(ax, 3, 26)   # a 2x2 mark at row 3, column 26, one pixel of margin
    assert box.get_xy() == (24.5, 1.5) and box.get_width() == 4 and box.get_height() == 4
    assert box in ax.patches and not box.get_fill() and box.get_linestyle() == "--"
    tight = plot.outline_pixels(ax, 0, 0, size=1, pad=0, color="red")
    assert tight.get_xy() == (-0.5, -0.5) and tight.get_width() == 1


def test_plot_curves_draws_one_line_per_entry():
    ax = plot.plot_curves(range(3), {"a": [1, 0.5, 0.2], "b": [1, 0.9, 0.8]}, chance=0.1)
    assert len(ax.lines) == 3 and list(ax.lines[0].get_ydata()) == [1, 0.5, 0.2]


def test_show_topk_shows_the_largest_probabilities():
    class M(torch.nn.Module):
        def forward(self, x):
            return torch.tensor([[0.0, 3.0, 1.0, 2.0]])

    ax = plot.show_topk(M(), torch.rand(1, 3, 4, 4), class_names=list("wxyz"), k=2)
    labels = {round(t.get_position()[1]): t.get_text() for t in ax.get_yticklabels()}
    assert labels == {1: "x", 0: "z"}  # the most probable class on top
    widths = sorted(p.get_width() for p in ax.patches)
    probs = torch.softmax(torch.tensor([0.0, 3.0, 1.0, 2.0]), 0)
    np.testing.assert_allclose(widths, sorted(probs.topk(2).values.tolist()), rtol=1e-6)


def test_topk_bars_shows_the_k_largest_in_order_and_marks_the_true_class():
    import matplotlib.pyplot as plt

    from course_lib.plot import topk_bars

    probs = torch.tensor([0.05, 0.4, 0.1, 0.3, 0.15])
    fig, ax = plt.subplots()
    topk_bars(probs, ["a", "b", "c", "d", "e"], k=3, ax=ax, true=3)
    bars = sorted(ax.patches, key=lambda r: -r.get_y())  # top bar first
    assert [round(b.get_width(), 6) for b in bars] == [0.4, 0.3, 0.15]
    labels = {round(y): t.get_text() for y, t in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)}
    assert [labels[round(b.get_y() + b.get_height() / 2)] for b in bars] == ["b", "d", "e"]
    green = [b for b in bars if b.get_facecolor() == plt.matplotlib.colors.to_rgba("tab:green")]
    assert len(green) == 1 and round(green[0].get_width(), 6) == 0.3
    plt.close(fig)
