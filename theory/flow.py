r"""Gradient flow with a stop at a train-loss threshold.

Integrates

.. math::  \frac{dw}{dt} = -\nabla L_n(w), \qquad w(0) = w_0,

with :func:`scipy.integrate.solve_ivp` until the first time :math:`t_\varepsilon` at which
:math:`L_n(w(t)) = \varepsilon` (a terminal event, located by solve_ivp's root finder on the dense
output, so the stop lands on the level set to solver tolerance and never overshoots it), or until
``t_max``. Divergence (a non-finite state or :math:`\|w\|` above ``blowup``) is a second terminal
event. The result, like solve_ivp's, carries a ``status`` and a human ``message`` instead of raising.

Many initial points: :func:`batched_gradient_flow` (``gradient_flow_batch(..., vectorized=True)``,
:func:`problem_gradient_flow_batch`) runs scipy's DOP853 for every row at once, each row with its
own steps and its own root-found event, evaluating the right-hand side for all unfinished rows in
one call.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.integrate import solve_ivp

from lrdecay.theory import dop853
from lrdecay.theory.validation import finite_array, positive, positive_or_none

STATUSES = ("reached_eps", "time_limit", "diverged", "failed")


@dataclass
class FlowResult:
    """Outcome of one gradient-flow integration.

    ``t`` and ``w`` hold the accepted solver steps (or ``t_eval``); ``t_final``/``w_final`` the stop.
    ``status`` is one of ``"reached_eps"`` (the event fired), ``"time_limit"`` (``t_max`` reached),
    ``"diverged"`` (non-finite or exploding state) or ``"failed"`` (the solver gave up).
    """

    t: np.ndarray
    w: np.ndarray
    t_final: float
    w_final: np.ndarray
    loss_final: float
    status: str
    message: str
    nfev: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.status == "reached_eps"


def _checked_options(w0, ndim: int, eps, t_max, rtol, atol, blowup):
    """The arguments shared by :func:`gradient_flow` (``w0``, ``ndim = 1``) and :func:`batched_gradient_flow`
    (``W0``, ``ndim = 2``), validated: ``(w0, eps, t_max, rtol, atol, blowup)``."""
    name, shape, size = ("w0", "(d,)", "d") if ndim == 1 else ("W0", "(P, d)", "P")
    w0 = finite_array(name, w0, ndim, shape)
    if w0.shape[0] < 1:
        raise ValueError(f"{name} must have shape {shape} with {size} >= 1, got {w0.shape}")
    return (w0, positive_or_none("eps", eps), positive("t_max", t_max), positive("rtol", rtol),
            positive("atol", atol), positive("blowup", blowup))


def _solve_ivp_events(loss, eps, blowup) -> list:
    """solve_ivp's terminal events, both with direction -1: ``loss - eps`` (with ``eps``), ``blowup - ||w||``."""
    def hit_eps(_t, w):
        return loss(w) - eps

    def blow(_t, w):
        nrm = np.linalg.norm(w)
        return blowup - nrm if np.isfinite(nrm) else -1.0

    events = [hit_eps, blow] if eps is not None else [blow]
    for ev in events:
        ev.terminal, ev.direction = True, -1
    return events


def gradient_flow(
    grad: Callable[[np.ndarray], np.ndarray],
    w0,
    *,
    loss: Callable[[np.ndarray], float],
    eps: float | None,
    t_max: float,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    method: str = "DOP853",
    t_eval=None,
    blowup: float = 1e8,
) -> FlowResult:
    """Integrate ``dw/dt = -grad(w)`` from ``w0`` until ``loss(w) = eps`` or ``t = t_max``.

    Parameters
    ----------
    grad, loss : callables of a 1-D array ``w``.
    w0 : initial point, shape ``(d,)``.
    eps : train-loss threshold (> 0), or ``None`` to run to ``t_max``. If ``loss(w0) <= eps`` the
        flow stops at once with status ``"reached_eps"``.
    t_max : time limit (> 0).
    rtol, atol, method : passed to :func:`scipy.integrate.solve_ivp`.
    t_eval : optional times at which to store the solution.
    blowup : the flow is declared diverged once ``||w||`` exceeds this (> 0).
    """
    w0, eps, t_max, rtol, atol, blowup = _checked_options(w0, 1, eps, t_max, rtol, atol, blowup)
    l0 = float(loss(w0))
    if eps is not None and l0 <= eps:
        return FlowResult(np.array([0.0]), w0[None, :].copy(), 0.0, w0.copy(), l0, "reached_eps",
                          f"loss(w0) = {l0:.3e} is already <= eps = {eps:.3e}", 0)
    sol = solve_ivp(lambda _t, w: -grad(w), (0.0, t_max), w0, method=method, rtol=rtol, atol=atol,
                    events=_solve_ivp_events(loss, eps, blowup), t_eval=t_eval)
    return _flow_result(sol, loss, eps, t_max, blowup)


