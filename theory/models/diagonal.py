r"""The diagonal linear network ``beta(theta) = u * u - v * v``, ``theta = (u, v) in R^{2d}``.

(The parameterisation ``beta = u * v`` is the same model up to an isometry and a factor:
``p = (u + v)/sqrt 2``, ``q = (u - v)/sqrt 2`` give ``u * v = (p * p - q * q) / 2``.)

Formulas (the notation of docs/science.md, §1; ``c_j = ||X_{:,j}||^2``, ``g = X^T r``, ``r = X beta - y``):

* ``D beta = [2 diag(u), -2 diag(v)]`` (d x 2d); ``D beta^T g = (2 u * g, -2 v * g)``;
* ``grad L_n = (2 u * g, -2 v * g) / n``; Jacobian rows ``J_i = (2 u * x_i, -2 v * x_i)``;
* ``sum_j g_j Hess beta_j = diag(2 g, -2 g)``, whose trace is 0, so everywhere (not only on M)
  ``tr Hess L_n = ||J||_F^2 / n = (4/n) sum_j c_j (u_j^2 + v_j^2)`` and
  ``grad tr Hess L_n = (8/n) (c * u, c * v)``;
* minima ``M = {X (u*u - v*v) = y}``, dimension ``2d - n``.

**Trace-minimising point.** Given ``beta_j``, ``u_j^2 + v_j^2 >= |beta_j|`` with equality iff one of them
is 0, so the minimum of the Hessian trace on M is the *weighted minimum-l1 interpolator*
``argmin sum_j c_j |beta_j|  s.t.  X beta = y`` (a linear programme, :func:`min_l1_interpolator`); with
columns of equal norm it is the minimum-l1 interpolator. The quasistatic drift of label-noise SGD
(:func:`lrdecay.theory.models.base.drift_ode`) shrinks ``c * (u, v)`` along M towards it: its stationary points
satisfy ``u_j ((X^T lambda)_j - 4 c_j / n) = 0`` and ``v_j ((X^T lambda)_j + 4 c_j / n) = 0``, the l1
optimality conditions.

**Gradient flow, closed form.** ``u' = -(2/n) u * g``, ``v' = (2/n) v * g`` give
``u(t) = u_0 * exp(z/2)``, ``v(t) = v_0 * exp(-z/2)`` with ``z = X^T mu`` for some ``mu in R^n``, so the
landing point on M is ``beta(mu) = u_0^2 * e^z - v_0^2 * e^{-z}`` with ``X beta(mu) = y``: the minimiser of
the strictly convex dual ``Phi(mu) = sum_j (u_0j^2 e^{z_j} + v_0j^2 e^{-z_j}) - y^T mu``
(:func:`flow_landing`, Newton's method). From ``u_0 = v_0 = alpha 1`` it is
``argmin sum_j alpha^2 q(beta_j / alpha^2)``, ``q(s) = 2 - sqrt(4 + s^2) + s arcsinh(s / 2)`` (Woodworth et al.
2020): the minimum-l2 interpolator as ``alpha -> infinity`` and the minimum-l1 one as ``alpha -> 0``
(the small-initialisation limit).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from lrdecay.theory import io
from lrdecay.theory.models.base import LinearReadoutModel
from lrdecay.theory.validation import choice, integer, nonneg, positive


@io.record_type
class DiagonalNetwork(LinearReadoutModel):
    """``f(theta; x) = x^T (u * u - v * v)``; ``theta = (u, v)``, ``D = 2d``."""

    NAME = "diagonal"

    @staticmethod
    def param_dim(d: int, **shape) -> int:
        return 2 * d

    def _uv(self, Theta):
        Theta = np.asarray(Theta, dtype=float)
        return Theta[..., :self.d], Theta[..., self.d:]

    def beta(self, Theta) -> np.ndarray:
        u, v = self._uv(Theta)
        return u * u - v * v

    def vjp(self, Theta, G) -> np.ndarray:
        u, v = self._uv(Theta)
        return np.concatenate(np.broadcast_arrays(2 * u * G, -2 * v * G), axis=-1)

    def jvp(self, Theta, T) -> np.ndarray:
        u, v = self._uv(Theta)
        T = np.asarray(T, dtype=float)
        return 2 * u * T[..., :self.d] - 2 * v * T[..., self.d:]

    def beta_hessian_dot(self, Theta, g) -> np.ndarray:
        g = np.asarray(g, dtype=float)
        diag = np.concatenate([2 * g, -2 * g], axis=-1)
        return diag[..., :, None] * np.eye(self.dim)

    def beta_hessian_trace_dot(self, Theta, g) -> np.ndarray:
        return np.zeros(np.shape(g)[:-1])

    def hessian_trace(self, Theta) -> np.ndarray:
        """``(4/n) sum_j c_j (u_j^2 + v_j^2)`` (exact everywhere)."""
        u, v = self._uv(Theta)
        return 4.0 * np.sum(self.col_norms2 * (u * u + v * v), axis=-1) / self.n

    def hessian_trace_grad(self, Theta) -> np.ndarray:
        """``(8/n) (c * u, c * v)``."""
        u, v = self._uv(Theta)
        c = self.col_norms2
        return 8.0 * np.concatenate([c * u, c * v], axis=-1) / self.n

    # ---- references ----------------------------------------------------------------------------
    def min_l1(self) -> np.ndarray:
        """The minimum-l1 interpolator (``linprog``)."""
        return min_l1_interpolator(self.X, self.y)

    def trace_minimizer(self) -> np.ndarray:
        """``beta`` of the trace-minimising point on M: the interpolator minimising ``sum_j c_j |beta_j|``."""
        return min_l1_interpolator(self.X, self.y, weights=self.col_norms2)

    def min_l2(self) -> np.ndarray:
        """The minimum-l2 interpolator ``X^+ y``."""
        return np.linalg.lstsq(self.X, self.y, rcond=None)[0]

    def theta_of_beta(self, beta, sign_u=None, sign_v=None) -> np.ndarray:
        """The point of M with the smallest ``u_j^2 + v_j^2`` for each ``beta_j``: ``u = sqrt(beta_+)``,
        ``v = sqrt(beta_-)`` (signs from ``sign_u``, ``sign_v``, default +)."""
        b = np.asarray(beta, dtype=float)
        su = 1.0 if sign_u is None else np.sign(sign_u)
        sv = 1.0 if sign_v is None else np.sign(sign_v)
        return np.concatenate([su * np.sqrt(np.maximum(b, 0)), sv * np.sqrt(np.maximum(-b, 0))], axis=-1)

    def flow_landing(self, theta0=None) -> np.ndarray:
        """Where gradient flow from ``theta0`` (default ``self.theta0``) lands on M (closed form)."""
        th = self.theta0 if theta0 is None else np.asarray(theta0, dtype=float)
        u0, v0 = self._uv(th)
        z = flow_dual(self.X, self.y, u0, v0)
        return np.concatenate([u0 * np.exp(z / 2), v0 * np.exp(-z / 2)])

    def extra_observables(self, Theta, B) -> dict:
        """``trace`` (``tr Hess L_n``), ``l1`` (``||beta||_1``) and ``dist_ref`` (``||beta - beta_ref||``,
        ``beta_ref`` the trace-minimiser, cached)."""
        if not hasattr(self, "_beta_ref"):
            self._beta_ref = self.trace_minimizer()
        return {"trace": self.hessian_trace(Theta), "l1": np.sum(np.abs(B), axis=-1),
                "dist_ref": np.linalg.norm(B - self._beta_ref, axis=-1)}

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def generate(cls, d: int = 40, n: int = 20, sparsity: int = 3, init_scale: float = 1.0, sigma: float = 1.0,
                 beta_norm: float = 1.0, normalize_columns: bool = True, target: str = "sparse",
                 seed: int = 0) -> "DiagonalNetwork":
        """``X`` i.i.d. N(0, 1) (columns rescaled to ``||X_{:,j}||^2 = n`` when ``normalize_columns``, so that
        the trace-minimiser is the plain minimum-l1 interpolator); ``beta*`` by ``target``: ``"sparse"``,
        ``sparsity`` non-zero N(0, 1) entries on random coordinates; ``"dense"``, N(0, I_d); ``"rowspace"``,
        the projection ``X^+ X b`` of a dense ``b`` onto the row space of ``X`` (then ``beta*`` is the
        minimum-l2 interpolator of its own labels); scaled to ``||beta*|| = beta_norm``; ``y = X beta*``;
        start ``u_0 = v_0 = init_scale 1`` (so ``beta(theta_0) = 0``)."""
        d = integer("d", d, 2)
        n = integer("n", n, 1, d - 1)
        sparsity = integer("sparsity", sparsity, 1, d)
        choice("target", target, ("sparse", "dense", "rowspace"))
        init_scale = positive("init_scale", init_scale)
        beta_norm = positive("beta_norm", beta_norm)
        seed = integer("seed", seed, 0)
        sx, sb, ss = np.random.SeedSequence(seed).spawn(3)
        X = np.random.default_rng(sx).standard_normal((n, d))
        if normalize_columns:
            X *= np.sqrt(n) / np.linalg.norm(X, axis=0)
        b = np.random.default_rng(sb).standard_normal(d)
        if target == "sparse":
            keep = np.random.default_rng(ss).choice(d, size=sparsity, replace=False)
            mask = np.zeros(d, dtype=bool)
            mask[keep] = True
            b = np.where(mask, b, 0.0)
        elif target == "rowspace":
            b = np.linalg.pinv(X) @ (X @ b)
        b *= beta_norm / np.linalg.norm(b)
        theta0 = np.full(2 * d, init_scale)
        meta = dict(target=target, sparsity=sparsity if target == "sparse" else d, init_scale=init_scale, beta_norm=beta_norm,
                    normalize_columns=bool(normalize_columns), seed=seed)
        return cls(X, X @ b, b, theta0, sigma=nonneg("sigma", sigma), meta=meta)


# --------------------------------------------------------------------------------------------------
# Reference solutions
# --------------------------------------------------------------------------------------------------

def min_l1_interpolator(X, y, weights=None) -> np.ndarray:
    """``argmin sum_j w_j |beta_j|  s.t.  X beta = y`` as the linear programme
    ``min w^T (p + q)``, ``X (p - q) = y``, ``p, q >= 0`` (``scipy.optimize.linprog``, HiGHS)."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    n, d = X.shape
    w = np.ones(d) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (d,) or np.any(w <= 0):
        raise ValueError(f"weights must be {d} positive numbers, got shape {w.shape}")
    res = linprog(np.concatenate([w, w]), A_eq=np.hstack([X, -X]), b_eq=y, bounds=(0, None), method="highs")
    if res.status != 0:
        raise RuntimeError(f"linprog failed: {res.message}")
    return res.x[:d] - res.x[d:]


