r"""The nonlinear model ``f(w; x) = ||w||^gamma w^T x`` in sympy: its symbols and definitions, and the derivations
of ``alpha``, ``D alpha``, ``grad_w f``, ``L_n``, its gradient, Hessian and Hessian trace, the trace's gradient
and ``alpha^{-1}`` (cached per size and ``gamma``), with :func:`_reduce_to_zero`, the canonical reduction that
proves an identity in ``||w||`` for every ``gamma``. Part of :mod:`lrdecay.theory.symbolic.nonlinear` (which
states the method and re-exports every name); the trace on M and the Lagrange condition are in
:mod:`lrdecay.theory.symbolic.nonlinear_manifold`, label-noise SGD and the plateau constant in
:mod:`lrdecay.theory.symbolic.nonlinear_noise`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from lrdecay.theory.validation import nonneg

#: the exponent, a positive symbol (``gamma = 0`` is reached through ``exact=True``)
GAMMA = sp.Symbol("gamma", positive=True)


# ---------------------------------------------------------------------------------------------
# symbols and the definitions
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Symbols:
    """The symbols of one concrete size: ``w`` (d x 1), a generic input ``x`` (d x 1), the data
    ``X`` (n x d, row i is ``x_i``), labels ``y`` (n x 1), label noise ``xi`` (n x 1), and
    ``S = ||w||^2`` (an expression)."""

    d: int
    n: int
    w: sp.Matrix
    x: sp.Matrix
    X: sp.Matrix
    y: sp.Matrix
    xi: sp.Matrix
    S: sp.Expr

    @property
    def w_list(self):
        return list(self.w)

    @property
    def X_list(self):
        """Entries of ``X`` in row-major order (matches ``numpy.ravel``)."""
        return [self.X[i, j] for i in range(self.n) for j in range(self.d)]


@lru_cache(maxsize=None)
def symbols(d: int, n: int) -> Symbols:
    if d < 1 or n < 1:
        raise ValueError(f"need d, n >= 1, got d = {d}, n = {n}")
    w = sp.Matrix(sp.symbols(f"w0:{d}", real=True))
    x = sp.Matrix(sp.symbols(f"u0:{d}", real=True))
    X = sp.Matrix(n, d, lambda i, j: sp.Symbol(f"x{i}_{j}", real=True))
    y = sp.Matrix(sp.symbols(f"y0:{n}", real=True))
    xi = sp.Matrix(sp.symbols(f"xi0:{n}", real=True))
    S = sp.Add(*[wk**2 for wk in w])
    return Symbols(d, n, w, x, X, y, xi, S)


def _gamma(gamma):
    """``None`` -> the symbol; a number -> the exact rational (3.7 -> 37/10)."""
    if gamma is None:
        return GAMMA
    return sp.Rational(repr(nonneg("gamma", gamma)))


def model_f(w: sp.Matrix, x: sp.Matrix, g) -> sp.Expr:
    """The model, the only typed formula: ``f(w; x) = ||w||^gamma w^T x``."""
    r = sp.sqrt(sp.Add(*[wk**2 for wk in w]))
    return r**g * (w.T * x)[0, 0]


def _loss(preds, y, n) -> sp.Expr:
    """The train loss definition ``(1/2n) sum_i (pred_i - y_i)^2``."""
    return sp.Add(*[(preds[i] - y[i]) ** 2 for i in range(n)]) / (2 * n)


# ---------------------------------------------------------------------------------------------
# derivations (cached per size and gamma)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Derivation:
    """Expressions derived for one ``(d, n, gamma)``.

    ``alpha`` (d x 1), ``dalpha`` (d x d), ``grad_f`` (d x 1, gradient of ``f(w; x)`` for the generic
    input ``x``), ``preds`` (n x 1, ``f(w; x_i)``), ``J`` (n x d, row i = ``grad_w f(w; x_i)``),
    ``loss``, ``grad`` (d x 1), ``trace`` (``sum_k d^2 L_n / dw_k^2``).
    """

    sym: Symbols
    gamma: sp.Expr
    f: sp.Expr
    alpha: sp.Matrix
    dalpha: sp.Matrix
    grad_f: sp.Matrix
    preds: sp.Matrix
    J: sp.Matrix
    loss: sp.Expr
    grad: sp.Matrix
    trace: sp.Expr


@lru_cache(maxsize=None)
def derive(d: int, n: int, gamma=None) -> Derivation:
    s = symbols(d, n)
    g = _gamma(gamma)
    f = model_f(s.w, s.x, g)
    alpha = sp.Matrix([sp.diff(f, xk) for xk in s.x])          # f is linear in x: alpha = grad_x f
    dalpha = alpha.jacobian(s.w)
    grad_f = sp.Matrix([sp.diff(f, wk) for wk in s.w])
    preds = sp.Matrix([model_f(s.w, s.X[i, :].T, g) for i in range(n)])
    J = preds.jacobian(s.w)
    loss = _loss(preds, s.y, n)
    grad = sp.Matrix([sp.diff(loss, wk) for wk in s.w])
    trace = sp.Add(*[sp.diff(grad[k], s.w[k]) for k in range(d)])
    return Derivation(s, g, f, alpha, dalpha, grad_f, preds, J, loss, grad, trace)


@lru_cache(maxsize=None)
def derive_hessian(d: int, n: int, gamma=None) -> sp.Matrix:
    """Full Hessian ``d^2 L_n / dw_j dw_k`` (d x d)."""
    D = derive(d, n, gamma)
    return D.grad.jacobian(D.sym.w)


@lru_cache(maxsize=None)
def derive_trace_gradient(d: int, n: int, gamma=None) -> sp.Matrix:
    """``grad_w tr Hess L_n(w)`` (d x 1), with ``X`` and ``y`` held fixed."""
    D = derive(d, n, gamma)
    return sp.Matrix([sp.diff(D.trace, wk) for wk in D.sym.w])


@lru_cache(maxsize=None)
def derive_alpha_inverse(d: int, gamma=None) -> tuple[sp.Matrix, sp.Matrix]:
    """``alpha^{-1}(a)``: since ``alpha(w)`` is parallel to ``w``, ``w = c a`` with ``c > 0``; ``c`` is
    solved from ``alpha(c a) = a`` (with the symbol ``gamma``; a number is substituted afterwards).
    Returns ``(a, w)`` (the symbols ``a`` and the expression)."""
    a = sp.Matrix(sp.symbols(f"a0:{d}", real=True))
    c = sp.Symbol("c", positive=True)
    D = derive(d, 1)
    lhs = D.alpha.subs({D.sym.w[k]: c * a[k] for k in range(d)})[0] / a[0]   # alpha(c a)_0 / a_0
    lhs = sp.powsimp(sp.simplify(lhs), force=True)
    sols = sp.solve(sp.Eq(lhs, 1), c)
    # keep the real positive root (checked at a sample point)
    probe = {**{a[k]: sp.Integer(k + 1) for k in range(d)}, GAMMA: sp.Integer(1)}
    good = [c_ for c_ in sols if sp.N(c_.subs(probe)).is_real and sp.N(c_.subs(probe)) > 0]
    if len(good) != 1:
        raise RuntimeError(f"alpha^-1: expected one positive root, got {sols}")
    w = (good[0] * a).subs(GAMMA, _gamma(gamma))
    return a, w


# ---------------------------------------------------------------------------------------------
# the reduction that proves identities in ||w|| (for every gamma)
# ---------------------------------------------------------------------------------------------
def _reduce_to_zero(expr: sp.Expr, S: sp.Expr, gamma=GAMMA) -> sp.Expr:
    r"""Reduce an expression built from ``S = ||w||^2`` (and ``S^{gamma/2}``, ``S^{1/2}``, ...) to a
    canonical polynomial remainder: 0 exactly when the expression vanishes identically.

    ``S`` is replaced by ``q^2`` (``q = ||w||``), every ``q^{c gamma + m}`` is split into
    ``P^c q^m`` (``P = q^gamma``, an independent symbol), the result is brought over a common
    denominator, and the numerator is reduced modulo ``q^2 - S`` (so only ``a_0 + a_1 q`` remains,
    expanded in the original symbols). A zero remainder proves the identity (for every ``gamma``).
    """
    q = sp.Dummy("q", positive=True)
    P = sp.Dummy("P", positive=True)
    e = expr.xreplace({S: q**2})         # q > 0, so (q^2)^(gamma/2) becomes q^gamma by itself

    def split(p):
        c = sp.expand(p.exp).coeff(gamma)
        rest = sp.expand(p.exp - c * gamma)
        if rest.has(gamma):
            raise RuntimeError(f"exponent not linear in gamma: {p.exp}")
        return P**c * q**rest

    if gamma.free_symbols:
        e = e.replace(lambda z: z.is_Pow and z.base == q and z.exp.has(gamma), split)
    leftover = [z for z in e.atoms(sp.Pow) if z.exp.has(gamma)]
    if leftover:
        raise RuntimeError(f"powers left with a symbolic exponent: {leftover[:3]}")
    num = sp.expand(sp.numer(sp.together(e)))
    if num == 0:
        return sp.Integer(0)
    # P may carry fractional exponents (P^(1/2)); treat each power of P as its own generator
    rem = sp.rem(sp.Poly(num, q), sp.Poly(q**2 - S, q))
    return sp.expand(rem.as_expr())
