"""Bad input gets a clear error that says what was expected and what came."""
import pytest
import torch
from torch import nn

import course_lib
from course_lib.corruptions import gaussian_noise
from course_lib.models import load_model
from course_lib.training import accuracy


@pytest.fixture(scope="module")
def model():
    return load_model("mnist_cnn")


X = torch.rand(4, 1, 28, 28)
Y = torch.tensor([1, 2, 3, 4])


@pytest.mark.parametrize("x, err, match", [
    (torch.rand(1, 28, 28), ValueError, r"shape \(B, C, H, W\).*x\[None\]"),
    (torch.rand(4, 1, 28, 28) * 255, ValueError, r"values in \[0, 1\]"),
    (torch.rand(4, 1, 28, 28) - 0.5, ValueError, r"values in \[0, 1\]"),
    (torch.full((4, 1, 28, 28), 1.2), ValueError, r"values in \[0, 1\]"),       # just above the range
    (torch.full((4, 1, 28, 28), -0.01), ValueError, r"values in \[0, 1\]"),     # just below it
    ((torch.rand(4, 1, 28, 28) * 255).to(torch.uint8), TypeError, "floating-point.*uint8.*divide by 255"),
    (torch.full((4, 1, 28, 28), float("nan")), ValueError, "NaN"),
    (torch.rand(0, 1, 28, 28), ValueError, "empty batch"),
    ("not a tensor", TypeError, "must be a torch.Tensor"),
])
def test_bad_images(model, x, err, match):
    with pytest.raises(err, match=match):
        accuracy(model, x, Y[: len(x)] if isinstance(x, torch.Tensor) and x.dim() == 4 else Y)
    with pytest.raises(err, match=match):
        gaussian_noise(x, 1)


@pytest.mark.parametrize("y, err, match", [
    (torch.tensor([1.0, 2.0, 3.0, 4.0]), TypeError, "torch.long"),
    (torch.tensor([1, 2, 3]), ValueError, r"shape \(4,\)"),
    (torch.tensor([[1, 2, 3, 4]]), ValueError, r"shape \(4,\)"),
    (torch.tensor([1, 2, 3, -4]), ValueError, "class indices"),
])
def test_bad_labels(model, y, err, match):
    with pytest.raises(err, match=match):
        accuracy(model, X, y)


def test_model_in_training_mode_is_refused():
    m = load_model("mnist_cnn").train()
    with pytest.raises(ValueError, match=r"training mode: call model.eval\(\)"):
        accuracy(m, X, Y)
    assert m.training, "the check must not change the model's mode"


def test_a_submodule_left_in_training_mode_is_refused():
    m = load_model("mnist_cnn")
    m.features.bn2.train()  # batch norm would normalise with the batch's statistics and update its buffers
    buffers = [b.clone() for b in m.buffers()]
    with pytest.raises(ValueError, match=r"model.features.bn2 is in training mode although model is not"):
        accuracy(m, X, Y)
    assert m.features.bn2.training and not m.training
    assert all(torch.equal(a, b) for a, b in zip(buffers, m.buffers(), strict=True))
    m.eval()
    m.extra = nn.Dropout(0.5)  # added after eval(): in training mode, and dropout cares
    with pytest.raises(ValueError, match="model.extra is in training mode"):
        accuracy(m, X, Y)
    m.extra = nn.Linear(2, 2)  # in training mode too, but a linear layer behaves the same in both modes
    accuracy(m, X, Y)


def test_images_of_another_dtype_than_the_model_get_a_clear_error():
    m = load_model("mnist_cnn")
    with pytest.raises(TypeError, match=r"parameters are torch.float32 but the images are torch.float64.*x.to"):
        accuracy(m, X.double(), Y)
    from course_lib.attacks import fgsm
    from course_lib.explain import saliency

    with pytest.raises(TypeError, match="torch.float64"):
        fgsm(m, X.double(), Y, 0.1)
    with pytest.raises(TypeError, match="torch.float64"):
        saliency(m, X.double())
    m.double()  # a model converted to the images' dtype is fine, and counts its hits as the definition says
    with torch.no_grad():
        expected = (m(X.double()).argmax(1) == Y).double().mean().item()
    assert accuracy(m, X.double(), Y) == expected


def test_accuracy_equals_a_hand_count():
    """logits = the first 3 pixels of a 2x2 image, so the predictions are chosen by hand: 0, 1, 2, 0, 2 against
    labels 0, 1, 0, 1, 2 is 3 hits out of 5."""
    m = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=False)).eval()
    with torch.no_grad():
        m[1].weight.copy_(torch.eye(3, 4))
    x = torch.tensor([[0.9, 0.1, 0.2, 1.0], [0.0, 0.5, 0.4, 1.0], [0.1, 0.2, 0.3, 0.0], [0.6, 0.5, 0.5, 0.0],
                      [0.2, 0.2, 0.7, 0.9]]).view(5, 1, 2, 2)
    y = torch.tensor([0, 1, 0, 1, 2])
    assert accuracy(m, x, y) == pytest.approx(3 / 5)
    assert accuracy(m, x, y, batch_size=2) == pytest.approx(3 / 5)  # batches of 2, 2, 1: still 3 / 5, not a mean
    assert accuracy(m, x, torch.tensor([0, 1, 2, 0, 2])) == 1.0
    assert accuracy(m, x, torch.tensor([1, 2, 0, 1, 0])) == 0.0


def test_not_a_model():
    with pytest.raises(TypeError, match="nn.Module"):
        accuracy(lambda x: x, X, Y)


def test_model_and_images_on_different_devices():
    m = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    with pytest.raises(ValueError, match="is on meta but the images are on cpu"):
        accuracy(m.to("meta"), X, Y)


def test_public_functions_leave_model_untouched(model):
    flags = [p.requires_grad for p in model.parameters()]
    before = [p.detach().clone() for p in model.parameters()]
    accuracy(model, X, Y)
    assert not model.training and flags == [p.requires_grad for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_seed_everything_and_device():
    course_lib.seed_everything(7)
    a = torch.rand(3)
    course_lib.seed_everything(7)
    assert torch.equal(a, torch.rand(3))
    with pytest.raises(TypeError):
        course_lib.seed_everything(1.5)


def test_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    """device() reads the availability flags in order; they are patched, so every branch runs on any machine."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert course_lib.device() == course_lib.accelerator() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert course_lib.device() == course_lib.accelerator() == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert course_lib.device() == torch.device("cpu") and course_lib.accelerator() is None
    monkeypatch.delattr(torch.backends, "mps")  # a torch built without the MPS backend
    assert course_lib.device() == torch.device("cpu") and course_lib.accelerator() is None
