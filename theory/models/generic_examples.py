r"""Models written only as ``f(theta, X)`` for :class:`lrdecay.theory.models.generic.GenericModel`, and their references.

Prediction functions (torch, one parameter vector ``theta`` of shape ``(D,)``):

* :func:`predict_nonlinear` ``||w||^gamma X w`` — the main model (:mod:`lrdecay.theory.models.nonlinear`);
* :func:`predict_diagonal` ``X (u * u - v * v)`` — :class:`lrdecay.theory.models.diagonal.DiagonalNetwork`;
* :func:`predict_two_layer` ``X W_1^T w_2`` — :class:`lrdecay.theory.models.two_layer.TwoLayerLinear`;
* :func:`predict_diagonal3` ``X (u^3 - v^3)`` — the depth-3 diagonal network;
* :func:`predict_relu` ``relu(X W_1^T) w_2 / sqrt(h)`` — a two-layer ReLU network.

**The depth-3 diagonal network: the drift ends at the minimum weighted-l_{4/3} interpolator.** With
``beta = u^3 - v^3`` the Jacobian rows are ``(3 u^2 * x_i, -3 v^2 * x_i)``, so ``tr H = ||J||_F^2 / n = (9/n) sum_j
c_j (u_j^4 + v_j^4)`` (``c_j = ||X_{:,j}||^2``). The drift keeps the signs of ``u`` and ``v``: the ``u_j``
components of ``grad tr H`` (``(36/n) c_j u_j^3``) and of every normal vector ``J^T lambda`` (``3 u_j^2 (X^T
lambda)_j``) carry the factor ``u_j^2``, so a coordinate can tend to 0 (like ``1/tau``) but not cross it. From
``u_0 = v_0 > 0`` the drift stays in the orthant ``u, v >= 0``, where for a given ``beta_j`` the smallest
``u_j^4 + v_j^4`` is ``|beta_j|^{4/3}`` (with ``s = v_j^3 >= 0``, ``|beta_j + s|^{4/3} + s^{4/3}`` is smallest at the
end ``s = 0`` or ``s = -beta_j``), so the trace-minimising point of that orthant has the ``beta`` of

``argmin sum_j c_j |beta_j|^{4/3}  s.t.  X beta = y``

(:func:`min_l43_interpolator`): strictly convex, its dual ``Phi(mu) = sum_j (3 / (4 c_j))^3 z_j^4 / 4 - y^T mu``,
``z = X^T mu``, is smooth and convex, and ``beta_j = (3 z_j / (4 c_j))^3`` at the dual minimiser (the stationarity
condition ``(4/3) c_j |beta_j|^{1/3} sign(beta_j) = z_j``). Between the minimum-l1 (depth-2, small start) and the
minimum-l2 interpolators: a sparser end point than the depth-2 network's l2-like landing, but not the l1 one.

**Linear read-outs as generic models.** :func:`from_problem` and :func:`from_linear_readout` give the hand-written
models' generic twins with the test set ``X_test = sqrt(d) I_d``, ``y_test = sqrt(d) beta*``, whose test loss
``(1/2d) ||sqrt(d) (beta - beta*)||^2 = 1/2 ||beta - beta*||^2`` is the hand-written one exactly.
"""
from __future__ import annotations

import math

import numpy as np

from lrdecay.theory.models.generic import GenericModel
from lrdecay.theory.validation import integer, nonneg, positive


# --------------------------------------------------------------------------------------------------
# prediction functions
# --------------------------------------------------------------------------------------------------

def predict_nonlinear(theta, X, gamma: float = 1.0):
    """``||w||^gamma X w``."""
    import torch

    return torch.linalg.vector_norm(theta) ** gamma * (X @ theta)


def predict_diagonal(theta, X):
    """``X (u * u - v * v)``, ``theta = (u, v)``."""
    d = X.shape[-1]
    u, v = theta[:d], theta[d:]
    return X @ (u * u - v * v)


def predict_two_layer(theta, X, hidden: int):
    """``X W_1^T w_2``, ``theta = (vec W_1 (row-major, h x d), w_2)``."""
    d = X.shape[-1]
    W1, w2 = theta[:hidden * d].reshape(hidden, d), theta[hidden * d:]
    return X @ (W1.T @ w2)


