r"""Label-noise SGD on the nonlinear model, derived: one step's drift and noise matrix, the noise scale ``a`` with
``Cov(noise) = eta^2 a Hess L_n`` on M (full batch and minibatch), ``Hess L_n = J^T J / n`` on M, and the
stationary loss of the linearised recursion near M (a discrete Lyapunov equation; the plateau constant 1/4).
Part of :mod:`lrdecay.theory.symbolic.nonlinear`, which re-exports every name.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from .nonlinear_model import Derivation, _reduce_to_zero, derive, derive_hessian


# ---------------------------------------------------------------------------------------------
# label-noise SGD step and the plateau constant
# ---------------------------------------------------------------------------------------------
ETA, SIGMA, A_NOISE = sp.symbols("eta sigma a", positive=True)


@dataclass(frozen=True, eq=False)
class LabelNoiseStep:
    r"""One full-batch label-noise SGD step ``w+ = w - eta grad_w (1/2n) sum (f_i - y_i - sigma xi_i)^2``,
    split into the deterministic part ``drift`` (d x 1) and ``noise`` = ``B xi`` with ``B`` (d x n)."""

    step: sp.Matrix
    drift: sp.Matrix
    B: sp.Matrix


def _noisy_step(D: Derivation, batch) -> sp.Matrix:
    """``-eta grad_w (1/2b) sum_{i in batch} (f_i - y_i - sigma xi_i)^2`` (b = len(batch))."""
    s = D.sym
    b = len(batch)
    noisy = sp.Add(*[(D.preds[i] - s.y[i] - SIGMA * s.xi[i]) ** 2 for i in batch]) / (2 * b)
    return -ETA * sp.Matrix([sp.diff(noisy, wk) for wk in s.w])


@lru_cache(maxsize=None)
def derive_label_noise_step(d: int, n: int, gamma=None) -> LabelNoiseStep:
    D = derive(d, n, gamma)
    s = D.sym
    step = _noisy_step(D, tuple(range(n)))
    zero_xi = {e: 0 for e in s.xi}
    drift = step.xreplace(zero_xi)
    B = step.jacobian(s.xi)
    if any(sp.expand(e) != 0 for e in step - drift - B * s.xi):
        raise RuntimeError("label-noise step is not affine in xi")
    return LabelNoiseStep(step, drift, B)


@lru_cache(maxsize=None)
def derive_noise_scale(d: int = 3, n: int = 2, batch_size: int | None = None) -> sp.Expr:
    r"""The ``a`` in ``Cov(noise of one step) = eta^2 a Hess L_n`` on M, solved from one entry and
    checked on every entry (via :func:`_reduce_to_zero`). The Hessian is derived with ``y`` free and
    then put on M (``y := X alpha(w)``).

    Full batch (``batch_size`` None or n): the noise is ``B xi``, covariance ``B B^T``. Minibatch of
    size b: the step uses ``(1/2b) sum_{i in batch}``; the batch is uniform over the b-subsets, and on
    M (zero residuals) its only randomness besides the labels is which rows enter, so the covariance
    is the average of ``B_batch B_batch^T`` over the subsets."""
    from itertools import combinations

    D = derive(d, n)
    s = D.sym
    b = n if batch_size is None else int(batch_size)
    if not 1 <= b <= n:
        raise ValueError(f"batch_size must be in [1, n], got {batch_size!r}")
    H = derive_hessian(d, n).xreplace({s.y[i]: D.preds[i] for i in range(n)})
    subsets = list(combinations(range(n), b))
    cov = sp.zeros(d, d)
    for batch in subsets:
        Bm = (derive_label_noise_step(d, n).step if b == n else _noisy_step(D, batch)).jacobian(s.xi)
        cov += Bm * Bm.T
    cov = cov / len(subsets)
    a_sol = sp.solve(sp.Eq(cov[0, 0], ETA**2 * A_NOISE * H[0, 0]), A_NOISE)
    if len(a_sol) != 1:
        raise RuntimeError(f"noise scale: {a_sol}")
    a = sp.simplify(a_sol[0])
    if a.has(*s.w, *s.X, *s.y):
        raise RuntimeError(f"noise scale depends on the point: {a}")
    for j in range(d):
        for k in range(j, d):
            if _reduce_to_zero(cov[j, k] - ETA**2 * a * H[j, k], s.S) != 0:
                raise RuntimeError(f"noise covariance != eta^2 a H at entry {(j, k)}")
    return a


def hessian_on_M_is_gauss_newton(d: int, n: int) -> bool:
    """``Hess L_n = J^T J / n`` on M (the residual curvature drops out): the linearisation's ``H``."""
    D = derive(d, n)
    s = D.sym
    H = derive_hessian(d, n).xreplace({s.y[i]: D.preds[i] for i in range(n)})
    G = D.J.T * D.J / n
    return all(_reduce_to_zero(H[j, k] - G[j, k], s.S) == 0 for j in range(d) for k in range(j, d))


