r"""Symbolic checks (sympy) of Nakkiran (2020)'s convex example.

Everything here is *derived* from the definitions, never typed in:

* :func:`prop1_losses`: :math:`\hat L_n(\beta) = \frac1n\sum_i(\langle\beta,x_i\rangle - y_i)^2` for the
  coincident draw :math:`\{(e_1,\beta_1^*), (e_1,\beta_1^*), (e_2,\beta_2^*)\}` and
  :math:`L_{\mathcal D}(\beta) = \mathbb E_{x\sim U\{e_1,e_2\}}[(\langle\beta,x\rangle - y)^2]`, and their
  coefficients on :math:`(\beta_i - \beta_i^*)^2` (the paper's equation (1): 2/3, 1/3; equation (2): 1/2, 1/2);
* :func:`good_bad_table`: the points of the level set :math:`\hat L_n = \varepsilon` with one residual
  coordinate zero, and their test losses (paper: 0.75 ε and 1.5 ε);
* :func:`level_set_extremes`: min and max of :math:`L_{\mathcal D}` on :math:`\{\hat L_n = \varepsilon\}` by
  Lagrange multipliers (the paper's (3)-(4): :math:`\varepsilon\min_i\lambda_i/\gamma_i`,
  :math:`\varepsilon\max_i\lambda_i/\gamma_i`);
* :func:`gradient_flow_solution` / :func:`gradient_descent_solution`: ``dsolve`` / ``rsolve`` of
  :math:`\dot\delta = -\partial_\delta(\gamma\delta^2)` and :math:`\delta_{t+1} = \delta_t - \eta\,\partial_\delta(\gamma\delta_t^2)`,
  and of the 2-D flow :math:`\dot\beta = -\nabla\hat L_n(\beta)` from 0;
* :func:`prop1_limits`: with :math:`\beta^* = (b, b)`, the gradient-flow test loss at
  :math:`\hat L_n = \varepsilon` tends to :math:`\frac32\varepsilon` as :math:`b\to\infty`, and annealed GD
  (:math:`\eta = 1/\gamma_1`) ends at exactly :math:`\frac34\varepsilon`: ratio 2.

Normalization as in :mod:`lrdecay.theory.convex`: no factor 1/2 in either loss, so :math:`\nabla\hat L_n = 2S(\beta-\beta^*)`.
"""
from __future__ import annotations

import sympy as sp

__all__ = [
    "symbols",
    "prop1_losses",
    "residual_coefficients",
    "good_bad_table",
    "level_set_extremes",
    "gradient_flow_solution",
    "gradient_descent_solution",
    "prop1_flow_2d",
    "prop1_limits",
]


def symbols() -> dict:
    """The symbols used throughout (all real; eps, b, t, eta, gamma positive)."""
    b1, b2, s1, s2 = sp.symbols("beta1 beta2 beta1_star beta2_star", real=True)
    r1, r2 = sp.symbols("r1 r2", real=True)
    eps, b, t, eta, gam = sp.symbols("epsilon b t eta gamma", positive=True)
    d0 = sp.Symbol("delta0", real=True)
    return dict(beta1=b1, beta2=b2, beta1_star=s1, beta2_star=s2, r1=r1, r2=r2, eps=eps, b=b, t=t, eta=eta,
                gamma=gam, delta0=d0)


def _sq_loss(beta, beta_star, x):
    return (beta.dot(x) - beta_star.dot(x)) ** 2


def prop1_losses(draw=(0, 0, 1)) -> dict:
    r"""Train and test loss from their definitions.

    ``draw`` lists the sample points by coordinate index (default :math:`e_1, e_1, e_2`). Returns
    ``{"train": L_n, "test": L_D, "train_coeffs": (c1, c2), "test_coeffs": (d1, d2), "cross_terms": (..)}``
    where the coefficients are those of :math:`(\beta_1-\beta_1^*)^2` and :math:`(\beta_2-\beta_2^*)^2` and
    ``cross_terms`` the coefficients of :math:`(\beta_1-\beta_1^*)(\beta_2-\beta_2^*)` (both zero).
    """
    s = symbols()
    beta = sp.Matrix([s["beta1"], s["beta2"]])
    bstar = sp.Matrix([s["beta1_star"], s["beta2_star"]])
    e = [sp.Matrix([1, 0]), sp.Matrix([0, 1])]
    n = len(draw)
    train = sp.Rational(1, n) * sum(_sq_loss(beta, bstar, e[i]) for i in draw)
    # population: x uniform on {e1, e2}, y = <beta*, x>
    test = sum(sp.Rational(1, 2) * _sq_loss(beta, bstar, x) for x in e)
    tc, tx = residual_coefficients(train)
    dc, dx = residual_coefficients(test)
    return {"train": sp.expand(train), "test": sp.expand(test), "train_coeffs": tc, "test_coeffs": dc,
            "cross_terms": (tx, dx)}


