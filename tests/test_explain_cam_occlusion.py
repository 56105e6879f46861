"""CAM, Grad-CAM and occlusion checked against hand computations, brute force and each other."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.explain import cam, grad_cam, occlusion
from course_lib.models import load_model


@pytest.fixture(scope="module")
def digits(mnist_test):
    return mnist_test[0][:6]


def hooks_left(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.modules())


# --------------------------------------------------------------------------- hand-built models
class TinyGap(nn.Module):
    """4x4 input -> features = 2x2 average pool, 1x1 conv to A = (p, 0.5 - p) -> GAP -> fc (hand weights)."""

    cam_layer = "features"

    def __init__(self, dtype=torch.float64):
        super().__init__()
        conv = nn.Conv2d(1, 2, 1)
        with torch.no_grad():
            conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            conv.bias.copy_(torch.tensor([0.0, 0.5]))
        self.features = nn.Sequential(nn.AvgPool2d(2), conv)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 3)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[2.0, 1.0], [-1.0, 3.0], [0.5, -4.0]]))
            self.fc.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        self.to(dtype).eval()

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def tiny_conv_model(in_ch=1, classes=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(in_ch, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes)).double().eval()


X4 = torch.tensor([[[[0.0, 0.2, 0.4, 0.6],
                     [0.2, 0.2, 1.0, 0.2],
                     [0.9, 0.1, 0.3, 0.3],
                     [0.5, 0.5, 0.3, 0.1]]]], dtype=torch.float64)


# --------------------------------------------------------------------------- CAM
def test_cam_on_tiny_model_equals_hand_computation():
    model = TinyGap()
    p = torch.tensor([[0.15, 0.55], [0.5, 0.25]], dtype=torch.float64)  # 2x2 means of X4's blocks
    # CAM_c = w_c0 * p + w_c1 * (0.5 - p), no bias
    hand = {0: 2 * p + 1 * (0.5 - p), 1: -1 * p + 3 * (0.5 - p), 2: 0.5 * p - 4 * (0.5 - p)}
    for c, expected in hand.items():
        torch.testing.assert_close(cam(model, X4, c, upsample=False)[0], expected)
        torch.testing.assert_close(cam(model, X4, c, upsample=False, relu=True)[0], expected.clamp_min(0))
    # the logit is the map's mean plus the bias
    with torch.no_grad():
        logits = model(X4)[0]
    for c in range(3):
        torch.testing.assert_close(hand[c].mean() + model.fc.bias[c].detach(), logits[c])
    # bilinear 2 -> 4 with align_corners=False samples at (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 (clamped)
    r = torch.tensor([0.0, 0.25, 0.75, 1.0], dtype=torch.float64)
    m = hand[1]
    rows = m[0][None, :] * (1 - r)[:, None] + m[1][None, :] * r[:, None]  # interpolate along i: (4, 2)
    up = rows[:, :1] * (1 - r)[None, :] + rows[:, 1:] * r[None, :]      # then along j: (4, 4)
    torch.testing.assert_close(cam(model, X4, 1)[0], up)
    # target None is the predicted class
    torch.testing.assert_close(cam(model, X4, upsample=False)[0], hand[int(logits.argmax())])


def test_cam_rejects_models_without_gap_and_linear_head(mnist_cnn, digits):
    x = digits[:2]
    with pytest.raises(ValueError, match="channels"):
        cam(mnist_cnn, x, layer="features.relu1")  # 16 channels, the fc takes 64
    with pytest.raises(ValueError, match="global average pool"):
        cam(mnist_cnn, x, layer="features.conv5")  # 64 channels but batch norm and ReLU come before pooling
    no_linear = nn.Sequential(nn.Conv2d(1, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    no_linear.cam_layer = "0"
    with pytest.raises(ValueError, match="no nn.Linear"):
        cam(no_linear, x)
    relu_head = nn.Sequential(nn.Conv2d(1, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.ReLU(),
                              nn.Linear(3, 3)).eval()
    with torch.no_grad():  # pooled features (-1, 1, 0.5) for every image: the ReLU changes the logits
        relu_head[0].weight.zero_()
        relu_head[0].bias.copy_(torch.tensor([-1.0, 1.0, 0.5]))
        relu_head[4].weight.copy_(torch.eye(3))
    with pytest.raises(ValueError, match="global average pool"):
        cam(relu_head, x + 0.0, layer="0")
    with pytest.raises(ValueError, match="cam_layer"):
        cam(relu_head, x)  # no layer and no model.cam_layer
    assert hooks_left(mnist_cnn) == hooks_left(no_linear) == hooks_left(relu_head) == 0


# --------------------------------------------------------------------------- Grad-CAM
def test_grad_cam_is_relu_cam_over_z_on_mnist_cnn(mnist_cnn, digits):
    for target in (None, 3, torch.arange(6) % 10):
        g = grad_cam(mnist_cnn, digits, target)
        c = cam(mnist_cnn, digits, target, relu=True)
        assert g.shape == (6, 28, 28)
        if target is None:  # the predicted class has evidence somewhere
            assert (g.flatten(1).amax(1) > 0).all()
        torch.testing.assert_close(g * 49, c, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(grad_cam(mnist_cnn, digits, target, upsample=False) * 49,
                                   cam(mnist_cnn, digits, target, relu=True, upsample=False), rtol=1e-4, atol=1e-5)


def test_grad_cam_is_relu_cam_over_z_on_imagenet_lite0():
    from course_lib.data import load_imagenet_samples

    model = load_model("imagenet_lite0")
    x = load_imagenet_samples()[0][:1]
    g = grad_cam(model, x, upsample=False)
    c = cam(model, x, relu=True, upsample=False)
    assert g.shape == c.shape == (1, 7, 7)
    assert g.max() > 0
    torch.testing.assert_close(g * 49, c, rtol=1e-4, atol=1e-4 * float(c.max()))


def test_grad_cam_on_inner_layer_matches_a_split_network(mnist_cnn, digits):
    # an independent Grad-CAM: run the network in two halves around features.relu3 and differentiate by hand
    x = digits[:3]
    t = torch.tensor([7, 2, 1])
    names = [n for n, _ in mnist_cnn.features.named_children()]
    cut = names.index("relu3") + 1
    with torch.no_grad():
        a = mnist_cnn.features[:cut](mnist_cnn.normalize(x))
    a.requires_grad_(True)
    head = mnist_cnn.fc(mnist_cnn.flatten(mnist_cnn.pool(mnist_cnn.features[cut:](a))))
    (grad,) = torch.autograd.grad(head.gather(1, t[:, None]).sum(), a)
    alpha = grad.mean((2, 3), keepdim=True)
    expected = F.interpolate(F.relu((alpha * a).sum(1, keepdim=True)), size=(28, 28), mode="bilinear",
                             align_corners=False)[:, 0].detach()
    out = grad_cam(mnist_cnn, x, t, layer="features.relu3")
    assert out.shape == (3, 28, 28)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_cam(mnist_cnn, x, t, layer=mnist_cnn.features.relu3), out)
    assert grad_cam(mnist_cnn, x, t, layer="features.relu3", upsample=False).shape == (3, 14, 14)
    assert all(p.grad is None for p in mnist_cnn.parameters())


# --------------------------------------------------------------------------- occlusion
def brute_force_occlusion(model, x, t, wh, ww, sh, sw, base):
    """Slide the window by hand: starts 0, s, 2s, ... until a window reaches the far edge (cut off there)."""
    def starts(size, win, step):
        out, s = [], 0
        while True:
            out.append(s)
            if s + win >= size:
                return out
            s += step

    b, _, h, w = x.shape
    total = torch.zeros(b, h, w, dtype=x.dtype)
    count = torch.zeros(h, w, dtype=x.dtype)
    with torch.no_grad():
        clean = model(x)[torch.arange(b), t]
        for i in starts(h, wh, sh):
            for j in starts(w, ww, sw):
                xo = x.clone()
                xo[:, :, i:i + wh, j:j + ww] = base.expand_as(x)[:, :, i:i + wh, j:j + ww]
                total[:, i:i + wh, j:j + ww] += (clean - model(xo)[torch.arange(b), t])[:, None, None]
                count[i:i + wh, j:j + ww] += 1
    return torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total)), count


@pytest.mark.parametrize("size, window, stride", [((7, 9), 3, 2), ((7, 7), 2, 3), ((5, 8), (2, 3), (1, 2)),
                                                   ((6, 6), 3, None)])
def test_occlusion_equals_brute_force(size, window, stride):
    model = tiny_conv_model(in_ch=2)
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 2, *size, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 2])
    wh, ww = (window, window) if isinstance(window, int) else window
    st = (wh, ww) if stride is None else stride
    sh, sw = (st, st) if isinstance(st, int) else st
    for base in (0.5, torch.rand(1, 2, *size, generator=g, dtype=torch.float64)):
        base_t = torch.as_tensor(base, dtype=x.dtype)
        expected, count = brute_force_occlusion(model, x, t, wh, ww, sh, sw, base_t)
        out = occlusion(model, x, t, window=window, stride=stride, baseline=base, batch_size=5)
        torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    if (count == 0).any():  # stride > window: uncovered pixels are 0
        assert (out[:, count == 0] == 0).all() and (out[:, count > 0] != 0).any()


def test_occlusion_on_linear_model_by_hand():
    # f(x) = sum W x + b: occluding a window changes the logit by sum_{p in window} W_t[p] (x_p - baseline)
    weight = torch.tensor([[[[1.0, -2.0], [3.0, 0.5]]], [[[0.0, 1.0], [1.0, 1.0]]]], dtype=torch.float64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).double().eval()
    with torch.no_grad():
        model[1].weight.copy_(weight.flatten(1))
        model[1].bias.copy_(torch.tensor([5.0, -1.0]))
    x = torch.tensor([[[[0.5, 1.0], [0.0, 0.25]]]], dtype=torch.float64)
    # window 1: each pixel alone, W_0 * (x - 0.5) = [[0, -1], [-1.5, -0.125]]
    torch.testing.assert_close(occlusion(model, x, 0, window=1, baseline=0.5)[0],
                               torch.tensor([[0.0, -1.0], [-1.5, -0.125]], dtype=torch.float64))
    # window 2 covers everything: every pixel gets f(x) - f(baseline) = 0 - 1 - 1.5 - 0.125 (class 0, base 0.5)
    torch.testing.assert_close(occlusion(model, x, 0, window=2)[0], torch.full((2, 2), -2.625, dtype=torch.float64))
    # window (1, 2) stride 1 on rows: each row is one window; class 1 with a black baseline: row sums of W_1 x
    torch.testing.assert_close(occlusion(model, x, 1, window=(1, 2), stride=1, baseline=0.0)[0],
                               torch.tensor([[1.0, 1.0], [0.25, 0.25]], dtype=torch.float64))
    # a per-channel baseline (C, 1, 1) is the occluder's colour: black here, so W_0 * x
    torch.testing.assert_close(occlusion(model, x, 0, window=1, baseline=torch.tensor([0.0]).view(1, 1, 1).double())[0],
                               torch.tensor([[0.5, -2.0], [0.0, 0.125]], dtype=torch.float64))


def test_occlusion_does_not_depend_on_batch_size_and_shows_progress(capsys):
    model = tiny_conv_model()
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = occlusion(model, x, window=2, stride=1, batch_size=1, progress=False)
    b = occlusion(model, x, window=2, stride=1, batch_size=1000, progress=False)
    assert capsys.readouterr().err == ""
    torch.testing.assert_close(a, b)
    occlusion(model, x, window=2, stride=1, progress=True)
    assert "occlusion" in capsys.readouterr().err


# --------------------------------------------------------------------------- side effects and errors
METHODS = {
    "cam": lambda m, x, **kw: cam(m, x, **kw),
    "grad_cam": lambda m, x, **kw: grad_cam(m, x, **kw),
    "grad_cam_inner": lambda m, x, **kw: grad_cam(m, x, layer="features.relu2", **kw),
    "occlusion": lambda m, x, **kw: occlusion(m, x, window=7, **kw),
}


@pytest.mark.parametrize("name", METHODS)
def test_no_side_effects(name, mnist_cnn):
    fn = METHODS[name]
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    x0 = x.clone()
    flags = [p.requires_grad for p in mnist_cnn.parameters()]
    out = fn(mnist_cnn, x)
    assert out.shape == (2, 28, 28) and not out.requires_grad and out.device == x.device
    assert torch.equal(x, x0) and not x.requires_grad and x.grad is None
    assert not mnist_cnn.training
    assert [p.requires_grad for p in mnist_cnn.parameters()] == flags
    assert all(p.grad is None for p in mnist_cnn.parameters())
    assert hooks_left(mnist_cnn) == 0
    with torch.no_grad():
        torch.testing.assert_close(fn(mnist_cnn, x), out)
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()
    frozen = load_model("mnist_cnn").requires_grad_(False)
    torch.testing.assert_close(fn(frozen, x), out)
    assert all(not p.requires_grad and p.grad is None for p in frozen.parameters())


class RaisesAfterFeatures(nn.Module):
    """A GAP + linear model whose forward fails after the feature maps were computed."""

    cam_layer = "features"

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        self.features(x)
        raise RuntimeError("boom")


@pytest.mark.parametrize("name", METHODS)
def test_hooks_removed_and_grad_mode_restored_after_errors(name, mnist_cnn):
    fn = METHODS[name]
    x = torch.rand(2, 1, 28, 28)
    with pytest.raises(ValueError, match="class index"):
        fn(mnist_cnn, x, target=10)
    assert hooks_left(mnist_cnn) == 0 and torch.is_grad_enabled()
    with torch.no_grad():
        with pytest.raises(ValueError, match="class index"):
            fn(mnist_cnn, x, target=torch.tensor([0, -1]))
        assert not torch.is_grad_enabled()
    if name != "grad_cam_inner":
        broken = RaisesAfterFeatures().eval()
        with pytest.raises(RuntimeError, match="boom"):
            fn(broken, x)
        assert hooks_left(broken) == 0 and torch.is_grad_enabled()


@pytest.mark.parametrize("name", METHODS)
def test_bad_inputs_raise_clear_errors(name, mnist_cnn):
    fn = METHODS[name]
    x = torch.rand(2, 1, 28, 28)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        fn(mnist_cnn, x[0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fn(mnist_cnn, x - 0.5)
    with pytest.raises(TypeError, match="floating-point"):
        fn(mnist_cnn, (x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        fn(mnist_cnn, x, target=torch.tensor([1]))
    train = load_model("mnist_cnn").train()
    with pytest.raises(ValueError, match="training mode"):
        fn(train, x)
    assert train.training


def test_bad_layers_and_windows_raise(mnist_cnn):
    x = torch.rand(1, 1, 28, 28)
    for fn in (cam, grad_cam):
        with pytest.raises(ValueError, match="no layer named 'featurez'"):
            fn(mnist_cnn, x, layer="featurez")
        with pytest.raises(ValueError, match="not part of model"):
            fn(mnist_cnn, x, layer=nn.ReLU())
    with pytest.raises(ValueError, match=r"\(B, K, h, w\)"):
        grad_cam(mnist_cnn, x, layer="flatten")

    class SideBranch(nn.Module):  # "side" runs but the logits ignore it
        def __init__(self):
            super().__init__()
            self.side, self.main = nn.Conv2d(1, 2, 3), nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

        def forward(self, x):
            self.side(x)
            return self.main(x).repeat(1, 3)

    side = SideBranch().eval()
    with pytest.raises(ValueError, match="do not depend"):
        grad_cam(side, x, layer="side")
    assert hooks_left(side) == 0
    with pytest.raises(ValueError, match="larger than the images"):
        occlusion(mnist_cnn, x, window=29)
    with pytest.raises(ValueError, match="window"):
        occlusion(mnist_cnn, x, window=0)
    with pytest.raises(ValueError, match="stride"):
        occlusion(mnist_cnn, x, stride=(1, 2, 3))
    with pytest.raises(ValueError, match="broadcast"):
        occlusion(mnist_cnn, x, baseline=torch.zeros(3, 1, 1))
    with pytest.raises(ValueError, match=r"baseline must have values in \[0, 1\]"):
        occlusion(mnist_cnn, x, baseline=2.0)
    assert hooks_left(mnist_cnn) == 0


def test_captum_conventions_by_hand_on_mnist_cnn(mnist_cnn, digits):
    """What a Captum cross-check would compare (``Occlusion`` with windows (1, 5, 5), strides (1, 3, 3), baseline
    0.5; ``LayerGradCam(model, model.features)`` with ``relu_attributions``), computed here from the definitions on
    the shipped model: captum is not a dependency, and an ``importorskip`` of it always skipped."""
    x = digits[:3]
    b = torch.arange(3)
    with torch.no_grad():
        t = mnist_cnn(x).argmax(1)
        clean = mnist_cnn(x)[b, t]
        # Captum slides ceil((28 - 5) / 3) + 1 = 9 windows per axis: starts 0, 3, ..., 24, the last cut off at 27
        starts = [0, 3, 6, 9, 12, 15, 18, 21, 24]
        total, count = torch.zeros(3, 28, 28), torch.zeros(28, 28)
        for i in starts:
            for j in starts:
                xo = x.clone()
                xo[:, :, i:i + 5, j:j + 5] = 0.5
                total[:, i:i + 5, j:j + 5] += (clean - mnist_cnn(xo)[b, t])[:, None, None]
                count[i:i + 5, j:j + 5] += 1
    assert count[0, 0] == 1 and count[3, 3] == 4 and count[4, 4] == 4 and count[5, 5] == 1 and count[27, 27] == 1
    torch.testing.assert_close(occlusion(mnist_cnn, x, window=5, stride=3), total / count, rtol=0, atol=1e-5)
    # Grad-CAM on the last feature maps A (7x7): ReLU(sum_k alpha_k A_k), alpha_k = spatial mean of d y_t / d A_k
    with torch.no_grad():
        a = mnist_cnn.features(mnist_cnn.normalize(x))
    a.requires_grad_(True)
    logits = mnist_cnn.fc(mnist_cnn.flatten(mnist_cnn.pool(a)))
    (grad,) = torch.autograd.grad(logits[b, t].sum(), a)
    expected = F.relu((grad.mean((2, 3), keepdim=True) * a).sum(1)).detach()
    assert expected.shape == (3, 7, 7) and (expected.flatten(1).amax(1) > 0).all()
    torch.testing.assert_close(grad_cam(mnist_cnn, x, upsample=False), expected, rtol=1e-5, atol=1e-6)


def test_occlusion_costs_one_clean_pass_plus_one_image_per_window(mnist_cnn, mnist_test):
    """1 + ceil((H - k)/s + 1)^2 images per explained image (lesson 01 counts it), for a logit and for a layer."""
    from course_lib.explain import occlusion
    from course_lib.training import count_images

    x = mnist_test[0][:2]
    for kw in ({}, {"layer": "features.relu5"}):
        _, n = count_images(mnist_cnn, lambda kw=kw: occlusion(mnist_cnn, x, window=8, stride=4, progress=False, **kw))
        assert n == 2 * (1 + 6 * 6), kw
