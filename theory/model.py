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

import numpy as np


def _norm(w: np.ndarray) -> np.ndarray:
    return np.linalg.norm(w, axis=-1, keepdims=True)


def _rpow(r: np.ndarray, p: float) -> np.ndarray:
    """``r**p`` with the convention ``0**p = 0`` for p > 0 and ``0**0 = 1``; r > 0 otherwise."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.power(r, p)
    if p > 0:
        out = np.where(r == 0, 0.0, out)
    return out


def alpha(w, gamma: float) -> np.ndarray:
    """Effective predictor ``alpha(w) = ||w||^gamma w``."""
    w = np.asarray(w, dtype=float)
    return _rpow(_norm(w), gamma) * w


def alpha_inverse(a, gamma: float) -> np.ndarray:
    """Inverse map ``w = ||alpha||^(-gamma/(gamma+1)) alpha`` (0 maps to 0)."""
    a = np.asarray(a, dtype=float)
    s = _norm(a)
    scale = np.where(s == 0, 0.0, _rpow(np.where(s == 0, 1.0, s), -gamma / (gamma + 1.0)))
    return scale * a


def dalpha(w, gamma: float) -> np.ndarray:
    """Jacobian matrix ``D alpha(w) = r^gamma (I + gamma w_hat w_hat^T)``, shape ``(..., d, d)``."""
    w = np.asarray(w, dtype=float)
    r = _norm(w)
    what = w / r
    d = w.shape[-1]
    return _rpow(r, gamma)[..., None] * (np.eye(d) + gamma * what[..., :, None] * what[..., None, :])


def dalpha_apply(w, v, gamma: float, r=None) -> np.ndarray:
    """``D alpha(w) v = r^gamma (v + gamma w_hat (w_hat . v))`` without forming the matrix.

    ``D alpha`` is symmetric, so this is also the vector-Jacobian product ``v^T D alpha(w)``.
    """
    w = np.asarray(w, dtype=float)
    if r is None:
        r = _norm(w)
    if gamma == 0:
        return np.asarray(v, dtype=float).copy()
    rg = _rpow(r, gamma)
    # w_hat (w_hat . v) = w (w . v) / r^2
    wv = np.sum(w * v, axis=-1, keepdims=True)
    return rg * v + gamma * _rpow(r, gamma - 2.0) * wv * w


def predict(w, X, gamma: float) -> np.ndarray:
    """Predictions ``f(w; x_i) = x_i^T alpha(w)``, shape ``(..., n)``."""
    return alpha(w, gamma) @ np.asarray(X).T


def residual(w, X, y, gamma: float) -> np.ndarray:
    return predict(w, X, gamma) - y


def train_loss(w, X, y, gamma: float) -> np.ndarray:
    """``L_n(w) = (1/2n) ||X alpha(w) - y||^2``."""
    res = residual(w, X, y, gamma)
    return 0.5 * np.mean(res**2, axis=-1)


def train_grad(w, X, y, gamma: float) -> np.ndarray:
    """``grad L_n(w) = D alpha(w) X^T (X alpha(w) - y) / n``."""
    X = np.asarray(X)
    res = residual(w, X, y, gamma)
    return dalpha_apply(w, res @ X / X.shape[0], gamma)


def test_loss(w, alpha_star, gamma: float, sigma: float = 0.0, offset: float = 0.0) -> np.ndarray:
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


def manifold_hessian_trace(r, X, y, gamma: float) -> np.ndarray:
    """``h(r) = r^(2 gamma) ||X||_F^2 / n + (gamma^2 + 2 gamma) ||y||^2 / (n r^2)`` (trace on M)."""
    X = np.asarray(X, dtype=float)
    n = X.shape[0]
    r = np.asarray(r, dtype=float)
    return _rpow(r, 2 * gamma) * np.sum(X**2) / n + (gamma**2 + 2 * gamma) * np.sum(np.asarray(y) ** 2) / (n * r**2)


def manifold_hessian_trace_deriv(r, X, y, gamma: float) -> np.ndarray:
    """``h'(r) = 2 gamma r^(2 gamma - 1) ||X||_F^2 / n - 2 (gamma^2 + 2 gamma) ||y||^2 / (n r^3)``."""
    X = np.asarray(X, dtype=float)
    n = X.shape[0]
    r = np.asarray(r, dtype=float)
    return (2 * gamma * _rpow(r, 2 * gamma - 1) * np.sum(X**2) / n
            - 2 * (gamma**2 + 2 * gamma) * np.sum(np.asarray(y) ** 2) / (n * r**3))


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


