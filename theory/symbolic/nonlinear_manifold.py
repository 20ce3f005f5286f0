r"""The Hessian trace on the manifold M of interpolating points, derived: ``h(r)`` with ``r = ||w||`` (and its check
in a general frame), the residual terms that vanish on M, the direction of the drift along M, and the Lagrange
condition of the min-norm problem (symbolic proofs at d = 3, n = 2). Part of
:mod:`lrdecay.theory.symbolic.nonlinear`, which re-exports every name.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from .nonlinear_model import _reduce_to_zero, derive, derive_trace_gradient, symbols

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
