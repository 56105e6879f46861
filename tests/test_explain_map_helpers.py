"""The helpers lessons 03 and 04 import from course_lib, checked against values computed by hand:
ig_baselines, randomization_check(return_maps=True), grad_cam_ingredients, peak_distance and occlusion of a
feature map (layer=, channel=). (show_heatmap(clip_quantile=) and outline_pixels are in test_plot.py.)"""
import pytest
import torch
from torch import nn

from course_lib.corruptions import corrupt
from course_lib.explain import grad_cam, integrated_gradients, occlusion, randomization_check, saliency
from course_lib.explain.cam import grad_cam_ingredients, peak_distance
from course_lib.explain.saliency import ig_baselines


class GapNet(nn.Module):
    """features = a 1x1 conv (2 -> 2 channels) whose weights are given; then GAP and fc. A = features(x)."""

    def __init__(self, conv_weight, fc_weight, fc_bias=None):
        super().__init__()
        self.features = nn.Conv2d(2, 2, 1, bias=False)
        self.fc = nn.Linear(2, fc_weight.shape[0])
        with torch.no_grad():
            self.features.weight.copy_(conv_weight.view(2, 2, 1, 1))
            self.fc.weight.copy_(fc_weight)
            self.fc.bias.copy_(torch.zeros(fc_weight.shape[0]) if fc_bias is None else fc_bias)
        self.cam_layer = "features"
        self.eval()

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def identity_net():
    return GapNet(torch.eye(2), torch.tensor([[1.0, 2.0], [3.0, -4.0]]))