def predict_diagonal3(theta, X):
    """``X (u^3 - v^3)``, ``theta = (u, v)``."""
    d = X.shape[-1]
    u, v = theta[:d], theta[d:]
    return X @ (u**3 - v**3)


def predict_relu(theta, X, hidden: int):
    """``relu(X W_1^T) w_2 / sqrt(h)``, ``theta = (vec W_1 (h x d), w_2)``."""
    import torch

    d = X.shape[-1]
    W1, w2 = theta[:hidden * d].reshape(hidden, d), theta[hidden * d:]
    return torch.relu(X @ W1.T) @ w2 / math.sqrt(hidden)


# --------------------------------------------------------------------------------------------------
# the hand-written models as generic ones
# --------------------------------------------------------------------------------------------------

def _identity_test(d: int, beta_star):
    return math.sqrt(d) * np.eye(d), math.sqrt(d) * np.asarray(beta_star, dtype=float)


def from_problem(problem, theta0=None) -> GenericModel:
    """The main model ``||w||^gamma w^T x`` of a :class:`~lrdecay.theory.problem.Problem` (test loss ``1/2 ||alpha -
    alpha*||^2``, without the problem's constant offset)."""
    from functools import partial

    Xt, yt = _identity_test(problem.d, problem.alpha_star)
    return GenericModel(partial(predict_nonlinear, gamma=float(problem.gamma)), problem.X, problem.y,
                        problem.w0 if theta0 is None else theta0, sigma=problem.sigma, X_test=Xt, y_test=yt,
                        name=f"nonlinear (gamma = {problem.gamma:g})")


def from_linear_readout(model) -> GenericModel:
    """The generic twin of a :class:`~lrdecay.theory.models.diagonal.DiagonalNetwork` or
    :class:`~lrdecay.theory.models.two_layer.TwoLayerLinear`."""
    from functools import partial

    if model.NAME == "diagonal":
        fn = predict_diagonal
    elif model.NAME == "two_layer":
        fn = partial(predict_two_layer, hidden=int(model.h))
    else:
        raise ValueError(f"model must be a diagonal or two-layer network, got {model.NAME!r}")
    Xt, yt = _identity_test(model.d, model.beta_star)
    return GenericModel(fn, model.X, model.y, model.theta0, sigma=model.sigma, X_test=Xt, y_test=yt, name=model.NAME,
                        meta=dict(model.meta))


# --------------------------------------------------------------------------------------------------
# the depth-3 diagonal network
# --------------------------------------------------------------------------------------------------

def diagonal3(d: int = 12, n: int = 6, sparsity: int = 2, sigma: float = 1.0, init_scale: float = 1.0,
              seed: int = 0) -> GenericModel:
    """``beta = u^3 - v^3`` on the data of :meth:`lrdecay.theory.models.diagonal.DiagonalNetwork.generate` (columns
    normalised to ``c_j = n``, a sparse target), from ``u_0 = v_0 = init_scale 1``; test set ``sqrt(d) I_d`` (the
    test loss is ``1/2 ||beta - beta*||^2``)."""
    from lrdecay.theory.models.diagonal import DiagonalNetwork

    base = DiagonalNetwork.generate(d=d, n=n, sparsity=sparsity, sigma=sigma, init_scale=init_scale, seed=seed)
    Xt, yt = _identity_test(base.d, base.beta_star)
    return GenericModel(predict_diagonal3, base.X, base.y, base.theta0, sigma=base.sigma, X_test=Xt, y_test=yt,
                        name="diagonal3", meta=dict(base.meta))


def diagonal3_beta(model: GenericModel, theta) -> np.ndarray:
    """``beta = u^3 - v^3`` of points ``theta`` (..., 2d) of a :func:`diagonal3` model."""
    theta = np.asarray(theta, dtype=float)
    d = model.X.shape[1]
    return theta[..., :d] ** 3 - theta[..., d:] ** 3


