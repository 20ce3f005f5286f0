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
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
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
# the trace on the manifold: h(r)
# ---------------------------------------------------------------------------------------------
#: symbols of the manifold trace: radius, ||X||_F^2, ||y||^2
R, FROB, YSQ = sp.symbols("r F Y", positive=True)


@dataclass(frozen=True, eq=False)
class ManifoldTrace:
    """``h`` and ``h'`` in the symbols ``r``, ``F = ||X||_F^2``, ``Y = ||y||^2``, ``gamma``.

    ``coef_x``, ``coef_y``: the coefficients found when collecting the trace at ``w = r e_1`` (on M)
    in the free entries ``x_ik`` (k >= 2) and ``y_i``; ``x1_of_y``: ``x_i1 = x1_of_y * y_i`` on M.
    """

    d: int
    n: int
    h: sp.Expr
    h_prime: sp.Expr
    coef_x: sp.Expr
    coef_y: sp.Expr
    x1_of_y: sp.Expr


@lru_cache(maxsize=None)
def derive_manifold_trace(d: int, n: int) -> ManifoldTrace:
    r"""Derive the Hessian trace on M as a function of ``r``, ``||X||_F^2``, ``||y||^2`` only.

    The trace is invariant under a joint rotation ``w -> Q w``, ``x_i -> Q x_i`` (``f`` is), so take
    ``w = r e_1``. On M, ``f(r e_1; x_i) = y_i`` is solved for ``x_i1``; substituted, the residual
    factors of the trace vanish and what is left must be a combination
    ``A(r) sum_{i, k>=2} x_ik^2 + B(r) sum_i y_i^2`` (checked: no other monomial appears, and the
    coefficients are the same within each group). With ``sum_{k>=2} x_ik^2 = ||X||_F^2 - sum_i x_i1^2``
    this is ``h(r; ||X||_F^2, ||y||^2)``. :func:`manifold_trace_identity` checks the result in a
    general frame, without the rotation argument.
    """
    if d < 2:
        raise ValueError("need d >= 2")
    D = derive(d, n)
    s = D.sym
    frame = {s.w[0]: R, **{s.w[k]: 0 for k in range(1, d)}}
    T = D.trace.subs(frame)
    sol = {}
    for i in range(n):
        roots = sp.solve(sp.Eq(D.preds[i].subs(frame), s.y[i]), s.X[i, 0])
        if len(roots) != 1:
            raise RuntimeError(f"constraint {i}: expected one root for x_{i}1, got {roots}")
        sol[s.X[i, 0]] = roots[0]
    E = sp.expand(sp.powsimp(sp.expand(T.subs(sol)), force=True))
    x_free = [s.X[i, k] for i in range(n) for k in range(1, d)]
    gens = x_free + list(s.y)
    poly = sp.Poly(E, *gens)
    cx, cy = {}, {}
    for mon, coef in poly.terms():
        if sorted(mon) != [0] * (len(gens) - 1) + [2]:
            raise RuntimeError(f"unexpected monomial {mon} in the trace on M")
        j = mon.index(2)
        (cx if j < len(x_free) else cy)[gens[j]] = sp.simplify(coef)
    A = set(cx.values())
    B = set(cy.values())
    if len(A) != 1 or len(B) != 1 or len(cx) != len(x_free) or len(cy) != n:
        raise RuntimeError(f"trace on M is not of the form A sum x^2 + B sum y^2: {cx}, {cy}")
    A, B = A.pop(), B.pop()
    ratios = {sp.simplify(sol[s.X[i, 0]] / s.y[i]) for i in range(n)}
    if len(ratios) != 1 or any(ratio.has(*s.y) for ratio in ratios):
        raise RuntimeError(f"x_i1 is not a common multiple of y_i on M: {sol}")
    c = ratios.pop()
    # sum_{i,k>=2} x_ik^2 = F - sum_i x_i1^2 = F - c^2 Y
    h = sp.expand(sp.powsimp(A * (FROB - c**2 * YSQ) + B * YSQ, force=True))
    h = sp.collect(h, [FROB, YSQ], sp.factor)
    return ManifoldTrace(d, n, h, sp.diff(h, R), A, B, c)


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


def manifold_trace_identity(d: int, n: int, h_expr: sp.Expr | None = None) -> sp.Expr:
    r"""``tr Hess L_n(w) - h(||w||)`` on M, in a general frame; 0 when the identity holds.

    M is reached by choosing the labels ``y := X alpha(w)`` (every point ``w`` is on the manifold of
    its own labels): the trace is derived with ``y`` free, then ``y`` substituted; ``h`` (from
    :func:`derive_manifold_trace`, derived at ``d' = n + 1``) is evaluated at ``r = ||w||``,
    ``F = ||X||_F^2``, ``Y = ||X alpha(w)||^2``. The difference is reduced by :func:`_reduce_to_zero`.
    ``h_expr`` replaces the derived ``h`` (a test feeds a wrong one to see the check fail).
    """
    D = derive(d, n)
    s = D.sym
    on_M = {s.y[i]: D.preds[i] for i in range(n)}
    h = derive_manifold_trace(n + 1, n).h if h_expr is None else h_expr
    F = sp.Add(*[e**2 for e in s.X])
    Y = sp.Add(*[p**2 for p in D.preds])
    diff = D.trace.xreplace(on_M) - h.xreplace({R: sp.sqrt(s.S), FROB: F, YSQ: Y})
    return _reduce_to_zero(diff, s.S)


