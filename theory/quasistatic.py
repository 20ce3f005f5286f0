r"""Quasistatic picture of Phase II: normal-space equilibrium and the slow drift along M.

**Normal space.** Near a point ``w`` of M, label-noise SGD linearises to
``e_{k+1} = (I - eta H) e_k + eta sqrt(a) H^{1/2} xi_k`` with ``H = J^T J / n`` (the Hessian of
``L_n`` on M) and noise covariance ``eta^2 a H`` per step, ``a = sigma^2 / b`` for batch size ``b``
(``sigma^2 / n`` full batch). In the eigenbasis of ``H`` (eigenvalues ``lambda_j`` on the normal
space) the stationary variances are ``eta a / (2 - eta lambda_j)``, so

* stationary covariance ``Sigma = sum_j eta a / (2 - eta lambda_j) v_j v_j^T ~ (eta a / 2) P_N``;
* train-loss plateau ``E L_n = 1/2 tr(H Sigma) = (eta a / 4) sum_j lambda_j / (1 - eta lambda_j / 2)
  ~ (eta a / 4) tr Hess L_n``.

**Drift along M** (label-noise SGD; Blanc et al. 2020, Damian et al. 2021, Li, Wang, Arora 2022):

``dw / dtau = -(a / 4) P_T grad tr Hess L_n(w)``,  ``tau = eta^2 k``,

which on M reduces to ``-(a/4) h'(||w||) P_T w_hat`` and in radial form
``d||w|| / dtau = -(a/4) h'(||w||) ||P_T w_hat||^2``: the norm shrinks until ``w`` is normal to M,
i.e. ``w = w_mn`` (when ``h`` increases along M). :func:`drift_ode` integrates it on M (reduced
coordinates, ``solve_ivp``, each stored point retracted onto M). The comparison with label-noise SGD
over many paths is :mod:`lrdecay.theory.studies.drift`.

**At a finite learning rate** the exact OU covariance gives the drift ``-(a/4) P_T grad R_eta`` with
``R_eta = -(2/eta) sum_j log(1 - eta lambda_j / 2) = tr H + (eta/4) sum_j lambda_j^2 + O(eta^2)``
(:func:`discrete_regularizer`, :func:`discrete_drift_velocity`; ``drift_ode(..., eta=eta)``): the ``O(eta)``
correction of the drift, studied in :mod:`lrdecay.theory.studies.discrete_eta`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.integrate import solve_ivp

from lrdecay.theory.models import nonlinear as m
from lrdecay.theory.problem import Problem
from lrdecay.theory.validation import integer, nonneg, positive


def noise_scale(problem: Problem, batch_size: int | None = None, sigma: float | None = None) -> float:
    """``a = sigma^2 / b`` (``b = n`` for full batch)."""
    sig = problem.sigma if sigma is None else float(sigma)
    b = problem.n if batch_size is None else integer("batch_size", batch_size, 1, problem.n)
    return sig**2 / b


def normal_hessian_eigs(problem: Problem, w) -> np.ndarray:
    """Non-zero eigenvalues of ``H = J^T J / n`` at ``w`` (the Hessian of ``L_n`` on M), i.e. the
    eigenvalues of the n x n matrix ``J J^T / n``."""
    J = m.jacobian(np.asarray(w, dtype=float), problem.X, problem.gamma)
    return np.linalg.eigvalsh(J @ J.T / problem.n)


@dataclass
class PlateauPrediction:
    a: float
    eta: float
    eigs: np.ndarray
    leading: float        # (eta a / 4) tr H
    exact: float          # (eta a / 4) sum lambda / (1 - eta lambda / 2)
    stable: bool          # eta lambda_max < 2

    @property
    def normal_variances(self) -> np.ndarray:
        """Stationary variances along the eigenvectors of H: ``eta a / (2 - eta lambda_j)``."""
        return self.eta * self.a / (2 - self.eta * self.eigs)


def plateau_prediction(problem: Problem, w, eta: float, batch_size: int | None = None) -> PlateauPrediction:
    """Predicted Phase II train-loss plateau of label-noise SGD at learning rate ``eta`` near ``w``
    (``w`` should lie on, or close to, M)."""
    eta = positive("eta", eta)
    a = noise_scale(problem, batch_size)
    lam = normal_hessian_eigs(problem, w)
    stable = bool(eta * lam.max() < 2)
    exact = 0.25 * eta * a * float(np.sum(lam / (1 - eta * lam / 2))) if stable else float("inf")
    return PlateauPrediction(a, float(eta), lam, 0.25 * eta * a * float(lam.sum()), exact, stable)


def drift_velocity(problem: Problem, w, a: float) -> np.ndarray:
    """``dw/dtau = -(a/4) P_T grad tr Hess L_n(w)`` (batched over leading axes)."""
    g = m.hessian_trace_grad(w, problem.X, problem.y, problem.gamma)
    return -0.25 * a * m.project_tangent(w, g, problem.X, problem.gamma)


def radial_velocity(problem: Problem, w, a: float) -> np.ndarray:
    """``d||w||/dtau = -(a/4) h'(||w||) ||P_T w_hat||^2`` (the radial form of the drift on M)."""
    w = np.asarray(w, dtype=float)
    r = np.linalg.norm(w, axis=-1)
    pt = m.project_tangent(w, w / r[..., None], problem.X, problem.gamma)
    return -0.25 * a * m.manifold_hessian_trace_deriv(r, problem.X, problem.y, problem.gamma) * np.sum(pt**2, axis=-1)


