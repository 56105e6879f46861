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


# the table of the module's docstring, copied here: a test reading C.SEVERITIES would follow a wrong table
TABLE = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "gaussian_blur": (0.4, 0.6, 0.8, 1.0, 1.3),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "rotation": (10, 20, 30, 45, 60),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
    "jpeg": (25, 18, 15, 10, 7),
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("severity", range(6))
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


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(
    strict=True, reason="known defect: on 28x28 digits pixelate's f = .6 (17 px, uneven blocks) damages more than "
    "f = .5 (14 px, 2x2 blocks), and f = .3 (8 px) more than f = .25 (7 px, 4x4 blocks); mnist_cnn's accuracy "
    "is 0.91, 0.96 at severities 1, 2 and 0.15, 0.19 at 4, 5")) if n == "pixelate" else n for n in NAMES])
def test_damage_grows_with_severity(name, digits):
    """Mean |x' - x| over 32 digits: 0 at severity 0, then strictly larger at each step 1..5."""
    d = [float((C.corrupt(digits, name, s, seed=0) - digits).abs().mean()) for s in range(6)]
    assert d[0] == 0 and all(a < b for a, b in zip(d[:-1], d[1:], strict=True)), d


def test_severity_table_is_the_documented_one():
    assert C.SEVERITIES == TABLE


@pytest.mark.parametrize("severity", range(1, 6))
def test_gaussian_noise_has_the_stated_sigma_and_clips(severity):
    """On a grey image: the median |x' - x| of N(0, sigma^2) is 0.6745 sigma (clipping at 0.5 +- 0.5 does not
    reach the median), and clipping puts the fraction P(|n| > 0.5) of the pixels exactly at 0 or 1."""
    sigma = TABLE["gaussian_noise"][severity - 1]
    x = torch.full((16, 3, 32, 32), 0.5, dtype=torch.float64)
    out = C.gaussian_noise(x, severity, seed=7)
    d = out - x
    assert abs(float(d.abs().median()) / 0.6745 - sigma) < 0.03 * sigma  # neighbouring sigmas differ by > 30 %
    assert abs(float(d.mean())) < 0.01
    clipped = float(((out == 0) | (out == 1)).double().mean())  # 0 at severities 1-2, 9 % at severity 5
    assert clipped == pytest.approx(math.erfc(0.5 / (sigma * math.sqrt(2))), abs=0.006)


