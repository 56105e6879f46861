"""The training loop and accuracy, against hand-computed values."""
import pytest
import torch
from torch import nn

from course_lib import seed_everything
from course_lib.data import make_loader
from course_lib.training import accuracy, predict, train


class Fixed(nn.Module):
    """Logits fixed per image by its mean pixel: class = round(mean * 9)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x):
        k = (x.mean(dim=(1, 2, 3)) * 9).round().long()
        return nn.functional.one_hot(k, 10).float() * self.w


def test_accuracy_by_hand():
    x = torch.stack([torch.full((1, 4, 4), v) for v in [0.0, 1 / 9, 2 / 9, 1.0]])
    y = torch.tensor([0, 1, 5, 9])
    assert accuracy(Fixed().eval(), x, y, batch_size=3) == pytest.approx(0.75)
    assert predict(Fixed().eval(), x, batch_size=3).argmax(1).tolist() == [0, 1, 2, 9]


def test_train_learns_a_separable_problem_and_ends_in_eval_mode():
    seed_everything(0)
    x = torch.rand(256, 1, 4, 4)
    y = (x[:, 0, 0, 0] > 0.5).long()  # one pixel decides: separable with a wide margin after scaling
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    seen = []

    def transform(m, xb, yb):
        seen.append(m.training)
        return xb

    hist = train(model, make_loader(x, y, batch_size=32), epochs=30, lr=0.3, transform=transform,
                 progress=False, val_data=(x, y))
    assert not model.training and seen and not any(seen), "transform runs with the model in eval mode"
    assert hist["loss"][-1] < hist["loss"][0] / 2
    assert hist["val_acc"][-1] > 0.9 and len(hist["val_acc"]) == 30


def test_custom_loss_is_used():
    x, y = torch.rand(64, 1, 2, 2), torch.zeros(64, dtype=torch.long)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    nn.init.zeros_(model[1].weight)  # equal logits at the start: only the custom loss can make class 0 win
    nn.init.zeros_(model[1].bias)
    calls = []

    def loss_fn(logits, yb, xb):
        calls.append(len(xb))
        return logits[:, 1].mean()  # push class 1 down

    train(model, make_loader(x, y, batch_size=16), epochs=2, loss_fn=loss_fn, progress=False, lr=0.1)
    assert calls == [16] * 8
    assert accuracy(model, x, y) == 1.0


def test_train_rejects_bad_epochs():
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        train(nn.Linear(1, 1), [], epochs=0)
