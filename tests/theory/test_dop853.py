"""Each piece of the batched DOP853 (lrdecay.theory.dop853) against the scipy function it mirrors, row by row:
same inputs, results equal to rounding (the batched norms sum in another order than scipy's BLAS norms)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import DOP853 as ScipyDOP853
from scipy.integrate._ivp.common import norm as scipy_norm
from scipy.integrate._ivp.common import select_initial_step
from scipy.integrate._ivp.ivp import find_active_events, solve_event_equation
from scipy.integrate._ivp.rk import rk_step

from lrdecay.theory import dop853
from lrdecay.theory.models import nonlinear as m
from lrdecay.theory.problem import Problem

RTOL, ATOL = 1e-10, 1e-12
ROUNDING = 1e-13


@pytest.fixture(scope="module")
def system():
    """The gradient flow of the nonlinear model (gamma = 1) from eight points, as a batched ``fun`` and a
    scipy ``fun(t, y)`` of one row."""
    p = Problem.generate(d=12, n=4, gamma=1.0, seed=2)
    Y0 = p.w0 + 0.5 * np.random.default_rng(0).standard_normal((8, p.d))

    def fun(Y):
        return -m.train_grad(Y, p.X, p.y, p.gamma)

    def fun_row(_t, y):
        return fun(y[None, :])[0]

    return fun, fun_row, Y0


def _rows_close(batched, per_row, rtol=ROUNDING):
    np.testing.assert_allclose(batched, np.array(per_row), rtol=rtol, atol=0)


def test_rms_is_scipys_norm_per_row(system):
    _, _, Y0 = system
    _rows_close(dop853.rms(Y0), [scipy_norm(y) for y in Y0])


@pytest.mark.parametrize("t_bound", [1e4, 1e-3])
@pytest.mark.parametrize("tols", [(RTOL, ATOL), (1e-6, 1e-9)])
def test_initial_step_is_select_initial_step(system, t_bound, tols):
    fun, fun_row, Y0 = system
    F0 = fun(Y0)
    h = dop853.initial_step(fun, Y0, F0, t_bound, *tols)
    _rows_close(h, [select_initial_step(fun_row, 0.0, y, t_bound, np.inf, f, 1, 7, *tols) for y, f in zip(Y0, F0)])


def test_initial_step_at_a_fixed_point_is_scipys():
    """f = 0 everywhere: d1 = d2 = 0, the branch h1 = max(1e-6, 1e-3 h0)."""
    Y0 = np.array([[1.0, 2.0], [0.0, 0.0]])
    h = dop853.initial_step(np.zeros_like, Y0, np.zeros_like(Y0), 10.0, RTOL, ATOL)
    want = [select_initial_step(lambda t, y: np.zeros_like(y), 0.0, y, 10.0, np.inf, np.zeros_like(y), 1, 7,
                                RTOL, ATOL) for y in Y0]
    np.testing.assert_array_equal(h, want)


def test_rk_step_is_scipys_rk_step(system):
    fun, fun_row, Y0 = system
    F0 = fun(Y0)
    h = np.geomspace(1e-4, 0.3, len(Y0))
    y_new, f_new, K = dop853.rk_step(fun, Y0, F0, h)
    for i in range(len(Y0)):
        Ki = np.empty((dop853.N_STAGES + 1, Y0.shape[1]))
        yi, fi = rk_step(fun_row, 0.0, Y0[i], F0[i], h[i], ScipyDOP853.A, ScipyDOP853.B, ScipyDOP853.C, Ki)
        np.testing.assert_allclose(y_new[i], yi, rtol=ROUNDING, atol=1e-15)
        np.testing.assert_allclose(f_new[i], fi, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(K[:, i], Ki, rtol=1e-12, atol=1e-12)


def test_error_norm_is_dop853s_estimate(system):
    """On stages without cancellation (random) to 1e-13; on the stages of real steps, where the error estimates
    are differences of stages that agree to 1e-10 and less, to the rounding that this cancellation allows
    (``tensordot`` and scipy's ``np.dot`` sum in different orders)."""
    fun, fun_row, Y0 = system
    solver = ScipyDOP853(fun_row, 0.0, Y0[0], 10.0, rtol=RTOL, atol=ATOL)
    rng = np.random.default_rng(1)
    K, h, scale = rng.standard_normal((dop853.N_STAGES + 1, 5, 7)), rng.uniform(0.1, 1, 5), rng.uniform(1, 2, (5, 7))
    _rows_close(dop853.error_norm(K, h, scale), [solver._estimate_error_norm(K[:, i], h[i], scale[i])
                                                 for i in range(5)])
    F0 = fun(Y0)
    h = np.geomspace(2e-3, 0.1, len(Y0))                 # error norms from 1e-5 (accepted) to 1e8 (rejected)
    y_new, _, K = dop853.rk_step(fun, Y0, F0, h)
    scale = ATOL + np.maximum(np.abs(Y0), np.abs(y_new)) * RTOL
    err = dop853.error_norm(K, h, scale)
    want = np.array([solver._estimate_error_norm(K[:, i], h[i], scale[i]) for i in range(len(Y0))])
    cancel = np.tensordot(np.abs(dop853.E5), np.abs(K), axes=(0, 0)) / np.abs(np.tensordot(dop853.E5, K, axes=(0, 0)))
    assert np.all(np.abs(err - want) <= 100 * np.finfo(float).eps * np.median(cancel, axis=1) * want)
    assert err.min() < 1 < err.max()
    assert dop853.error_norm(np.zeros((dop853.N_STAGES + 1, 2, 3)), np.ones(2), np.ones((2, 3))).tolist() == [0, 0]


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_steps_and_step_sizes_follow_scipys_solver(system):
    """From the state of scipy's DOP853 solver, step_size, rk_step, error_norm and update_step, repeated until
    the step is accepted, take its next step(): the same time, state and next step size. The first step is so
    large that its stages overflow (a NaN error norm, rejected) and the next ones are rejected too.

    Times and states agree to rounding for a step accepted at once; the step sizes to 1e-7 (measured: 1e-8),
    and so the times after a rejection to 1e-9: the factor is err^(-1/8), and err, a combination of stages
    that cancel to 1e-10 of their size and less, carries the stages' rounding (batched and per-row BLAS)
    magnified (see test_error_norm_is_dop853s_estimate)."""
    fun, fun_row, Y0 = system
    t_bound, first = 5.0, 2.0
    solvers = [ScipyDOP853(fun_row, 0.0, y, t_bound, rtol=RTOL, atol=ATOL, first_step=first) for y in Y0]
    n_rejected = 0
    for _ in range(15):
        t, Y, F = (np.array([getattr(s, k) for s in solvers]) for k in ("t", "y", "f"))
        h_abs, rejected = np.array([s.h_abs for s in solvers]), np.zeros(len(Y0), dtype=bool)
        pending, retried = np.ones(len(Y0), dtype=bool), np.zeros(len(Y0), dtype=bool)
        while pending.any():
            r = np.flatnonzero(pending)
            h, t_new, give_up = dop853.step_size(t[r], h_abs[r], rejected[r], t_bound)
            assert not give_up.any()
            y_new, f_new, K = dop853.rk_step(fun, Y[r], F[r], h)
            err = dop853.error_norm(K, h, ATOL + np.maximum(np.abs(Y[r]), np.abs(y_new)) * RTOL)
            acc, h_abs[r] = dop853.update_step(np.abs(h), err, rejected[r])
            rejected[r] = ~acc
            retried[r[~acc]] = True
            n_rejected += int((~acc).sum())
            a = r[acc]
            t[a], Y[a] = t_new[acc], y_new[acc]
            pending[a] = False
        for s in solvers:
            s.step()
        tol = np.where(retried, 1e-9, ROUNDING)
        assert np.all(np.abs(t - [s.t for s in solvers]) <= tol * np.abs(t))
        np.testing.assert_allclose(Y, [s.y for s in solvers], rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(h_abs, [s.h_abs for s in solvers], rtol=1e-7)
    assert n_rejected >= len(Y0)                          # the first step of every row was rejected


def test_update_step_factors_are_scipys():
    """The branches of RungeKutta._step_impl, by hand: zero error, growth capped at MAX_FACTOR, at 1 after a
    rejection, shrinkage floored at MIN_FACTOR, and a NaN error."""
    err = np.array([0.0, 1e-12, 0.5, 0.5, 2.0, 1e6, np.nan])
    rejected = np.array([False, False, False, True, False, False, False])
    acc, h = dop853.update_step(np.ones_like(err), err, rejected)
    grow, shrink = 0.9 * 0.5 ** (-1 / 8), 0.9 * 2.0 ** (-1 / 8)
    assert acc.tolist() == [True, True, True, True, False, False, False] and grow < 1
    np.testing.assert_allclose(h, [10.0, 10.0, grow, grow, shrink, 0.2, 0.2], rtol=1e-15)


def test_step_size_clips_at_the_bound_and_gives_up_below_the_spacing():
    t = np.array([0.0, 4.9, 1.0, 1.0])
    h, t_new, give_up = dop853.step_size(t, np.array([0.1, 0.5, 1e-300, 1e-300]),
                                         np.array([False, False, False, True]), 5.0)
    spacing = 10 * (np.nextafter(1.0, 2.0) - 1.0)
    assert t_new[1] == 5.0 and h[0] == 0.1 and h[2] == spacing and give_up.tolist() == [False, False, False, True]


def test_dense_output_is_dop853s(system):
    fun, fun_row, Y0 = system
    solvers = [ScipyDOP853(fun_row, 0.0, y, 10.0, rtol=RTOL, atol=ATOL) for y in Y0[:4]]
    for s in solvers:
        s.step()
        s.step()
    t_old = np.array([s.t_old for s in solvers])
    y_old = np.array([s.y_old for s in solvers])
    h = np.array([s.t for s in solvers]) - t_old
    y_new, f_new = np.array([s.y for s in solvers]), np.array([s.f for s in solvers])
    K = np.stack([s.K for s in solvers], axis=1)            # the accepted step's stages
    dense = dop853.DenseOutput.from_step(fun, K, t_old, h, y_old, y_new, f_new)
    refs = [s.dense_output() for s in solvers]
    for x in (0.0, 0.3, 0.77, 1.0):
        tq = t_old + x * h
        np.testing.assert_allclose(dense(tq), [r(tq[i]) for i, r in enumerate(refs)], rtol=1e-12, atol=1e-14)
    rows = np.array([3, 1])
    np.testing.assert_allclose(dense(t_old[rows] + 0.5 * h[rows], rows),
                               [refs[i](t_old[i] + 0.5 * h[i]) for i in rows], rtol=1e-12, atol=1e-14)


def test_find_active_events_is_scipys_with_direction_minus_one():
    rng = np.random.default_rng(3)
    g, g_new = rng.choice([-1.0, 0.0, 1.0], (40, 2)), rng.choice([-1.0, 0.0, 1.0], (40, 2))
    fired = dop853.find_active_events(g, g_new)
    for i in range(40):
        assert np.flatnonzero(fired[i]).tolist() == find_active_events(g[i], g_new[i], np.array([-1, -1])).tolist()


def test_event_roots_are_solve_event_equations(system):
    """The root of loss - eps on one step's dense output: bisection here, Brent's method in scipy, both to
    4 eps_machine."""
    fun, fun_row, Y0 = system
    p = Problem.generate(d=12, n=4, gamma=1.0, seed=2)
    s = ScipyDOP853(fun_row, 0.0, Y0[0], 10.0, rtol=RTOL, atol=ATOL)
    s.step()
    sol = s.dense_output()
    loss = lambda Y: m.train_loss(Y, p.X, p.y, p.gamma)        # noqa: E731
    eps = float(loss(sol(0.5 * (s.t_old + s.t))[None, :])[0])  # a level crossed inside the step
    want = solve_event_equation(lambda t, y: float(loss(y[None, :])[0]) - eps, sol, s.t_old, s.t)
    dense = dop853.DenseOutput.from_step(fun, s.K[:, None], np.array([s.t_old]), np.array([s.t - s.t_old]),
                                         s.y_old[None, :], s.y[None, :], s.f[None, :])
    events = lambda Y: np.stack([loss(Y) - eps, np.ones(len(Y))], axis=1)   # noqa: E731
    roots = dop853.locate_events(events, dense, np.array([[True, False]]), np.array([s.t]))
    assert roots[0, 1] == np.inf
    assert abs(roots[0, 0] - want) <= 8 * np.finfo(float).eps * (1 + abs(want))


def test_bisect_roots_brackets_closed_form_roots():
    lo, hi = np.zeros(3), np.array([1.0, 2.0, 10.0])
    roots = dop853.bisect_roots(lambda t: np.array([0.3, 1.7, np.pi]) - t, lo, hi)
    np.testing.assert_allclose(roots, [0.3, 1.7, np.pi], rtol=0, atol=4 * np.finfo(float).eps * 11)
    assert np.all(np.array([0.3, 1.7, np.pi]) - roots <= 0)