@pytest.mark.parametrize("severity", range(1, 6))
def test_brightness_by_hand(severity):
    """clip(x + b): each value raised by the severity's b, then cut at 1."""
    b = TABLE["brightness"][severity - 1]
    x = torch.tensor([0.0, 0.2, 0.6, 0.95, 0.55, 1.0], dtype=torch.float64).view(1, 1, 2, 3)
    expected = torch.tensor([min(v + b, 1.0) for v in [0.0, 0.2, 0.6, 0.95, 0.55, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(C.brightness(x, severity).flatten(), expected)


@pytest.mark.parametrize("severity", range(1, 6))
def test_contrast_by_hand(severity):
    """m + c (x - m) with m the mean of each image's channel: two images and two channels with different means,
    so a mean over the batch or over the channels would give other values."""
    c = TABLE["contrast"][severity - 1]
    x = torch.tensor([[[[0.0, 0.2], [0.6, 0.95]], [[1.0, 1.0], [0.8, 0.2]]],
                      [[[0.1, 0.1], [0.1, 0.5]], [[0.3, 0.0], [0.0, 0.1]]]], dtype=torch.float64)
    means = [[0.4375, 0.75], [0.2, 0.1]]  # by hand
    out = C.contrast(x, severity)
    for i in range(2):
        for ch in range(2):
            m = means[i][ch]
            torch.testing.assert_close(out[i, ch], m + c * (x[i, ch] - m))
            assert float(out[i, ch].mean()) == pytest.approx(m)  # the mean is kept


@pytest.mark.parametrize("severity", range(1, 6))
@pytest.mark.parametrize("size", [32, 64])
def test_blur_matches_scipy(size, severity):
    """sigma scales with the height (sigma * H / 32): the same defocus on a digit and on a photo."""
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    sigma = TABLE["gaussian_blur"][severity - 1] * size / 32
    ours = C.gaussian_blur(x, severity).numpy()
    radius = math.ceil(3 * sigma)
    # torch "reflect" (d c b | a b c d) is scipy's "mirror"
    ref = np.stack([np.stack([ndimage.gaussian_filter(c, sigma, mode="mirror", radius=radius) for c in img])
                    for img in x.numpy()])
    assert np.abs(ours - ref).max() < 1e-5


@pytest.mark.parametrize("severity", range(1, 6))
def test_rotation_matches_scipy_with_one_of_the_two_signs(severity):
    """Each image rotated about its centre by +theta or -theta (the sign drawn from the seed), bilinear, zeros
    outside: scipy's rotate with order 1 and zero padding ("grid-constant") for one of the two signs, per image."""
    theta = TABLE["rotation"][severity - 1]
    x = torch.rand(6, 2, 17, 17, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = C.rotation(x, severity, seed=3).numpy()
    signs = []
    for img, got in zip(x.numpy(), out, strict=True):
        errs = {sign: np.abs(got - np.stack([ndimage.rotate(c, sign * theta, reshape=False, order=1,
                                                            mode="grid-constant", cval=0.0) for c in img])).max()
                for sign in (1, -1)}
        sign = min(errs, key=errs.get)
        assert errs[sign] < 1e-10 and errs[-sign] > 0.1, errs
        signs.append(sign)
    assert len(set(signs)) == 2, "the sign is random per image: 6 images all turned the same way is 1 in 32"


@pytest.mark.parametrize("severity", range(1, 6))
def test_pixelate_equals_block_means_by_hand(severity):
    """Down to (round(f H), round(f W)) by area averaging, back up by nearest neighbour, written as loops from the
    definitions: output pixel (i, j) shows small pixel (floor(i h / H), floor(j w / W)), the mean of the input
    rows floor(a H / h) .. ceil((a + 1) H / h) - 1 (and the same for columns). H != W catches swapped axes."""
    f = TABLE["pixelate"][severity - 1]
    hs, ws = {1: (12, 7), 2: (10, 6), 3: (8, 5), 4: (6, 4), 5: (5, 3)}[severity]  # round(20 f), round(12 f)
    assert (hs, ws) == (round(20 * f), round(12 * f))
    x = torch.rand(2, 2, 20, 12, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = torch.empty_like(x)
    for i in range(20):
        a = i * hs // 20
        r0, r1 = a * 20 // hs, -(-(a + 1) * 20 // hs)
        for j in range(12):
            b = j * ws // 12
            c0, c1 = b * 12 // ws, -(-(b + 1) * 12 // ws)
            expected[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean((2, 3))
    torch.testing.assert_close(C.pixelate(x, severity), expected)


@pytest.mark.parametrize("severity", range(1, 6))
def test_jpeg_is_a_pillow_round_trip_at_the_stated_quality(severity):
    """Each image quantised to 8 bits, saved by Pillow as JPEG at the severity's quality, decoded, / 255: grey
    and colour images."""
    import io

    from PIL import Image

    q = TABLE["jpeg"][severity - 1]
    g = torch.Generator().manual_seed(4)
    for x in (torch.rand(2, 1, 16, 16, generator=g), torch.rand(2, 3, 16, 24, generator=g)):
        out = C.jpeg(x, severity)
        for img, got in zip(x, out, strict=True):
            arr = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(buf, format="JPEG", quality=q)
            dec = np.asarray(Image.open(buf), dtype=np.float32) / 255
            ref = torch.from_numpy(dec.reshape(arr.shape)).permute(2, 0, 1)
            assert torch.equal(got, ref)


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