def flow_dual(X, y, u0, v0, tol: float = 1e-13, max_iter: int = 200, mu0=None, return_mu: bool = False):
    """``z = X^T mu`` with ``mu`` the minimiser of ``Phi(mu) = sum_j (u0_j^2 e^{z_j} + v0_j^2 e^{-z_j}) - y^T mu``
    (damped Newton with backtracking, from ``mu0``, default 0), so that ``beta = u0^2 e^z - v0^2 e^{-z}``
    interpolates. The exponentials are evaluated as ``exp(z + log u0_j^2)`` so that tiny starts do not underflow."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    a2, b2 = np.asarray(u0, dtype=float) ** 2, np.asarray(v0, dtype=float) ** 2
    if np.any(a2 + b2 <= 0):
        raise ValueError("u0 and v0 must not both vanish on a coordinate (it would be frozen at 0)")
    with np.errstate(divide="ignore"):
        la, lb = np.log(a2), np.log(b2)
    mu = np.zeros(X.shape[0]) if mu0 is None else np.array(mu0, dtype=float)

    def parts(m):
        z = X.T @ m
        with np.errstate(over="ignore"):
            p, q = np.exp(z + la), np.exp(-z + lb)
        return z, p, q

    def phi(m):
        _, p, q = parts(m)
        v = float(np.sum(p + q) - y @ m)
        return v if np.isfinite(v) else np.inf

    for _ in range(max_iter):
        z, p, q = parts(mu)
        grad = X @ (p - q) - y
        # relative to the size of the terms whose difference it is (rounding of X (p - q))
        if np.max(np.abs(grad)) <= tol * (1 + np.linalg.norm(y) + np.max(np.abs(X) @ (p + q))):
            break
        step = np.linalg.solve((X * (p + q)) @ X.T, grad)
        t, f0 = 1.0, phi(mu)
        # backtracking while far from the optimum; once the Newton decrement grad . step is below the rounding of
        # Phi, the full (quadratically convergent) step is taken
        if grad @ step > 1e-10 * (1 + abs(f0)):
            while phi(mu - t * step) > f0 - 0.25 * t * grad @ step and t > 1e-12:
                t *= 0.5
        mu = mu - t * step
    else:
        raise RuntimeError("flow_dual: Newton's method did not converge")
    return (X.T @ mu, mu) if return_mu else X.T @ mu


def hypentropy_minimizer(X, y, alpha: float) -> np.ndarray:
    """``argmin sum_j alpha^2 q(beta_j / alpha^2)  s.t.  X beta = y``, ``q(s) = 2 - sqrt(4 + s^2) + s arcsinh(s/2)``:
    the gradient-flow limit from ``u_0 = v_0 = alpha 1`` (:func:`flow_dual` with those ``u0, v0``)."""
    alpha = positive("alpha", alpha)
    d = np.asarray(X).shape[1]
    # continuation from alpha = 1 down (or up) by factors of 10, each solve warm-started from the last
    mu = None
    for a in list(np.geomspace(1.0, alpha, max(2, int(abs(np.log10(alpha))) + 1)))[:-1]:
        _, mu = flow_dual(X, y, np.full(d, a), np.full(d, a), mu0=mu, return_mu=True)
    z = flow_dual(X, y, np.full(d, alpha), np.full(d, alpha), mu0=mu)
    return 2 * alpha**2 * np.sinh(z)
