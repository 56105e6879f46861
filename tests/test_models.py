"""Shipped models: checksums, eval mode, structure (normalisation first, GAP + Linear, one module per
activation), measured accuracy, the EfficientNet-Lite0 port and its TensorFlow padding."""
import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import data
from course_lib.models import (
    MODEL_SPECS,
    EfficientNetLite0,
    Normalize,
    SamePad2d,
    SmallCNN,
    _lite0_key,
    available_models,
    load_model,
)
from course_lib.training import accuracy

SMALL = ["mnist_cnn", "mnist_cnn_b", "fashion_cnn"]


def test_available_models():
    assert set(SMALL + ["imagenet_lite0"]) <= set(available_models())


@pytest.mark.parametrize("name", SMALL + ["imagenet_lite0"])
def test_loaded_model_state(name):
    m = load_model(name)
    assert not m.training and all(not mod.training for mod in m.modules())
    assert all(p.requires_grad for p in m.parameters())
    assert isinstance(m.normalize, Normalize) and isinstance(m.pool, nn.AdaptiveAvgPool2d)
    assert isinstance(m.fc, nn.Linear)


@pytest.mark.parametrize("name", SMALL + ["imagenet_lite0"])
def test_every_activation_is_its_own_module_and_cam_layer_precedes_pooling(name):
    m = load_model(name)
    size = 224 if name == "imagenet_lite0" else 28
    x = torch.rand(2, 3 if size == 224 else 1, size, size)
    calls, seen = Counter(), {}
    hooks = [mod.register_forward_hook(lambda mod, i, o, n=n: calls.update([n]))
             for n, mod in m.named_modules() if isinstance(mod, (nn.ReLU, nn.ReLU6))]
    grab = m.get_submodule(m.cam_layer).register_forward_hook(lambda mod, i, o: seen.update(a=o))
    with torch.no_grad():
        logits = m(x)
    for h in hooks + [grab]:
        h.remove()
    assert calls and set(calls.values()) == {1}, "an activation module is used more than once per forward"
    a = seen["a"]
    expected_c = 1280 if name == "imagenet_lite0" else m.fc.in_features
    assert a.shape == (2, expected_c, 7, 7)
    # CAM-ready: logits are the Linear layer applied to the spatial mean of the cam_layer maps
    assert torch.allclose(logits, m.fc(a.mean(dim=(2, 3))), atol=1e-4)


def test_accuracy_of_the_mnist_models(mnist_test):
    x, y = mnist_test
    assert accuracy(load_model("mnist_cnn"), x, y) >= 0.985
    assert accuracy(load_model("mnist_cnn_b"), x, y) >= 0.98


def test_accuracy_of_fashion_cnn_on_the_official_test_set():
    x, y = data.load_fashion_mnist("test")
    assert accuracy(load_model("fashion_cnn"), x, y) >= 0.90


def test_manifest_accuracy_is_what_the_model_measures(mnist_test):
    from course_lib.models import model_info

    x, y = mnist_test
    assert abs(model_info("mnist_cnn")["accuracy"] - accuracy(load_model("mnist_cnn"), x, y)) < 1e-4


def test_imagenet_lite0_classifies_the_foolbox_photos():
    x, y = data.load_imagenet_samples()
    m = load_model("imagenet_lite0")
    with torch.no_grad():
        pred = m(x).argmax(1)
    assert int((pred == y).sum()) >= 16
    assert data.IMAGENET_CLASSES[int(m(data.load_photo("cat")).argmax())] in {
        "tabby", "tiger cat", "Egyptian cat", "Persian cat", "lynx"}


def test_lite0_has_the_published_parameter_count():
    n = sum(p.numel() for p in EfficientNetLite0().parameters())
    assert abs(n - 4.65e6) < 0.01e6, n  # 4,652,008 in Tan & Le's Lite0


def test_lite0_key_mapping_covers_every_weight():
    sd = EfficientNetLite0().state_dict()
    published = ["_conv_stem.weight", "_bn0.running_var", "_blocks.0._depthwise_conv.weight",
                 "_blocks.0._bn1.bias", "_blocks.3._expand_conv.weight", "_blocks.15._bn2.weight",
                 "_conv_head.weight", "_bn1.num_batches_tracked", "_fc.bias"]
    for key in published:
        assert _lite0_key(key) in sd, key
    assert _lite0_key("_blocks.0._bn1.bias") == "blocks.0.depthwise.bn.bias"
    assert _lite0_key("_blocks.3._bn0.weight") == "blocks.3.expand.bn.weight"


@pytest.mark.parametrize("size, kernel, stride, expected", [
    # TensorFlow SAME: total = max((ceil(n/s) - 1) s + k - n, 0); before = total // 2
    (224, 3, 2, (0, 1)), (56, 5, 2, (1, 2)), (7, 3, 2, (1, 1)), (14, 5, 1, (2, 2)), (15, 3, 2, (1, 1)),
])
def test_same_padding_follows_tensorflow(size, kernel, stride, expected):
    x = torch.ones(1, 1, size, size)
    out = SamePad2d(kernel, stride)(x)
    top = int((out[0, 0, :, size // 2] == 0).int().argmin())
    assert out.shape[-1] == size + sum(expected) and top == expected[0]
    conv = F.conv2d(out, torch.ones(1, 1, kernel, kernel), stride=stride)
    assert conv.shape[-1] == math.ceil(size / stride)


def test_normalize():
    n = Normalize((0.5, 0.25), (0.5, 0.25))
    x = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)
    assert torch.equal(n(x).flatten(), torch.tensor([1.0, -1.0]))


def test_small_cnn_widths_follow_the_spec():
    m = load_model("mnist_cnn_b")
    assert m.fc.in_features == MODEL_SPECS["mnist_cnn_b"]["kwargs"]["widths"][2]
    assert isinstance(SmallCNN(widths=(4, 8, 16)).features.conv5, nn.Conv2d)


def test_device_argument():
    m = load_model("mnist_cnn", device="cpu")
    assert next(m.parameters()).device.type == "cpu"


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'resnet50'"):
        load_model("resnet50")


def test_corrupted_weight_file_is_refused(data_copy):
    path = data_copy / "models" / "mnist_cnn.pt"
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(RuntimeError, match="corrupted"):
        load_model("mnist_cnn")


def test_corrupted_package_weights_are_refused(monkeypatch, tmp_path):
    from course_lib import models

    bad = tmp_path / "lite0.pth"
    bad.write_bytes(b"not the weights")
    monkeypatch.setitem(models.MODEL_SPECS["imagenet_lite0"], "package_file", lambda: bad)
    with pytest.raises(RuntimeError, match="corrupted"):
        load_model("imagenet_lite0")


def test_fashion_marked_learned_the_shortcut():
    """The shipped fashion_marked model follows the mark: right with the true mark, misled by a wrong one."""
    from course_lib.data import add_mark, load_fashion_mnist

    m = load_model("fashion_marked")
    x, y = load_fashion_mnist("test")
    x, y = x[:1000], y[:1000]
    assert accuracy(m, add_mark(x, y), y) > 0.99
    with torch.no_grad():
        pred = m(add_mark(x, (y + 1) % 10)).argmax(1)
    assert float((pred == (y + 1) % 10).float().mean()) > 0.8
    assert accuracy(m, x, y) < 0.85  # without any mark it is much worse than fashion_cnn (0.9065)