# --------------------------------------------------------------------------- ig_baselines
def test_ig_baselines_are_black_blurred_and_seeded_uniform_noise():
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    b = ig_baselines(x)
    assert list(b) == ["black", "blurred", "uniform noise"]
    assert torch.equal(b["black"], torch.zeros_like(x))
    assert torch.equal(b["blurred"], corrupt(x, "gaussian_blur", 5))
    assert torch.equal(b["uniform noise"], torch.rand(x.shape, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(ig_baselines(x, seed=1)["uniform noise"],
                       torch.rand(x.shape, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(ig_baselines(x, blur_severity=1)["blurred"], b["blurred"])
    x0 = x.clone()
    ig_baselines(x)
    assert torch.equal(x, x0)


def test_ig_baselines_plug_into_integrated_gradients_with_completeness():
    model = identity_net()
    x = torch.rand(1, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    for base in ig_baselines(x).values():
        ig, delta = integrated_gradients(model, x, 0, baseline=base, steps=8, return_delta=True)
        assert abs(float(delta)) < 1e-5   # the model is linear: IG is exact for any baseline


# --------------------------------------------------------------------------- randomization_check(return_maps=True)
def test_randomization_check_returns_the_maps_of_every_step():
    model = identity_net()
    x = torch.rand(3, 2, 4, 4, generator=torch.Generator().manual_seed(2))
    seen = []

    def record(m, z, target):
        a = -saliency(m, z, target)   # signed on purpose: the maps come back as returned, before any abs
        seen.append(a)
        return a

    res = randomization_check(model, x, record, seed=0, return_maps=True)
    assert res["layers"] == ["fc", "features"] and len(res["maps"]) == 3
    for got, want in zip(res["maps"], seen, strict=True):
        assert torch.equal(got, want)
    assert (res["maps"][0] <= 0).all()
    # the original map: |d y_c / d x| of a linear model = the class's fc weight on each channel, / 16 positions
    c = model(x).argmax(1)
    want0 = model.fc.weight[c].abs()[:, :, None, None].expand(3, 2, 4, 4) / 16
    assert torch.allclose(-res["maps"][0], want0)
    plain = randomization_check(model, x, saliency, seed=0)
    assert "maps" not in plain and torch.equal(plain["correlation"], res["correlation"])


# --------------------------------------------------------------------------- grad_cam_ingredients
def test_grad_cam_ingredients_by_hand():
    model = identity_net()   # A = x, y = W mean(A): dA^k_ij = W[c, k] / Z everywhere
    x = torch.rand(2, 2, 3, 3, generator=torch.Generator().manual_seed(3))
    a, da = grad_cam_ingredients(model, x, torch.tensor([0, 1]))
    assert torch.allclose(a, x)
    want = torch.tensor([[1.0, 2.0], [3.0, -4.0]])[:, :, None, None].expand(2, 2, 3, 3) / 9
    assert torch.allclose(da, want)
    assert not a.requires_grad and not da.requires_grad
    assert all(p.grad is None for p in model.parameters())
    # grad_cam is ReLU(sum_k mean(dA^k) A^k), here ReLU(sum_k W[c, k] x_k) / 9
    gc = grad_cam(model, x, torch.tensor([0, 1]), upsample=False)
    assert torch.allclose(gc[0], (x[0, 0] + 2 * x[0, 1]) / 9)
    assert torch.allclose(gc[1], (3 * x[1, 0] - 4 * x[1, 1]).clamp_min(0) / 9)
    # target=None is the predicted class
    _, dpred = grad_cam_ingredients(model, x)
    pred = model(x).argmax(1)
    assert torch.allclose(dpred, torch.stack([want[int(c)] for c in pred]))


# --------------------------------------------------------------------------- peak_distance
def test_peak_distance_by_hand():
    maps = torch.zeros(3, 5, 6)
    maps[0, 1, 2] = 1.0    # peak (1, 2)
    maps[1, 4, 5] = 2.0    # peak (4, 5)
    maps[2, 0, 0] = maps[2, 3, 3] = 1.0   # a tie: the first in row-major order, (0, 0)
    points = torch.tensor([[1.5, 2.5], [0.0, 2.0], [3.0, 4.0]])   # distances sqrt(0.5), |(4, 3)|, |(3, 4)|
    d = peak_distance(maps, points)
    assert torch.allclose(d, torch.tensor([0.5 ** 0.5, 5.0, 5.0]))
    with pytest.raises(ValueError, match="points"):
        peak_distance(maps, points[:2])
    with pytest.raises(ValueError, match="maps"):
        peak_distance(maps[0], points)


# --------------------------------------------------------------------------- occlusion of a feature map
def test_occlusion_of_a_channel_by_hand():
    # A = features(x): channel 0 = x_0, channel 1 = 2 x_1; a_k = mean over the 16 positions
    model = GapNet(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[1.0, 1.0]]))
    x = torch.arange(32.0).view(1, 2, 4, 4) / 32
    o0 = occlusion(model, x, window=2, stride=2, baseline=0.0, layer="features", channel=0)
    # each pixel is covered by one 2x2 window; hiding it (to 0) lowers a_0 by the window's sum of x_0 / 16
    sums = x[0, 0].view(2, 2, 2, 2).sum((1, 3))            # (window row, window col)
    want0 = sums.repeat_interleave(2, 0).repeat_interleave(2, 1) / 16
    assert torch.allclose(o0[0], want0)
    o1 = occlusion(model, x, window=2, stride=2, baseline=0.0, layer="features", channel=1)
    sums1 = 2 * x[0, 1].view(2, 2, 2, 2).sum((1, 3))
    assert torch.allclose(o1[0], sums1.repeat_interleave(2, 0).repeat_interleave(2, 1) / 16)
    # channel=None: the strongest channel of the clean image (channel 1: 2 x_1 has the larger mean)
    assert torch.allclose(occlusion(model, x, window=2, stride=2, baseline=0.0, layer="features"), o1)
    # a per-image channel tensor, and a grey baseline: drop = sum over the window of (x - 0.5) / 16
    xx = torch.cat([x, x.flip(-1)])
    both = occlusion(model, xx, window=4, baseline=0.5, layer="features", channel=torch.tensor([0, 1]))
    assert torch.allclose(both[0], torch.full((4, 4), float((x[0, 0] - 0.5).sum() / 16)))
    assert torch.allclose(both[1], torch.full((4, 4), float((2 * (x[0, 1] - 0.5)).sum() / 16)))
    # the default is unchanged: the logit y = a_0 + a_1
    logit = occlusion(model, x, window=2, stride=2, baseline=0.0)
    assert torch.allclose(logit, o0 + o1)


def test_occlusion_layer_arguments_are_validated():
    model = identity_net()
    x = torch.rand(1, 2, 4, 4)
    with pytest.raises(ValueError, match="channel= needs layer="):
        occlusion(model, x, window=2, channel=0)
    with pytest.raises(ValueError, match="leave target=None"):
        occlusion(model, x, 0, window=2, layer="features")
    with pytest.raises(ValueError, match="channel must be in 0..1"):
        occlusion(model, x, window=2, layer="features", channel=2)
    with pytest.raises(ValueError, match="feature maps"):
        occlusion(model, x, window=2, layer="fc")
