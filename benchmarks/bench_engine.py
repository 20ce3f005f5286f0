"""pytest-benchmark suite for the simulation engine and the gradient flow.

Run (the repository's pytest options disable benchmarks and collect ``tests/`` only, so name the
file and enable them)::

    OPENBLAS_NUM_THREADS=1 pytest benchmarks/bench_engine.py --benchmark-enable -p no:cacheprovider

Add ``--benchmark-json=FILE`` to keep the numbers; each benchmark stores its throughput
(``path_steps_per_s``, from the median round) in ``extra_info``. Every benchmark takes a few seconds.

* ``test_em_d1000``: label-noise SDE (Euler–Maruyama), d = 1000, n = 50, gamma = 1, 1000 paths;
* ``test_em_reduced_loop[d]``: the same SDE after the one-time projection onto ``span{w0, x_i}``
  (what ``simulate(..., reduce=True)`` runs), d = 10^3 and 10^6: the cost should not depend on d
  (``dt`` is scaled by 1000/d, since the largest Hessian eigenvalue grows like d);
* ``test_em_reduce_end_to_end[d]``: ``simulate(..., reduce=True)`` including the projection (a QR
  of a d x (n + 1) matrix) and the lift of the final states back to R^d; the d = 10^6 case is
  marked ``slow`` (deselected by the default ``-m 'not slow'``; add ``-m ""`` to run it);
* ``test_projection_d1e6``: the one-time projection alone;
* ``test_gradient_flow_eps[reduced|full]``: gradient flow to ``L_n = 1e-6`` at d = 10^4 (DOP853,
  rtol 1e-10, atol 1e-12), through the reduction and on the full d-dimensional system;
* ``test_backend_reduced[backend-P]``: full-batch SGD in the reduced coordinates of the default
  problem (m = 11) on the numpy and the compiled backend, 1, 16 and 256 paths;
* ``test_batched_gradient_flow``: 200 starts to ``L_n = 1e-6`` at d = 50 integrated together.

Ratios between backends, and against a hand-fused loop and the matmul floor, are measured in one
process by ``benchmarks/compare_peers.py --sections engine`` (benchmarks/engine_speed.py).
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from lrdecay.theory.flow import problem_gradient_flow
from lrdecay.theory.problem import Problem
from lrdecay.theory.reduction import Reduction
from lrdecay.theory.engine import simulate

GAMMA, SIGMA, N, DT, ETA = 1.0, 1.0, 50, 2.0**-8, 1.0


@functools.lru_cache(maxsize=None)
def problem(d: int) -> Problem:
    return Problem.generate(d=d, n=N, gamma=GAMMA, sigma=SIGMA, seed=0)


@functools.lru_cache(maxsize=None)
def reduction(d: int) -> Reduction:
    return Reduction.from_problem(problem(d))


def _throughput(benchmark, path_steps: int) -> None:
    med = benchmark.stats.stats.median
    benchmark.extra_info["path_steps"] = path_steps
    benchmark.extra_info["path_steps_per_s"] = path_steps / med


def test_em_d1000(benchmark):
    P, steps = 1000, 20
    prob = problem(1000)
    res = benchmark.pedantic(
        lambda: simulate(prob, method="em", dt=DT, lr=ETA, steps=steps, n_paths=P, record_every=steps),
        rounds=5, iterations=1, warmup_rounds=1)
    assert np.all(res.status == "completed")
    _throughput(benchmark, P * steps)


@pytest.mark.parametrize("d", [1000, 10**6], ids=["d1e3", "d1e6"])
def test_em_reduced_loop(benchmark, d):
    P, steps, dt = 1000, 200, DT * 1000 / d   # dt scaled: the stiffness grows like d
    red = reduction(d)
    U0 = np.tile(red.project(problem(d).w0), (P, 1))
    res = benchmark.pedantic(
        lambda: simulate(red.reduced, U0, method="em", dt=dt, lr=ETA, steps=steps, record_every=steps),
        rounds=5, iterations=1, warmup_rounds=1)
    assert np.all(res.status == "completed")
    benchmark.extra_info["reduced_dim"] = red.m
    _throughput(benchmark, P * steps)


@pytest.mark.parametrize("d", [1000, pytest.param(10**6, marks=pytest.mark.slow)], ids=["d1e3", "d1e6"])
def test_em_reduce_end_to_end(benchmark, d):
    # d = 1e6 is marked slow (about a minute per round; include it with -m ""): most of the time
    # goes to the row de-duplication of W0 and to the QR, not to the time steps.
    P, steps, dt = 20, 200, DT * 1000 / d
    prob = problem(d)
    res = benchmark.pedantic(
        lambda: simulate(prob, method="em", dt=dt, lr=ETA, steps=steps, n_paths=P, record_every=steps,
                         reduce=True),
        rounds=3 if d < 10**5 else 1, iterations=1)
    assert np.all(res.status == "completed") and res.W_final.shape == (P, d)
    _throughput(benchmark, P * steps)


def test_projection_d1e6(benchmark):
    prob = problem(10**6)
    red = benchmark.pedantic(lambda: Reduction.from_problem(prob), rounds=2, iterations=1)
    assert red.m == N + 1


@pytest.mark.parametrize("reduce", [True, False], ids=["reduced", "full"])
def test_gradient_flow_eps(benchmark, reduce):
    prob = problem(10**4)
    res = benchmark.pedantic(
        lambda: problem_gradient_flow(prob, eps=1e-6, t_max=100.0, reduce=reduce, rtol=1e-10, atol=1e-12,
                                      method="DOP853"),
        rounds=3, iterations=1, warmup_rounds=1)
    assert res.status == "reached_eps"
    benchmark.extra_info["t_eps"] = res.t_final
    benchmark.extra_info["nfev"] = res.nfev


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("P", [1, 16, 256])
def test_backend_reduced(benchmark, backend, P):
    red = Reduction.from_problem(Problem.generate(d=50, n=10, gamma=1.0, sigma=0.3, seed=0)).reduced
    steps = {1: 20000, 16: 5000, 256: 1000}[P] // (10 if backend == "numpy" and P == 1 else 1)
    W0 = np.tile(red.w0, (P, 1))
    res = benchmark.pedantic(lambda: simulate(red, W0, steps=steps, lr=0.02, backend=backend),
                             rounds=3, iterations=1, warmup_rounds=1)
    assert np.all(res.status == "completed")
    _throughput(benchmark, P * steps)


def test_batched_gradient_flow(benchmark):
    from lrdecay.theory.flow import problem_gradient_flow_batch

    p = Problem.generate(d=50, n=10, gamma=1.0, seed=0)
    W0 = p.w0 + 0.3 * np.random.default_rng(1).standard_normal((200, p.d))
    res = benchmark.pedantic(lambda: problem_gradient_flow_batch(p, W0, eps=1e-6, t_max=100.0, reduce=False),
                             rounds=3, iterations=1, warmup_rounds=1)
    assert np.all(res.status == "reached_eps")
