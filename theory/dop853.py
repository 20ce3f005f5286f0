r"""scipy's DOP853, piece by piece, for many rows at once.

:func:`lrdecay.theory.flow.batched_gradient_flow` integrates an autonomous system
:math:`\dot y = f(y)` from every row of a batch, each row with its own time, step size and accepted
or rejected steps. Each function here is one piece of scipy's solver (``scipy/integrate/_ivp``), written
for a stack of rows ``(P, d)`` with one scalar per row where scipy has one scalar, and tested against
the scipy function it mirrors (tests/theory/test_dop853.py):

========================  ===============================================================
:func:`initial_step`      ``common.select_initial_step`` (Hairer, Nørsett & Wanner II.4)
:func:`step_size`         the step-size prelude of ``RungeKutta._step_impl`` (minimum step,
                          the end of the interval, giving up)
:func:`rk_step`           ``rk.rk_step`` with the DOP853 tableau
:func:`error_norm`        ``DOP853._estimate_error_norm`` (the 5th- and 3rd-order estimates)
:func:`update_step`       the accept/reject and step-size factor of ``RungeKutta._step_impl``
:class:`DenseOutput`      ``DOP853._dense_output_impl`` and ``Dop853DenseOutput`` (7th order)
:func:`find_active_events`  ``ivp.find_active_events``, for events with ``direction = -1``
:func:`bisect_roots`      ``ivp.solve_event_equation`` (there Brent's method, here bisection;
                          both to ``4 eps_machine``)
========================  ===============================================================

The right-hand side ``fun`` maps a stack of rows ``(P', d)`` to ``(P', d)``; it is called once per stage
for all rows together.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate._ivp import dop853_coefficients as co

N_STAGES = co.N_STAGES
A, B = co.A[:N_STAGES, :N_STAGES], co.B           # the nodes C are not needed: f does not depend on t
E3, E5, D = co.E3, co.E5, co.D
A_EXTRA = co.A[N_STAGES + 1:]                      # the dense output's three extra stages
ERROR_ESTIMATOR_ORDER = 7
ERROR_EXPONENT = -1.0 / (ERROR_ESTIMATOR_ORDER + 1)
SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 10.0      # scipy.integrate._ivp.rk
EVENT_RTOL = 4 * np.finfo(float).eps                 # solve_event_equation's xtol and rtol
TOO_SMALL_STEP = "Required step size is less than spacing between numbers."


def rms(x) -> np.ndarray:
    """Row-wise RMS norm (scipy's ``common.norm`` of each row)."""
    return np.linalg.norm(x, axis=-1) / np.sqrt(x.shape[-1])


def initial_step(fun, y0, f0, t_bound, rtol: float, atol: float) -> np.ndarray:
    """The first step of each row from ``t = 0``, as ``select_initial_step(fun, 0, y0, t_bound, inf, f0, 1, 7,
    rtol, atol)``; calls ``fun`` once (for all rows)."""
    scale = atol + np.abs(y0) * rtol
    d0, d1 = rms(y0 / scale), rms(f0 / scale)
    h0 = np.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / np.where(d1 == 0, 1.0, d1))
    h0 = np.minimum(h0, t_bound)
    f1 = fun(y0 + h0[:, None] * f0)
    d2 = rms((f1 - f0) / scale) / h0
    small = (d1 <= 1e-15) & (d2 <= 1e-15)
    with np.errstate(divide="ignore"):
        h1 = np.where(small, np.maximum(1e-6, h0 * 1e-3),
                      (0.01 / np.maximum(np.maximum(d1, d2), 1e-300)) ** (1 / (ERROR_ESTIMATOR_ORDER + 1)))
    return np.minimum(np.minimum(100 * h0, h1), t_bound)


def step_size(t, h_abs, rejected, t_bound):
    """The step each row tries next: ``(h, t_new, give_up)``.

    As ``RungeKutta._step_impl``: a new step is at least ``min_step`` (ten spacings of floating-point numbers
    at ``t``) and ends at ``t_bound`` at the latest; a row whose rejected step has shrunk below ``min_step``
    gives up (scipy's ``TOO_SMALL_STEP``)."""
    min_step = 10 * np.abs(np.nextafter(t, np.inf) - t)
    give_up = (h_abs < min_step) & rejected
    t_new = np.minimum(t + np.maximum(h_abs, min_step), t_bound)
    return t_new - t, t_new, give_up


def rk_step(fun, y, f, h):
    """One DOP853 step of every row from ``y`` (with ``f = fun(y)``) by ``h`` (one per row): ``(y_new, f_new, K)``,
    ``K`` the stages ``(N_STAGES + 1, P, d)`` with ``K[-1] = f_new``, as ``rk_step(fun, t, y, f, h, A, B, C, K)``."""
    K = np.empty((N_STAGES + 1, *y.shape))
    K[0] = f
    for s in range(1, N_STAGES):
        dy = np.tensordot(A[s, :s], K[:s], axes=(0, 0)) * h[:, None]
        K[s] = fun(y + dy)
    y_new = y + h[:, None] * np.tensordot(B, K[:N_STAGES], axes=(0, 0))
    f_new = fun(y_new)
    K[N_STAGES] = f_new
    return y_new, f_new, K