def _flow_result(sol, loss, eps, t_max, blowup) -> FlowResult:
    """solve_ivp's solution ``sol`` as a :class:`FlowResult`: its status, stop and message."""
    def result(t_f, w_f, status, message):
        return FlowResult(sol.t, sol.y.T, t_f, w_f, float(loss(w_f)), status, message, sol.nfev)

    if sol.status == -1:
        w_last = sol.y[:, -1]
        return result(float(sol.t[-1]), w_last, "diverged" if not np.all(np.isfinite(w_last)) else "failed",
                      sol.message)
    if sol.status == 1 and eps is not None and sol.t_events[0].size:   # a terminal event fired
        t_f = float(sol.t_events[0][0])
        return result(t_f, sol.y_events[0][0], "reached_eps", f"train loss reached eps = {eps:.3e} at t = {t_f:.6g}")
    if sol.status == 1:
        t_f = float(sol.t_events[-1][0])
        return result(t_f, sol.y_events[-1][0], "diverged", f"||w|| exceeded {blowup:.1e} at t = {t_f:.6g}")
    w_f = sol.y[:, -1]
    lf = float(loss(w_f))
    msg = f"time limit t_max = {t_max:.6g} reached with loss {lf:.3e}" + (f" > eps = {eps:.3e}" if eps is not None
                                                                          else "")
    return FlowResult(sol.t, sol.y.T, float(sol.t[-1]), w_f, lf, "time_limit", msg, sol.nfev)


def gradient_flow_batch(grad, W0, *, vectorized: bool = False, **kwargs):
    """Gradient flow from each row of ``W0`` (shape ``(P, d)``); each path stops at its own event time.

    ``vectorized=False``: :func:`gradient_flow` (scipy's solve_ivp) once per row, with ``grad`` and
    ``loss`` functions of one point; returns a list of :class:`FlowResult`.
    ``vectorized=True``: all rows integrated together by :func:`batched_gradient_flow`, with
    ``grad(W) -> (P', d)`` and ``loss(W) -> (P',)`` functions of a batch of rows; returns a
    :class:`FlowBatch` (a sequence of :class:`FlowResult`)."""
    W0 = np.asarray(W0, dtype=float)
    if W0.ndim != 2:
        raise ValueError(f"W0 must have shape (P, d), got {W0.shape}")
    if vectorized:
        return batched_gradient_flow(grad, W0, **kwargs)
    return [gradient_flow(grad, w0, **kwargs) for w0 in W0]


# --------------------------------------------------------------------------------------------------
# Many initial points at once
# --------------------------------------------------------------------------------------------------

@dataclass
class FlowBatch:
    """Outcomes of :func:`batched_gradient_flow`, per path: ``t_final (P,)``, ``W_final (P, d)``,
    ``loss_final (P,)``, ``status (P,)`` (as :class:`FlowResult`'s), ``nfev (P,)`` (right-hand-side
    evaluations that path took part in) and ``n_steps (P,)`` (accepted steps). ``batch[i]`` is path
    ``i`` as a :class:`FlowResult` whose trajectory holds the start and the stop only."""

    W0: np.ndarray
    t_final: np.ndarray
    W_final: np.ndarray
    loss_final: np.ndarray
    status: np.ndarray
    nfev: np.ndarray
    n_steps: np.ndarray
    messages: list

    def __len__(self) -> int:
        return len(self.t_final)

    def __getitem__(self, i) -> FlowResult:
        tf = float(self.t_final[i])
        return FlowResult(np.array([0.0, tf]), np.stack([self.W0[i], self.W_final[i]]), tf, self.W_final[i].copy(),
                          float(self.loss_final[i]), str(self.status[i]), self.messages[i], int(self.nfev[i]),
                          {"n_steps": int(self.n_steps[i])})

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def _check_batch_functions(grad, loss, W0) -> None:
    """Call ``grad`` (and ``loss``) once on the first row of ``W0`` and check the shapes they return, so that a
    ``W0`` whose width is not the model's dimension is named here rather than deep in the integrator."""
    d = W0.shape[1]
    for name, fn, want in (("grad", grad, (1, d)), ("loss", loss, (1,))):
        if fn is None:
            continue
        try:
            out = np.asarray(fn(W0[:1]), dtype=float)
        except (ValueError, IndexError, TypeError) as exc:
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(f"W0 has {d} columns, which {name} cannot take ({why}); "
                             "W0 must have shape (P, d) with d the model's dimension") from None
        if out.shape != want:
            raise ValueError(f"W0 has {d} columns: {name}(W0[:1]) returned shape {out.shape}, expected {want}; "
                             "W0 must have shape (P, d) with d the model's dimension")


