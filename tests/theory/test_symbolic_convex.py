"""Tests of lrdecay.theory.symbolic.convex: sympy derivations against the paper's published values
(Nakkiran 2020, equations (1)-(4), the good/bad table, the gradient-flow display, Proposition 1) and
against the numerical closed forms of lrdecay.theory.convex (two independent routes to the same numbers)."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from lrdecay.theory import convex as cv
from lrdecay.theory.symbolic import convex as cs

S_ = cs.symbols()
EPS = S_["eps"]


def test_coincident_draw_losses_are_the_papers_equations_1_and_2():
    L = cs.prop1_losses((0, 0, 1))
    # published: L_n = 2/3 (b1 - b1*)^2 + 1/3 (b2 - b2*)^2,  L_D = 1/2 (..)^2 + 1/2 (..)^2
    assert L["train_coeffs"] == (sp.Rational(2, 3), sp.Rational(1, 3))
    assert L["test_coeffs"] == (sp.Rational(1, 2), sp.Rational(1, 2))
    assert L["cross_terms"] == (0, 0)
    # the other 2-1 draw swaps the coefficients; the all-same draw is one-dimensional
    assert cs.prop1_losses((1, 0, 1))["train_coeffs"] == (sp.Rational(1, 3), sp.Rational(2, 3))
    assert cs.prop1_losses((0, 0, 0))["train_coeffs"] == (1, 0)


def test_symbolic_losses_agree_with_numerical_losses():
    rng = np.random.default_rng(0)
    L = cs.prop1_losses((0, 0, 1))
    S = cv.prop1_sample_covariance(np.array([0, 0, 1]))
    for _ in range(5):
        b, bs = rng.standard_normal(2), rng.standard_normal(2)
        sub = {S_["beta1"]: b[0], S_["beta2"]: b[1], S_["beta1_star"]: bs[0], S_["beta2_star"]: bs[1]}
        assert float(L["train"].subs(sub)) == pytest.approx(cv.train_loss(b, S, bs), rel=1e-12)
        assert float(L["test"].subs(sub)) == pytest.approx(cv.population_loss(b, cv.PROP1_SIGMA, bs), rel=1e-12)


def test_good_bad_table():
    t = cs.good_bad_table()
    # published table: Good [sqrt(3 eps/2), 0] -> train eps, test 0.75 eps; Bad [0, sqrt(3 eps)] -> eps, 1.5 eps
    assert sp.simplify(t["good"]["residual"][0] - sp.sqrt(3 * EPS / 2)) == 0
    assert t["good"]["residual"][1] == 0
    assert t["bad"]["residual"][0] == 0
    assert sp.simplify(t["bad"]["residual"][1] - sp.sqrt(3 * EPS)) == 0
    assert sp.simplify(t["good"]["train"] - EPS) == 0 and sp.simplify(t["bad"]["train"] - EPS) == 0
    assert sp.simplify(t["good"]["test"] - sp.Rational(3, 4) * EPS) == 0
    assert sp.simplify(t["bad"]["test"] - sp.Rational(3, 2) * EPS) == 0


def test_level_set_extremes_are_eps_min_and_max_lambda_over_gamma():
    lo, hi = cs.level_set_extremes()
    # paper (3)-(4): eps min_i lambda_i/gamma_i and eps max_i lambda_i/gamma_i, lambda = (1/2, 1/2),
    # gamma = (2/3, 1/3)
    ratios = [sp.Rational(1, 2) / sp.Rational(2, 3), sp.Rational(1, 2) / sp.Rational(1, 3)]
    assert sp.simplify(lo - EPS * min(ratios)) == 0
    assert sp.simplify(hi - EPS * max(ratios)) == 0
    # a generic 2-D instance
    lo, hi = cs.level_set_extremes((sp.Rational(3, 2), sp.Rational(1, 5)), (sp.Rational(1, 3), 2))
    r = [sp.Rational(1, 3) / sp.Rational(3, 2), 2 / sp.Rational(1, 5)]
    assert sp.simplify(lo - EPS * min(r)) == 0 and sp.simplify(hi - EPS * max(r)) == 0


def test_gradient_flow_closed_form():
    sol = cs.gradient_flow_solution()
    t, g, d0 = S_["t"], S_["gamma"], S_["delta0"]
    # it solves d delta/dt = -2 gamma delta with delta(0) = delta0 (checked by substitution) ...
    assert sp.simplify(sp.diff(sol, t) + 2 * g * sol) == 0
    assert sp.simplify(sol.subs(t, 0) - d0) == 0
    # ... and equals the numerical closed form
    for gv, dv, tv in [(0.7, 1.3, 0.4), (2.0, -3.0, 1.1), (0.05, 0.2, 9.0)]:
        val = float(sol.subs({g: gv, d0: dv, t: tv}))
        assert val == pytest.approx(float(cv.gf_delta(np.array([gv]), np.array([dv]), tv)[0]), rel=1e-13)


def test_gradient_flow_in_original_coordinates_is_the_papers_display():
    b1, b2 = cs.prop1_flow_2d()
    t = S_["t"]
    s1, s2 = S_["beta1_star"], S_["beta2_star"]
    # paper: d/dt (beta - beta*) = -[4/3 (b1 - b1*), 2/3 (b2 - b2*)]
    assert sp.simplify(sp.diff(b1, t) + sp.Rational(4, 3) * (b1 - s1)) == 0
    assert sp.simplify(sp.diff(b2, t) + sp.Rational(2, 3) * (b2 - s2)) == 0
    assert b1.subs(t, 0) == 0 and b2.subs(t, 0) == 0
    # against the numerical eigen-coordinate closed form
    S = cv.prop1_sample_covariance(np.array([0, 0, 1]))
    basis = cv.simultaneous_eigenbasis(cv.PROP1_SIGMA, S)
    bs = np.array([1.7, -0.6])
    for tv in (0.3, 2.0):
        num = basis.from_eigen(cv.gf_delta(basis.gam, basis.to_eigen(np.zeros(2), bs), tv), bs)
        sym = [float(e.subs({s1: bs[0], s2: bs[1], t: tv})) for e in (b1, b2)]
        np.testing.assert_allclose(sym, num, rtol=1e-12)


def test_gradient_descent_closed_form():
    factor, sol = cs.gradient_descent_solution()
    g, eta, d0 = S_["gamma"], S_["eta"], S_["delta0"]
    assert sp.simplify(factor - (1 - 2 * eta * g)) == 0  # the paper: delta(t+1) = (1 - 2 eta gamma) delta(t)
    k = [s for s in sol.free_symbols if s.name == "k"][0]
    assert sp.simplify(sp.powsimp(sol.subs(k, k + 1) / sol, force=True) - factor) == 0  # the recursion
    assert sp.simplify(sol.subs(k, 0) - d0) == 0
    for kv in (0, 1, 5):
        val = float(sol.subs({g: 0.3, eta: 1.1, d0: 2.5, k: kv}))
        assert val == pytest.approx(float(cv.gd_delta(np.array([0.3]), np.array([2.5]), 1.1, kv)[0]), rel=1e-13)


def test_proposition_1_limits():
    lim = cs.prop1_limits()
    assert lim["path_relation"] == 0
    assert lim["eta"] == sp.Rational(3, 2)  # 1/gamma_1 with gamma_1 = 2/3
    assert lim["factor_top"] == -1  # the sharp coordinate oscillates
    assert lim["factor_flat"] == 0  # the flat one is solved in one step
    assert lim["test_gf_limit_over_eps"] == sp.Rational(3, 2)  # Proposition 1: 1.5 eps (1 - alpha) -> 1.5 eps
    assert sp.simplify(lim["test_agd"] - sp.Rational(3, 4) * EPS) == 0  # 0.75 eps
    assert lim["ratio_limit"] == 2  # the factor 2
    # the finite-b gradient-flow test loss sits between the two table values
    for bv in (1, 10, 1000):
        v = lim["test_gf"].subs({S_["b"]: bv, EPS: sp.Rational(1, 10)})
        assert sp.Rational(3, 40) < v < sp.Rational(3, 20)


def test_symbolic_and_numerical_proposition_1_agree():
    lim = cs.prop1_limits()
    S = cv.prop1_sample_covariance(np.array([0, 0, 1]))
    for alpha in (0.5, 0.01):
        bs = cv.prop1_beta_star(alpha)
        r = cv.lemma2(cv.PROP1_SIGMA, S, bs, np.zeros(2), eps=0.1, alpha=alpha, K=2, n_small=1, numerical=True)
        sym = float(sp.N(lim["test_gf"].subs({S_["b"]: sp.Float(bs[0], 30), EPS: sp.Rational(1, 10)}), 30))
        assert r.test_slow == pytest.approx(sym, rel=1e-9)
        assert cv.population_loss(r.beta_slow_num, cv.PROP1_SIGMA, bs) == pytest.approx(sym, rel=1e-7)
        assert r.test_fast == pytest.approx(0.075, rel=1e-9)
