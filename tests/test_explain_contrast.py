"""contrastive(model, a, b): a model whose only output is f_a - f_b, explained by the usual methods."""
import pytest
import torch

from course_lib.explain import (
    LogitDifference,
    cam,
    contrastive,
    grad_cam,
    integrated_gradients,
    occlusion,
    saliency,
)


@pytest.fixture(scope="module")
def digits(mnist_test):
    return mnist_test[0][:5]


def test_the_output_is_the_difference_of_two_logits(mnist_cnn, digits):
    g = contrastive(mnist_cnn, 4, 9)
    assert isinstance(g, LogitDifference) and not g.training
    with torch.no_grad():
        logits, out = mnist_cnn(digits), g(digits)
    assert out.shape == (len(digits), 1)
    torch.testing.assert_close(out[:, 0], logits[:, 4] - logits[:, 9], rtol=0, atol=0)


def test_methods_linear_in_the_output_give_the_difference_of_the_two_explanations(mnist_cnn, digits):
    g = contrastive(mnist_cnn, 3, 8)
    ig = integrated_gradients(g, digits, target=0, steps=16)
    ig_diff = integrated_gradients(mnist_cnn, digits, 3, steps=16) - integrated_gradients(mnist_cnn, digits, 8,
                                                                                           steps=16)
    torch.testing.assert_close(ig, ig_diff, atol=1e-5, rtol=1e-4)
    occ = occlusion(g, digits, 0, window=7, stride=7, progress=False)
    occ_diff = (occlusion(mnist_cnn, digits, 3, window=7, stride=7, progress=False)
                - occlusion(mnist_cnn, digits, 8, window=7, stride=7, progress=False))
    torch.testing.assert_close(occ, occ_diff, atol=1e-5, rtol=1e-4)
    # saliency is |gradient|: the gradient of the difference, not the difference of the absolute values
    grad_a, grad_b = saliency(mnist_cnn, digits, 3), saliency(mnist_cnn, digits, 8)
    s = saliency(g, digits, 0)
    assert (s <= grad_a + grad_b + 1e-5).all() and not torch.allclose(s, (grad_a - grad_b).abs())


def test_grad_cam_finds_the_default_layer_and_cam_refuses_with_a_way_out(mnist_cnn, digits):
    g = contrastive(mnist_cnn, 2, 7)
    assert g.cam_layer == "model.features"
    # on a GAP + linear head Grad-CAM is ReLU(CAM) / Z, and CAM is linear in the class: ReLU(CAM_2 - CAM_7) / Z
    expected = (cam(mnist_cnn, digits, 2, upsample=False) - cam(mnist_cnn, digits, 7, upsample=False)).clamp_min(0)
    got = grad_cam(g, digits, 0, upsample=False)
    z = expected.shape[-1] * expected.shape[-2]
    torch.testing.assert_close(got, expected / z, atol=1e-6, rtol=1e-4)
    assert got.amax() > 0
    with pytest.raises(ValueError, match=r"cam\(model, x, a\) - cam\(model, x, b\)"):
        cam(g, digits, 0)


def test_bad_classes_and_modes_get_clear_errors(mnist_cnn, digits):
    with pytest.raises(ValueError, match="two different classes"):
        contrastive(mnist_cnn, 3, 3)
    with pytest.raises(ValueError, match="class index"):
        contrastive(mnist_cnn, True, 3)
    with pytest.raises(ValueError, match="class index"):
        contrastive(mnist_cnn, -1, 3)
    with pytest.raises(ValueError, match="must be < the model's 10 classes"):
        saliency(contrastive(mnist_cnn, 3, 10), digits, 0)
    with pytest.raises(TypeError, match="nn.Module"):
        contrastive(lambda x: x, 0, 1)
    mnist_cnn.train()
    try:
        with pytest.raises(ValueError, match="training mode"):
            saliency(contrastive(mnist_cnn, 0, 1), digits, 0)
    finally:
        mnist_cnn.eval()


def test_the_wrapped_model_is_left_as_it_was(mnist_cnn, digits):
    before = {k: v.clone() for k, v in mnist_cnn.state_dict().items()}
    flags = [p.requires_grad for p in mnist_cnn.parameters()]
    g = contrastive(mnist_cnn, 1, 2)
    integrated_gradients(g, digits, target=0, steps=4)
    grad_cam(g, digits, 0)
    assert not mnist_cnn.training
    assert [p.requires_grad for p in mnist_cnn.parameters()] == flags
    assert all(torch.equal(before[k], v) for k, v in mnist_cnn.state_dict().items())
    assert all(p.grad is None for p in mnist_cnn.parameters())