@dataclass
class _Paths:
    """Where every path of :func:`batched_gradient_flow` stands: time ``t``, state ``Y``, slope ``F = f(Y)``,
    event values ``G`` (loss - eps, blowup - ||w||), next step ``h_abs``, whether its step was rejected
    before, and, once it stops (``status`` not empty), its stop and message."""

    t: np.ndarray
    Y: np.ndarray
    F: np.ndarray
    G: np.ndarray
    h_abs: np.ndarray
    rejected: np.ndarray
    status: np.ndarray
    t_fin: np.ndarray
    W_fin: np.ndarray
    nfev: np.ndarray
    n_steps: np.ndarray
    messages: list

    @classmethod
    def at(cls, W0) -> "_Paths":
        P, d = W0.shape
        return cls(np.zeros(P), W0.copy(), np.zeros((P, d)), np.zeros((P, 2)), np.zeros(P), np.zeros(P, dtype=bool),
                   np.full(P, "", dtype="U12"), np.zeros(P), W0.copy(), np.zeros(P, dtype=np.int64),
                   np.zeros(P, dtype=np.int64), [""] * P)

    @property
    def live(self) -> np.ndarray:
        return np.flatnonzero(self.status == "")

    def stop(self, i, status: str, t, w, message: str) -> None:
        self.status[i], self.t_fin[i], self.W_fin[i], self.messages[i] = status, t, w, message


def _flow_events(loss, eps, blowup):
    """``events(Y) -> (P', 2)``: ``loss - eps`` (``inf`` without ``eps``) and ``blowup - ||w||`` (-1 when the
    norm is not finite); both terminal, both with direction -1."""
    def events(Y):
        nrm = np.linalg.norm(Y, axis=1)
        g_blow = np.where(np.isfinite(nrm), blowup - nrm, -1.0)
        g_eps = np.asarray(loss(Y), dtype=float) - eps if eps is not None else np.full(len(Y), np.inf)
        return np.stack([g_eps, g_blow], axis=1)
    return events


