"""Rules every black-box attack obeys, checked on all of them at once: the model is reached only through the
oracle, never with autograd, every row it sees is counted against an original image, budgets are one thing, and the
oracle's trace ends at the distance of the image the attack returns."""
import pytest
import torch
from torch import nn

from course_lib.attacks import Oracle, boundary_attack, hop_skip_jump, square_attack, zoo


class Spy(nn.Module):
    """Counts the rows the model sees and whether autograd was on for any of them."""

    def __init__(self, model):
        super().__init__()
        self.model, self.rows, self.grad = model, 0, False

    def forward(self, x):
        self.rows += x.shape[0]
        self.grad |= torch.is_grad_enabled() or x.requires_grad
        return self.model(x)


ATTACKS = {
    "boundary": (lambda o, x, y, q: boundary_attack(o, x, y, max_queries=q, seed=0, progress=False), "labels", "l2"),
    "hsj": (lambda o, x, y, q: hop_skip_jump(o, x, y, max_queries=q, seed=0, progress=False), "labels", "l2"),
    "zoo": (lambda o, x, y, q: zoo(o, x, y, max_queries=q, seed=0, coords=64, c=10.0, lr=0.05, binary_search_steps=1,
                                   progress=False), "scores", "l2"),
    "square": (lambda o, x, y, q: square_attack(o, x, y, 0.1, max_queries=q, seed=0, progress=False), "scores",
               "linf"),
}


@pytest.fixture(scope="module")
def four(mnist_test, mnist_cnn):
    x, y = mnist_test[0][:80], mnist_test[1][:80]
    with torch.no_grad():
        ok = mnist_cnn(x).argmax(1) == y
    idx = [int(ok.nonzero()[i]) for i in (0, 3, 9, 14)]
    return x[idx], y[idx]


@pytest.mark.parametrize("name", list(ATTACKS))
def test_the_model_is_reached_only_through_the_oracle_and_every_row_is_counted(name, four, mnist_cnn):
    run, access, norm = ATTACKS[name]
    x, y = four
    spy = Spy(mnist_cnn).eval()
    cap = 3000 if name == "zoo" else 400  # ZOO needs more queries per step
    oracle = Oracle(spy, access, max_queries=cap)
    oracle(x)  # a count already running: the attack continues it
    out = run(oracle, x, y, 2 * cap)  # asks for more than the oracle allows: capped, no exception
    assert not spy.grad
    assert spy.rows == oracle.total == int(oracle.queries.sum())
    assert int(oracle.queries.max()) <= cap and int(oracle.queries.min()) >= 2
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    with torch.no_grad():
        fooled = mnist_cnn(out).argmax(1) != y
    diff = (out - x).flatten(1)
    dist = (diff.norm(dim=1) if norm == "l2" else diff.abs().amax(1)).double()
    _, d = oracle.trace()
    assert fooled.any()
    torch.testing.assert_close(d[fooled, -1], dist[fooled], rtol=1e-5, atol=1e-6)
    assert torch.isinf(d[~fooled, -1]).all()
