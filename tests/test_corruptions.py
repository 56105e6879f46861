"""Corruptions against their definitions, hand-computed values and an independent reference (scipy)."""
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from course_lib import corruptions as C
from course_lib.models import load_model

NAMES = list(C.CORRUPTIONS)


@pytest.fixture(scope="module")
def digits(mnist_test):
    return mnist_test[0][:32]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("severity", [0, 1, 3, 5])
def test_shape_range_and_no_side_effects(name, severity, digits):
    before = digits.clone()
    out = C.corrupt(digits, name, severity, seed=0)
    assert out.shape == digits.shape and out.dtype == digits.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(digits, before)
    if severity == 0:
        assert torch.equal(out, digits) and out.data_ptr() != digits.data_ptr()
    else:
        assert not torch.equal(out, digits)


@pytest.mark.parametrize("name", NAMES)
def test_seeded(name, digits):
    assert torch.equal(C.corrupt(digits, name, 3, seed=1), C.corrupt(digits, name, 3, seed=1))


@pytest.mark.parametrize("name", ["gaussian_noise", "rotation"])
def test_random_corruptions_depend_on_the_seed(name, digits):
    assert not torch.equal(C.corrupt(digits, name, 3, seed=1), C.corrupt(digits, name, 3, seed=2))


@pytest.mark.parametrize("name", NAMES)
def test_damage_grows_with_severity(name, digits):
    d = [float((C.corrupt(digits, name, s, seed=0) - digits).abs().mean()) for s in range(6)]
    assert d[0] == 0 and d[5] > d[1] > 0, d


def test_gaussian_noise_has_the_stated_sigma():
    x = torch.full((16, 3, 32, 32), 0.5)
    for s, sigma in enumerate(C.SEVERITIES["gaussian_noise"][:3], start=1):
        d = C.gaussian_noise(x, s, seed=0) - x
        assert abs(float(d.std()) - sigma) < 0.03 * sigma  # clipping at 0.5 +- 0.5 >= 2.7 sigma: negligible
        assert abs(float(d.mean())) < 0.01


def test_brightness_and_contrast_by_hand():
    x = torch.tensor([0.0, 0.2, 0.6, 0.95]).view(1, 1, 2, 2)
    assert torch.allclose(C.brightness(x, 2).flatten(), torch.tensor([0.2, 0.4, 0.8, 1.0]))
    m = x.mean()  # 0.4375; contrast severity 1 keeps 40 % of the deviation from the mean
    assert torch.allclose(C.contrast(x, 1).flatten(), (m + 0.4 * (x - m)).flatten())
    assert torch.allclose(C.contrast(x, 5).mean(), m)


@pytest.mark.parametrize("size", [32, 64])
def test_blur_matches_scipy(size):
    """sigma scales with the height (sigma * H / 32): the same defocus on a digit and on a photo."""
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    sigma = C.SEVERITIES["gaussian_blur"][2] * size / 32
    ours = C.gaussian_blur(x, 3).numpy()
    radius = math.ceil(3 * sigma)
    # torch "reflect" (d c b | a b c d) is scipy's "mirror"
    ref = np.stack([np.stack([ndimage.gaussian_filter(c, sigma, mode="mirror", radius=radius) for c in img])
                    for img in x.numpy()])
    assert np.abs(ours - ref).max() < 1e-5


def test_pixelate_gives_constant_blocks_equal_to_block_means():
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    out = C.pixelate(x, 2)  # f = 0.5: 14x14 blocks of 2x2
    blocks = x.unfold(2, 2, 2).unfold(3, 2, 2).mean(dim=(-1, -2))
    assert torch.allclose(out[0, 0, ::2, ::2], blocks[0, 0], atol=1e-6)
    assert torch.equal(out[0, 0, ::2, ::2], out[0, 0, 1::2, 1::2])


def test_rotation_keeps_a_centred_disk_and_moves_a_bar():
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    r = ((yy - 13.5) ** 2 + (xx - 13.5) ** 2).sqrt()
    disk = (r < 8).float()[None, None]
    assert float((C.rotation(disk, 5, seed=0) - disk).abs().mean()) < 0.02
    bar = torch.zeros(1, 1, 28, 28)
    bar[..., 12:16, 4:24] = 1.0  # horizontal bar: 60 degrees turns it steeply
    out = C.rotation(bar, 5, seed=0)
    rows = out[0, 0].sum(1)
    assert float((rows > 0.5).sum()) > 10  # spread over many rows now
    assert abs(float(out.sum()) - float(bar.sum())) < 0.05 * float(bar.sum())  # mass preserved (inside)


def test_jpeg_is_lossy_but_close_on_smooth_images():
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    smooth = torch.stack([yy, xx, (yy + xx) / 2])[None]
    out = C.jpeg(smooth, 1)
    err = float((out - smooth).abs().mean())
    assert 0 < err < 0.05
    assert float((C.jpeg(smooth, 5) - smooth).abs().mean()) > err


@pytest.mark.parametrize("severity", [-1, 6, 2.5, True])
def test_bad_severity(severity, digits):
    with pytest.raises(ValueError, match="severity must be an int in 0..5"):
        C.brightness(digits, severity)


def test_unknown_corruption(digits):
    with pytest.raises(ValueError, match="unknown corruption 'fog'"):
        C.corrupt(digits, "fog", 1)


def test_accuracy_under_corruptions_matches_a_manual_count(mnist_test):
    x, y = mnist_test[0][:200], mnist_test[1][:200]
    model = load_model("mnist_cnn")
    res = C.accuracy_under_corruptions(model, x, y, names=["brightness", "gaussian_noise"],
                                       severities=[0, 4], seed=0, batch_size=64, progress=False)
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
        # batch i starts at index i: the seed used for it is seed + i
        noisy = torch.cat([C.gaussian_noise(x[i:i + 64], 4, seed=i) for i in range(0, 200, 64)])
        manual = float((model(noisy).argmax(1) == y).float().mean())
    assert res["brightness"][0] == pytest.approx(clean) and res["gaussian_noise"][0] == pytest.approx(clean)
    assert res["gaussian_noise"][1] == pytest.approx(manual)