def batched_gradient_flow(grad, W0, *, loss, eps: float | None, t_max: float, rtol: float = 1e-10,
                          atol: float = 1e-12, method: str = "DOP853", blowup: float = 1e8) -> FlowBatch:
    r"""Integrate ``dw/dt = -grad(w)`` from every row of ``W0`` at once, each row until its own
    ``loss(w) = eps`` (or ``||w|| > blowup``, or ``t_max``).

    The integrator is scipy's DOP853 (Dormand–Prince 8(5,3), its coefficients, initial step, error
    norm and step-size control; :mod:`lrdecay.theory.dop853`) applied to every row separately — each row
    has its own time, step size and accepted or rejected steps — with the right-hand side evaluated for
    all unfinished rows in one call. After an accepted step in which ``g = loss - eps`` (or
    ``blowup - ||w||``) changes sign from ``>= 0`` to ``<= 0``, the event time is the root of ``g`` on
    that step's 8th-order dense output, found by bisection to ``4 eps_machine`` (solve_ivp uses Brent's
    method to the same tolerance). So every row follows the steps solve_ivp would take for it alone and
    stops where it would, to rounding.

    ``grad(W)`` and ``loss(W)`` take a batch ``(P', d)`` of rows and return ``(P', d)`` and ``(P',)``.
    Only ``method="DOP853"`` is implemented.
    """
    if method != "DOP853":
        raise ValueError(f"method must be 'DOP853' for the batched flow, got {method!r}")
    W0, eps, t_max, rtol, atol, blowup = _checked_options(W0, 2, eps, t_max, rtol, atol, blowup)
    _check_batch_functions(grad, loss if eps is not None else None, W0)

    def f(Y):
        return -np.asarray(grad(Y), dtype=float)

    events = _flow_events(loss, eps, blowup)
    paths = _Paths.at(W0)
    if eps is not None:
        L0 = np.asarray(loss(W0), dtype=float)
        for i in np.flatnonzero(L0 <= eps):
            paths.stop(i, "reached_eps", 0.0, W0[i], f"loss(w0) = {L0[i]:.3e} is already <= eps = {eps:.3e}")
    live = paths.live
    if live.size:
        paths.F[live] = f(paths.Y[live])
        paths.G[live] = events(paths.Y[live])
        paths.h_abs[live] = dop853.initial_step(f, paths.Y[live], paths.F[live], t_max, rtol, atol)
        paths.nfev[live] += 2
    while live.size:
        h, t_new, give_up = dop853.step_size(paths.t[live], paths.h_abs[live], paths.rejected[live], t_max)
        for i in live[give_up]:
            status = "failed" if np.all(np.isfinite(paths.Y[i])) else "diverged"
            paths.stop(i, status, paths.t[i], paths.Y[i], dop853.TOO_SMALL_STEP)
        live, h, t_new = live[~give_up], h[~give_up], t_new[~give_up]
        if not live.size:
            break
        y, fy = paths.Y[live], paths.F[live]
        y_new, f_new, K = dop853.rk_step(f, y, fy, h)
        paths.nfev[live] += dop853.N_STAGES
        err = dop853.error_norm(K, h, atol + np.maximum(np.abs(y), np.abs(y_new)) * rtol)
        acc, paths.h_abs[live] = dop853.update_step(np.abs(h), err, paths.rejected[live])
        paths.rejected[live] = ~acc
        if acc.any():
            step = (paths.t[live[acc]], y[acc], t_new[acc], y_new[acc], f_new[acc], h[acc], K[:, acc])
            _accept(paths, live[acc], step, f, events, t_max, eps, blowup)
        live = paths.live
    loss_fin = np.asarray(loss(paths.W_fin), dtype=float)
    for i in np.flatnonzero(paths.status == "time_limit"):
        paths.messages[i] = f"time limit t_max = {t_max:.6g} reached with loss {loss_fin[i]:.3e}" + (
            f" > eps = {eps:.3e}" if eps is not None else "")
    return FlowBatch(W0, paths.t_fin, paths.W_fin, loss_fin, paths.status, paths.nfev, paths.n_steps,
                     paths.messages)


def _accept(paths: _Paths, rows, step, f, events, t_max, eps, blowup) -> None:
    """Take the accepted ``step`` (``t_old, y_old, t_new, y_new, f_new, h, K``) of ``rows``; stop a row whose
    event fired during it (at the root on the step's dense output) or that reached ``t_max``."""
    t_old, y_old, t_new, y_new, f_new, h, K = step
    paths.t[rows], paths.Y[rows], paths.F[rows] = t_new, y_new, f_new
    paths.n_steps[rows] += 1
    g_new = events(y_new)
    fired = dop853.find_active_events(paths.G[rows], g_new)
    paths.G[rows] = g_new
    j = np.flatnonzero(fired.any(axis=1))
    if j.size:
        dense = dop853.DenseOutput.from_step(f, K[:, j], t_old[j], h[j], y_old[j], y_new[j], f_new[j])
        paths.nfev[rows[j]] += len(dop853.A_EXTRA)
        roots = dop853.locate_events(events, dense, fired[j], t_new[j])
        first = np.argmin(roots, axis=1)
        t_root = roots[np.arange(len(j)), first]
        w_root = dense(t_root)
        for q, i in enumerate(rows[j]):
            if first[q] == 0:
                paths.stop(i, "reached_eps", t_root[q], w_root[q], f"train loss reached eps = {eps:.3e} at t = "
                                                                   f"{t_root[q]:.6g}")
            else:
                paths.stop(i, "diverged", t_root[q], w_root[q], f"||w|| exceeded {blowup:.1e} at t = {t_root[q]:.6g}")
    for i in rows[(t_new >= t_max) & (paths.status[rows] == "")]:
        paths.stop(i, "time_limit", paths.t[i], paths.Y[i], "")


