"""Forward passes in batches: the same logits whatever the batch size; 'auto' = about 2^20 input values."""
import pytest
import torch

from course_lib._batches import check_batch_size, logits_in_batches
from course_lib.training import accuracy, predict


def test_auto_batch_size_is_about_a_million_input_values():
    assert check_batch_size(None, torch.zeros(1, 1, 28, 28)) == 1337
    assert check_batch_size(None, torch.zeros(1, 3, 224, 224)) == 6
    assert check_batch_size(None, torch.zeros(1, 3, 2048, 2048)) == 1  # never 0
    assert check_batch_size(5, torch.zeros(1, 1, 28, 28)) == 5
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            check_batch_size(bad, torch.zeros(1, 1, 28, 28))


def test_batching_does_not_change_the_logits(mnist_cnn, mnist_test):
    x, y = mnist_test[0][:50], mnist_test[1][:50]
    with torch.no_grad():
        full = mnist_cnn(x)
    for b in (1, 7, 50, 64, None):
        torch.testing.assert_close(logits_in_batches(mnist_cnn, x, b), full, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(predict(mnist_cnn, x, b), full, rtol=1e-5, atol=1e-5)
    expected = float((full.argmax(1) == y).float().mean())
    assert accuracy(mnist_cnn, x, y, batch_size=3) == accuracy(mnist_cnn, x, y) == expected
    assert not logits_in_batches(mnist_cnn, x, 7).requires_grad