def residual_coefficients(expr) -> tuple[tuple, sp.Expr]:
    r"""Write ``expr`` as a polynomial in the residuals :math:`r_i = \beta_i - \beta_i^*`; return the
    coefficients of :math:`r_1^2, r_2^2` and of :math:`r_1 r_2`."""
    s = symbols()
    sub = {s["beta1"]: s["beta1_star"] + s["r1"], s["beta2"]: s["beta2_star"] + s["r2"]}
    poly = sp.Poly(sp.expand(expr.subs(sub)), s["r1"], s["r2"])
    return (poly.coeff_monomial(s["r1"] ** 2), poly.coeff_monomial(s["r2"] ** 2)), poly.coeff_monomial(s["r1"] * s["r2"])


def _loss_in_residuals(expr):
    s = symbols()
    sub = {s["beta1"]: s["beta1_star"] + s["r1"], s["beta2"]: s["beta2_star"] + s["r2"]}
    return sp.expand(expr.subs(sub))


def good_bad_table(draw=(0, 0, 1)) -> dict:
    r"""The "good" and "bad" rows: residual :math:`(r, 0)` resp. :math:`(0, r)`, :math:`r > 0`, solved from
    :math:`\hat L_n = \varepsilon`; returns ``{"good": {"residual", "train", "test"}, "bad": {...}}``."""
    s = symbols()
    L = prop1_losses(draw)
    tr, te = _loss_in_residuals(L["train"]), _loss_in_residuals(L["test"])
    r = sp.Symbol("r", positive=True)
    out = {}
    for name, res in (("good", (r, 0)), ("bad", (0, r))):
        sub = {s["r1"]: res[0], s["r2"]: res[1]}
        sol = sp.solve(sp.Eq(tr.subs(sub), s["eps"]), r)
        if len(sol) != 1:
            raise RuntimeError(f"expected one positive residual for the {name} row, got {sol}")
        sub_val = {k: (v.subs(r, sol[0]) if isinstance(v, sp.Basic) else v) for k, v in sub.items()}
        out[name] = {
            "residual": (sp.sympify(sub_val[s["r1"]]), sp.sympify(sub_val[s["r2"]])),
            "train": sp.simplify(tr.subs(sub_val)),
            "test": sp.simplify(te.subs(sub_val)),
        }
    return out


def level_set_extremes(train_coeffs=None, test_coeffs=None) -> tuple[sp.Expr, sp.Expr]:
    r"""Min and max of :math:`L_{\mathcal D} = \sum\lambda_i r_i^2` on :math:`\sum\gamma_i r_i^2 = \varepsilon` by
    Lagrange multipliers (all stationary points, then min/max of their values). Defaults: the
    coefficients derived by :func:`prop1_losses`."""
    s = symbols()
    if train_coeffs is None or test_coeffs is None:
        L = prop1_losses()
        train_coeffs, test_coeffs = L["train_coeffs"], L["test_coeffs"]
    r1, r2, mu = s["r1"], s["r2"], sp.Symbol("mu", real=True)
    g = train_coeffs[0] * r1 ** 2 + train_coeffs[1] * r2 ** 2 - s["eps"]
    f = test_coeffs[0] * r1 ** 2 + test_coeffs[1] * r2 ** 2
    lag = f - mu * g
    sols = sp.solve([sp.diff(lag, r1), sp.diff(lag, r2), g], [r1, r2, mu], dict=True)
    vals = sorted({sp.simplify(f.subs(sol)) for sol in sols}, key=lambda v: float(v.subs(s["eps"], 1)))
    return vals[0], vals[-1]


def gradient_flow_solution() -> sp.Expr:
    r"""Solve :math:`\dot\delta = -\frac{d}{d\delta}(\gamma\delta^2)`, :math:`\delta(0) = \delta_0` with ``dsolve``."""
    s = symbols()
    t, g, d0 = s["t"], s["gamma"], s["delta0"]
    f = sp.Function("delta")
    x = sp.Symbol("x", real=True)
    rhs = -sp.diff(g * x ** 2, x).subs(x, f(t))
    sol = sp.dsolve(sp.Eq(f(t).diff(t), rhs), f(t), ics={f(0): d0})
    return sp.simplify(sol.rhs)


def gradient_descent_solution() -> tuple[sp.Expr, sp.Expr]:
    r"""The GD step factor :math:`\delta_{t+1}/\delta_t` from :math:`\delta - \eta\frac{d}{d\delta}(\gamma\delta^2)`,
    and the solution of that recursion with ``rsolve``, :math:`\delta_0(1-2\eta\gamma)^t`."""
    s = symbols()
    g, eta, d0 = s["gamma"], s["eta"], s["delta0"]
    x = sp.Symbol("x", real=True)
    step = x - eta * sp.diff(g * x ** 2, x)
    factor = sp.simplify(step / x)
    k = sp.Symbol("k", integer=True, nonnegative=True)
    f = sp.Function("delta")
    sol = sp.rsolve(f(k + 1) - step.subs(x, f(k)), f(k), {f(0): d0})
    return factor, sp.simplify(sol)