@dataclass(frozen=True, eq=False)
class Lyapunov:
    r"""Stationary covariance of ``delta_{k+1} = (I - eta H) delta_k + noise``, ``Cov(noise) =
    eta^2 a H``, ``H = diag(h_1..h_k)`` (all ``h_j > 0``, ``eta h_j < 2``).

    ``Sigma``: the solution; ``loss`` = ``E L_n = tr(H Sigma)/2`` (exact in the linearisation);
    ``loss_series``: its series in ``eta`` to ``O(eta^3)``; ``constant`` = ``lim loss / (eta a tr H)``
    as ``eta -> 0``; ``sigma_constant`` = ``lim Sigma_jj / (eta a)``; ``term``: the one-eigenvalue loss
    as a function of ``h`` (``loss`` = sum of ``term(h_j)``, checked)."""

    hs: tuple
    Sigma: sp.Matrix
    loss: sp.Expr
    loss_series: sp.Expr
    constant: sp.Expr
    sigma_constant: sp.Expr
    term: sp.Expr
    h: sp.Symbol


@lru_cache(maxsize=None)
def derive_lyapunov(k: int = 2) -> Lyapunov:
    hs = sp.symbols(f"h1:{k + 1}", positive=True)
    H = sp.diag(*hs)
    A = sp.eye(k) - ETA * H
    Sig = sp.Matrix(k, k, lambda i, j: sp.Symbol(f"s{min(i, j)}{max(i, j)}"))
    unknowns = sorted(Sig.free_symbols, key=str)
    eqs = list({e for e in (Sig - A * Sig * A.T - ETA**2 * A_NOISE * H)})
    sol = sp.solve(eqs, unknowns, dict=True)
    if len(sol) != 1:
        raise RuntimeError(f"Lyapunov equation: expected one solution, got {sol}")
    Sigma = Sig.xreplace(sol[0]).applyfunc(sp.factor)
    loss = sp.factor((H * Sigma).trace() / 2)
    series = sp.series(loss, ETA, 0, 3).removeO()
    constant = sp.simplify(sp.limit(loss / (ETA * A_NOISE * H.trace()), ETA, 0))
    sigma_constant = {sp.simplify(sp.limit(Sigma[j, j] / (ETA * A_NOISE), ETA, 0)) for j in range(k)}
    if len(sigma_constant) != 1:
        raise RuntimeError(f"Sigma_jj / (eta a) limits differ: {sigma_constant}")
    h = sp.Symbol("h", positive=True)
    if k == 1:
        term = loss.subs(hs[0], h)
    else:
        term = derive_lyapunov(1).term
        if sp.simplify(loss - sp.Add(*[term.subs(h, hj) for hj in hs])) != 0:
            raise RuntimeError("stationary loss is not additive over eigenvalues")
    return Lyapunov(hs, Sigma, loss, series, constant, sigma_constant.pop(), sp.factor(term), h)


def plateau_constant() -> sp.Expr:
    """The constant ``c`` in ``E L_n ~ c eta a tr H`` (``eta -> 0``), derived (1/4)."""
    return derive_lyapunov(2).constant


@lru_cache(maxsize=None)
def _plateau_term_fn():
    L1 = derive_lyapunov(1)
    return sp.lambdify([L1.h, ETA, A_NOISE], L1.term, "numpy")


@lru_cache(maxsize=None)
def _variance_fn():
    L1 = derive_lyapunov(1)
    return sp.lambdify([L1.hs[0], ETA, A_NOISE], L1.Sigma[0, 0], "numpy")


def stationary_variance(eigs_of_H, eta, a) -> np.ndarray:
    """Derived stationary variance ``Sigma_jj`` along each eigenvector of ``H`` (normal directions)."""
    return _variance_fn()(np.asarray(eigs_of_H, dtype=float), float(eta), float(a))


def plateau_loss_exact(eigs_of_H, eta, a) -> np.ndarray:
    r"""Exact stationary ``E L_n`` of the linearised full-batch label-noise SGD near M.

    ``eigs_of_H``: eigenvalues of ``H = J^T J / n`` along the last axis (zeros, the tangent directions,
    contribute nothing); ``eta``: learning rate; ``a``: noise scale (``sigma^2 / n`` for full batch).
    Sum over eigenvalues of the derived one-eigenvalue term (see :func:`derive_lyapunov`). Requires
    ``eta h_j < 2`` for every eigenvalue (otherwise the recursion is unstable: ``ValueError``).
    """
    h = np.asarray(eigs_of_H, dtype=float)
    eta_ = np.asarray(eta, dtype=float)
    a_ = np.asarray(a, dtype=float)
    if np.any(eta_[..., None] * h >= 2):
        raise ValueError("eta * h >= 2 for some eigenvalue: the linearised recursion is unstable")
    h = np.where(np.abs(h) < 1e-300, 0.0, h)
    return np.sum(_plateau_term_fn()(h, eta_[..., None], a_[..., None]), axis=-1)
