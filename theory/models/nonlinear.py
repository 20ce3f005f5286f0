r"""The nonlinear overparameterized model ``f(w; x) = ||w||^gamma w^T x`` and its geometry.

Notation (Ren, Ma, Ying 2024): ``w in R^d``, ``r = ||w||``, ``w_hat = w / r``,

* effective predictor  ``alpha(w) = r^gamma w`` (a bijection of R^d, ``||alpha|| = r^(gamma+1)``),
  inverse ``w = ||alpha||^(-gamma/(gamma+1)) alpha``;
* Jacobian  ``D alpha(w) = r^gamma (I + gamma w_hat w_hat^T)`` (symmetric);
* train loss  ``L_n(w) = (1/2n) ||X alpha(w) - y||^2``, gradient
  ``grad L_n = D alpha(w) X^T (X alpha(w) - y) / n``;
* test loss  ``L(w) = 1/2 ||alpha(w) - alpha*||^2 (+ sigma^2/2 with label noise)``;
* model Jacobian  ``J(w) = X D alpha(w)`` (n x d), rows ``grad_w f(w; x_i)``;
* minima manifold  ``M = {w : X alpha(w) = y}``, normal space ``span{D alpha(w) x_i} = range J^T``,
  tangent space its orthogonal complement;
* Hessian trace on M (depends on r alone):
  ``h(r) = r^(2 gamma) ||X||_F^2 / n + (gamma^2 + 2 gamma) ||y||^2 / (n r^2)``.

Every function takes ``w`` of shape ``(d,)`` or a batch ``(P, d)`` (paths along the first axis) and
returns values with the matching leading shape.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _norm(w: np.ndarray) -> np.ndarray:
    return np.linalg.norm(w, axis=-1, keepdims=True)


def _col(gamma):
    """``gamma`` as a scalar, or a per-path array ``(P,)`` as a column ``(P, 1)`` that broadcasts
    against a batch of points ``(P, d)``."""
    g = np.asarray(gamma, dtype=float)
    return float(g) if g.ndim == 0 else g.reshape(-1, 1)


def _rpow(r: np.ndarray, p) -> np.ndarray:
    """``r**p`` with the convention ``0**p = 0`` for p > 0 and ``0**0 = 1``; r > 0 otherwise.
    ``p`` is a scalar or an array broadcasting against ``r`` (per-path exponents)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.power(r, p)
    if np.ndim(p) == 0:
        if p > 0:
            out = np.where(r == 0, 0.0, out)
    elif np.any(np.asarray(p) > 0):
        out = np.where((r == 0) & (np.asarray(p) > 0), 0.0, out)
    return out


