r"""The model layer: overparameterized models with a linear read-out, behind the engine's interface.

Every model here predicts through an *effective linear predictor* ``beta(theta) in R^d`` of its
parameters ``theta in R^D`` (``D >= d``): ``f(theta; x) = x^T beta(theta)``. With data ``X`` (n x d),
labels ``y`` and a target ``beta*`` (``x ~ N(0, I_d)``, ``y = X beta*``):

* train loss ``L_n(theta) = (1/2n) ||X beta(theta) - y||^2``, test loss ``L(theta) = 1/2 ||beta(theta) - beta*||^2``;
* Jacobian ``J(theta) = X D beta(theta)`` (n x D), row ``i`` = ``grad_theta f(theta; x_i) = D beta^T x_i``;
* gradient ``grad L_n = D beta^T X^T r / n`` with the residual ``r = X beta - y``;
* Hessian ``n Hess L_n = J^T J + sum_j g_j Hess beta_j`` with ``g = X^T r``; its trace
  ``n tr Hess L_n = ||J||_F^2 + sum_j g_j tr Hess beta_j``;
* minima ``M = {theta : X beta(theta) = y}``; on M the Hessian is ``J^T J / n``, the normal space is
  ``range J^T`` and the tangent space ``ker J``.

Label-noise SGD (full batch) is ``theta <- theta - (eta/n) J^T (r - sigma xi)``, ``xi ~ N(0, I_n)``: the
engine's ``increment`` with ``dt = eta``, ``noise_coef = eta sigma / sqrt(n)``. The quasistatic picture of
The picture of docs/science.md, §1 Phase II, carries over unchanged: a normal Ornstein–Uhlenbeck equilibrium
with train-loss plateau
``(eta a / 4) sum_j lambda_j / (1 - eta lambda_j / 2)`` (``lambda_j`` the eigenvalues of ``J J^T / n``,
``a = sigma^2 / n``), and the drift along M

``d theta / d tau = -(a/4) P_T grad tr Hess L_n(theta)``,  ``tau = eta^2 k``,

whose end points are the minimisers of the Hessian trace on M (the *trace-minimising* points).
:func:`drift_ode` integrates it for any model of this layer.

A model subclass implements, batched over leading axes of ``Theta``: ``param_dim(d, **shape)``,
``beta(Theta)``, ``vjp(Theta, G) = D beta^T g``, ``jvp(Theta, T) = D beta t``,
``beta_hessian_dot(Theta, g) = sum_j g_j Hess beta_j`` (D x D), ``beta_hessian_trace_dot(Theta, g) =
sum_j g_j tr Hess beta_j`` and ``hessian_trace_grad(Theta)`` (the gradient of ``tr Hess L_n``, a closed
form checked against finite differences in the tests). Everything else — losses, gradient, Jacobian,
Hessian and its trace, the engine's ``increment`` and ``observables``, the normal/tangent projections,
the retraction onto M, the plateau prediction — is written once here. A new model is one new module,
not a new engine.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.integrate import solve_ivp

from lrdecay.theory.validation import finite_array, nonneg, positive


def plateau_from_eigs(lam, eta: float, a: float) -> tuple[float, float]:
    """The Phase II train-loss plateau from the Gauss–Newton eigenvalues ``lam`` on M: ``(leading, exact)``,
    leading ``(eta a / 4) sum lambda_j`` and exact ``(eta a / 4) sum lambda_j / (1 - eta lambda_j / 2)`` (the
    stationary Ornstein–Uhlenbeck covariance of the normal-space oscillation; ``inf`` if ``eta lambda_max >= 2``)."""
    lam = np.asarray(lam, float)
    exact = 0.25 * eta * a * float(np.sum(lam / (1 - eta * lam / 2))) if eta * lam.max() < 2 else float("inf")
    return 0.25 * eta * a * float(lam.sum()), exact


class LinearReadoutModel:
    """Base class: data ``X`` (n, d), labels ``y`` (n,), target ``beta_star`` (d,), start ``theta0``
    (D,), label-noise level ``sigma``; the engine contract (:mod:`lrdecay.theory.engine.protocol`, with
    ``minibatch_increment``) and the geometry of M."""

    #: name used in files and figures
    NAME = "model"

    def __init__(self, X, y, beta_star, theta0, sigma: float = 0.0, meta: dict | None = None, **shape):
        X = finite_array("X", X, 2)
        n, d = X.shape
        y = finite_array("y", y, 1)
        if y.shape != (n,):
            raise ValueError(f"y must have shape (n,) = ({n},) to match X, got {y.shape}")
        beta_star = finite_array("beta_star", beta_star, 1)
        if beta_star.shape != (d,):
            raise ValueError(f"beta_star must have shape (d,) = ({d},) to match X, got {beta_star.shape}")
        self.shape = dict(shape)
        D = self.param_dim(d, **shape)
        theta0 = finite_array("theta0", theta0, 1)
        if theta0.shape != (D,):
            raise ValueError(f"theta0 must have shape (D,) = ({D},) for this model, got {theta0.shape}")
        self.X, self.y, self.beta_star, self.theta0 = X, y, beta_star, theta0
        self.sigma = nonneg("sigma", sigma)
        self.n, self.d, self.dim = n, d, D
        self.noise_dim = n
        self.meta = dict(meta or {})
        self.col_norms2 = np.sum(X**2, axis=0)           # c_j = ||X_{:, j}||^2
        self.fro2 = float(np.sum(X**2))                  # ||X||_F^2

    # ---- primitives (subclasses) ---------------------------------------------------------------
    @staticmethod
    def param_dim(d: int, **shape) -> int:
        raise NotImplementedError

    def beta(self, Theta) -> np.ndarray:
        raise NotImplementedError

    def vjp(self, Theta, G) -> np.ndarray:
        """``D beta(theta)^T g`` (shape ``(..., D)``; ``G`` broadcasts against ``(..., d)``)."""
        raise NotImplementedError

    def jvp(self, Theta, T) -> np.ndarray:
        """``D beta(theta) t`` (shape ``(..., d)``)."""
        raise NotImplementedError

    def beta_hessian_dot(self, Theta, g) -> np.ndarray:
        """``sum_j g_j Hess beta_j(theta)``, shape ``(..., D, D)``."""
        raise NotImplementedError

    def beta_hessian_trace_dot(self, Theta, g) -> np.ndarray:
        """``sum_j g_j tr Hess beta_j(theta)``, shape ``(...)``."""
        raise NotImplementedError

    def hessian_trace_grad(self, Theta) -> np.ndarray:
        """``grad_theta tr Hess L_n(theta)`` (closed form per model)."""
        raise NotImplementedError

    def extra_observables(self, Theta, B) -> dict:
        """Model-specific observables (``B = beta(Theta)``)."""
        return {}

    # ---- losses and derivatives ----------------------------------------------------------------
    def residual(self, Theta) -> np.ndarray:
        """``r = X beta(theta) - y``, shape ``(..., n)``."""
        return self.beta(Theta) @ self.X.T - self.y

    def train_loss(self, Theta) -> np.ndarray:
        """``L_n = (1/2n) ||X beta - y||^2``."""
        return 0.5 * np.mean(self.residual(Theta) ** 2, axis=-1)

    def test_loss(self, Theta) -> np.ndarray:
        """``L = 1/2 ||beta - beta*||^2``."""
        return 0.5 * np.sum((self.beta(Theta) - self.beta_star) ** 2, axis=-1)

    def train_grad(self, Theta) -> np.ndarray:
        """``grad L_n = D beta^T X^T r / n``."""
        return self.vjp(Theta, self.residual(Theta) @ self.X / self.n)

    def jacobian(self, Theta) -> np.ndarray:
        """``J = X D beta`` of shape ``(..., n, D)``; row i is ``D beta^T x_i``."""
        Theta = np.asarray(Theta, dtype=float)
        return self.vjp(Theta[..., None, :], self.X)

    def train_hessian(self, Theta) -> np.ndarray:
        """``Hess L_n = (J^T J + sum_j g_j Hess beta_j) / n``, ``g = X^T r``."""
        J = self.jacobian(Theta)
        g = self.residual(Theta) @ self.X
        return (np.swapaxes(J, -1, -2) @ J + self.beta_hessian_dot(Theta, g)) / self.n

    def hessian_trace(self, Theta) -> np.ndarray:
        """``tr Hess L_n = (||J||_F^2 + sum_j g_j tr Hess beta_j) / n``."""
        J = self.jacobian(Theta)
        g = self.residual(Theta) @ self.X
        return (np.sum(J**2, axis=(-2, -1)) + self.beta_hessian_trace_dot(Theta, g)) / self.n

    def gauss_newton_eigs(self, theta) -> np.ndarray:
        """Eigenvalues of ``J J^T / n`` at ``theta`` (the non-zero spectrum of the Hessian on M)."""
        J = self.jacobian(np.asarray(theta, dtype=float))
        return np.linalg.eigvalsh(J @ np.swapaxes(J, -1, -2) / self.n)

    def sharpness(self, theta) -> float:
        """``lambda_max(J J^T / n)`` at one point."""
        return float(self.gauss_newton_eigs(theta)[..., -1])

    # ---- the geometry of M ---------------------------------------------------------------------
    def normal_basis(self, Theta) -> np.ndarray:
        """Orthonormal basis of ``range J^T`` (the normal space), shape ``(..., D, n)``."""
        q, _ = np.linalg.qr(np.swapaxes(self.jacobian(Theta), -1, -2))
        return q

    def project_tangent(self, Theta, V) -> np.ndarray:
        """``P_T v = v - P_N v``."""
        q = self.normal_basis(Theta)
        V = np.asarray(V, dtype=float)
        return V - np.einsum("...dn,...n->...d", q, np.einsum("...dn,...d->...n", q, V))

    def drift_velocity(self, Theta, a: float) -> np.ndarray:
        """``d theta / d tau = -(a/4) P_T grad tr Hess L_n``."""
        return -0.25 * a * self.project_tangent(Theta, self.hessian_trace_grad(Theta))

    def retract(self, Theta, tol: float = 1e-13, max_iter: int = 100) -> np.ndarray:
        """Gauss–Newton projection onto M: ``theta <- theta - J^T (J J^T)^{-1} r`` (the minimum-norm
        correction of the linearised constraint) until ``max |r| <= tol (1 + ||y||)``. Near M it converges
        quadratically and moves ``theta`` by ``O(||r||)`` along the normal space; it is the identity on M."""
        Theta = np.array(Theta, dtype=float)
        scale = tol * (1.0 + np.linalg.norm(self.y))
        for _ in range(max_iter):
            r = self.residual(Theta)
            if np.max(np.abs(r)) <= scale:
                break
            J = self.jacobian(Theta)
            lam = np.linalg.solve(J @ np.swapaxes(J, -1, -2), r[..., None])[..., 0]
            Theta = Theta - np.einsum("...nD,...n->...D", J, lam)
        else:
            warnings.warn(f"retract: not on M after {max_iter} Gauss-Newton steps (max |r| = "
                          f"{np.max(np.abs(self.residual(Theta))):.2e})", RuntimeWarning, stacklevel=2)
        return Theta

    def plateau(self, theta, eta: float, a: float | None = None) -> tuple[float, float]:
        """Predicted Phase II train-loss plateau near ``theta`` on M: ``(leading, exact)`` with leading
        ``(eta a / 4) tr H`` and exact ``(eta a / 4) sum lambda_j / (1 - eta lambda_j / 2)`` (``inf`` if
        ``eta lambda_max >= 2``); ``a = sigma^2 / n`` by default."""
        eta = positive("eta", eta)
        a = self.sigma**2 / self.n if a is None else nonneg("a", a)
        return plateau_from_eigs(self.gauss_newton_eigs(theta), eta, a)

    # ---- the engine interface ------------------------------------------------------------------
    def increment(self, W, dt, noise_coef, xi):
        r"""Euler–Maruyama increment of ``d theta = -grad L_n dt + c (J^T / sqrt n) xi``; with ``dt = eta`` and
        ``c = eta sigma / sqrt(n)`` one step of full-batch label-noise SGD. One vector-Jacobian product:
        ``D beta^T X^T (-r dt / n + c xi / sqrt n)``. Returns ``(dW, L_n(W))``."""
        res = self.residual(W)
        V = res * (-np.asarray(dt) / self.n)
        if xi is not None:
            V = V + np.asarray(noise_coef) * xi / np.sqrt(self.n)
        return self.vjp(W, V @ self.X), 0.5 * np.mean(res**2, axis=-1)

    def minibatch_increment(self, W, eta, idx, xi, sigma):
        """``-(eta/b) sum_{i in B} grad f_i (f_i - y_i - sigma xi_i)`` for batches ``idx`` (P, b)."""
        P, b = idx.shape
        B = self.beta(W)
        Xb = self.X[idx]                                       # (P, b, d)
        v = (np.einsum("pbd,pd->pb", Xb, B) - self.y[idx] - sigma * xi) * (-np.asarray(eta).reshape(-1, 1) / b)
        return self.vjp(W, np.einsum("pb,pbd->pd", v, Xb))

    def observables(self, W) -> dict:
        """``train_loss``, ``test_loss``, ``norm`` (``||theta||``) and the model's extras."""
        B = self.beta(W)
        res = B @ self.X.T - self.y
        out = {"train_loss": 0.5 * np.mean(res**2, axis=-1),
               "test_loss": 0.5 * np.sum((B - self.beta_star) ** 2, axis=-1),
               "norm": np.linalg.norm(W, axis=-1)}
        out.update(self.extra_observables(W, B))
        return out

    # ---- persistence (a record type for Result fields) -----------------------------------------
    def arrays(self, prefix: str = "") -> dict:
        return {f"{prefix}X": self.X, f"{prefix}y": self.y, f"{prefix}beta_star": self.beta_star,
                f"{prefix}theta0": self.theta0}

    def config(self) -> dict:
        return {"name": self.NAME, "n": self.n, "d": self.d, "D": self.dim, "sigma": self.sigma,
                "shape": self.shape, "meta": self.meta}

    @classmethod
    def from_arrays(cls, arrays: dict, config: dict, prefix: str = ""):
        return cls(arrays[f"{prefix}X"], arrays[f"{prefix}y"], arrays[f"{prefix}beta_star"],
                   arrays[f"{prefix}theta0"], sigma=config["sigma"], meta=config.get("meta", {}),
                   **config.get("shape", {}))

    def with_(self, **changes):
        """A copy with some of ``X, y, beta_star, theta0, sigma, meta`` replaced."""
        kw = dict(X=self.X, y=self.y, beta_star=self.beta_star, theta0=self.theta0, sigma=self.sigma,
                  meta=dict(self.meta))
        kw.update(changes)
        return type(self)(**kw, **self.shape)

    def __repr__(self) -> str:
        sh = "".join(f", {k}={v}" for k, v in self.shape.items())
        return f"{type(self).__name__}(d={self.d}, n={self.n}{sh}, D={self.dim}, sigma={self.sigma:g})"


