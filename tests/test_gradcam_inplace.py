"""Grad-CAM on a network with in-place operations after the explained layer: a torchvision ResNet-18 (random
weights), whose blocks apply ``ReLU(inplace=True)`` after ``bn1`` and ``out += identity`` after ``bn2``.

Grad-CAM restarts the autograd graph at the layer's output; if the network then modified that tensor in place,
autograd would refuse (a leaf that requires grad used in an in-place operation). The maps are compared with a
hand computation from the definition, on the block written out with out-of-place operations::

    alpha_k = mean_ij d y_t / d A^k_ij,    L = ReLU(sum_k alpha_k A^k),    bilinear to the input size
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.explain import feature_maps, grad_cam

torchvision = pytest.importorskip("torchvision")


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)  # only to draw the random weights
    model = torchvision.models.resnet18(weights=None, num_classes=10).double().eval()
    # random weights leave the running statistics at 0 and 1; give batch norm some so that it does something
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g, dtype=torch.float64))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g, dtype=torch.float64))
    return model


@pytest.fixture(scope="module")
def photos():
    return torch.rand(2, 3, 80, 80, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


def _block_input(model, x):
    """The input of ``layer4[1]`` (its identity branch), computed module by module."""
    with torch.no_grad():
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        h = model.layer3(model.layer2(model.layer1(h)))
        return model.layer4[0](h)


def _by_hand(model, x, target, layer):
    """Grad-CAM from the definition: ``layer4[1]`` and the head written out without in-place operations."""
    blk = model.layer4[1]
    h = _block_input(model, x)
    with torch.no_grad():
        a = blk.bn1(blk.conv1(h)) if layer == "bn1" else blk.bn2(blk.conv2(torch.relu(blk.bn1(blk.conv1(h)))))
    a = a.clone().requires_grad_(True)
    out = blk.bn2(blk.conv2(torch.relu(a))) if layer == "bn1" else a
    logits = model.fc(torch.relu(out + h).mean((2, 3)))
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x), rtol=1e-10, atol=1e-10)  # the hand forward is the model's
    t = logits.argmax(1) if target is None else target
    (g,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), a)
    maps = (g.mean((2, 3), keepdim=True) * a.detach()).sum(1).clamp_min(0)
    return maps, F.interpolate(maps[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


@pytest.mark.parametrize("layer", ["bn1", "bn2"])  # followed by ReLU(inplace=True) / by out += identity
@pytest.mark.parametrize("target", [None, torch.tensor([3, 7])])
def test_grad_cam_after_in_place_ops_matches_the_definition(resnet, photos, layer, target):
    before = {k: v.clone() for k, v in resnet.state_dict().items()}
    small, up = _by_hand(resnet, photos, target, layer)
    assert small.shape == (2, 3, 3) and float(small.amax()) > 0  # a map that is not all zero
    name = f"layer4.1.{layer}"
    torch.testing.assert_close(grad_cam(resnet, photos, target, layer=name, upsample=False), small,
                               rtol=1e-9, atol=1e-12)
    out = grad_cam(resnet, photos, target, layer=name)
    assert out.shape == (2, 80, 80) and not out.requires_grad
    torch.testing.assert_close(out, up, rtol=1e-9, atol=1e-12)
    # the model is untouched, and a plain forward pass still gives the same logits (no hook left behind)
    for k, v in resnet.state_dict().items():
        assert torch.equal(v, before[k]), k
    torch.testing.assert_close(resnet(photos), _by_hand_logits(resnet, photos))


def _by_hand_logits(model, x):
    h = _block_input(model, x)
    blk = model.layer4[1]
    with torch.no_grad():
        out = blk.bn2(blk.conv2(torch.relu(blk.bn1(blk.conv1(h)))))
        return model.fc(torch.relu(out + h).mean((2, 3)))


def test_feature_maps_are_the_layer_output_before_the_in_place_relu(resnet, photos):
    """The layer's own output, not what a later ReLU(inplace=True) or ``+= identity`` made of it."""
    blk = resnet.layer4[1]
    h = _block_input(resnet, photos)
    with torch.no_grad():
        a = blk.bn1(blk.conv1(h))
    assert float(a.min()) < 0  # so that a ReLU applied in place would show
    torch.testing.assert_close(feature_maps(resnet, photos, "layer4.1.bn1"), a, rtol=0, atol=0)


class _Residual(nn.Module):
    """conv -> ReLU(inplace) -> conv, out += x, ReLU(inplace), then GAP + linear: a hand-made residual block."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.conv1, self.conv2 = nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(2, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, x):
        out = self.relu(self.conv1(x))
        out = self.conv2(out)
        out += x
        return self.fc(self.relu(out).mean((2, 3)))


def test_grad_cam_on_a_hand_made_residual_block():
    model = _Residual().double().eval()
    x = torch.rand(3, 2, 6, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for layer in ("conv1", "conv2"):  # conv1: then ReLU(inplace=True); conv2: then out += x
        with torch.no_grad():
            a = model.conv1(x) if layer == "conv1" else model.conv2(torch.relu(model.conv1(x)))
        a = a.clone().requires_grad_(True)
        out = model.conv2(torch.relu(a)) if layer == "conv1" else a
        logits = model.fc(torch.relu(out + x).mean((2, 3)))
        (g,) = torch.autograd.grad(logits.gather(1, logits.argmax(1)[:, None]).sum(), a)
        expected = (g.mean((2, 3), keepdim=True) * a.detach()).sum(1).clamp_min(0)
        torch.testing.assert_close(grad_cam(model, x, layer=layer), expected, rtol=1e-10, atol=1e-12)
