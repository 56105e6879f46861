"""Gradient explanations checked against definitions: finite differences, linear models, completeness, quadrature."""
import math

import numpy as np
import pytest
import torch
from _toy import Linear
from torch import nn

from course_lib.explain import integrated_gradients, saliency, smoothgrad
from course_lib.explain.saliency import QUADRATURE_METHODS, quadrature
from course_lib.models import load_model


# --------------------------------------------------------------------------- small models
def tiny_smooth_model(seed=0, dtype=torch.float64):
    """conv -> tanh -> linear: smooth, so finite differences and quadrature converge fast."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 3 * 3, 4))
    return model.to(dtype).eval()




def linear_model(k=3, shape=(2, 4, 5), seed=1):
    g = torch.Generator().manual_seed(seed)
    return Linear(torch.randn(k, *shape, generator=g, dtype=torch.float64),
                  torch.randn(k, generator=g, dtype=torch.float64)).eval()


def images(b=2, shape=(2, 5, 5), seed=2, dtype=torch.float64, lo=0.1, hi=0.9):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(b, *shape, generator=g, dtype=dtype)




@pytest.fixture(scope="module")
def digits(mnist_test):
    return mnist_test[0][:16]


# --------------------------------------------------------------------------- saliency
def test_saliency_equals_central_finite_differences():
    model, x = tiny_smooth_model(), images()
    target = torch.tensor([1, 3])
    s = saliency(model, x, target)
    h = 1e-6
    fd = torch.zeros_like(x)
    with torch.no_grad():
        for idx in np.ndindex(*x.shape[1:]):
            e = torch.zeros_like(x[0])
            e[idx] = h
            up = model(x + e).gather(1, target[:, None]).squeeze(1)
            down = model(x - e).gather(1, target[:, None]).squeeze(1)
            fd[(slice(None), *idx)] = (up - down) / (2 * h)
    assert s.shape == x.shape
    torch.testing.assert_close(s, fd.abs(), rtol=1e-6, atol=1e-8)


def test_saliency_of_linear_model_is_abs_weight_and_target_none_is_prediction():
    model, x = linear_model(), images(b=3, shape=(2, 4, 5))
    pred = model(x).argmax(1)
    torch.testing.assert_close(saliency(model, x), model.weight.detach()[pred].abs())
    torch.testing.assert_close(saliency(model, x, 2), model.weight.detach()[2].abs().expand_as(x))
    t = torch.tensor([0, 2, 1])
    torch.testing.assert_close(saliency(model, x, t), model.weight.detach()[t].abs())


# --------------------------------------------------------------------------- SmoothGrad
def test_smoothgrad_tiny_sigma_is_saliency_and_seeds_behave():
    model, x = tiny_smooth_model(), images()
    torch.testing.assert_close(smoothgrad(model, x, sigma=1e-7, n_samples=4, seed=0), saliency(model, x),
                               rtol=1e-5, atol=1e-7)
    rng = torch.get_rng_state()
    a = smoothgrad(model, x, sigma=0.3, n_samples=5, seed=1)
    b = smoothgrad(model, x, sigma=0.3, n_samples=5, seed=1)
    c = smoothgrad(model, x, sigma=0.3, n_samples=5, seed=2)
    assert torch.equal(rng, torch.get_rng_state()), "smoothgrad must not touch the global RNG"
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    g = torch.Generator().manual_seed(1)
    torch.testing.assert_close(smoothgrad(model, x, sigma=0.3, n_samples=5, seed=g), a)


def test_smoothgrad_of_linear_model_is_abs_weight_whatever_the_noise():
    model, x = linear_model(), images(b=2, shape=(2, 4, 5))
    out = smoothgrad(model, x, target=1, sigma=0.5, n_samples=7, seed=0, batch_size=4)
    torch.testing.assert_close(out, model.weight.detach()[1].abs().expand_as(x))


def test_smoothgrad_noise_scale_matches_folded_normal_mean():
    # f(x) = sum_p w_p x_p^2: |df/dx_p| at x + e is |2 w_p (x_p + e_p)|, whose mean over e ~ N(0, s^2) is
    # 2 |w_p| E|N(x_p, s^2)| = 2 |w_p| (s sqrt(2/pi) exp(-x^2 / 2 s^2) + x (1 - 2 Phi(-x / s)))
    class Quadratic(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64))

        def forward(self, x):
            return torch.stack([(self.w * x[:, 0] ** 2).flatten(1).sum(1), torch.zeros(len(x), dtype=x.dtype)], 1)

    model = Quadratic().eval()
    x = torch.tensor([[[[0.0, 0.1], [0.3, 0.9]]]], dtype=torch.float64)
    s = 0.2
    out = smoothgrad(model, x, target=0, sigma=s, n_samples=4000, seed=0, batch_size=4000)
    mu = x[0, 0]
    phi = 0.5 * (1 + torch.erf(-mu / (s * math.sqrt(2))))
    folded = s * math.sqrt(2 / math.pi) * torch.exp(-mu ** 2 / (2 * s ** 2)) + mu * (1 - 2 * phi)
    expected = 2 * model.w.detach().abs() * folded
    # standard error of the mean is below 0.01 * 2|w| s at 4000 samples: 5 % of 2|w| s is five of them
    assert ((out[0, 0] - expected).abs() <= 0.05 * 2 * model.w.detach().abs() * s).all(), (out, expected)


# --------------------------------------------------------------------------- Integrated Gradients
def test_quadrature_points_and_weights_by_hand():
    cases = {
        ("riemann_left", 4): ([0, 0.25, 0.5, 0.75], [0.25] * 4),
        ("riemann_right", 4): ([0.25, 0.5, 0.75, 1], [0.25] * 4),
        ("riemann_middle", 2): ([0.25, 0.75], [0.5, 0.5]),
        ("riemann_trapezoid", 3): ([0, 0.5, 1], [0.25, 0.5, 0.25]),
        ("riemann_trapezoid", 5): ([0, 0.25, 0.5, 0.75, 1], [0.125, 0.25, 0.25, 0.25, 0.125]),
        ("gausslegendre", 1): ([0.5], [1.0]),
        ("gausslegendre", 2): ([0.5 - 0.5 / math.sqrt(3), 0.5 + 0.5 / math.sqrt(3)], [0.5, 0.5]),
        ("gausslegendre", 3): ([0.5 - 0.5 * math.sqrt(0.6), 0.5, 0.5 + 0.5 * math.sqrt(0.6)], [5 / 18, 8 / 18, 5 / 18]),
    }
    for (method, n), (alphas, weights) in cases.items():
        a, w = quadrature(method, n)
        np.testing.assert_allclose(a, alphas, atol=1e-15, err_msg=method)
        np.testing.assert_allclose(w, weights, atol=1e-15, err_msg=method)
    for n in (2, 5, 9):  # Gauss-Legendre with n points integrates a^(2n - 1) exactly
        a, w = quadrature("gausslegendre", n)
        assert abs((w * a ** (2 * n - 1)).sum() - 1 / (2 * n)) < 1e-14


def test_integrated_gradients_of_linear_model_is_exact_for_every_quadrature():
    model, x = linear_model(), images(b=2, shape=(2, 4, 5))
    base = images(b=1, shape=(2, 4, 5), seed=7)
    t = torch.tensor([2, 0])
    expected = (x - base) * model.weight.detach()[t]
    for method in QUADRATURE_METHODS:
        for steps in (2, 3, 7):
            out, delta = integrated_gradients(model, x, t, baseline=base, steps=steps, method=method,
                                              return_delta=True)
            torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12, msg=f"{method}, {steps}")
            torch.testing.assert_close(delta, torch.zeros(2, dtype=x.dtype), rtol=0, atol=1e-12)
    # a float baseline is a grey image; None is black
    torch.testing.assert_close(integrated_gradients(model, x, t, baseline=0.25, steps=2),
                               (x - 0.25) * model.weight.detach()[t])
    torch.testing.assert_close(integrated_gradients(model, x, t, steps=2), x * model.weight.detach()[t])


def test_integrated_gradients_completeness_on_a_smooth_model_is_tight():
    model, x = tiny_smooth_model(), images(b=3)
    base = torch.full_like(x[:1], 0.5)
    out, delta = integrated_gradients(model, x, baseline=base, steps=20, return_delta=True)
    with torch.no_grad():
        t = model(x).argmax(1)
        gap = model(x).gather(1, t[:, None]).squeeze(1) - model(base).expand(3, -1).gather(1, t[:, None]).squeeze(1)
    torch.testing.assert_close(out.flatten(1).sum(1), gap, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(delta, out.flatten(1).sum(1) - gap)


def test_integrated_gradients_completeness_on_mnist_cnn(mnist_cnn, digits):
    # y_c(x) - y_c(black) per digit, computed here independently
    with torch.no_grad():
        logits = mnist_cnn(digits)
        t = logits.argmax(1)
        gap = logits.gather(1, t[:, None]).squeeze(1) - mnist_cnn(torch.zeros_like(digits)).gather(1, t[:, None])[:, 0]
    keep = gap.abs() > 1.0  # relative error is meaningless where the logit barely changes
    assert keep.sum() >= 12
    x, t, gap = digits[keep], t[keep], gap[keep]
    # a ReLU network's path integrand has kinks, so the quadrature converges like 1/steps, not exponentially:
    # at 50 steps most digits are within 1 % and all within the paper's 5 %; at 100 steps all within 1 %
    out50, delta50 = integrated_gradients(mnist_cnn, x, t, steps=50, return_delta=True, batch_size=400)
    rel50 = (out50.flatten(1).sum(1) - gap).abs() / gap.abs()
    assert rel50.median() < 0.01 and rel50.max() < 0.05, rel50
    torch.testing.assert_close(delta50, out50.flatten(1).sum(1) - gap, rtol=0, atol=1e-4)
    out100 = integrated_gradients(mnist_cnn, x, t, steps=100, batch_size=800)
    rel100 = (out100.flatten(1).sum(1) - gap).abs() / gap.abs()
    assert rel100.max() < 0.01, rel100


def test_integrated_gradients_does_not_depend_on_batch_size():
    model, x = tiny_smooth_model(), images(b=3)
    a = integrated_gradients(model, x, steps=10, batch_size=1)
    b = integrated_gradients(model, x, steps=10, batch_size=7)
    c = integrated_gradients(model, x, steps=10, batch_size=1000)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


def test_baseline_tensor_broadcasts_per_channel():
    model, x = linear_model(), images(b=2, shape=(2, 4, 5))
    base = torch.tensor([0.2, 0.7], dtype=torch.float64).view(2, 1, 1)
    torch.testing.assert_close(integrated_gradients(model, x, 1, baseline=base, steps=3),
                               (x - base) * model.weight.detach()[1])


# --------------------------------------------------------------------------- side effects and errors
METHODS = {
    "saliency": lambda m, x, **kw: saliency(m, x, **kw),
    "smoothgrad": lambda m, x, **kw: smoothgrad(m, x, n_samples=3, seed=0, **kw),
    "integrated_gradients": lambda m, x, **kw: integrated_gradients(m, x, steps=4, **kw),
}


def hooks_left(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.modules())


@pytest.mark.parametrize("name", METHODS)
def test_no_side_effects(name, mnist_cnn):
    fn = METHODS[name]
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    x0 = x.clone()
    flags = [p.requires_grad for p in mnist_cnn.parameters()]
    out = fn(mnist_cnn, x)
    assert out.shape == x.shape and not out.requires_grad and out.device == x.device
    assert torch.equal(x, x0) and not x.requires_grad and x.grad is None
    assert not mnist_cnn.training
    assert [p.requires_grad for p in mnist_cnn.parameters()] == flags
    assert all(p.grad is None for p in mnist_cnn.parameters())
    assert hooks_left(mnist_cnn) == 0
    # inside no_grad, and on a frozen model, the result is the same
    with torch.no_grad():
        torch.testing.assert_close(fn(mnist_cnn, x), out)
    assert torch.is_grad_enabled()
    frozen = load_model("mnist_cnn").requires_grad_(False)
    torch.testing.assert_close(fn(frozen, x), out)
    assert all(not p.requires_grad and p.grad is None for p in frozen.parameters())


@pytest.mark.parametrize("name", METHODS)
def test_bad_inputs_raise_clear_errors(name, mnist_cnn):
    fn = METHODS[name]
    x = torch.rand(2, 1, 28, 28)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        fn(mnist_cnn, x[0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fn(mnist_cnn, x * 2)
    with pytest.raises(TypeError, match="floating-point"):
        fn(mnist_cnn, (x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="class index"):
        fn(mnist_cnn, x, target=10)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        fn(mnist_cnn, x, target=torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="torch.long"):
        fn(mnist_cnn, x, target=torch.tensor([1.0, 2.0]))
    train = load_model("mnist_cnn").train()
    with pytest.raises(ValueError, match="training mode"):
        fn(train, x)
    assert train.training


def test_bad_arguments_raise():
    model, x = tiny_smooth_model(), images()
    with pytest.raises(ValueError, match="method"):
        integrated_gradients(model, x, method="simpson")
    with pytest.raises(ValueError, match="steps"):
        integrated_gradients(model, x, steps=1, method="riemann_trapezoid")
    with pytest.raises(ValueError, match="steps"):
        integrated_gradients(model, x, steps=0)
    with pytest.raises(ValueError, match="broadcast"):
        integrated_gradients(model, x, baseline=torch.zeros(3, 1, 1, dtype=x.dtype))
    with pytest.raises(ValueError, match=r"baseline must have values in \[0, 1\]"):
        integrated_gradients(model, x, baseline=-0.5)
    with pytest.raises(ValueError, match="batch_size"):
        integrated_gradients(model, x, batch_size=0)
    with pytest.raises(ValueError, match="n_samples"):
        smoothgrad(model, x, n_samples=0)
    with pytest.raises(ValueError, match="sigma"):
        smoothgrad(model, x, sigma=-0.1)
    with pytest.raises(TypeError, match="seed"):
        smoothgrad(model, x, seed="a")
