r"""Linear regression with commuting covariances: the common eigenbasis, the losses, and gradient flow and
gradient descent, in closed form (eigen-coordinates) and numerically (original coordinates).

The setting, the notation and the normalization (no factor 1/2 in the losses, gradient
:math:`2S(\beta - \beta^*)`) are those of :mod:`lrdecay.theory.convex`, which states Lemma 2 and Proposition 1
of Nakkiran (2020) on top of these pieces and re-exports every public name defined here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lrdecay.theory.validation import integer, positive as _positive

__all__ = [
    "EigenBasis", "simultaneous_eigenbasis", "sample_covariance", "train_loss", "population_loss", "train_grad",
    "gf_delta", "gf_stopping_time", "gd_delta", "gd_phase_closed", "NumericalFlow", "gradient_flow_numerical",
    "gradient_descent_numerical",
]


# --------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------

def _nonneg_int(name: str, value) -> int:
    return integer(name, value, 0)


def _sym_matrix(name: str, value, d: int | None = None) -> np.ndarray:
    a = np.asarray(value, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        want = f"({d}, {d})" if d else "(d, d) with d >= 1"
        raise ValueError(f"{name} must be a square matrix of shape {want}, got shape {a.shape}")
    if d is not None and a.shape[0] != d:
        raise ValueError(f"{name} must have shape ({d}, {d}) to match Sigma, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must contain finite values only")
    scale = max(1.0, float(np.max(np.abs(a))))
    if np.max(np.abs(a - a.T)) > 1e-10 * scale:
        raise ValueError(f"{name} must be symmetric (|{name} - {name}^T| <= 1e-10 max|{name}|)")
    return 0.5 * (a + a.T)


def _vector(name: str, value, d: int) -> np.ndarray:
    v = np.asarray(value, dtype=float)
    if v.shape != (d,):
        raise ValueError(f"{name} must be a 1-D array of shape ({d},), got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must contain finite values only")
    return v


# --------------------------------------------------------------------------------------------------
# Simultaneous diagonalization
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EigenBasis:
    r"""A common orthonormal eigenbasis :math:`\Sigma = U\Lambda U^\top`, :math:`S = U\Gamma U^\top`.

    Columns of ``U`` are ordered by :math:`\gamma` descending (the paper's order);
    ``lam[i]`` :math:`= u_i^\top\Sigma u_i`, ``gam[i]`` :math:`= u_i^\top S u_i`. ``commutator`` is the
    relative size :math:`\|\Sigma S - S\Sigma\|_F / (\|\Sigma\|_F\|S\|_F)` that was checked.
    """

    U: np.ndarray
    lam: np.ndarray
    gam: np.ndarray
    commutator: float

    def to_eigen(self, beta, beta_star) -> np.ndarray:
        r""":math:`\delta = U^\top(\beta - \beta^*)` (works on a stack of rows too)."""
        return (np.asarray(beta, float) - np.asarray(beta_star, float)) @ self.U

    def from_eigen(self, delta, beta_star) -> np.ndarray:
        r""":math:`\beta = \beta^* + U\delta` (works on a stack of rows too)."""
        return np.asarray(beta_star, float) + np.asarray(delta, float) @ self.U.T


def simultaneous_eigenbasis(Sigma, S, *, tol: float = 1e-9) -> EigenBasis:
    r"""Find :math:`U` with :math:`U^\top\Sigma U` and :math:`U^\top S U` both diagonal.

    Two symmetric matrices are simultaneously (orthogonally) diagonalizable iff they commute,
    :math:`\Sigma S = S\Sigma`. This is checked first (relative Frobenius norm of the commutator at
    most ``tol``); a non-commuting pair raises ``ValueError``. Then :math:`S` is diagonalized, and
    :math:`\Sigma` is diagonalized inside each eigenspace of :math:`S` (eigenvalues of :math:`S` equal
    up to ``tol * max|gamma|`` form one eigenspace), which handles repeated sample eigenvalues.
    ``Sigma`` must be positive definite (restrict to its image otherwise, as the paper does);
    ``S`` must be positive semidefinite.
    """
    Sigma = _sym_matrix("Sigma", Sigma)
    d = Sigma.shape[0]
    S = _sym_matrix("S", S, d)
    tol = _positive("tol", tol)
    lam_all = np.linalg.eigvalsh(Sigma)
    if lam_all[0] <= 1e-12 * max(1.0, lam_all[-1]):
        raise ValueError(
            "Sigma must be positive definite (smallest eigenvalue > 0), got smallest eigenvalue "
            f"{lam_all[0]:.3e}; restrict the problem to the image of Sigma")
    gam_all = np.linalg.eigvalsh(S)
    if gam_all[0] < -1e-12 * max(1.0, abs(gam_all[-1])):
        raise ValueError(f"S must be positive semidefinite (eigenvalues >= 0), got smallest eigenvalue "
                         f"{gam_all[0]:.3e}")
    nS, nSig = np.linalg.norm(S), np.linalg.norm(Sigma)
    comm = float(np.linalg.norm(Sigma @ S - S @ Sigma) / (nS * nSig)) if nS > 0 else 0.0
    if comm > tol:
        raise ValueError(
            "Sigma and S are not simultaneously diagonalizable: they do not commute "
            f"(||Sigma S - S Sigma||_F / (||Sigma||_F ||S||_F) = {comm:.3e}, accepted range <= tol = {tol:.1e}); "
            "Lemma 2 of Nakkiran (2020) assumes a common eigenbasis")
    g, V = np.linalg.eigh(S)
    order = np.argsort(-g, kind="stable")
    g, V = g[order], V[:, order]
    scale = max(float(np.max(np.abs(g))), 1e-300)
    cols, lam, gam = [], [], []
    i = 0
    while i < d:
        j = i + 1
        while j < d and abs(g[j] - g[i]) <= tol * scale:
            j += 1
        block = V[:, i:j]
        sub = block.T @ Sigma @ block
        mu, W = np.linalg.eigh(0.5 * (sub + sub.T))
        ordr = np.argsort(-mu, kind="stable")
        mu, W = mu[ordr], W[:, ordr]
        cols.append(block @ W)
        lam.extend(mu)
        gam.extend([float(np.mean(g[i:j]))] * (j - i) if j - i > 1 else [g[i]])
        i = j
    U = np.concatenate(cols, axis=1)
    lam = np.asarray(lam, dtype=float)
    gam = np.clip(np.asarray(gam, dtype=float), 0.0, None)
    off = U.T @ Sigma @ U - np.diag(lam)
    if np.linalg.norm(off) > 1e3 * tol * nSig + 1e-12:
        raise ValueError(
            "Sigma and S are not simultaneously diagonalizable: no common eigenbasis found "
            f"(off-diagonal residual {np.linalg.norm(off):.3e}); accepted: commuting symmetric matrices")
    return EigenBasis(U=U, lam=lam, gam=gam, commutator=comm)


def sample_covariance(X) -> np.ndarray:
    r""":math:`S = \tfrac1n X^\top X` for a design matrix ``X`` of shape ``(n, d)``."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must be a design matrix of shape (n, d) with n, d >= 1, got shape {X.shape}")
    return X.T @ X / X.shape[0]