def error_norm(K, h, scale) -> np.ndarray:
    """Each row's error norm, as ``DOP853._estimate_error_norm(K, h, scale)``: 0 where both estimates vanish,
    NaN or inf where the stages are not finite."""
    d = K.shape[-1]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        e5 = np.tensordot(E5, K, axes=(0, 0)) / scale
        e3 = np.tensordot(E3, K, axes=(0, 0)) / scale
        n5, n3 = np.sum(e5**2, axis=1), np.sum(e3**2, axis=1)
        return np.where((n5 == 0) & (n3 == 0), 0.0, np.abs(h) * n5 / np.sqrt((n5 + 0.01 * n3) * d))


def update_step(h_abs, err, rejected):
    """``(accepted, next h_abs)`` after trying steps of length ``h_abs`` with error norms ``err``, as
    ``RungeKutta._step_impl``: accepted (``err < 1``) steps grow by ``SAFETY err^(-1/8)``, at most
    ``MAX_FACTOR`` and not above 1 right after a rejection (``rejected``); rejected steps shrink by that
    factor, never below ``MIN_FACTOR`` (a NaN error shrinks by ``MIN_FACTOR``)."""
    accepted = err < 1
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        factor = SAFETY * err**ERROR_EXPONENT
        shrink = np.where(factor > MIN_FACTOR, factor, MIN_FACTOR)
        grow = np.where(err == 0, MAX_FACTOR, np.minimum(MAX_FACTOR, factor))
    grow = np.where(rejected, np.minimum(1.0, grow), grow)
    return accepted, h_abs * np.where(accepted, grow, shrink)


@dataclass
class DenseOutput:
    """The 7th-order interpolant of accepted steps, one per row (``Dop853DenseOutput``): ``F`` of shape
    ``(INTERPOLATOR_POWER, P, d)``, the steps' start ``t_old``, length ``h`` and start state ``y_old``."""

    t_old: np.ndarray
    h: np.ndarray
    y_old: np.ndarray
    F: np.ndarray

    @classmethod
    def from_step(cls, fun, K, t_old, h, y_old, y_new, f_new) -> "DenseOutput":
        """As ``DOP853._dense_output_impl`` after the step ``K`` (``rk_step``'s stages) from ``(t_old, y_old)``
        to ``y_new``, ``f_new``; calls ``fun`` ``len(A_EXTRA)`` times (the extra stages)."""
        Kx = np.concatenate([K, np.empty((len(A_EXTRA), *y_old.shape))], axis=0)
        for s, a in enumerate(A_EXTRA, start=N_STAGES + 1):
            dy = np.tensordot(a[:s], Kx[:s], axes=(0, 0)) * h[:, None]
            Kx[s] = fun(y_old + dy)
        dy = y_new - y_old
        F = np.empty((co.INTERPOLATOR_POWER, *y_old.shape))
        F[0] = dy
        F[1] = h[:, None] * K[0] - dy
        F[2] = 2 * dy - h[:, None] * (f_new + K[0])
        F[3:] = h[None, :, None] * np.tensordot(D, Kx, axes=(1, 0))
        return cls(t_old, h, y_old, F)

    def __call__(self, t, rows=None) -> np.ndarray:
        """The state of row ``rows[i]`` (default: every row) at time ``t[i]``, shape ``(len(t), d)``."""
        rows = np.arange(len(self.h)) if rows is None else rows
        x = ((t - self.t_old[rows]) / self.h[rows])[:, None]
        y = np.zeros((len(rows), self.F.shape[-1]))
        for i, f in enumerate(self.F[::-1]):
            y += f[rows]
            y *= x if i % 2 == 0 else (1 - x)
        return y + self.y_old[rows]


def find_active_events(g, g_new) -> np.ndarray:
    """Which events (columns) fired in each row's step: ``g`` went from ``>= 0`` to ``<= 0`` (scipy's
    ``find_active_events`` with ``direction = -1``)."""
    return (g >= 0) & (g_new <= 0)


def locate_events(events, dense: DenseOutput, fired, t_new) -> np.ndarray:
    """The time of each fired event on its row's step, ``inf`` where it did not fire: shape of ``fired``.
    ``events`` maps states ``(P', d)`` to event values ``(P', n_events)``."""
    roots = np.full(fired.shape, np.inf)
    for ev in range(fired.shape[1]):
        rows = np.flatnonzero(fired[:, ev])
        if rows.size:
            roots[rows, ev] = bisect_roots(lambda tq, r=rows, e=ev: events(dense(tq, r))[:, e],
                                           dense.t_old[rows], t_new[rows])
    return roots


def bisect_roots(g, lo, hi, rel: float = EVENT_RTOL) -> np.ndarray:
    """Roots of ``g`` on ``[lo, hi]`` per row, where ``g(lo) >= 0 >= g(hi)``: bisection (vectorized
    over rows) until the bracket is below ``rel (1 + |t|)``; returns its end with ``g <= 0``."""
    lo, hi = lo.copy(), hi.copy()
    for _ in range(200):
        width = hi - lo
        if np.all(width <= rel * (1 + np.abs(hi))):
            break
        mid = lo + 0.5 * width
        up = g(mid) >= 0
        lo = np.where(up, mid, lo)
        hi = np.where(up, hi, mid)
    return hi
