r"""Gradient flow with a stop at a train-loss threshold.

Integrates

.. math::  \frac{dw}{dt} = -\nabla L_n(w), \qquad w(0) = w_0,

with :func:`scipy.integrate.solve_ivp` until the first time :math:`t_\varepsilon` at which
:math:`L_n(w(t)) = \varepsilon` (a terminal event, located by solve_ivp's root finder on the dense
output, so the stop lands on the level set to solver tolerance and never overshoots it), or until
``t_max``. Divergence (a non-finite state or :math:`\|w\|` above ``blowup``) is a second terminal
event. The result, like solve_ivp's, carries a ``status`` and a human ``message`` instead of raising.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.integrate import solve_ivp

from theory.validation import positive as _check_positive

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
    blowup : the flow is declared diverged once ``||w||`` exceeds this.
    """
    w0 = np.asarray(w0, dtype=float)
    if w0.ndim != 1:
        raise ValueError(f"w0 must be a 1-D array of shape (d,), got shape {w0.shape}")
    if not np.all(np.isfinite(w0)):
        raise ValueError("w0 must contain finite values only")
    t_max = _check_positive("t_max", t_max)
    if eps is not None:
        eps = _check_positive("eps", eps)
    _check_positive("rtol", rtol)
    _check_positive("atol", atol)

    l0 = float(loss(w0))
    if eps is not None and l0 <= eps:
        return FlowResult(np.array([0.0]), w0[None, :].copy(), 0.0, w0.copy(), l0, "reached_eps",
                          f"loss(w0) = {l0:.3e} is already <= eps = {eps:.3e}", 0)

    def rhs(_t, w):
        return -grad(w)

    events = []
    if eps is not None:
        def hit_eps(_t, w):
            return loss(w) - eps
        hit_eps.terminal = True
        hit_eps.direction = -1
        events.append(hit_eps)

    def blow(_t, w):
        nrm = np.linalg.norm(w)
        return blowup - nrm if np.isfinite(nrm) else -1.0
    blow.terminal = True
    blow.direction = -1
    events.append(blow)

    sol = solve_ivp(rhs, (0.0, t_max), w0, method=method, rtol=rtol, atol=atol,
                    events=events, t_eval=t_eval)
    if sol.status == -1:
        w_last = sol.y[:, -1]
        status = "diverged" if not np.all(np.isfinite(w_last)) else "failed"
        return FlowResult(sol.t, sol.y.T, float(sol.t[-1]), w_last, float(loss(w_last)), status,
                          sol.message, sol.nfev)
    if sol.status == 1:  # a terminal event fired
        if eps is not None and sol.t_events[0].size:
            t_f, w_f = float(sol.t_events[0][0]), sol.y_events[0][0]
            return FlowResult(sol.t, sol.y.T, t_f, w_f, float(loss(w_f)), "reached_eps",
                              f"train loss reached eps = {eps:.3e} at t = {t_f:.6g}", sol.nfev)
        t_f, w_f = float(sol.t_events[-1][0]), sol.y_events[-1][0]
        return FlowResult(sol.t, sol.y.T, t_f, w_f, float(loss(w_f)), "diverged",
                          f"||w|| exceeded {blowup:.1e} at t = {t_f:.6g}", sol.nfev)
    w_f = sol.y[:, -1]
    lf = float(loss(w_f))
    msg = f"time limit t_max = {t_max:.6g} reached with loss {lf:.3e}"
    if eps is not None:
        msg += f" > eps = {eps:.3e}"
    return FlowResult(sol.t, sol.y.T, float(sol.t[-1]), w_f, lf, "time_limit", msg, sol.nfev)


def gradient_flow_batch(grad, W0, **kwargs) -> list[FlowResult]:
    """Run :func:`gradient_flow` from each row of ``W0`` (shape ``(P, d)``); each path stops at its
    own event time."""
    W0 = np.asarray(W0, dtype=float)
    if W0.ndim != 2:
        raise ValueError(f"W0 must have shape (P, d), got {W0.shape}")
    return [gradient_flow(grad, w0, **kwargs) for w0 in W0]


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
    """Gradient flow of a :class:`~theory.problem.Problem`'s train loss from ``w0`` (default
    ``problem.w0``), stopping at ``L_n = eps``.

    With ``reduce=True`` the flow runs in the invariant subspace ``span{w0, x_i}`` (dimension
    ``n + 1``; exact, see :mod:`theory.reduction`) and is lifted back, so its cost does not grow with
    ``d``. The stored trajectory ``w`` is lifted too.
    """
    from theory import model as m
    from theory.reduction import Reduction

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