@dataclass
class DriftSolution:
    tau: np.ndarray
    w: np.ndarray                 # (len(tau), d), each point retracted onto M
    norm: np.ndarray
    test_loss: np.ndarray
    dist_mn: np.ndarray
    off_manifold: float           # largest train loss of the integrated points before retraction
    status: str
    message: str
    config: dict = field(default_factory=dict)


def drift_ode(problem: Problem, w_start, tau_max: float, a: float, *, n_eval: int = 200,
              rtol: float = 1e-9, atol: float = 1e-12, method: str = "LSODA", eta: float | None = None,
              t_eval=None) -> DriftSolution:
    """Integrate the tangent drift ``dw/dtau = -(a/4) P_T grad tr Hess L_n`` from ``w_start`` (with ``eta``: the
    finite-``eta`` drift ``-(a/4) P_T grad R_eta`` of :func:`discrete_drift_velocity`).

    ``w_start`` is first retracted onto M. The ODE runs in the invariant subspace
    ``span{w_start, x_i}`` (exact: the velocity is a combination of ``w`` and the ``x_i``); every
    stored point is retracted onto M (the vector field is tangent, so the retraction only removes
    integration error, reported as ``off_manifold``). The points are ``n_eval`` evenly spaced times in
    ``[0, tau_max]``, or ``t_eval`` (sorted, within ``[0, tau_max]``) when given.
    """
    from lrdecay.theory.reduction import Reduction

    tau_max = positive("tau_max", tau_max)
    a = nonneg("a", a)
    w_start = m.retract(np.asarray(w_start, dtype=float), problem.X, problem.y, problem.gamma)
    red = Reduction.from_problem(problem, w_start[None, :])
    P = red.reduced
    u0 = red.project(w_start)
    tau = np.linspace(0.0, tau_max, n_eval) if t_eval is None else np.asarray(t_eval, dtype=float)
    if eta is None:
        def rhs(_t, u):
            return drift_velocity(P, u, a)
    else:
        eta = positive("eta", eta)

        def rhs(_t, u):
            return discrete_drift_velocity(P, u, a, eta)
    sol = solve_ivp(rhs, (0.0, tau_max), u0, t_eval=tau, method=method, rtol=rtol, atol=atol)
    U = sol.y.T
    off = float(np.max(m.train_loss(U, P.X, P.y, P.gamma)))
    U = m.retract(U, P.X, P.y, P.gamma)
    W = red.lift(U)
    status = "ok" if sol.success else "failed"
    return DriftSolution(sol.t, W, np.linalg.norm(W, axis=1),
                         m.test_loss(W, problem.alpha_star, problem.gamma, 0.0, problem.test_offset),
                         np.linalg.norm(W - problem.w_mn, axis=1), off, status, sol.message,
                         dict(tau_max=float(tau_max), a=float(a), rtol=rtol, atol=atol, method=method,
                              eta=None if eta is None else float(eta)))


@dataclass
class BudgetDrift:
    """The drift ODE at the drift budgets of several schedules (:func:`drift_at_budget`): row ``i`` is the
    point of M the ODE reaches at ``budgets[i]``; ``ode`` is the whole integrated curve."""

    budgets: np.ndarray           # (S,) tau_S = sum_{k<steps} eta_k^2 of each schedule
    w: np.ndarray                 # (S, d) the ODE's point at each budget (on M)
    norm: np.ndarray              # (S,)
    test_loss: np.ndarray         # (S,)
    dist_mn: np.ndarray           # (S,)
    ode: DriftSolution


