"""Shipped datasets: shapes, ranges, splits and labels, checked against the sources' definitions."""
import numpy as np
import pytest
import torch

from course_lib import data


def test_mnist_splits():
    x_tr, y_tr = data.load_mnist("train")
    x_te, y_te = data.load_mnist("test")
    assert x_tr.shape == (8000, 1, 28, 28) and x_te.shape == (2000, 1, 28, 28)
    assert x_tr.dtype == torch.float32 and y_tr.dtype == torch.long
    assert 0 <= float(x_tr.min()) and float(x_tr.max()) == 1.0
    # exact uint8 images: every value is k/255
    assert torch.allclose(x_te * 255, (x_te * 255).round(), atol=1e-4)
    # the first 10,000 official training images hold these class counts (from the npm package's files)
    counts = torch.bincount(torch.cat([y_tr, y_te]), minlength=10).tolist()
    assert counts == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    # split by class: 20 % of each class held out
    held = torch.bincount(y_te, minlength=10).tolist()
    assert held == [round(0.2 * c) for c in counts]


def test_mnist_train_and_test_are_disjoint():
    x_tr, _ = data.load_mnist("train")
    x_te, _ = data.load_mnist("test")
    keys = {bytes((x * 255).round().to(torch.uint8).numpy()) for x in x_tr}
    overlap = sum(bytes((x * 255).round().to(torch.uint8).numpy()) in keys for x in x_te)
    assert overlap == 0


def test_fashion_mnist_splits():
    x_tr, y_tr = data.load_fashion_mnist("train")
    x_te, y_te = data.load_fashion_mnist("test")
    assert x_tr.shape == (20000, 1, 28, 28) and x_te.shape == (10000, 1, 28, 28)
    # the official test set is balanced: exactly 1,000 images per class
    assert torch.bincount(y_te, minlength=10).tolist() == [1000] * 10
    assert y_tr.min() == 0 and y_tr.max() == 9 and x_te.max() <= 1 and x_te.min() >= 0


def test_imagenet_samples_match_their_file_names():
    x, y = data.load_imagenet_samples()
    assert x.shape == (20, 3, 224, 224) and y.dtype == torch.long
    names = data._npz("imagenet_samples.npz")["names"]
    assert [int(n.split("_")[2].split(".")[0]) for n in names] == y.tolist()
    assert y[0] == 243  # imagenet_00_243.jpg


def test_class_names():
    assert data.MNIST_CLASSES == [str(i) for i in range(10)]
    assert len(data.FASHION_MNIST_CLASSES) == 10 and data.FASHION_MNIST_CLASSES[9] == "Ankle boot"
    assert len(data.IMAGENET_CLASSES) == 1000
    # standard index order
    assert data.IMAGENET_CLASSES[0] == "tench" and data.IMAGENET_CLASSES[281] == "tabby"
    assert data.IMAGENET_CLASSES[859] == "toaster"


@pytest.mark.parametrize("name", ["cat", "astronaut", "coffee", "rocket", "grace_hopper"])
def test_load_photo(name):
    x = data.load_photo(name)
    assert x.shape == (1, 3, 224, 224) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1 and float(x.std()) > 0.05


def test_load_photo_size_and_crop():
    import skimage.data

    x = data.load_photo("astronaut", size=512)  # astronaut is 512x512: no crop, no resize
    ref = torch.from_numpy(skimage.data.astronaut().astype(np.float32) / 255).permute(2, 0, 1)
    assert torch.allclose(x[0], ref, atol=1e-6)


def test_loaders_return_fresh_tensors():
    x1, _ = data.load_mnist("test")
    x1.zero_()
    x2, _ = data.load_mnist("test")
    assert float(x2.max()) == 1.0, "mutating a returned tensor must not change the next load"


@pytest.mark.parametrize("call, match", [
    (lambda: data.load_mnist("valid"), "split must be 'train' or 'test'"),
    (lambda: data.load_fashion_mnist("Test"), "split must be"),
    (lambda: data.load_photo("dog"), "unknown photo 'dog'"),
    (lambda: data.load_photo("cat", size=0), "size must be"),
    (lambda: data.load_patch("banana"), "unknown patch 'banana'"),
    (lambda: data.load_patch("../MANIFEST"), "plain name"),
])
def test_bad_arguments_are_explained(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_corrupted_data_file_is_detected(data_copy):
    path = data_copy / "mnist.npz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(RuntimeError, match="corrupted or was modified"):
        data.load_mnist("train")


def test_corrupted_patch_is_detected(data_copy):
    path = data_copy / "patches" / "toaster.png"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(RuntimeError, match="corrupted or was modified"):
        data.load_patch("toaster")


def test_shipped_patch_fools_imagenet_lite0_on_photos_it_never_saw():
    """The manifest's claim (66 % on the 5 demo photos x 20 random places), checked on 10 other places."""
    from course_lib.attacks import patch_success
    from course_lib.models import load_model

    patch = data.load_patch("toaster")
    assert patch.shape == (3, 64, 64) and patch.min() >= 0 and patch.max() <= 1
    model = load_model("imagenet_lite0")
    x = torch.cat([data.load_photo(name) for name in sorted(data.PHOTOS)])
    toaster = data.IMAGENET_CLASSES.index("toaster")
    assert patch_success(model, x, patch, toaster, places=10, seed=50) >= 0.45
    noise = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert patch_success(model, x, noise, toaster, places=1, seed=50) == 0


def test_make_loader_is_seeded():
    x, y = data.load_mnist("test")
    a = next(iter(data.make_loader(x, y, batch_size=16, seed=3)))[1]
    b = next(iter(data.make_loader(x, y, batch_size=16, seed=3)))[1]
    c = next(iter(data.make_loader(x, y, batch_size=16, seed=4)))[1]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_add_mark_draws_the_class_square_and_nothing_else():
    from course_lib.data import MARK_POSITIONS, add_mark

    x = torch.rand(3, 1, 28, 28) * 0.5
    before = x.clone()
    out = add_mark(x, torch.tensor([0, 4, 9]))
    assert torch.equal(x, before), "add_mark must not modify its input"
    for i, k in enumerate([0, 4, 9]):
        r, c = MARK_POSITIONS[k]
        expected = before[i].clone()
        expected[:, r:r + 2, c:c + 2] = 1.0
        assert torch.equal(out[i], expected)
    assert len(set(MARK_POSITIONS)) == 10


def test_add_mark_rejects_bad_classes():
    from course_lib.data import add_mark

    with pytest.raises(ValueError, match="class indices"):
        add_mark(torch.zeros(2, 1, 28, 28), torch.tensor([0, 10]))