def prop1_flow_2d(draw=(0, 0, 1)) -> tuple[sp.Expr, sp.Expr]:
    r"""Gradient flow :math:`\dot\beta = -\nabla\hat L_n(\beta)`, :math:`\beta(0) = 0`, in the original
    coordinates, solved by ``dsolve`` (returns :math:`\beta_1(t), \beta_2(t)`)."""
    s = symbols()
    L = prop1_losses(draw)["train"]
    t = s["t"]
    f1, f2 = sp.Function("b1"), sp.Function("b2")
    g1 = sp.diff(L, s["beta1"]).subs({s["beta1"]: f1(t), s["beta2"]: f2(t)})
    g2 = sp.diff(L, s["beta2"]).subs({s["beta1"]: f1(t), s["beta2"]: f2(t)})
    sol = sp.dsolve([sp.Eq(f1(t).diff(t), -g1), sp.Eq(f2(t).diff(t), -g2)], [f1(t), f2(t)],
                    ics={f1(0): 0, f2(0): 0})
    out = {eq.lhs: sp.simplify(eq.rhs) for eq in sol}
    return out[f1(t)], out[f2(t)]


def prop1_limits() -> dict:
    r"""Proposition 1 in closed form with :math:`\beta^* = (b, b)`, start 0, draw :math:`\{e_1,e_1,e_2\}`.

    Gradient flow: from :func:`prop1_flow_2d`, the residuals satisfy :math:`r_1 = -r_2^2/b`; with
    :math:`u = r_2^2` the stop :math:`\hat L_n = \varepsilon` is a quadratic in :math:`u`, solved for its positive
    root; returns the test loss there, its limit as :math:`b\to\infty`, and the ratio limit.
    Annealed GD: the step factors :math:`1 - 2\eta\gamma_i` at :math:`\eta = 1/\gamma_1` (from
    :func:`gradient_descent_solution`), then gradient flow on the remaining coordinate.
    """
    s = symbols()
    b, eps, t = s["b"], s["eps"], s["t"]
    L = prop1_losses()
    c1, c2 = L["train_coeffs"]
    d1, d2 = L["test_coeffs"]
    beta1_t, beta2_t = prop1_flow_2d()
    sub_star = {s["beta1_star"]: b, s["beta2_star"]: b}
    r1_t = sp.simplify(beta1_t.subs(sub_star) - b)
    r2_t = sp.simplify(beta2_t.subs(sub_star) - b)
    # eliminate t: r1 = -r2^2 / b along the path (checked by the caller via 'path_relation')
    path_relation = sp.simplify(r1_t + r2_t ** 2 / b)
    u = sp.Symbol("u", positive=True)  # u = r2^2
    train_u = c1 * (u ** 2 / b ** 2) + c2 * u
    roots = [rt for rt in sp.solve(sp.Eq(train_u, eps), u) if rt.is_positive is not False]
    roots = [rt for rt in roots if sp.N(rt.subs({b: 10, eps: sp.Rational(1, 10)})) > 0]
    if len(roots) != 1:
        raise RuntimeError(f"expected one positive root for u, got {roots}")
    u_T = roots[0]
    test_gf = sp.simplify(d1 * u_T ** 2 / b ** 2 + d2 * u_T)
    limit_gf = sp.limit(test_gf / eps, b, sp.oo)

    factor, _ = gradient_descent_solution()
    gam1, gam2 = max(c1, c2), min(c1, c2)
    eta = 1 / gam1
    f_top = sp.simplify(factor.subs({s["eta"]: eta, s["gamma"]: gam1}))
    f_flat = sp.simplify(factor.subs({s["eta"]: eta, s["gamma"]: gam2}))
    # after >= 1 step the flat coordinate is f_flat^K * r(0); with f_flat = 0 the final flow runs on the
    # top coordinate alone until gam1 r1^2 = eps
    r = sp.Symbol("r", positive=True)
    r_top = sp.solve(sp.Eq(gam1 * r ** 2, eps), r)[0]
    lam_top = d1 if c1 == gam1 else d2
    test_agd = sp.simplify(lam_top * r_top ** 2) if f_flat == 0 else None
    ratio_limit = sp.simplify(limit_gf * eps / test_agd) if test_agd is not None else None
    return {"r1_t": r1_t, "r2_t": r2_t, "path_relation": path_relation, "u_T": u_T, "test_gf": test_gf,
            "test_gf_limit_over_eps": limit_gf, "eta": eta, "factor_top": f_top, "factor_flat": f_flat,
            "test_agd": test_agd, "ratio_limit": ratio_limit}
