r"""Symbolic (sympy) derivations for the nonlinear model ``f(w; x) = ||w||^gamma w^T x``.

The formulas that :mod:`lrdecay.theory.models.nonlinear` implements by hand are *derived* here by sympy from the
definitions below and nothing else, in small concrete dimensions (``d`` parameters, ``n`` data points,
every entry of ``w``, ``x_i``, ``y`` a sympy symbol, ``gamma`` a positive symbol or an exact number):

* the model ``f(w; x) = ||w||^gamma w^T x`` (:func:`model_f`);
* the train loss ``L_n(w) = (1/2n) sum_i (f(w; x_i) - y_i)^2`` and, for label-noise SGD, the loss with
  noisy labels ``y_i + sigma xi_i`` (over a batch: ``1/2b`` and the batch's rows);
* the min-norm problem: minimise ``||w||^2 / 2`` subject to ``f(w; x_i) = y_i``;
* the linearised recursion ``delta_{k+1} = (I - eta H) delta_k + noise`` near M, with ``H`` and the
  noise covariance taken from the derivations (``Hess L_n = J^T J / n`` and ``eta^2 a H`` on M).

Everything else is obtained by differentiation, substitution, ``solve`` and ``series``:

=====================================  =======================================================================
derivation                             how
=====================================  =======================================================================
``alpha(w)``                           ``grad_x f(w; x)`` (f is linear in x)
``alpha^{-1}``                         ``solve(alpha(c a) = a, c)`` for the positive scalar ``c``
``D alpha``, ``grad_w f``              ``jacobian`` / ``diff``
``L_n``, ``grad L_n``, ``Hess L_n``    ``diff`` of the definition; the trace ``sum_k d^2 L_n / dw_k^2``
``grad tr Hess L_n``                   ``diff`` of the trace (third derivatives of ``L_n``)
``h(r)`` (trace on M)                  trace at ``w = r e_1`` with ``x_i1`` eliminated by the constraint
                                       ``f(w; x_i) = y_i``; the result is collected in ``||X||_F^2``, ``||y||^2``
trace on M = ``h(||w||)`` (any frame)  ``y := X alpha(w)`` substituted into the trace; the difference is
                                       reduced to a polynomial and shown to vanish identically
drift direction                        ``t . (grad tr - h'(r) w_hat) = 0`` on M for the tangent vector
                                       ``t = J_1 x J_2`` (d = 3, n = 2)
Lagrange condition at ``w_mn``         stationarity of ``||w||^2/2 - sum lambda_i (f_i - y_i)``; the
                                       determinant ``det[J; w]`` vanishes on ``w in row(X)`` (d = 3, n = 2)
label-noise SGD step                   ``w - eta grad_w`` of the noisy-label loss: drift ``-eta grad L_n``,
                                       noise matrix ``B``; ``B B^T = eta^2 a Hess L_n`` on M gives ``a``
                                       (minibatch: ``B_batch B_batch^T`` averaged over the b-subsets)
``Hess L_n = J^T J / n`` on M          the derived Hessian with ``y := X alpha(w)``, reduced to zero
plateau constant                       discrete Lyapunov ``Sigma = A Sigma A^T + eta^2 a H`` solved for a
                                       diagonal ``H``; ``E L_n = tr(H Sigma)/2``, its series in ``eta``
=====================================  =======================================================================

Numeric callables (``numeric_*`` functions) are :func:`sympy.lambdify` versions of these expressions,
so tests can evaluate the derivations at random points and compare with :mod:`lrdecay.theory.models.nonlinear`. They
infer ``d`` and ``n`` from the shapes of their arguments and derive (once, cached) for those sizes;
keep ``d`` and ``n`` small (d <= 5). ``exact=True`` derives with ``gamma`` substituted by the exact
rational number first (so ``gamma = 0`` is plain linear regression), instead of evaluating the
symbolic-``gamma`` expression at a number.

The claims the derivations are compared with (the closed forms written in :mod:`lrdecay.theory.models.nonlinear` and
docs/science.md, §1 model) are *not* used to derive anything.

The derivations are split by subject, every name re-exported here: the model's definitions and derivatives in
:mod:`~lrdecay.theory.symbolic.nonlinear_model`, the trace on M, the drift and the Lagrange condition in
:mod:`~lrdecay.theory.symbolic.nonlinear_manifold`, label-noise SGD and the plateau constant in
:mod:`~lrdecay.theory.symbolic.nonlinear_noise`; the numeric callables are below.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy as sp

from .nonlinear_manifold import (FROB, R, YSQ, LagrangeSystem, ManifoldTrace, _cross, derive_manifold_trace,
                                 drift_identity, lagrange_rowspace_identity, lagrange_system, manifold_trace_identity,
                                 residual_terms_vanish_on_M)
from .nonlinear_model import (GAMMA, Derivation, Symbols, _gamma, _loss, _reduce_to_zero, derive,
                              derive_alpha_inverse, derive_hessian, derive_trace_gradient, model_f, symbols)
from .nonlinear_noise import (A_NOISE, ETA, SIGMA, LabelNoiseStep, Lyapunov, _noisy_step, _plateau_term_fn,
                              _variance_fn, derive_label_noise_step, derive_lyapunov, derive_noise_scale,
                              hessian_on_M_is_gauss_newton, plateau_constant, plateau_loss_exact,
                              stationary_variance)


# ---------------------------------------------------------------------------------------------
# numeric (lambdified) versions
# ---------------------------------------------------------------------------------------------
def _key(gamma, exact: bool):
    return float(gamma) if exact else None


@lru_cache(maxsize=None)
def _fn(name: str, d: int, n: int, gkey):
    """Lambdify one derived expression with arguments ``(w, X.ravel(), y, gamma)``."""
    D = derive(d, n, gkey)
    s = D.sym
    exprs = {
        "alpha": lambda: D.alpha,
        "dalpha": lambda: D.dalpha,
        "jacobian": lambda: D.J,
        "preds": lambda: D.preds,
        "loss": lambda: D.loss,
        "grad": lambda: D.grad,
        "trace": lambda: D.trace,
        "hessian": lambda: derive_hessian(d, n, gkey),
        "trace_grad": lambda: derive_trace_gradient(d, n, gkey),
        "obj_grad": lambda: lagrange_system(d, n, gkey).objective_grad,
        "constraint_grads": lambda: lagrange_system(d, n, gkey).constraint_grads,
    }
    return sp.lambdify([s.w_list, s.X_list, list(s.y), GAMMA], exprs[name](), "numpy", cse=True)


@lru_cache(maxsize=None)
def _fn_grad_f(d: int, gkey):
    D = derive(d, 1, gkey)
    return sp.lambdify([D.sym.w_list, list(D.sym.x), GAMMA], D.grad_f, "numpy", cse=True)


@lru_cache(maxsize=None)
def _fn_step(d: int, n: int, gkey):
    st = derive_label_noise_step(d, n, gkey)
    s = symbols(d, n)
    return sp.lambdify([s.w_list, s.X_list, list(s.y), list(s.xi), GAMMA, ETA, SIGMA], st.step,
                       "numpy", cse=True)


@lru_cache(maxsize=None)
def _fn_alpha_inverse(d: int, gkey):
    a, expr = derive_alpha_inverse(d, gkey)
    return sp.lambdify([list(a), GAMMA], expr, "numpy", cse=True)


@lru_cache(maxsize=None)
def _fn_h(n: int):
    mt = derive_manifold_trace(n + 1, n)
    return (sp.lambdify([R, FROB, YSQ, GAMMA], mt.h, "numpy"),
            sp.lambdify([R, FROB, YSQ, GAMMA], mt.h_prime, "numpy"))


def _call(name, w, X, y, gamma, exact=False):
    w = np.asarray(w, dtype=float)
    X = np.atleast_2d(np.asarray(X, dtype=float))
    n, d = X.shape
    y = np.zeros(n) if y is None else np.asarray(y, dtype=float)
    fn = _fn(name, d, n, _key(gamma, exact))
    out = fn(list(w), list(X.ravel()), list(y), float(gamma))
    return np.asarray(out, dtype=float)


def numeric_alpha(w, gamma, exact=False):
    """Derived ``alpha(w)`` (d,)."""
    d = np.size(w)
    return _call("alpha", w, np.zeros((1, d)), None, gamma, exact).reshape(d)


def numeric_alpha_inverse(a, gamma, exact=False):
    """Derived ``alpha^{-1}(a)`` (d,)."""
    a = np.asarray(a, dtype=float)
    fn = _fn_alpha_inverse(a.size, _key(gamma, exact))
    return np.asarray(fn(list(a), float(gamma)), dtype=float).reshape(a.size)


def numeric_dalpha(w, gamma, exact=False):
    """Derived ``D alpha(w)`` (d, d): ``[j, k] = d alpha_j / d w_k``."""
    d = np.size(w)
    return _call("dalpha", w, np.zeros((1, d)), None, gamma, exact)


def numeric_grad_f(w, x, gamma, exact=False):
    """Derived ``grad_w f(w; x)`` (d,)."""
    w = np.asarray(w, dtype=float)
    fn = _fn_grad_f(w.size, _key(gamma, exact))
    return np.asarray(fn(list(w), list(np.asarray(x, dtype=float)), float(gamma)), dtype=float).reshape(w.size)


def numeric_jacobian(w, X, gamma, exact=False):
    """Derived model Jacobian (n, d), row i = ``grad_w f(w; x_i)``."""
    return _call("jacobian", w, X, None, gamma, exact)


def numeric_train_loss(w, X, y, gamma, exact=False):
    return float(_call("loss", w, X, y, gamma, exact))


def numeric_train_grad(w, X, y, gamma, exact=False):
    return _call("grad", w, X, y, gamma, exact).reshape(-1)


def numeric_train_hessian(w, X, y, gamma, exact=False):
    return _call("hessian", w, X, y, gamma, exact)


def numeric_hessian_trace(w, X, y, gamma, exact=False):
    return float(_call("trace", w, X, y, gamma, exact))


def numeric_trace_gradient(w, X, y, gamma, exact=False):
    """Derived ``grad_w tr Hess L_n(w)`` (d,)."""
    return _call("trace_grad", w, X, y, gamma, exact).reshape(-1)


def numeric_lagrange(w, X, gamma, exact=False):
    """``(grad ||w||^2/2, constraint gradients (d, n))`` from :func:`lagrange_system`."""
    return (_call("obj_grad", w, X, None, gamma, exact).reshape(-1),
            _call("constraint_grads", w, X, None, gamma, exact))


def numeric_label_noise_step(w, X, y, xi, gamma, eta, sigma, exact=False):
    """Derived full-batch label-noise SGD step ``w+ - w`` (d,)."""
    w = np.asarray(w, dtype=float)
    X = np.atleast_2d(np.asarray(X, dtype=float))
    n, d = X.shape
    fn = _fn_step(d, n, _key(gamma, exact))
    return np.asarray(fn(list(w), list(X.ravel()), list(np.asarray(y, float)), list(np.asarray(xi, float)),
                         float(gamma), float(eta), float(sigma)), dtype=float).reshape(d)


def numeric_manifold_trace(r, X, y, gamma):
    """Derived ``h(r)`` for the data ``(X, y)``."""
    X = np.asarray(X, dtype=float)
    h, _ = _fn_h(X.shape[0])
    return h(np.asarray(r, dtype=float), float(np.sum(X**2)), float(np.sum(np.asarray(y) ** 2)), float(gamma))


def numeric_manifold_trace_deriv(r, X, y, gamma):
    """Derived ``h'(r)``."""
    X = np.asarray(X, dtype=float)
    _, hp = _fn_h(X.shape[0])
    return hp(np.asarray(r, dtype=float), float(np.sum(X**2)), float(np.sum(np.asarray(y) ** 2)), float(gamma))


def numeric_normal_projector(w, X, gamma, exact=False):
    """``P_N = J^T (J J^T)^{-1} J`` with the derived ``J`` (d, d)."""
    J = numeric_jacobian(w, X, gamma, exact)
    return J.T @ np.linalg.solve(J @ J.T, J)


def points_on_manifold(X, y, gamma, kernel_coefs) -> np.ndarray:
    """Points of M built in alpha-space with the derived inverse: ``w = alpha^{-1}(X^+ y + N c)``,
    ``N`` an orthonormal basis of ``ker X`` (d, d - n), ``c`` = each row of ``kernel_coefs``.

    ``||w|| = ||alpha||^{1/(gamma+1)}`` and ``X^+ y`` is orthogonal to ``ker X``, so rows of
    ``kernel_coefs`` with the same norm give points of M with the same ``||w||``."""
    X = np.asarray(X, dtype=float)
    n, d = X.shape
    a_mn = np.linalg.pinv(X) @ np.asarray(y, dtype=float)
    _, _, vt = np.linalg.svd(X)
    N = vt[n:].T
    C = np.atleast_2d(np.asarray(kernel_coefs, dtype=float))
    return np.stack([numeric_alpha_inverse(a_mn + N @ c, gamma) for c in C])
