"""The intensity-augmented models of the attack lessons: shipped, listed, and what they were trained for.

mnist_cnn calls a digit with a uniform +0.1 brightness an "8" (lesson 00), so inside an eps = 0.1 ball a constant
shift already beats FGSM. mnist_cnn_aug and mnist_cnn_aug_b were trained with a random brightness shift and
contrast per image (scripts/train_models.py) so that it does not; benchmarks/brightness_confound.py measures the
full table."""
import pytest
import torch


@pytest.mark.parametrize("name, architecture_of", [("mnist_cnn_aug", "mnist_cnn"), ("mnist_cnn_aug_b", "mnist_cnn_b")])
def test_shipped_and_listed(name, architecture_of):
    from course_lib.models import MODEL_SPECS, available_models, load_model, model_info

    assert name in available_models()
    model = load_model(name)
    assert not model.training
    assert MODEL_SPECS[name]["kwargs"] == MODEL_SPECS[architecture_of]["kwargs"]
    info = model_info(name)
    assert info["training"]["intensity"] == {"brightness": 0.3, "contrast": [0.5, 1.5]}
    assert info["accuracy"] >= 0.97


@pytest.mark.usefixtures("one_thread")
def test_a_constant_shift_fools_mnist_cnn_but_not_the_augmented_models(mnist_test, mnist_cnn):
    from course_lib.models import load_model
    from course_lib.training import accuracy

    x, y = mnist_test[0][:500], mnist_test[1][:500]
    for shift in (0.1, -0.1, 0.2):
        shifted = (x + shift).clamp(0, 1)
        for name in ("mnist_cnn_aug", "mnist_cnn_aug_b"):
            assert accuracy(load_model(name), shifted, y) >= 0.95, (name, shift)
    # the brittle model it replaces in the attack lessons: the +0.1 shift sends most digits to one class
    bright = (x + 0.1).clamp(0, 1)
    assert accuracy(mnist_cnn, bright, y) < 0.3
    with torch.no_grad():
        assert mnist_cnn(bright).argmax(1).bincount(minlength=10).argmax().item() == 8