def linear_flow_closed_form(X, y, w0, t) -> np.ndarray:
    r"""Gradient flow of ``L_n(w) = (1/2n)||X w - y||^2`` (the gamma = 0 model) in closed form.

    With ``X = U S V^T`` (thin SVD) and ``w_inf = (I - V V^T) w_0 + X^+ y``,
    ``w(t) = w_inf + V exp(-S^2 t / n) V^T (w_0 - X^+ y)``. ``t`` scalar or array; returns
    ``(d,)`` or ``(len(t), d)``.
    """
    X = np.asarray(X, dtype=float)
    w0 = np.asarray(w0, dtype=float)
    n = X.shape[0]
    _, s, Vt = np.linalg.svd(X, full_matrices=False)
    keep = s > 1e-12 * s.max()
    s, Vt = s[keep], Vt[keep]
    w_ls = Vt.T @ ((Vt @ (X.T @ np.asarray(y, dtype=float))) / s**2)
    w_inf = w0 - Vt.T @ (Vt @ w0) + w_ls
    c = Vt @ (w0 - w_ls)
    t_arr = np.atleast_1d(np.asarray(t, dtype=float))
    out = w_inf + (np.exp(-np.outer(t_arr, s**2) / n) * c) @ Vt
    return out[0] if np.ndim(t) == 0 else out


def problem_gradient_flow(problem, w0=None, *, eps: float | None, t_max: float, reduce: bool = True,
                          **kwargs) -> FlowResult:
    """Gradient flow of a :class:`~lrdecay.theory.problem.Problem`'s train loss from ``w0`` (default
    ``problem.w0``), stopping at ``L_n = eps``.

    With ``reduce=True`` the flow runs in the invariant subspace ``span{w0, x_i}`` (dimension
    ``n + 1``; exact, see :mod:`lrdecay.theory.reduction`) and is lifted back, so its cost does not grow with
    ``d``. The stored trajectory ``w`` is lifted too.
    """
    from lrdecay.theory.models import nonlinear as m
    from lrdecay.theory.reduction import Reduction

    w0 = problem.w0 if w0 is None else np.asarray(w0, dtype=float)
    if reduce:
        red = Reduction.from_problem(problem, w0[None, :])
        P = red.reduced
        u0 = red.project(w0)
    else:
        P, u0 = problem, w0
    X, y, g = P.X, P.y, P.gamma
    res = gradient_flow(lambda u: m.train_grad(u, X, y, g), u0,
                        loss=lambda u: float(m.train_loss(u, X, y, g)), eps=eps, t_max=t_max, **kwargs)
    if reduce:
        res.w = red.lift(res.w)
        res.w_final = red.lift(res.w_final)
        res.extra["reduced_dim"] = red.m
    return res


def problem_gradient_flow_batch(problem, W0=None, *, eps: float | None, t_max: float, reduce: bool = True,
                                **kwargs) -> FlowBatch:
    """:func:`problem_gradient_flow` from every row of ``W0`` (default: ``problem.w0``) at once
    (:func:`batched_gradient_flow`). With ``reduce=True`` the flows run in the invariant subspace
    ``span{rows of W0, x_i}`` (one basis for all rows, so of dimension up to ``n + P``; exact) and
    the final states are lifted back."""
    from lrdecay.theory.models import nonlinear as m
    from lrdecay.theory.reduction import Reduction

    W0 = np.atleast_2d(problem.w0 if W0 is None else np.asarray(W0, dtype=float))
    if W0.ndim != 2 or W0.shape[1] != problem.d:
        raise ValueError(f"W0 must have shape (P, {problem.d}), got {W0.shape}")
    if reduce:
        red = Reduction.from_problem(problem, W0)
        P, U0 = red.reduced, red.project(W0)
    else:
        P, U0 = problem, W0
    X, y, g = P.X, P.y, P.gamma
    out = batched_gradient_flow(lambda U: m.train_grad(U, X, y, g), U0, loss=lambda U: m.train_loss(U, X, y, g),
                                eps=eps, t_max=t_max, **kwargs)
    if reduce:
        out.W0, out.W_final = W0, red.lift(out.W_final)
    return out