def retract(w, X, y, gamma: float) -> np.ndarray:
    """Retraction onto M: project ``alpha(w)`` onto the affine set ``{X alpha = y}`` and map back,
    ``w' = alpha^{-1}(alpha + X^+ (y - X alpha))``. Exact (one step) and the identity on M."""
    X = np.asarray(X, dtype=float)
    a = alpha(w, gamma)
    res = np.asarray(y) - a @ X.T
    corr = np.linalg.lstsq(X, np.atleast_2d(res).T, rcond=None)[0].T
    return alpha_inverse(a + corr.reshape(a.shape), gamma)


def flatness_condition(X, y, gamma: float) -> tuple[bool, float, float]:
    """The condition ``y^T (X X^T)^{-1} y >= (gamma + 2) ||y||^2 / ||X||_F^2`` under which ``h`` is
    increasing along M, so its minimizer on M is ``w_mn``. Returns ``(holds, lhs, rhs)``."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    lhs = float(y @ np.linalg.solve(X @ X.T, y))
    rhs = float((gamma + 2) * (y @ y) / np.sum(X**2))
    return lhs >= rhs, lhs, rhs


class NonlinearModel:
    """The model bound to one :class:`~theory.problem.Problem`, in the form the engine uses.

    Engine interface: ``dim``, ``noise_dim``, ``increment(W, dt, noise_coef, xi) -> (dW, res)`` (an
    Euler–Maruyama increment and the residuals at ``W``, which give the train loss for free),
    ``minibatch_increment(W, eta, idx, xi, sigma) -> dW``, ``train_loss(W)`` and ``observables(W)``.
    """

    def __init__(self, problem):
        self.problem = problem
        self.X = problem.X
        self.y = problem.y
        self.gamma = problem.gamma
        self.n, self.dim = problem.X.shape
        self.noise_dim = self.n
        self.w_mn = problem.w_mn

    # label-noise SDE:  dW = -grad L_n dt + noise_coef * J^T xi / sqrt(n)
    def increment(self, W, dt, noise_coef, xi):
        r"""Euler–Maruyama increment of ``dw = -grad L_n(w) dt + c (J(w)^T / sqrt(n)) xi``.

        With ``c = sqrt(eta * a * dt)`` this is the label-noise SDE; with ``dt = eta``,
        ``a = sigma^2 / n`` it is exactly one step of full-batch label-noise SGD,
        ``w <- w - (eta/n) J^T (res - sigma xi)``. One fused vector-Jacobian product:
        ``D alpha(w) X^T (-res dt / n + c xi / sqrt(n))``. ``dt`` and ``c`` are scalars or per-path
        columns ``(P, 1)``. Returns ``(dW, res)``.
        """
        # row norms without a (P, d) temporary; scale the (P, n) product rather than W
        r = np.sqrt(np.einsum("...i,...i->...", W, W))[..., None]
        rg = _rpow(r, self.gamma)
        res = rg * (W @ self.X.T) - self.y
        V = res * (-np.asarray(dt) / self.n)
        if xi is not None:
            V = V + np.asarray(noise_coef) * xi / np.sqrt(self.n)
        U = V @ self.X                       # a fresh (P, d) array: apply D alpha(w) in place
        if self.gamma == 0:
            return U, res
        wu = np.einsum("...i,...i->...", W, U)[..., None]
        U *= rg
        U += (self.gamma * _rpow(r, self.gamma - 2.0) * wu) * W
        return U, res

    def minibatch_increment(self, W, eta, idx, xi, sigma):
        """One step of minibatch label-noise SGD: ``-(eta/b) sum_{i in B} grad f_i (f_i - y_i - sigma xi_i)``.

        ``idx`` (P, b) holds each path's batch, ``xi`` (P, b) its label noise."""
        P, b = idx.shape
        r = _norm(W)
        Xb = self.X[idx]                                   # (P, b, d)
        pred = _rpow(r, self.gamma) * np.einsum("pbd,pd->pb", Xb, W)
        v = (pred - self.y[idx] - sigma * xi) * (-np.asarray(eta).reshape(-1, 1) / b)
        return dalpha_apply(W, np.einsum("pb,pbd->pd", v, Xb), self.gamma, r=r)

    def train_loss(self, W):
        return train_loss(W, self.X, self.y, self.gamma)

    def observables(self, W) -> dict:
        """Per-path train loss, test loss, ``||w||`` and ``||w - w_mn||``."""
        p = self.problem
        return {
            "train_loss": train_loss(W, self.X, self.y, self.gamma),
            "test_loss": test_loss(W, p.alpha_star, self.gamma, 0.0, p.test_offset),
            "norm": np.linalg.norm(W, axis=-1),
            "dist_mn": np.linalg.norm(W - self.w_mn, axis=-1),
        }