def _radial(r: np.ndarray, gamma) -> np.ndarray:
    """``gamma r^(gamma - 2)``, the coefficient of ``w (w . v)`` in ``D alpha(w) v``; 0 at ``r = 0``
    (there ``D alpha(0) = 0`` for gamma > 0: ``||alpha(w)|| = ||w||^(gamma + 1) = o(||w||)``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = gamma * np.power(r, np.asarray(gamma) - 2.0)
    return np.where(r == 0, 0.0, out)


def _times_X(a, X) -> np.ndarray:
    """``X a`` for every point: ``(..., d) -> (..., n)``; ``X`` is ``(n, d)`` or per path ``(P, n, d)``."""
    if X.ndim == 2:
        return a @ X.T
    return np.matmul(X, a[..., None])[..., 0]


def _times_XT(v, X) -> np.ndarray:
    """``X^T v`` for every point: ``(..., n) -> (..., d)``; ``X`` shared ``(n, d)`` or per path ``(P, n, d)``."""
    if X.ndim == 2:
        return v @ X
    return np.matmul(v[..., None, :], X)[..., 0, :]


def alpha(w, gamma) -> np.ndarray:
    """Effective predictor ``alpha(w) = ||w||^gamma w`` (gamma scalar or per path)."""
    w = np.asarray(w, dtype=float)
    return _rpow(_norm(w), _col(gamma)) * w


def alpha_inverse(a, gamma) -> np.ndarray:
    """Inverse map ``w = ||alpha||^(-gamma/(gamma+1)) alpha`` (0 maps to 0; gamma scalar or per path)."""
    a = np.asarray(a, dtype=float)
    g = _col(gamma)
    s = _norm(a)
    scale = np.where(s == 0, 0.0, _rpow(np.where(s == 0, 1.0, s), -g / (g + 1.0)))
    return scale * a


def dalpha(w, gamma: float) -> np.ndarray:
    """Jacobian matrix ``D alpha(w) = r^gamma (I + gamma w_hat w_hat^T)``, shape ``(..., d, d)``."""
    w = np.asarray(w, dtype=float)
    r = _norm(w)
    with np.errstate(divide="ignore", invalid="ignore"):
        what = np.where(r == 0, 0.0, w / r)
    d = w.shape[-1]
    return _rpow(r, gamma)[..., None] * (np.eye(d) + gamma * what[..., :, None] * what[..., None, :])


def dalpha_apply(w, v, gamma, r=None) -> np.ndarray:
    """``D alpha(w) v = r^gamma v + gamma r^(gamma-2) (w . v) w`` without forming the matrix.

    ``D alpha`` is symmetric, so this is also the vector-Jacobian product ``v^T D alpha(w)``. At
    ``w = 0`` it is ``v`` for gamma = 0 and ``0`` for gamma > 0. ``gamma`` scalar or per path.
    """
    w = np.asarray(w, dtype=float)
    g = _col(gamma)
    if r is None:
        r = _norm(w)
    if np.ndim(g) == 0 and g == 0:
        return np.asarray(v, dtype=float).copy()
    wv = np.sum(w * v, axis=-1, keepdims=True)
    return _rpow(r, g) * v + _radial(r, g) * wv * w


def predict(w, X, gamma) -> np.ndarray:
    """Predictions ``f(w; x_i) = x_i^T alpha(w)``, shape ``(..., n)``; ``X`` shared or per path."""
    return _times_X(alpha(w, gamma), np.asarray(X, dtype=float))


def residual(w, X, y, gamma) -> np.ndarray:
    return predict(w, X, gamma) - y


def train_loss(w, X, y, gamma) -> np.ndarray:
    """``L_n(w) = (1/2n) ||X alpha(w) - y||^2``."""
    res = residual(w, X, y, gamma)
    return 0.5 * np.mean(res**2, axis=-1)


def train_grad(w, X, y, gamma) -> np.ndarray:
    """``grad L_n(w) = D alpha(w) X^T (X alpha(w) - y) / n`` (0 at ``w = 0`` for gamma > 0)."""
    X = np.asarray(X, dtype=float)
    res = residual(w, X, y, gamma)
    return dalpha_apply(w, _times_XT(res, X) / X.shape[-2], gamma)


def test_loss(w, alpha_star, gamma, sigma: float = 0.0, offset=0.0) -> np.ndarray:
    """``L(w) = 1/2 ||alpha(w) - alpha*||^2 + sigma^2 / 2`` (+ a reduction's constant ``offset``)."""
    diff = alpha(w, gamma) - alpha_star
    return 0.5 * np.sum(diff**2, axis=-1) + 0.5 * sigma**2 + offset


def jacobian(w, X, gamma: float) -> np.ndarray:
    """Model Jacobian ``J(w) = X D alpha(w)``, shape ``(..., n, d)``; row i is ``grad_w f(w; x_i)``."""
    return np.asarray(X) @ dalpha(w, gamma)


def train_hessian(w, X, y, gamma: float) -> np.ndarray:
    r"""Full Hessian of ``L_n`` at ``w``, shape ``(..., d, d)``.

    ``n * H = J^T J + sum_i res_i * Hess f_i`` with, for ``u = X^T res`` and ``s = w . u``,
    ``sum_i res_i Hess f_i = gamma r^(gamma-2) (u w^T + w u^T + s I) + gamma (gamma-2) r^(gamma-4) s w w^T``.
    """
    w = np.asarray(w, dtype=float)
    X = np.asarray(X, dtype=float)
    n, d = X.shape
    J = jacobian(w, X, gamma)
    gn = np.swapaxes(J, -1, -2) @ J
    res = residual(w, X, y, gamma)
    u = res @ X
    r = _norm(w)[..., None]
    s = np.sum(w * u, axis=-1)[..., None, None]
    wc, uc = w[..., :, None], u[..., :, None]
    curv = (gamma * _rpow(r, gamma - 2) * (uc * np.swapaxes(wc, -1, -2) + wc * np.swapaxes(uc, -1, -2)
                                            + s * np.eye(d))
            + gamma * (gamma - 2) * _rpow(r, gamma - 4) * s * wc * np.swapaxes(wc, -1, -2))
    return (gn + curv) / n


def hessian_trace(w, X, y, gamma: float) -> np.ndarray:
    r"""``tr Hess L_n(w) = (1/n) [||J||_F^2 + gamma (d + gamma) r^(gamma-2) (w . X^T res)]`` with
    ``||J||_F^2 = r^(2 gamma) (||X||_F^2 + (gamma^2 + 2 gamma) ||X w_hat||^2)``."""
    w = np.asarray(w, dtype=float)
    X = np.asarray(X, dtype=float)
    n, d = X.shape
    r = np.linalg.norm(w, axis=-1)
    Xw = w @ X.T
    jf2 = _rpow(r, 2 * gamma) * np.sum(X**2) + (gamma**2 + 2 * gamma) * _rpow(r, 2 * gamma - 2) * np.sum(Xw**2, axis=-1)
    res = _rpow(r, gamma)[..., None] * Xw - y
    s = np.sum(Xw * res, axis=-1)
    return (jf2 + gamma * (d + gamma) * _rpow(r, gamma - 2) * s) / n


def hessian_trace_grad(w, X, y, gamma: float) -> np.ndarray:
    r"""Gradient of ``T(w) = tr Hess L_n(w)``. With ``u = X w``, ``q = ||u||^2``, ``F = ||X||_F^2``,
    ``s = u . (r^gamma u - y)``, ``n T = r^(2g) F + (g^2 + 2g) r^(2g-2) q + g (d + g) r^(g-2) s``:

    ``n grad T = 2g r^(2g-2) F w + (g^2+2g) [(2g-2) r^(2g-4) q w + 2 r^(2g-2) X^T u]
    + g (d+g) [(g-2) r^(g-4) s w + r^(g-2) (g r^(g-2) q w + 2 r^g X^T u - X^T y)]``.
    """
    w = np.asarray(w, dtype=float)
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    n, d = X.shape
    g = gamma
    r = _norm(w)
    u = w @ X.T
    q = np.sum(u**2, axis=-1, keepdims=True)
    s = np.sum(u * (_rpow(r, g) * u - y), axis=-1, keepdims=True)
    Xtu, Xty = u @ X, y @ X
    F = np.sum(X**2)
    out = 2 * g * _rpow(r, 2 * g - 2) * F * w
    out = out + (g**2 + 2 * g) * ((2 * g - 2) * _rpow(r, 2 * g - 4) * q * w + 2 * _rpow(r, 2 * g - 2) * Xtu)
    out = out + g * (d + g) * ((g - 2) * _rpow(r, g - 4) * s * w
                               + _rpow(r, g - 2) * (g * _rpow(r, g - 2) * q * w + 2 * _rpow(r, g) * Xtu - Xty))
    return out / n


def _fro2_y2(X, y):
    X = np.asarray(X, dtype=float)
    return X.shape[-2], np.sum(X**2, axis=(-2, -1)), np.sum(np.asarray(y, dtype=float) ** 2, axis=-1)


def manifold_hessian_trace(r, X, y, gamma) -> np.ndarray:
    """``h(r) = r^(2 gamma) ||X||_F^2 / n + (gamma^2 + 2 gamma) ||y||^2 / (n r^2)`` (trace on M).
    ``X`` shared ``(n, d)`` or per path ``(P, n, d)``, gamma scalar or per path ``(P,)``."""
    n, fro2, y2 = _fro2_y2(X, y)
    r = np.asarray(r, dtype=float)
    g = np.asarray(gamma, dtype=float)
    return _rpow(r, 2 * g) * fro2 / n + (g**2 + 2 * g) * y2 / (n * r**2)


def manifold_hessian_trace_deriv(r, X, y, gamma) -> np.ndarray:
    """``h'(r) = 2 gamma r^(2 gamma - 1) ||X||_F^2 / n - 2 (gamma^2 + 2 gamma) ||y||^2 / (n r^3)``."""
    n, fro2, y2 = _fro2_y2(X, y)
    r = np.asarray(r, dtype=float)
    g = np.asarray(gamma, dtype=float)
    return 2 * g * _rpow(r, 2 * g - 1) * fro2 / n - 2 * (g**2 + 2 * g) * y2 / (n * r**3)


def normal_basis(w, X, gamma: float) -> np.ndarray:
    """Orthonormal basis of the normal space ``range J(w)^T``, shape ``(..., d, n)`` (n <= d)."""
    J = jacobian(w, X, gamma)
    q, _ = np.linalg.qr(np.swapaxes(J, -1, -2))
    return q


def project_normal(w, v, X, gamma: float) -> np.ndarray:
    """``P_N v``: the component of ``v`` in the normal space of M at ``w``."""
    q = normal_basis(w, X, gamma)
    coef = np.einsum("...dn,...d->...n", q, v)
    return np.einsum("...dn,...n->...d", q, coef)


def project_tangent(w, v, X, gamma: float) -> np.ndarray:
    """``P_T v = v - P_N v``."""
    return np.asarray(v, dtype=float) - project_normal(w, v, X, gamma)


def min_norm_alpha(X, y) -> np.ndarray:
    """``alpha_mn = X^+ y = X^T (X X^T)^{-1} y`` (minimum-norm least squares)."""
    return np.linalg.lstsq(np.asarray(X, dtype=float), np.asarray(y, dtype=float), rcond=None)[0]


def min_norm_solution(X, y, gamma: float) -> np.ndarray:
    """``w_mn = ||alpha_mn||^(-gamma/(gamma+1)) alpha_mn``: the minimum-norm point of M.

    Since ``||w|| = ||alpha||^(1/(gamma+1))`` is increasing in ``||alpha||``, the minimum-norm ``w``
    on M is the preimage of the minimum-norm ``alpha`` on the affine set ``X alpha = y``.
    """
    return alpha_inverse(min_norm_alpha(X, y), gamma)


def retract(w, X, y, gamma, X_pinv=None) -> np.ndarray:
    """Retraction onto M: project ``alpha(w)`` onto the affine set ``{X alpha = y}`` and map back,
    ``w' = alpha^{-1}(alpha + X^+ (y - X alpha))``. Exact (one step) and the identity on M.
    ``X`` shared ``(n, d)`` or per path ``(P, n, d)`` (then ``X_pinv``, its pseudo-inverses
    ``(P, d, n)``, may be passed to avoid recomputing them)."""
    X = np.asarray(X, dtype=float)
    a = alpha(w, gamma)
    res = np.asarray(y) - _times_X(a, X)
    if X.ndim == 2 and X_pinv is None:
        corr = np.linalg.lstsq(X, np.atleast_2d(res).T, rcond=None)[0].T.reshape(a.shape)
    else:
        pinv = np.linalg.pinv(X) if X_pinv is None else X_pinv
        corr = _times_X(res, pinv) if pinv.ndim == 3 else res @ pinv.T
    return alpha_inverse(a + corr, gamma)


def flatness_condition(X, y, gamma: float) -> tuple[bool, float, float]:
    """The condition ``y^T (X X^T)^{-1} y >= (gamma + 2) ||y||^2 / ||X||_F^2`` under which ``h`` is
    increasing along M, so its minimizer on M is ``w_mn``. Returns ``(holds, lhs, rhs)``."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    lhs = float(y @ np.linalg.solve(X @ X.T, y))
    rhs = float((gamma + 2) * (y @ y) / np.sum(X**2))
    return lhs >= rhs, lhs, rhs


@dataclass(frozen=True)
class KernelData:
    """What the compiled and torch backends need of a :class:`NonlinearModel`: data ``X`` (``(n, d)``
    shared or ``(P, n, d)`` per path), ``y``, ``gamma`` (a number or a ``(P, 1)`` column), ``alpha_star``,
    ``w_mn``, ``test_offset``; ``builtin_observables`` when the model records exactly the built-in four."""

    X: np.ndarray
    y: np.ndarray
    gamma: object
    alpha_star: np.ndarray
    w_mn: np.ndarray
    test_offset: object
    stacked: bool
    builtin_observables: bool = True

    def factors(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(r^gamma, gamma r^(gamma-2))`` with this model's conventions at ``r = 0`` (the two scalars of
        ``D alpha(w) v = r^gamma v + gamma r^(gamma-2) (w . v) w``)."""
        return _rpow(r, self.gamma), _radial(r, self.gamma)

    def per_path(self, P: int) -> tuple[np.ndarray, ...]:
        """``X, X^T, y, gamma, alpha_star, w_mn, test_offset`` as C-contiguous float arrays whose leading
        axis is the path (``P``) or 1 (shared); ``gamma`` and ``test_offset`` flat. The compiled kernels
        index them by path without bounds checks, so any other leading length is refused here."""
        def lead(v, ndim):
            v = np.asarray(v, dtype=float)
            return np.ascontiguousarray(v if v.ndim == ndim else v.reshape((1,) + v.shape))
        X = lead(self.X, 3)
        XT = np.ascontiguousarray(np.swapaxes(X, 1, 2))
        gam = np.ascontiguousarray(np.asarray(self.gamma, dtype=float).reshape(-1))
        off = np.ascontiguousarray(np.asarray(self.test_offset, dtype=float).reshape(-1))
        out = X, XT, lead(self.y, 2), gam, lead(self.alpha_star, 2), lead(self.w_mn, 2), off
        for name, v in zip(("X", "X^T", "y", "gamma", "alpha_star", "w_mn", "test_offset"), out):
            if v.shape[0] not in (1, P):
                raise ValueError(f"W0 must have one row per path of the model's data: {name} holds {v.shape[0]} "
                                 f"paths, W0 has {P} rows")
        return out


class NonlinearModel:
    """The model in the form the engine uses: data, labels, gamma and references, shared by all paths
    (one :class:`~lrdecay.theory.problem.Problem`) or per path (:meth:`stack`: path ``p`` has its own ``X_p``,
    ``y_p``, ``gamma_p``, ...).

    It implements the whole engine contract (:mod:`lrdecay.theory.engine.protocol`), optional parts
    included: ``increment`` returns the train loss at ``W`` too (the residuals give it for free),
    ``select`` slices per-path data, and :meth:`kernel_data` hands the arrays to the compiled and torch
    backends.
    """

    #: attributes with one entry per path when the model is stacked (sliced by :meth:`select`)
    PER_PATH = ("X", "y", "gamma", "alpha_star", "w_mn", "test_offset")

    def __init__(self, X, y, gamma, alpha_star, w_mn, test_offset=0.0, problem=None):
        self.X = np.asarray(X, dtype=float)
        if self.X.ndim not in (2, 3):
            raise ValueError(f"X must have shape (n, d) or, stacked, (P, n, d), got shape {self.X.shape}")
        for name, v in (("X", self.X), ("y", y), ("gamma", gamma), ("alpha_star", alpha_star), ("w_mn", w_mn),
                        ("test_offset", test_offset)):
            if not np.all(np.isfinite(np.asarray(v, dtype=float))):
                raise ValueError(f"{name} must contain finite values only (a NaN or inf in the data would be "
                                 "reported as a diverged path)")
        self.stacked = self.X.ndim == 3
        self.y = np.asarray(y, dtype=float)
        self.gamma = _col(gamma)
        self.alpha_star = np.asarray(alpha_star, dtype=float)
        self.w_mn = np.asarray(w_mn, dtype=float)
        self.test_offset = np.asarray(test_offset, dtype=float) if np.ndim(test_offset) else float(test_offset)
        self.n, self.dim = self.X.shape[-2:]
        self.noise_dim = self.n
        self.problem = problem
        self._pinv = None

    @classmethod
    def from_problem(cls, problem) -> "NonlinearModel":
        return cls(problem.X, problem.y, problem.gamma, problem.alpha_star, problem.w_mn,
                   problem.test_offset, problem=problem)

    @classmethod
    def stack(cls, problems, **kw) -> "NonlinearModel":
        """One path per problem (all with the same ``n`` and ``d``; reduce them first to share ``d``)."""
        ns = {(p.n, p.d) for p in problems}
        if len(problems) == 0 or len(ns) != 1:
            raise ValueError(f"problems must be non-empty and share (n, d), got {sorted(ns)}")
        return cls(np.stack([p.X for p in problems]), np.stack([p.y for p in problems]),
                   np.array([p.gamma for p in problems]), np.stack([p.alpha_star for p in problems]),
                   np.stack([p.w_mn for p in problems]), np.array([p.test_offset for p in problems]), **kw)

    @property
    def n_paths(self) -> int | None:
        """The number of paths a stacked model holds data for (``W0`` needs one row each); ``None`` when
        the data are shared by any number of paths."""
        return self.X.shape[0] if self.stacked else None

    def select(self, index) -> "NonlinearModel":
        """The model restricted to paths ``index`` (a slice or index array); itself when not stacked."""
        if not self.stacked:
            return self
        import copy

        sub = copy.copy(self)
        for name in self.PER_PATH:
            v = getattr(self, name)
            if np.ndim(v):
                setattr(sub, name, v[index])
        sub._pinv = None if self._pinv is None else self._pinv[index]
        return sub

    @property
    def X_pinv(self) -> np.ndarray:
        """Pseudo-inverses of the per-path data (computed once; stacked models)."""
        if self._pinv is None:
            self._pinv = np.linalg.pinv(self.X)
        return self._pinv

    # label-noise SDE:  dW = -grad L_n dt + noise_coef * J^T xi / sqrt(n)
    def increment(self, W, dt, noise_coef, xi):
        r"""Euler–Maruyama increment of ``dw = -grad L_n(w) dt + c (J(w)^T / sqrt(n)) xi``.

        With ``c = sqrt(eta * a * dt)`` this is the label-noise SDE; with ``dt = eta``,
        ``c = eta sigma / sqrt(n)`` it is exactly one step of full-batch label-noise SGD,
        ``w <- w - (eta/n) J^T (res - sigma xi)``. One fused vector-Jacobian product:
        ``D alpha(w) X^T (-res dt / n + c xi / sqrt(n))``. ``dt`` and ``c`` are scalars or per-path
        columns ``(P, 1)``. Returns ``(dW, L_n(W))``.
        """
        # row norms without a (P, d) temporary; scale the (P, n) product rather than W
        r = np.sqrt(np.einsum("...i,...i->...", W, W))[..., None]
        g = self.gamma
        rg = _rpow(r, g)
        res = rg * _times_X(W, self.X) - self.y
        V = res * (-np.asarray(dt) / self.n)
        if xi is not None:
            V = V + np.asarray(noise_coef) * xi / np.sqrt(self.n)
        U = _times_XT(V, self.X)             # a fresh (P, d) array: apply D alpha(w) in place
        loss = 0.5 * np.mean(res**2, axis=-1)
        if np.ndim(g) == 0 and g == 0:
            return U, loss
        wu = np.einsum("...i,...i->...", W, U)[..., None]
        U *= rg
        U += (_radial(r, g) * wu) * W
        return U, loss

    def minibatch_increment(self, W, eta, idx, xi, sigma):
        """One step of minibatch label-noise SGD: ``-(eta/b) sum_{i in B} grad f_i (f_i - y_i - sigma xi_i)``.

        ``idx`` (P, b) holds each path's batch, ``xi`` (P, b) its label noise."""
        P, b = idx.shape
        r = _norm(W)
        rows = np.arange(P)[:, None]
        Xb = self.X[rows, idx] if self.stacked else self.X[idx]       # (P, b, d)
        yb = self.y[rows, idx] if self.stacked else self.y[idx]
        pred = _rpow(r, self.gamma) * np.einsum("pbd,pd->pb", Xb, W)
        v = (pred - yb - sigma * xi) * (-np.asarray(eta).reshape(-1, 1) / b)
        return dalpha_apply(W, np.einsum("pb,pbd->pd", v, Xb), self.gamma, r=r)

    def kernel_data(self) -> "KernelData":
        """The arrays and parameters of these steps for the compiled and torch backends, which do the
        arithmetic of :meth:`increment` and :meth:`minibatch_increment` themselves; a subclass that
        overrides either gets a ``NotImplementedError`` saying so (only the numpy loop runs its steps)."""
        for name, mine, builtin in (("increment", type(self).increment, NonlinearModel.increment),
                                    ("minibatch_increment", type(self).minibatch_increment,
                                     NonlinearModel.minibatch_increment)):
            if mine is not builtin:
                raise NotImplementedError(f"{type(self).__name__} overrides NonlinearModel.{name}")
        return KernelData(self.X, self.y, self.gamma, self.alpha_star, self.w_mn, self.test_offset, self.stacked,
                          builtin_observables=type(self).observables is NonlinearModel.observables)

    def train_loss(self, W):
        return train_loss(W, self.X, self.y, self.gamma)

    def retract(self, W):
        """:func:`retract` onto each path's M."""
        return retract(W, self.X, self.y, self.gamma, X_pinv=self.X_pinv if self.stacked else None)

    def observables(self, W) -> dict:
        """Per-path train loss, test loss, ``||w||`` and ``||w - w_mn||``."""
        return {
            "train_loss": train_loss(W, self.X, self.y, self.gamma),
            "test_loss": test_loss(W, self.alpha_star, self.gamma, 0.0, self.test_offset),
            "norm": np.linalg.norm(W, axis=-1),
            "dist_mn": np.linalg.norm(W - self.w_mn, axis=-1),
        }