# --------------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------------

def train_loss(beta, S, beta_star) -> float:
    r""":math:`\hat L(\beta) = (\beta-\beta^*)^\top S (\beta-\beta^*)` (equals :math:`\frac1n\|X\beta - y\|^2`)."""
    r = np.asarray(beta, float) - np.asarray(beta_star, float)
    return float(r @ np.asarray(S, float) @ r)


def population_loss(beta, Sigma, beta_star) -> float:
    r""":math:`L_{\mathcal D}(\beta) = (\beta-\beta^*)^\top \Sigma (\beta-\beta^*)` (noiseless labels)."""
    r = np.asarray(beta, float) - np.asarray(beta_star, float)
    return float(r @ np.asarray(Sigma, float) @ r)


def train_grad(beta, S, beta_star) -> np.ndarray:
    r""":math:`\nabla\hat L(\beta) = 2 S(\beta - \beta^*)`."""
    return 2.0 * np.asarray(S, float) @ (np.asarray(beta, float) - np.asarray(beta_star, float))


# --------------------------------------------------------------------------------------------------
# Closed forms in eigen-coordinates
# --------------------------------------------------------------------------------------------------

def gf_delta(gam, delta0, t) -> np.ndarray:
    r"""Gradient flow in eigen-coordinates, :math:`\delta_i(t) = \delta_i(0)\, e^{-2\gamma_i t}`.

    ``t`` scalar gives shape ``(d,)``; an array of times gives ``(len(t), d)``.
    """
    gam = np.asarray(gam, float)
    delta0 = np.asarray(delta0, float)
    t = np.asarray(t, float)
    if t.ndim == 0:
        return delta0 * np.exp(-2.0 * gam * t)
    return delta0[None, :] * np.exp(-2.0 * gam[None, :] * t[:, None])