def min_l43_interpolator(X, y, weights=None) -> np.ndarray:
    """``argmin sum_j w_j |beta_j|^{4/3}  s.t.  X beta = y`` through its smooth convex dual (``scipy.optimize.minimize``,
    a trust-region Newton method with the exact Hessian ``X diag(3 k_j^3 z_j^2) X^T``, ``k_j = 3 / (4 w_j)``, then Newton steps on its stationarity ``X beta(X^T mu) = y``; see the module docstring)."""
    from scipy.optimize import minimize

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    w = np.sum(X**2, axis=0) if weights is None else np.asarray(weights, dtype=float)
    k3 = (3.0 / (4.0 * w)) ** 3
    scale = max(1.0, float(np.linalg.norm(y)))

    def phi(mu):
        z = X.T @ mu
        return (np.sum(k3 * z**4) / 4 - y @ mu) / scale, (X @ (k3 * z**3) - y) / scale

    def hess(mu):
        z = X.T @ mu
        return (X * (3 * k3 * z**2)) @ X.T / scale

    mu0 = np.linalg.lstsq(X.T, np.sign(np.linalg.lstsq(X, y, rcond=None)[0]), rcond=None)[0]
    res = minimize(phi, mu0, jac=True, hess=hess, method="trust-exact", options={"gtol": 1e-14, "maxiter": 1000})
    mu = res.x
    for _ in range(5):                                 # Newton polish of the dual's stationarity X beta(mu) = y
        g = phi(mu)[1]
        mu = mu - np.linalg.solve(hess(mu), g)
    beta = k3 * (X.T @ mu) ** 3
    if np.max(np.abs(X @ beta - y)) > 1e-11 * (1 + np.linalg.norm(y)):
        raise RuntimeError(f"min_l43_interpolator: the dual did not converge ({res.message})")
    return beta


# --------------------------------------------------------------------------------------------------
# a two-layer ReLU network, teacher and student
# --------------------------------------------------------------------------------------------------

def relu_teacher_student(d: int = 5, hidden: int = 40, teacher_hidden: int = 2, n: int = 40, n_test: int = 2000,
                         sigma: float = 1.0, init_scale: float = 1.0, seed: int = 0) -> GenericModel:
    """Student ``relu(X W_1^T) w_2 / sqrt(h)`` (``D = h d + h``) on ``n < D`` points ``x ~ N(0, I_d)`` labelled by a
    teacher of the same form with ``teacher_hidden`` units (rows of ``W_1*`` on the unit sphere, ``w_2* =
    sqrt(h*)``·signs); start ``W_1 = init_scale G_1 / sqrt(d)``, ``w_2 = init_scale g_2``."""
    from functools import partial

    d = integer("d", d, 1)
    hidden = integer("hidden", hidden, 1)
    teacher_hidden = integer("teacher_hidden", teacher_hidden, 1)
    n = integer("n", n, 1, hidden * d + hidden - 1)
    n_test = integer("n_test", n_test, 1)
    init_scale = positive("init_scale", init_scale)
    seed = integer("seed", seed, 0)
    sx, st, sw, s0 = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))
    Wt = sw.standard_normal((teacher_hidden, d))
    Wt /= np.linalg.norm(Wt, axis=1, keepdims=True)
    wt = np.where(np.arange(teacher_hidden) % 2 == 0, 1.0, -1.0) if teacher_hidden > 1 else np.ones(1)

    def teacher(Z):
        return np.maximum(Z @ Wt.T, 0.0) @ wt

    X, Xt = sx.standard_normal((n, d)), st.standard_normal((n_test, d))
    theta0 = np.concatenate([init_scale * s0.standard_normal(hidden * d) / math.sqrt(d),
                             init_scale * s0.standard_normal(hidden)])
    return GenericModel(partial(predict_relu, hidden=hidden), X, teacher(X), theta0, sigma=nonneg("sigma", sigma),
                        X_test=Xt, y_test=teacher(Xt), name="relu",
                        meta=dict(d=d, hidden=hidden, teacher_hidden=teacher_hidden, init_scale=init_scale, seed=seed))


#: built-in examples by name (each a function of keyword options returning a GenericModel)
EXAMPLES = {"diagonal3": diagonal3, "relu": relu_teacher_student}
