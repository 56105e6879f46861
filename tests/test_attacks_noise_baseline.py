"""noise_success_rate, the blind baseline every attack result stands next to, against closed-form probabilities."""
import math

import pytest
import torch
from _toy import Linear


def _two_pixel_model(margin):
    """Two classes on a 1 x 1 x 2 image at 0.5: z_0 - z_1 = x_1 + x_2 - 1 + margin (class 0 at x, by ``margin``)."""
    weight = torch.zeros(2, 1, 1, 2, dtype=torch.float64)
    weight[0, 0, 0] = 1.0
    bias = torch.tensor([margin - 1.0, 0.0], dtype=torch.float64)
    return Linear(weight, bias).eval(), torch.full((1, 1, 1, 2), 0.5, dtype=torch.float64), torch.tensor([0])


def test_linf_sign_noise_matches_the_vertex_probability():
    from course_lib.attacks import noise_success_rate

    # margin 0.15, eps 0.1: only the vertex (-1, -1) (probability 1/4) brings the margin below 0
    model, x, y = _two_pixel_model(0.15)
    rate = noise_success_rate(model, x, y, 0.1, draws=4000, seed=0)
    assert rate.shape == (1,) and abs(rate.item() - 0.25) < 4 * math.sqrt(0.25 * 0.75 / 4000)
    # margin 0.25: even the vertex (-1, -1) leaves 0.05: nothing fools
    assert noise_success_rate(*_two_pixel_model(0.25), 0.1, draws=200, seed=0).item() == 0.0
    assert noise_success_rate(model, x, y, 0.0, draws=5, seed=0).item() == 0.0


def test_l2_sphere_noise_matches_the_cap_probability():
    """On the sphere of radius eps in 2-D, the margin m + eps (cos t + sin t) < 0 on an arc of angle
    2 arccos(m / (eps sqrt 2)); the fraction of draws that fool is that arc over 2 pi."""
    from course_lib.attacks import noise_success_rate

    model, x, y = _two_pixel_model(0.1)
    eps = 0.12
    expected = 2 * math.acos(0.1 / (eps * math.sqrt(2))) / (2 * math.pi)
    rate = noise_success_rate(model, x, y, eps, norm="l2", draws=4000, seed=1).item()
    assert abs(rate - expected) < 4 * math.sqrt(expected * (1 - expected) / 4000), (rate, expected)


def test_seeds_generators_and_errors(mnist_cnn, mnist_test):
    from course_lib.attacks import noise_success_rate

    x, y = mnist_test[0][:6], mnist_test[1][:6]
    a = noise_success_rate(mnist_cnn, x, y, 0.2, draws=5, seed=3)
    assert torch.equal(a, noise_success_rate(mnist_cnn, x, y, 0.2, draws=5, seed=3))
    assert ((a * 5).round() == a * 5).all() and a.min() >= 0 and a.max() <= 1  # a fraction of 5 draws
    g = torch.Generator().manual_seed(3)
    assert torch.equal(noise_success_rate(mnist_cnn, x, y, 0.2, draws=5, seed=g), a)  # a generator is used as is
    with pytest.raises(ValueError, match="norm"):
        noise_success_rate(mnist_cnn, x, y, 0.2, norm="l1")
    with pytest.raises(ValueError, match="eps"):
        noise_success_rate(mnist_cnn, x, y, -0.1)