def residual_terms_vanish_on_M(d: int, n: int) -> bool:
    r"""The trace splits as ``(1/n)(||J||_F^2 + sum_i res_i tr Hess f_i)`` and the residual part is
    zero on M (``y := X alpha(w)``); checked term by term with :func:`_reduce_to_zero`."""
    D = derive(d, n)
    s = D.sym
    Jf2 = sp.Add(*[e**2 for e in D.J])
    res_part = sp.Add(*[(D.preds[i] - s.y[i]) * sp.Add(*[sp.diff(D.preds[i], wk, 2) for wk in s.w])
                        for i in range(n)])
    split_ok = _reduce_to_zero(D.trace - (Jf2 + res_part) / n, s.S) == 0
    on_M = {s.y[i]: D.preds[i] for i in range(n)}
    return split_ok and _reduce_to_zero(res_part.xreplace(on_M), s.S) == 0


# ---------------------------------------------------------------------------------------------
# drift direction and Lagrange condition (symbolic proofs at d = 3, n = 2)
# ---------------------------------------------------------------------------------------------
def _cross(a: sp.Matrix, b: sp.Matrix) -> sp.Matrix:
    return sp.Matrix([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def drift_identity(d: int = 3, n: int = 2, h_expr: sp.Expr | None = None) -> sp.Expr:
    r"""``t . (grad tr Hess L_n - h'(||w||) w_hat)`` on M, where ``t = J_1 x J_2`` spans the tangent
    space (d = 3, n = 2). 0 means ``P_T grad tr = h'(r) P_T w_hat``: the tangential drift is radial.

    The gradient of the trace is derived with ``y`` fixed, then ``y := X alpha(w)`` is substituted.
    ``h_expr`` (default: the derived ``h``) lets a test feed a wrong ``h`` to see the check fail.
    """
    if (d, n) != (3, 2):
        raise ValueError("the cross-product tangent vector needs d = 3, n = 2")
    D = derive(d, n)
    s = D.sym
    gT = derive_trace_gradient(d, n)
    h = derive_manifold_trace(n + 1, n).h if h_expr is None else h_expr
    hp = sp.diff(h, R)
    on_M = {s.y[i]: D.preds[i] for i in range(n)}
    r = sp.sqrt(s.S)
    F = sp.Add(*[e**2 for e in s.X])
    Y = sp.Add(*[p**2 for p in D.preds])
    hp_w = hp.xreplace({R: r, FROB: F, YSQ: Y})
    t = _cross(D.J[0, :].T, D.J[1, :].T)
    v = gT.xreplace(on_M) - hp_w * s.w / r
    return _reduce_to_zero(t.dot(v), s.S)


@dataclass(frozen=True, eq=False)
class LagrangeSystem:
    """``lagrangian = ||w||^2/2 - sum_i lambda_i (f(w; x_i) - y_i)``; ``stationarity`` its w-gradient
    (d x 1), ``objective_grad`` = grad ``||w||^2/2``, ``constraint_grads`` (d x n, column i =
    grad ``f(w; x_i)``)."""

    lam: sp.Matrix
    lagrangian: sp.Expr
    stationarity: sp.Matrix
    objective_grad: sp.Matrix
    constraint_grads: sp.Matrix


@lru_cache(maxsize=None)
def lagrange_system(d: int, n: int, gamma=None) -> LagrangeSystem:
    D = derive(d, n, gamma)
    s = D.sym
    lam = sp.Matrix(sp.symbols(f"lambda0:{n}", real=True))
    obj = s.S / 2
    Lg = obj - sp.Add(*[lam[i] * (D.preds[i] - s.y[i]) for i in range(n)])
    stat = sp.Matrix([sp.diff(Lg, wk) for wk in s.w])
    og = sp.Matrix([sp.diff(obj, wk) for wk in s.w])
    cg = sp.Matrix([[sp.diff(D.preds[i], wk) for i in range(n)] for wk in s.w])
    # the stationarity condition is objective_grad - constraint_grads @ lambda (checked, not assumed)
    if any(sp.expand(e) != 0 for e in stat - (og - cg * lam)):
        raise RuntimeError("Lagrangian gradient is not linear in lambda as expected")
    return LagrangeSystem(lam, Lg, stat, og, cg)


def lagrange_rowspace_identity(d: int = 3, n: int = 2, point: str = "rowspace") -> sp.Expr:
    r"""``det[grad f_1; grad f_2; grad ||w||^2/2]`` at ``w = X^T c`` (d = 3, n = 2).

    0 means the objective gradient lies in the span of the constraint gradients: every point
    with ``w`` in the row space of ``X`` is a Lagrange point, for every ``gamma``. ``w_mn`` is such a
    point (``alpha_mn = X^+ y`` is in the row space and ``w_mn`` is parallel to it); on M it is the
    only one. ``point="generic"`` evaluates the determinant at ``w = X^T c + e`` with a free ``e``
    (nonzero: a control that the check discriminates).
    """
    if (d, n) != (3, 2):
        raise ValueError("the determinant test needs d = 3, n = 2")
    Ls = lagrange_system(d, n)
    s = symbols(d, n)
    c = sp.symbols(f"c0:{n}", real=True)
    wmap = {s.w[k]: sp.Add(*[c[i] * s.X[i, k] for i in range(n)]) for k in range(d)}
    if point == "generic":
        e = sp.Symbol("e", real=True)
        wmap[s.w[0]] = wmap[s.w[0]] + e
    elif point != "rowspace":
        raise ValueError(point)
    M = sp.Matrix.hstack(Ls.constraint_grads, Ls.objective_grad).T
    det = M.det(method="berkowitz")
    S_c = s.S.xreplace(wmap)
    return _reduce_to_zero(det.xreplace(wmap), S_c)


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