# --------------------------------------------------------------------------------------------------
# The drift ODE for any model of the layer
# --------------------------------------------------------------------------------------------------

@dataclass
class ModelDrift:
    """The drift ODE's solution: ``tau``, the points ``theta`` (each retracted onto M), ``beta``, the
    test loss and Hessian trace along it; ``off_manifold`` is the largest train loss of the integrated
    points before the retraction."""

    tau: np.ndarray
    theta: np.ndarray
    beta: np.ndarray
    test_loss: np.ndarray
    trace: np.ndarray
    off_manifold: float
    status: str
    message: str
    config: dict = field(default_factory=dict)


def drift_ode(model: LinearReadoutModel, theta_start, tau_max: float, a: float, *, n_eval: int = 200,
              tau_eval=None, rtol: float = 1e-8, atol: float = 1e-11, method: str = "LSODA") -> ModelDrift:
    """Integrate ``d theta / d tau = -(a/4) P_T grad tr Hess L_n`` from ``retract(theta_start)`` to
    ``tau_max`` (``scipy.integrate.solve_ivp``); the stored points are retracted onto M (the field is
    tangent, so this only removes integration error)."""
    tau_max = positive("tau_max", tau_max)
    a = nonneg("a", a)
    th0 = model.retract(np.asarray(theta_start, dtype=float))
    tau = np.linspace(0.0, tau_max, n_eval) if tau_eval is None else np.asarray(tau_eval, dtype=float)
    sol = solve_ivp(lambda _t, th: model.drift_velocity(th, a), (0.0, tau_max), th0, t_eval=tau,
                    method=method, rtol=rtol, atol=atol)
    T = sol.y.T
    off = float(np.max(model.train_loss(T)))
    T = model.retract(T)
    return ModelDrift(sol.t, T, model.beta(T), model.test_loss(T), model.hessian_trace(T), off,
                      "ok" if sol.success else "failed", sol.message,
                      dict(tau_max=float(tau_max), a=float(a), rtol=rtol, atol=atol, method=method))
