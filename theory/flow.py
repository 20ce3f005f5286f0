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

from lrdecay.theory.validation import positive as _check_positive

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


def _rms(x) -> np.ndarray:
    """Row-wise RMS norm (scipy's ``norm`` for each path)."""
    return np.linalg.norm(x, axis=-1) / np.sqrt(x.shape[-1])


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


def batched_gradient_flow(grad, W0, *, loss, eps: float | None, t_max: float, rtol: float = 1e-10,
                          atol: float = 1e-12, method: str = "DOP853", blowup: float = 1e8) -> FlowBatch:
    r"""Integrate ``dw/dt = -grad(w)`` from every row of ``W0`` at once, each row until its own
    ``loss(w) = eps`` (or ``||w|| > blowup``, or ``t_max``).

    The integrator is scipy's DOP853 (Dormand–Prince 8(5,3), its coefficients, initial step, error
    norm and step-size control) applied to every row separately — each row has its own time, step
    size and accepted or rejected steps — with the right-hand side evaluated for all unfinished
    rows in one call. After an accepted step in which ``g = loss - eps`` (or ``blowup - ||w||``)
    changes sign from ``>= 0`` to ``<= 0``, the event time is the root of ``g`` on that step's
    8th-order dense output, found by bisection to ``4 eps_machine`` (solve_ivp uses Brent's method
    to the same tolerance). So every row follows the steps solve_ivp would take for it alone and
    stops where it would, to rounding.

    ``grad(W)`` and ``loss(W)`` take a batch ``(P', d)`` of rows and return ``(P', d)`` and ``(P',)``.
    Only ``method="DOP853"`` is implemented.
    """
    from scipy.integrate._ivp import dop853_coefficients as co

    if method != "DOP853":
        raise ValueError(f"method must be 'DOP853' for the batched flow, got {method!r}")
    W0 = np.asarray(W0, dtype=float)
    if W0.ndim != 2 or W0.shape[0] < 1:
        raise ValueError(f"W0 must have shape (P, d) with P >= 1, got {W0.shape}")
    if not np.all(np.isfinite(W0)):
        raise ValueError("W0 must contain finite values only")
    t_max = _check_positive("t_max", t_max)
    if eps is not None:
        eps = _check_positive("eps", eps)
    rtol, atol = _check_positive("rtol", rtol), _check_positive("atol", atol)
    blowup = _check_positive("blowup", blowup)

    P, d = W0.shape
    _check_batch_functions(grad, loss if eps is not None else None, W0)
    S = co.N_STAGES
    A, B, C = co.A[:S, :S], co.B, co.C[:S]
    E3, E5, D = co.E3, co.E5, co.D
    A_X, C_X = co.A[S + 1:], co.C[S + 1:]
    order_exp = -1.0 / (7 + 1)                       # error estimator order 7
    SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 10.0

    def f(Y):
        return -np.asarray(grad(Y), dtype=float)

    def events(Y):                                   # (P', 2): loss - eps, blowup - ||w||
        nrm = np.linalg.norm(Y, axis=1)
        g_blow = np.where(np.isfinite(nrm), blowup - nrm, -1.0)
        g_eps = np.asarray(loss(Y), dtype=float) - eps if eps is not None else np.full(len(Y), np.inf)
        return np.stack([g_eps, g_blow], axis=1)

    t = np.zeros(P)
    Y = W0.copy()
    status = np.full(P, "", dtype="U12")
    t_fin, W_fin = np.zeros(P), W0.copy()
    nfev = np.zeros(P, dtype=np.int64)
    n_steps = np.zeros(P, dtype=np.int64)
    messages = [""] * P
    L0 = np.asarray(loss(W0), dtype=float) if eps is not None else np.full(P, np.inf)
    if eps is not None:
        done0 = L0 <= eps
        status[done0] = "reached_eps"
        for i in np.flatnonzero(done0):
            messages[i] = f"loss(w0) = {L0[i]:.3e} is already <= eps = {eps:.3e}"
    live = np.flatnonzero(status == "")
    F = np.zeros((P, d))
    G = np.zeros((P, 2))
    h_abs = np.zeros(P)
    if live.size:
        F[live] = f(Y[live])
        nfev[live] += 1
        G[live] = events(Y[live])
        # initial step (scipy's select_initial_step, row by row)
        y0, f0 = Y[live], F[live]
        scale = atol + np.abs(y0) * rtol
        d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
        h0 = np.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / np.where(d1 == 0, 1.0, d1))
        h0 = np.minimum(h0, t_max)
        f1 = f(y0 + h0[:, None] * f0)
        nfev[live] += 1
        d2 = _rms((f1 - f0) / scale) / h0
        small = (d1 <= 1e-15) & (d2 <= 1e-15)
        with np.errstate(divide="ignore"):
            h1 = np.where(small, np.maximum(1e-6, h0 * 1e-3),
                          (0.01 / np.maximum(np.maximum(d1, d2), 1e-300)) ** (1 / (7 + 1)))
        h_abs[live] = np.minimum(np.minimum(100 * h0, h1), t_max)
    rejected = np.zeros(P, dtype=bool)                 # the current step has been rejected before

    while live.size:
        tl, yl, fl = t[live], Y[live], F[live]
        min_step = 10 * np.abs(np.nextafter(tl, np.inf) - tl)
        h_try = np.maximum(h_abs[live], min_step)
        too_small = h_abs[live] < min_step
        # a step below the spacing of floating-point numbers: the solver gives up (status failed)
        give_up = too_small & rejected[live]
        if give_up.any():
            for i in live[give_up]:
                ok = np.all(np.isfinite(Y[i]))
                status[i] = "failed" if ok else "diverged"
                t_fin[i], W_fin[i] = t[i], Y[i]
                messages[i] = "Required step size is less than spacing between numbers."
            keep = ~give_up
            live, tl, yl, fl, h_try = live[keep], tl[keep], yl[keep], fl[keep], h_try[keep]
            if not live.size:
                break
        t_new = np.minimum(tl + h_try, t_max)
        h = t_new - tl
        K = np.empty((S + 1, len(live), d))
        K[0] = fl
        for s_ in range(1, S):
            dy = np.tensordot(A[s_, :s_], K[:s_], axes=(0, 0)) * h[:, None]
            K[s_] = f(yl + dy)
        y_new = yl + h[:, None] * np.tensordot(B, K[:S], axes=(0, 0))
        f_new = f(y_new)
        K[S] = f_new
        nfev[live] += S
        scale = atol + np.maximum(np.abs(yl), np.abs(y_new)) * rtol
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            e5 = np.tensordot(E5, K, axes=(0, 0)) / scale
            e3 = np.tensordot(E3, K, axes=(0, 0)) / scale
            n5, n3 = np.sum(e5**2, axis=1), np.sum(e3**2, axis=1)
            err = np.where((n5 == 0) & (n3 == 0), 0.0, np.abs(h) * n5 / np.sqrt((n5 + 0.01 * n3) * d))
            fac = SAFETY * err**order_exp
        acc = err < 1
        # rejected: shrink (never below MIN_FACTOR; a NaN error also shrinks by MIN_FACTOR)
        rej = ~acc
        h_used = np.abs(h)                             # the step taken (shortened to end at t_max)
        h_abs[live[rej]] = h_used[rej] * np.where(fac[rej] > MIN_FACTOR, fac[rej], MIN_FACTOR)
        rejected[live[rej]] = True
        # accepted: grow (at most MAX_FACTOR; not above 1 right after a rejection)
        ai = live[acc]
        grow = np.where(err[acc] == 0, MAX_FACTOR, np.minimum(MAX_FACTOR, fac[acc]))
        grow = np.where(rejected[ai], np.minimum(1.0, grow), grow)
        h_abs[ai] = h_used[acc] * grow
        rejected[ai] = False
        if not ai.size:
            continue
        t_old, y_old, f_old = tl[acc], yl[acc], fl[acc]
        t[ai], Y[ai], F[ai] = t_new[acc], y_new[acc], f_new[acc]
        n_steps[ai] += 1
        g_new = events(Y[ai])
        fired = (G[ai] >= 0) & (g_new <= 0)            # direction -1 for both events
        G[ai] = g_new
        hit = fired.any(axis=1)
        if hit.any():
            j = np.flatnonzero(hit)
            idx = ai[j]
            Kx = np.concatenate([K[:, acc][:, j], np.empty((len(co.C) - S - 1, len(j), d))], axis=0)
            hj = h[acc][j]
            for s_, (a_row, c_) in enumerate(zip(A_X, C_X), start=S + 1):
                dy = np.tensordot(a_row[:s_], Kx[:s_], axes=(0, 0)) * hj[:, None]
                Kx[s_] = f(y_old[j] + dy)
            nfev[idx] += len(A_X)
            dY = Y[idx] - y_old[j]
            Fi = np.empty((co.INTERPOLATOR_POWER, len(j), d))
            Fi[0] = dY
            Fi[1] = hj[:, None] * f_old[j] - dY
            Fi[2] = 2 * dY - hj[:, None] * (F[idx] + f_old[j])
            Fi[3:] = hj[None, :, None] * np.tensordot(D, Kx, axes=(1, 0))
            t0j, y0j = t_old[j], y_old[j]

            def dense(tq, rows):
                x = ((tq - t0j[rows]) / hj[rows])[:, None]
                out = np.zeros((len(rows), d))
                for i_, Fk in enumerate(Fi[::-1]):
                    out += Fk[rows]
                    out *= x if i_ % 2 == 0 else (1 - x)
                return out + y0j[rows]

            roots = np.full((len(j), 2), np.inf)
            for ev in (0, 1):
                rows = np.flatnonzero(fired[j, ev])
                if rows.size:
                    roots[rows, ev] = _bisect_event(lambda tq, r_=rows, ev_=ev: events(dense(tq, r_))[:, ev_],
                                                    t0j[rows], t[idx][rows])
            first = np.argmin(roots, axis=1)
            tr = roots[np.arange(len(j)), first]
            Wr = dense(tr, np.arange(len(j)))
            for q, i in enumerate(idx):
                t_fin[i], W_fin[i] = tr[q], Wr[q]
                if first[q] == 0:
                    status[i] = "reached_eps"
                    messages[i] = f"train loss reached eps = {eps:.3e} at t = {tr[q]:.6g}"
                else:
                    status[i] = "diverged"
                    messages[i] = f"||w|| exceeded {blowup:.1e} at t = {tr[q]:.6g}"
        ended = (t[ai] >= t_max) & (status[ai] == "")
        for i in ai[ended]:
            status[i] = "time_limit"
            t_fin[i], W_fin[i] = t[i], Y[i]
        live = np.flatnonzero(status == "")
    loss_fin = np.asarray(loss(W_fin), dtype=float)
    for i in np.flatnonzero(status == "time_limit"):
        messages[i] = f"time limit t_max = {t_max:.6g} reached with loss {loss_fin[i]:.3e}" + (
            f" > eps = {eps:.3e}" if eps is not None else "")
    return FlowBatch(W0, t_fin, W_fin, loss_fin, status, nfev, n_steps, messages)


def _bisect_event(g, lo, hi, rel: float = 4 * np.finfo(float).eps) -> np.ndarray:
    """Roots of ``g`` on ``[lo, hi]`` per row, where ``g(lo) >= 0 >= g(hi)``: bisection (vectorized
    over rows) until the bracket is below ``rel (1 + |t|)``; returns its end with ``g <= 0``."""
    lo, hi = lo.copy(), hi.copy()
    for _ in range(200):
        width = hi - lo
        if np.all(width <= rel * (1 + np.abs(hi))):
            break
        mid = lo + 0.5 * width
        gm = g(mid)
        up = gm >= 0
        lo = np.where(up, mid, lo)
        hi = np.where(up, hi, mid)
    return hi


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
