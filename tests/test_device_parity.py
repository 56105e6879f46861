"""Device parity: the same call on the CPU and on an accelerator (CUDA, else Apple MPS) gives the same result.

Runs only where an accelerator is present (``scripts/gpu_check.sh`` runs it on a lent GPU machine); skipped with a
message otherwise. The shipped ``mnist_cnn`` and eight held-out digits; the random methods get the same ``seed``
on both devices, and a seed means the same numbers on every device (course_lib draws on the CPU and moves the
draws, see ``course_lib._rng``), so their results must agree too.

What "the same" means, per kind of result:

* maps (saliency, SmoothGrad, Integrated Gradients, Grad-CAM, occlusion) and seeded corruptions: equal up to float
  rounding, relative to the map's scale;
* attacks: the predicted labels of the results are identical, and the images agree except on a tiny fraction of
  pixels (FGSM/PGD take ``sign(grad)``: where a gradient is ~0 its sign may differ between two float
  implementations; C&W: the distance agrees to a few per cent).

Each test prints its largest discrepancy, so that ``pytest -s`` on the GPU machine shows how close the devices are.
"""
from __future__ import annotations

import pytest
import torch

import course_lib
from course_lib.attacks import Oracle, carlini_wagner, fgsm, noise_start, pgd, square_attack
from course_lib.corruptions import corrupt
from course_lib.data import load_mnist
from course_lib.explain import grad_cam, integrated_gradients, occlusion, saliency, smoothgrad
from course_lib.models import load_model

ACCEL = course_lib.accelerator()
pytestmark = pytest.mark.skipif(ACCEL is None, reason="device parity needs a GPU (CUDA or MPS); none here: run "
                                                      "scripts/gpu_check.sh on a machine that has one")


@pytest.fixture(scope="module")
def setup():
    x, y = load_mnist("test")
    x, y = x[:8].clone(), y[:8].clone()
    cpu = load_model("mnist_cnn")
    acc = load_model("mnist_cnn", ACCEL)
    return cpu, acc, x, y


def _on_both(setup, fn):
    """``fn(model, x, y)`` on the CPU and on the accelerator; both results on the CPU."""
    cpu, acc, x, y = setup
    a = fn(cpu, x, y)
    b = fn(acc, x.to(ACCEL), y.to(ACCEL))
    assert b.device.type == ACCEL.type, f"the result must stay on the input's device, got {b.device}"
    return a, b.cpu()


def _labels(setup, images):
    with torch.no_grad():
        return setup[0](images).argmax(1)


MAPS = {
    "saliency": lambda m, x, y: saliency(m, x),
    "smoothgrad": lambda m, x, y: smoothgrad(m, x, n_samples=8, seed=0),
    "integrated_gradients": lambda m, x, y: integrated_gradients(m, x, steps=16),
    "grad_cam": lambda m, x, y: grad_cam(m, x),
    "occlusion": lambda m, x, y: occlusion(m, x, window=7, progress=False),
    "gaussian_noise": lambda m, x, y: corrupt(x, "gaussian_noise", 3, seed=0),
    "rotation": lambda m, x, y: corrupt(x, "rotation", 3, seed=0),
}


@pytest.mark.parametrize("name", list(MAPS))
def test_maps_and_corruptions_agree(setup, name):
    a, b = _on_both(setup, MAPS[name])
    scale = float(a.abs().max()) or 1.0
    worst = float((a - b).abs().max()) / scale
    print(f"\n{name}: largest difference {worst:.2e} of the map's scale")
    assert worst <= 1e-3, f"{name}: CPU and {ACCEL.type} differ by {worst:.2e} of the map's scale"


ATTACKS = {
    "fgsm": lambda m, x, y: fgsm(m, x, y, 0.1),
    "pgd": lambda m, x, y: pgd(m, x, y, 0.1, 0.01, 10, seed=0),
    "pgd_l2": lambda m, x, y: pgd(m, x, y, 1.0, 0.2, 10, norm="l2", seed=0),
    "square_attack": lambda m, x, y: square_attack(Oracle(m), x, y, 0.3, max_queries=50, seed=0, progress=False),
    "noise_start": lambda m, x, y: noise_start(Oracle(m, "labels"), x, y, seed=0),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attacks_agree(setup, name):
    a, b = _on_both(setup, ATTACKS[name])
    assert torch.equal(_labels(setup, a), _labels(setup, b)), f"{name}: the results' labels differ between devices"
    differ = float(((a - b).abs() > 1e-3).double().mean())
    print(f"\n{name}: {differ:.2%} of the pixels differ by more than 1e-3")
    assert differ <= 0.005, f"{name}: {differ:.2%} of the pixels differ between the CPU and {ACCEL.type}"


def test_carlini_wagner_agrees(setup):
    x, y = setup[2], setup[3]
    a, b = _on_both(setup, lambda m, x, y: carlini_wagner(m, x, y, binary_search_steps=2, steps=30, lr=0.05))
    fooled_a, fooled_b = _labels(setup, a) != y, _labels(setup, b) != y
    assert torch.equal(fooled_a, fooled_b), "C&W succeeds on different images on the two devices"
    da, db = (a - x).flatten(1).norm(dim=1), (b - x).flatten(1).norm(dim=1)
    rel = float(((da - db).abs() / da.clamp_min(1e-6)).max())
    print(f"\ncarlini_wagner: L2 distances differ by at most {rel:.2%}")
    assert rel <= 0.05, f"C&W's distances differ by up to {rel:.1%} between the CPU and {ACCEL.type}"


def test_device_is_the_accelerator():
    assert course_lib.device().type == ACCEL.type


def test_detectors_and_bounds_agree(setup):
    """Detector scores (softmax, PCA, squeezing) and IBP / CROWN-IBP bounds: equal up to float rounding."""
    from course_lib.certify import crown_bounds, interval_bounds, margin_bounds
    from course_lib.defenses import FeatureSqueezingDetector, PCADetector, SoftmaxDetector

    cpu, acc, x, y = setup
    xt, _ = load_mnist("train")
    worst = 0.0
    for make in (lambda m: SoftmaxDetector(m), lambda m: FeatureSqueezingDetector(m),
                 lambda m: PCADetector(50).fit(xt[:500].to(next(m.parameters()).device))):
        a = make(cpu).score(x)
        b = make(acc).score(x.to(ACCEL)).cpu()
        worst = max(worst, float((a - b).abs().max()))
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-3)
    for fn in (lambda m, xx, yy: torch.stack(interval_bounds(m, xx, 0.01)),
               lambda m, xx, yy: torch.stack(crown_bounds(m, xx, 0.01, intermediate="ibp")),
               lambda m, xx, yy: margin_bounds(m, xx, yy, 0.01)):
        a, b = _on_both(setup, fn)
        scale = float(a.abs().max())
        worst = max(worst, float((a - b).abs().max()) / scale)
        assert torch.allclose(a, b, atol=1e-4 * scale, rtol=1e-3)
    print(f"detectors and bounds: largest discrepancy {worst:.2e}")
