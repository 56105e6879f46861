"""attacks.robust_accuracy: on a linear model it finds the exact worst case (attacks.linear_worst_case, a closed
form, is the independent reference); on a gradient-masking defense it does not trust PGD (the Square attack breaks
what PGD cannot move); its bookkeeping is consistent."""
import pytest
import torch
from torch import nn

from course_lib.attacks import linear_worst_case, pgd, robust_accuracy
from course_lib.data import make_loader
from course_lib.defenses import BitDepth, Defended
from course_lib.training import accuracy, train


@pytest.fixture(scope="module")
def linear_model(mnist_test):
    x, y = mnist_test
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    train(model, make_loader(x[:1500], y[:1500], seed=0), 3, lr=1e-2, progress=False)
    return model.eval()


@pytest.mark.usefixtures("one_thread")
def test_on_a_linear_model_it_reaches_the_exact_worst_case(linear_model, mnist_test):
    x, y = mnist_test[0][1500:1600], mnist_test[1][1500:1600]
    eps = 0.05
    exact = accuracy(linear_model, linear_worst_case(linear_model[1].weight, linear_model[1].bias, x, y, eps), y)
    res = robust_accuracy(linear_model, x, y, eps, steps=30, square_queries=200, seed=0)
    assert res.accuracy >= exact - 1e-9                       # an attack can never beat the true worst case
    assert res.accuracy <= exact + 0.011                      # and the ensemble misses at most one digit of 100
    assert 0.2 < exact < 0.9                                  # a budget where the question is not trivial
    delta = (res.x_adv - x).flatten(1).abs().amax(1)
    assert (delta <= eps + 1e-6).all() and res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert torch.equal(res.x_adv[res.robust], x[res.robust])
    assert sum(res.counts.values()) == len(x) and res.counts.get("", 0) == int(res.robust.sum())
    assert [b == "" for b in res.broken_by] == res.robust.tolist()


@pytest.mark.usefixtures("one_thread")
def test_a_masked_defense_does_not_fool_it(mnist_cnn, mnist_test):
    x, y = mnist_test[0][:32], mnist_test[1][:32]
    masked = Defended(mnist_cnn, BitDepth(3))
    with torch.no_grad():
        plain = float((masked(pgd(masked, x, y, 0.1, 0.01, 20, seed=0)).argmax(1) == y).float().mean())
    res = robust_accuracy(masked, x, y, 0.1, steps=20, square_queries=500, seed=0)
    assert plain > 0.5                                         # plain PGD through the rounding barely moves
    assert res.accuracy < 0.2 and res.counts.get("square", 0) > 0.3 * len(x)


def test_bad_arguments_are_refused(linear_model, mnist_test):
    x, y = mnist_test[0][:4], mnist_test[1][:4]
    with pytest.raises(ValueError, match="attack"):
        robust_accuracy(linear_model, x, y, 0.1, attacks=("fgsm",))
    with pytest.raises(ValueError, match="eps"):
        robust_accuracy(linear_model, x, y, -0.1)
