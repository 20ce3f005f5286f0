import numpy as np
import pytest

from lrdecay.theory.problem import Problem


@pytest.fixture
def small_problem():
    return Problem.generate(d=12, n=4, gamma=1.0, sigma=0.3, seed=7)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def fd_jacobian(f, w, h=1e-6):
    """Central finite differences of a vector function f at w: returns (len(f(w)), len(w))."""
    w = np.asarray(w, dtype=float)
    cols = []
    for i in range(w.size):
        e = np.zeros_like(w)
        e[i] = h
        cols.append((np.atleast_1d(f(w + e)) - np.atleast_1d(f(w - e))) / (2 * h))
    return np.stack(cols, axis=-1)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One torch thread in tests: on a shared 2-core machine two OpenMP threads make the tests' small
    operations about ten times slower (measured: a 143-parameter Hessian-vector product, 10 ms vs 90 ms)."""
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    yield