def gf_stopping_time(gam, delta0, eps) -> float:
    r"""The time :math:`T` with :math:`\hat L(\delta(T)) = \sum_i \gamma_i\delta_i(0)^2 e^{-4\gamma_i T} = \varepsilon`.

    The left side decreases strictly in :math:`T` (to 0), so the root is unique; it is bracketed by
    :math:`0 \le T \le \log(\hat L(0)/\varepsilon) / (4\gamma_\text{min})` (:math:`\gamma_\text{min}` the smallest
    :math:`\gamma_i > 0` with :math:`\delta_i(0) \ne 0`) and found by Brent's method on the logarithm of
    the loss. :math:`T = 0` if :math:`\hat L(0) \le \varepsilon`.
    """
    from scipy.optimize import brentq
    from scipy.special import logsumexp

    eps = _positive("eps", eps)
    gam = np.asarray(gam, float)
    delta0 = np.asarray(delta0, float)
    w = gam * delta0 ** 2
    act = w > 0
    if not np.any(act):
        return 0.0
    logw, g = np.log(w[act]), gam[act]
    loss0 = float(np.sum(w))
    if loss0 <= eps:
        return 0.0
    log_eps = math.log(eps)

    def h(T):
        return float(logsumexp(logw - 4.0 * g * T)) - log_eps

    t_hi = math.log(loss0 / eps) / (4.0 * float(np.min(g)))
    t_hi = t_hi * (1 + 1e-12) + 1e-300
    if h(t_hi) > 0:  # rounding at the bracket end
        t_hi *= 1.0 + 1e-9
    return float(brentq(h, 0.0, t_hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500))


def gd_delta(gam, delta0, eta, k) -> np.ndarray:
    r"""Gradient descent in eigen-coordinates, :math:`\delta_i(k) = (1 - 2\eta\gamma_i)^k \delta_i(0)`."""
    eta = _positive("eta", eta)
    k = _nonneg_int("K", k)
    return (1.0 - 2.0 * eta * np.asarray(gam, float)) ** k * np.asarray(delta0, float)


def gd_phase_closed(gam, delta0, eta, K, eps):
    """Closed-form GD phase with the early stop at train loss <= eps; returns (steps, path (steps+1, d))."""
    factors = 1.0 - 2.0 * eta * gam
    ks = np.arange(K + 1)
    path = delta0[None, :] * factors[None, :] ** ks[:, None]
    losses = path ** 2 @ gam
    below = np.nonzero(losses <= eps)[0]
    steps = int(below[0]) if below.size else K
    return steps, path[: steps + 1]


# --------------------------------------------------------------------------------------------------
# Numerical versions (original coordinates, no eigendecomposition)
# --------------------------------------------------------------------------------------------------

@dataclass
class NumericalFlow:
    """Numerical gradient flow: stop time, end point, stored path and solver status."""

    t_final: float
    beta_final: np.ndarray
    t: np.ndarray
    path: np.ndarray
    status: str
    restarts: int


def gradient_flow_numerical(S, beta_star, beta0, eps, *, rtol: float = 1e-11, atol: float = 1e-13,
                            t_max0: float = 1.0, max_restarts: int = 60) -> NumericalFlow:
    r"""Integrate :math:`\dot\beta = -2S(\beta - \beta^*)` with :func:`lrdecay.theory.flow.gradient_flow` until
    :math:`\hat L(\beta) = \varepsilon` (a terminal event located by the solver's root finder).

    Independent of the eigendecomposition: if the time limit is reached first, integration continues
    from the last point with the limit doubled.
    """
    from lrdecay.theory.flow import gradient_flow

    S = np.asarray(S, float)
    beta_star = np.asarray(beta_star, float)
    eps = _positive("eps", eps)

    def grad(b):
        return 2.0 * S @ (b - beta_star)

    def loss(b):
        r = b - beta_star
        return float(r @ S @ r)

    t0, w = 0.0, np.asarray(beta0, float).copy()
    ts, ws = [np.array([0.0])], [w[None, :]]
    t_max = float(t_max0)
    for restart in range(max_restarts + 1):
        res = gradient_flow(grad, w, loss=loss, eps=eps, t_max=t_max, rtol=rtol, atol=atol)
        ts.append(t0 + res.t[1:])
        ws.append(res.w[1:])
        if res.status != "time_limit":
            t_fin = t0 + res.t_final
            ts.append(np.array([t_fin]))
            ws.append(res.w_final[None, :])
            return NumericalFlow(t_fin, np.asarray(res.w_final, float), np.concatenate(ts),
                                 np.concatenate(ws), res.status, restart)
        t0 += res.t_final
        w = np.asarray(res.w_final, float)
        t_max *= 2.0
    return NumericalFlow(t0, w, np.concatenate(ts), np.concatenate(ws), "time_limit", max_restarts)


def gradient_descent_numerical(S, beta_star, beta0, eta, K, eps) -> tuple[int, np.ndarray]:
    r"""Iterate :math:`\beta \leftarrow \beta - 2\eta S(\beta - \beta^*)` up to ``K`` times, stopping early once
    :math:`\hat L(\beta) \le \varepsilon`. Returns (steps taken, path of shape ``(steps + 1, d)``)."""
    S = np.asarray(S, float)
    beta_star = np.asarray(beta_star, float)
    b = np.asarray(beta0, float).copy()
    path = [b.copy()]
    for k in range(K):
        if train_loss(b, S, beta_star) <= eps:
            break
        b = b - eta * 2.0 * S @ (b - beta_star)
        path.append(b.copy())
    return len(path) - 1, np.asarray(path)
