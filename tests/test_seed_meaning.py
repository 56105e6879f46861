"""One meaning of ``seed`` for the whole package (course_lib._rng), checked on every public function that draws:

* ``seed=None``: fresh randomness drawn from torch's global RNG, so ``torch.manual_seed`` (or
  ``course_lib.seed_everything``) reproduces it, and two calls in a row differ;
* ``seed=<int>``: the same int gives the same result, and the global RNG is not touched;
* ``seed=<torch.Generator>``: used as is; one seeded with ``s`` gives what ``seed=s`` gives.

A function that kept a private notion of ``seed`` (None meaning 0, refusing a generator, drawing fresh entropy
outside the global RNG) fails here.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import _rng, seed_everything
from course_lib.attacks import (
    Oracle,
    apply_patch,
    boundary_attack,
    hop_skip_jump,
    noise_start,
    noise_success_rate,
    pgd,
    square_attack,
    train_patch,
    zoo,
)
from course_lib.corruptions import corrupt
from course_lib.explain import (
    activation_maximization,
    as_game,
    kernel_shap,
    lime,
    max_sensitivity,
    randomization_check,
    saliency,
    shapley_permutation,
    smoothgrad,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits(mnist_test):
    x, y = mnist_test
    return x[:2].clone(), y[:2].clone()


def _game():
    c = torch.arange(1.0, 7.0, dtype=torch.float64)
    # a three-way interaction: the antithetic and paired estimators are exact (seed-free) on pairwise games
    return as_game(lambda m: (m.double() @ c) + 2.0 * (m[:, 0] & m[:, 1] & m[:, 2]).double(), 6)


# name -> fn(seed, model, x, y): every public function of course_lib that draws random numbers
CALLS = {
    "pgd": lambda s, m, x, y: pgd(m, x, y, 0.1, 0.02, 2, seed=s),
    "smoothgrad": lambda s, m, x, y: smoothgrad(m, x, n_samples=2, seed=s),
    "max_sensitivity": lambda s, m, x, y: max_sensitivity(lambda z: saliency(m, z, y), x, n_samples=2, seed=s),
    "randomization_check": lambda s, m, x, y: randomization_check(m, x, saliency, layers=["fc"], seed=s)[
        "correlation"],
    "activation_maximization": lambda s, m, x, y: activation_maximization(m, "fc", 3, (1, 28, 28), steps=2, seed=s,
                                                                          progress=False),
    "gaussian_noise": lambda s, m, x, y: corrupt(x, "gaussian_noise", 3, seed=s),
    "rotation": lambda s, m, x, y: corrupt(torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0)),
                                           "rotation", 3, seed=s),
    "shapley_permutation": lambda s, m, x, y: shapley_permutation(_game(), 6, 30, seed=s),
    "kernel_shap": lambda s, m, x, y: kernel_shap(_game(), 6, 30, seed=s),
    "lime": lambda s, m, x, y: lime(_game(), 6, 30, seed=s),
    "noise_success_rate": lambda s, m, x, y: noise_success_rate(m, x, y, 0.3, draws=2, seed=s),
    "zoo": lambda s, m, x, y: zoo(Oracle(m), x, y, max_queries=40, coords=4, seed=s, progress=False),
    "square_attack": lambda s, m, x, y: square_attack(Oracle(m), x, y, 0.3, max_queries=20, seed=s, progress=False),
    "boundary_attack": lambda s, m, x, y: boundary_attack(Oracle(m, "labels"), x, y, max_queries=60, seed=s,
                                                          progress=False),
    "hop_skip_jump": lambda s, m, x, y: hop_skip_jump(Oracle(m, "labels"), x, y, max_queries=60, seed=s,
                                                      progress=False),
    "noise_start": lambda s, m, x, y: noise_start(Oracle(m, "labels"), x, y, seed=s),
    "apply_patch": lambda s, m, x, y: apply_patch(x, torch.ones(1, 5, 5), "random", seed=s),
    "train_patch": lambda s, m, x, y: train_patch(m, x, 3, 6, 1, seed=s, batch_size=2, progress=False),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_one_meaning_of_seed(name, mnist_cnn, digits):
    x, y = digits
    call = CALLS[name]

    def run(seed):
        return call(seed, mnist_cnn, x, y)

    state = torch.get_rng_state()
    a = run(7)
    assert torch.equal(torch.get_rng_state(), state), f"{name}: an int seed must leave the global RNG alone"
    assert torch.equal(run(7), a), f"{name}: the same int seed must give the same result"
    assert torch.equal(run(torch.Generator().manual_seed(7)), a), f"{name}: a generator seeded with 7 = seed 7"
    assert torch.equal(run(np.int64(7)), a), f"{name}: a NumPy integer is an int seed"

    torch.manual_seed(123)
    b = run(None)
    torch.manual_seed(123)
    assert torch.equal(run(None), b), f"{name}: seed=None must draw from the global RNG (manual_seed reproduces it)"
    if name != "noise_success_rate":  # a rate over 2 draws may well repeat
        assert not torch.equal(run(None), b), f"{name}: two calls with seed=None must differ"
    with pytest.raises(TypeError, match="seed must be None, an int or a torch.Generator"):
        run(1.5)
    torch.set_rng_state(state)


def test_seed_everything_reproduces_unseeded_calls(mnist_cnn, digits):
    x, y = digits
    seed_everything(5)
    a = (pgd(mnist_cnn, x, y, 0.1, 0.02, 1), corrupt(x, "gaussian_noise", 2), smoothgrad(mnist_cnn, x, n_samples=2))
    seed_everything(5)
    b = (pgd(mnist_cnn, x, y, 0.1, 0.02, 1), corrupt(x, "gaussian_noise", 2), smoothgrad(mnist_cnn, x, n_samples=2))
    for u, v in zip(a, b, strict=True):
        assert torch.equal(u, v)


def test_corruptions_no_longer_treat_none_as_zero(digits):
    """The old corruptions used seed 0 for seed=None and refused a generator; now None is fresh randomness."""
    x = digits[0]
    torch.manual_seed(0)
    fresh = [corrupt(x, "gaussian_noise", 3) for _ in range(2)]
    assert not torch.equal(fresh[0], fresh[1])
    g = torch.Generator().manual_seed(4)
    assert torch.equal(corrupt(x, "gaussian_noise", 3, seed=g), corrupt(x, "gaussian_noise", 3, seed=4))


def test_generator_helper():
    state = torch.get_rng_state()
    g = _rng.generator(3)
    assert g.device.type == "cpu" and torch.equal(torch.get_rng_state(), state)
    assert torch.equal(torch.rand(4, generator=g), torch.rand(4, generator=torch.Generator().manual_seed(3)))
    mine = torch.Generator()
    assert _rng.generator(mine) is mine
    torch.manual_seed(0)
    s1 = torch.rand(3, generator=_rng.generator(None))
    torch.manual_seed(0)
    assert torch.equal(torch.rand(3, generator=_rng.generator(None)), s1)
    assert not torch.equal(torch.get_rng_state(), state)  # None consumed one draw of the global RNG
    for bad in (True, "0", 1.0):
        with pytest.raises(TypeError, match="seed must be None, an int or a torch.Generator"):
            _rng.generator(bad)
    torch.set_rng_state(state)


def test_draws_happen_on_the_generator_device_and_move_to_the_target():
    """The helpers draw on the generator's device (here the CPU) and return on the requested device: the same seed
    gives the same numbers wherever the input lives. ``meta`` stands in for an accelerator here (no values)."""
    g = _rng.generator(0)
    u = _rng.uniform((2, 3), g, dtype=torch.float64)
    assert torch.equal(u, torch.rand(2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    moved = _rng.normal((2, 3), _rng.generator(0), device="meta")
    assert moved.device.type == "meta" and moved.shape == (2, 3)
    assert _rng.integers(0, 5, (4,), _rng.generator(1), "meta").dtype == torch.long
    probs = torch.tensor([[0.0, 1.0, 0.0]])
    assert _rng.multinomial(probs, 1, _rng.generator(0)).tolist() == [[1]]
    assert sorted(_rng.permutation(5, _rng.generator(0)).tolist()) == [0, 1, 2, 3, 4]