def drift_at_budget(problem: Problem, lr, steps: int, *, w_start=None, batch_size: int | None = None,
                    sigma: float | None = None, n_eval: int = 200) -> BudgetDrift:
    """The quasistatic drift ODE evaluated at the drift budget of each schedule, in one integration.

    ``lr`` is a number, a schedule (any callable ``step -> eta``; :func:`lrdecay.theory.schedules.as_schedule`) or a
    list of them. Each schedule's budget is ``tau_S = sum_{k<steps} eta_k^2``
    (:func:`lrdecay.theory.schedules.drift_budget`): after ``steps`` steps of label-noise SGD the point on M is, in the
    quasistatic picture, the ODE's at ``tau_S``, whatever the schedule's shape. The ODE
    ``dw/dtau = -(a/4) P_T grad tr Hess L_n`` (``a = sigma^2 / b``, :func:`noise_scale`) runs once, from
    ``w_start`` (default: ``problem.w0``; retracted onto M) to the largest budget, with every budget among its
    evaluation points (``n_eval`` more points, evenly spaced, for the curve). Phase I (the fall onto M) is not
    modelled: from ``w0`` SGD lands near, not at, ``retract(w0)``; pass the landing point as ``w_start`` when it
    matters."""
    from lrdecay.theory.schedules import drift_budget

    steps = integer("steps", steps, 0)
    items = list(lr) if isinstance(lr, (list, tuple)) else [lr]
    if not items:
        raise ValueError("lr: an empty list; give a number, a schedule or a list of them")
    budgets = np.array([drift_budget(s, steps) for s in items])
    a = noise_scale(problem, batch_size, sigma)
    w_start = problem.w0 if w_start is None else w_start
    top = float(budgets.max())
    if top > 0:
        grid = np.unique(np.concatenate([np.linspace(0.0, top, integer("n_eval", n_eval, 2)), budgets]))
        ode = drift_ode(problem, w_start, tau_max=top, a=a, t_eval=grid)
    else:                                # no step, or only zero rates: the point stays where it starts
        w = m.retract(np.asarray(w_start, dtype=float), problem.X, problem.y, problem.gamma)[None, :]
        ode = DriftSolution(np.zeros(1), w, np.linalg.norm(w, axis=1),
                            m.test_loss(w, problem.alpha_star, problem.gamma, 0.0, problem.test_offset),
                            np.linalg.norm(w - problem.w_mn, axis=1), 0.0, "ok", "zero drift budget",
                            dict(tau_max=0.0, a=float(a)))
    if ode.status != "ok":
        raise RuntimeError(f"the drift ODE stopped before tau = {top:g}: {ode.message}")
    idx = np.searchsorted(ode.tau, budgets)
    return BudgetDrift(budgets, ode.w[idx], ode.norm[idx], ode.test_loss[idx], ode.dist_mn[idx], ode)


# --------------------------------------------------------------------------------------------------
# The drift at a finite learning rate
# --------------------------------------------------------------------------------------------------

def discrete_regularizer(problem: Problem, w, eta: float) -> np.ndarray:
    r"""``R_eta(w) = -(2/eta) sum_j log(1 - eta lambda_j / 2)``, ``lambda_j`` the eigenvalues of ``J J^T / n`` at ``w``.

    At a finite ``eta`` the normal fluctuations have the exact OU covariance
    ``Sigma = sum_j eta a / (2 - eta lambda_j) v_j v_j^T``; the mean step of label-noise SGD along M is then
    ``-(eta / 2) P_T grad tr(Hess L_n(w) Sigma)`` with ``Sigma`` held fixed, i.e. ``-(eta^2 a / 2) P_T sum_j
    grad lambda_j / (2 - eta lambda_j)`` (first-order eigenvalue perturbation; the residual terms of the Hessian
    contribute only normal components on M). That is ``d w / d tau = -(a/4) P_T grad R_eta`` with
    ``R_eta = sum_j lambda_j + (eta/4) sum_j lambda_j^2 + O(eta^2)``: ``tr Hess L_n`` at ``eta -> 0``, and an
    ``O(eta)`` correction that penalises the sharpest directions more (so its minimiser on M can move off
    ``w_mn``). Returns ``inf`` where ``eta lambda_max >= 2``."""
    eta = positive("eta", eta)
    J = m.jacobian(np.asarray(w, dtype=float), problem.X, problem.gamma)
    lam = np.linalg.eigvalsh(J @ np.swapaxes(J, -1, -2) / problem.n)
    arg = 1 - eta * lam / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -(2 / eta) * np.sum(np.log(arg), axis=-1)
    return np.where(np.all(arg > 0, axis=-1), out, np.inf)


def discrete_drift_velocity(problem: Problem, w, a: float, eta: float, h: float = 1e-6) -> np.ndarray:
    """``dw/dtau = -(a/4) P_T grad R_eta(w)`` (:func:`discrete_regularizer`; the gradient by central differences
    with step ``h ||w||``, one point ``w`` of shape ``(d,)``; use it in reduced coordinates)."""
    w = np.asarray(w, dtype=float)
    step = h * max(1.0, float(np.linalg.norm(w)))
    E = np.eye(w.size) * step
    R = discrete_regularizer(problem, np.concatenate([w + E, w - E]), eta)
    g = (R[:w.size] - R[w.size:]) / (2 * step)
    return -0.25 * a * m.project_tangent(w, g, problem.X, problem.gamma)
