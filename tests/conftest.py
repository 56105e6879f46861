import os
import shutil
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture
def data_copy(tmp_path, monkeypatch):
    """A private copy of data/ selected through COURSE_DATA, with course_lib's caches cleared around the test."""
    import course_lib.data as data

    dst = tmp_path / "data"
    shutil.copytree(ROOT / "data", dst)
    monkeypatch.setenv("COURSE_DATA", str(dst))
    data._manifest.cache_clear()
    data._npz.cache_clear()
    yield dst
    data._manifest.cache_clear()
    data._npz.cache_clear()


@pytest.fixture(scope="session")
def mnist_test():
    from course_lib.data import load_mnist

    return load_mnist("test")


@pytest.fixture(scope="session")
def mnist_cnn():
    """The shipped mnist_cnn in eval mode, loaded once (tests must not change it)."""
    from course_lib.models import load_model

    return load_model("mnist_cnn")


@pytest.fixture
def one_thread():
    """One torch thread for a test (``pytestmark = pytest.mark.usefixtures("one_thread")`` for a file): black-box
    attacks make thousands of small forward passes, and on a busy 2-core machine each parallel region of a second
    thread waits for a core (10-60x slower, measured); results do not depend on the number of threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _fresh_choice_record():
    """check_choice allows one attempt per question and kernel: every test starts with a clean record."""
    import course_lib.homework as hw

    hw._MISSED.clear()
    yield
    hw._MISSED.clear()


@pytest.fixture(autouse=True)
def _other_global_random_state():
    """With COURSE_GLOBAL_SEED set (tests/test_check_determinism.py), every test starts from that seed of torch's,
    numpy's and Python's global generators, a different random state from the usual run's."""
    seed = os.environ.get("COURSE_GLOBAL_SEED")
    if seed is not None:
        import random

        import numpy as np

        torch.manual_seed(int(seed))
        np.random.seed(int(seed))
        random.seed(int(seed))
        torch.rand(int(seed) % 97)            # and a seed-dependent number of draws already taken
    yield
