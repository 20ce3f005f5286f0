"""Tests of lrdecay.theory.convex (Nakkiran 2020: closed forms, numerical flows and Lemma 2 in general).

Oracles: instances are built from known eigen-data (so lambda, gamma, the conditions and the bounds are
computed here from the construction, not read back from the code); the matrix exponential for gradient
flow; direct iteration in the original coordinates for gradient descent; exact expectations over
discrete distributions for the population loss; finite differences for the gradient; a separate
numerical integration (lrdecay.theory.flow) for the stopped flows; published facts (P = 3/4, factor 2,
Clopper-Pearson values); the sympy closed form of Proposition 1 (lrdecay.theory.symbolic.convex).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.linalg import expm

from lrdecay.theory import convex as cv

RTOL = 1e-9


# --------------------------------------------------------------------------------------------------
# helpers: instances built from known eigen-data
# --------------------------------------------------------------------------------------------------

def _orth(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _instance(rng, d, *, gap=1.15):
    """gamma strictly decreasing with ratio >= gap between neighbours, lambda in [0.2, 2]."""
    U = _orth(rng, d)
    ratios = gap + rng.uniform(0, 1.5, size=d - 1)
    gam = 2.0 / np.cumprod(np.r_[1.0, ratios])
    lam = rng.uniform(0.2, 2.0, size=d)
    return U, lam, gam, U @ np.diag(lam) @ U.T, U @ np.diag(gam) @ U.T


def _conditions(lam, gam, delta0, eps, n_small):
    """Lemma 2's condition values computed from the construction (gamma descending)."""
    d = len(gam)
    k = d - n_small
    w = gam * delta0 ** 2
    rho = gam[k - 1] / gam[k] - 1
    cond1 = w[0]
    m = np.min(w[k:])
    cond2 = np.sum(w[:k]) * eps ** rho / (n_small * m) ** (1 + rho)
    return cond1, cond2, rho


# --------------------------------------------------------------------------------------------------
# simultaneous diagonalization
# --------------------------------------------------------------------------------------------------

def test_eigenbasis_recovers_constructed_spectra():
    rng = np.random.default_rng(1)
    for d in (2, 3, 5):
        U, lam, gam, Sig, S = _instance(rng, d)
        b = cv.simultaneous_eigenbasis(Sig, S)
        np.testing.assert_allclose(b.gam, gam, rtol=1e-12)
        np.testing.assert_allclose(b.lam, lam, rtol=1e-11)
        np.testing.assert_allclose(b.U.T @ Sig @ b.U, np.diag(lam), atol=1e-12)
        np.testing.assert_allclose(b.U.T @ S @ b.U, np.diag(gam), atol=1e-12)


def test_eigenbasis_with_repeated_sample_eigenvalue():
    # S has a 2-D eigenspace in which Sigma is not diagonal in the standard basis
    rng = np.random.default_rng(2)
    U = _orth(rng, 3)
    gam = np.array([1.0, 0.4, 0.4])
    lam = np.array([0.7, 1.3, 0.2])
    Sig, S = U @ np.diag(lam) @ U.T, U @ np.diag(gam) @ U.T
    b = cv.simultaneous_eigenbasis(Sig, S)
    np.testing.assert_allclose(b.U.T @ Sig @ b.U, np.diag(b.lam), atol=1e-12)
    np.testing.assert_allclose(b.U.T @ S @ b.U, np.diag(b.gam), atol=1e-12)
    np.testing.assert_allclose(np.sort(b.lam), np.sort(lam), rtol=1e-12)
    np.testing.assert_allclose(b.gam, gam, rtol=1e-12)


def test_non_commuting_pair_raises():
    Sig = np.array([[1.0, 0.3], [0.3, 1.0]])
    S = np.diag([1.0, 0.5])
    assert np.linalg.norm(Sig @ S - S @ Sig) > 0.1  # oracle: they do not commute
    with pytest.raises(ValueError, match=r"Sigma and S are not simultaneously diagonalizable.*accepted range"):
        cv.simultaneous_eigenbasis(Sig, S)
    with pytest.raises(ValueError, match="not simultaneously diagonalizable"):
        cv.lemma2(Sig, S, np.ones(2), eps=0.1, alpha=0.5, K=1, numerical=False)


# --------------------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------------------

def test_population_loss_equals_expectation_over_a_discrete_distribution():
    rng = np.random.default_rng(3)
    # the paper's distribution: x uniform on {e1, e2}
    bstar, beta = rng.standard_normal(2), rng.standard_normal(2)
    expect = np.mean([(beta @ x - bstar @ x) ** 2 for x in np.eye(2)])
    assert cv.population_loss(beta, cv.PROP1_SIGMA, bstar) == pytest.approx(expect, rel=1e-14)
    # general Sigma: x = +-sqrt(d lambda_j) u_j, uniform over 2d points, has E[x x^T] = Sigma
    d = 4
    U, lam, gam, Sig, S = _instance(rng, d)
    pts = [s * math.sqrt(d * lam[j]) * U[:, j] for j in range(d) for s in (1, -1)]
    bstar, beta = rng.standard_normal(d), rng.standard_normal(d)
    expect = np.mean([(beta @ x - bstar @ x) ** 2 for x in pts])
    assert cv.population_loss(beta, Sig, bstar) == pytest.approx(expect, rel=1e-12)


def test_train_loss_and_gradient():
    rng = np.random.default_rng(4)
    n, d = 7, 3
    X = rng.standard_normal((n, d))
    bstar, beta = rng.standard_normal(d), rng.standard_normal(d)
    y = X @ bstar
    S = cv.sample_covariance(X)
    assert cv.train_loss(beta, S, bstar) == pytest.approx(np.mean((X @ beta - y) ** 2), rel=1e-12)
    h = 1e-6
    fd = np.array([(cv.train_loss(beta + h * e, S, bstar) - cv.train_loss(beta - h * e, S, bstar)) / (2 * h)
                   for e in np.eye(d)])
    np.testing.assert_allclose(cv.train_grad(beta, S, bstar), fd, rtol=1e-7, atol=1e-9)


# --------------------------------------------------------------------------------------------------
# gradient flow and gradient descent closed forms
# --------------------------------------------------------------------------------------------------

def test_gradient_flow_closed_form_matches_matrix_exponential():
    rng = np.random.default_rng(5)
    U, lam, gam, Sig, S = _instance(rng, 4)
    bstar, beta0 = rng.standard_normal(4), rng.standard_normal(4)
    b = cv.simultaneous_eigenbasis(Sig, S)
    delta0 = b.to_eigen(beta0, bstar)
    ts = np.array([0.0, 0.3, 1.7, 5.0])
    got = b.from_eigen(cv.gf_delta(b.gam, delta0, ts), bstar)
    for t, g in zip(ts, got):
        want = bstar + expm(-2 * S * t) @ (beta0 - bstar)  # d beta/dt = -2 S (beta - beta*)
        np.testing.assert_allclose(g, want, rtol=1e-11, atol=1e-13)


def test_stopping_time_lands_on_the_level_set():
    rng = np.random.default_rng(6)
    for _ in range(20):
        d = int(rng.integers(2, 6))
        U, lam, gam, Sig, S = _instance(rng, d)
        delta0 = rng.standard_normal(d) * 10 ** rng.uniform(0, 3)
        eps = 10 ** rng.uniform(-4, 0) * float(gam @ delta0 ** 2)
        T = cv.gf_stopping_time(gam, delta0, eps)
        loss_T = float(gam @ (delta0 * np.exp(-2 * gam * T)) ** 2)
        assert loss_T == pytest.approx(eps, rel=1e-11)
        assert float(gam @ (delta0 * np.exp(-2 * gam * T * (1 - 1e-6))) ** 2) > eps
    assert cv.gf_stopping_time(np.array([1.0, 0.5]), np.array([0.1, 0.1]), 1.0) == 0.0  # already below eps


def test_gradient_descent_closed_form_matches_iteration():
    rng = np.random.default_rng(7)
    U, lam, gam, Sig, S = _instance(rng, 3)
    bstar, beta0 = rng.standard_normal(3), rng.standard_normal(3)
    b = cv.simultaneous_eigenbasis(Sig, S)
    eta = 1.0 / gam[0]
    beta = beta0.copy()
    for k in range(12):
        want = beta
        got = b.from_eigen(cv.gd_delta(b.gam, b.to_eigen(beta0, bstar), eta, k), bstar)
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12)
        beta = beta - eta * 2 * S @ (beta - bstar)
    # eta = 1/gamma_1: the top coordinate oscillates, delta_1(k) = (-1)^k delta_1(0) (the paper's proof)
    d0 = b.to_eigen(beta0, bstar)
    for k in range(6):
        assert cv.gd_delta(b.gam, d0, eta, k)[0] == pytest.approx((-1) ** k * d0[0], rel=1e-12)


def test_closed_form_and_numerical_integration_agree():
    rng = np.random.default_rng(8)
    for _ in range(4):
        d = int(rng.integers(2, 5))
        U, lam, gam, Sig, S = _instance(rng, d)
        bstar = rng.standard_normal(d) * 5
        r = cv.lemma2(Sig, S, bstar, np.zeros(d), eps=0.05, alpha=0.5, K=int(rng.integers(0, 8)), n_small=1)
        assert r.numerical_status == "reached_eps/reached_eps"
        assert r.slow_discrepancy < 1e-8 and r.fast_discrepancy < 1e-8
        assert r.T_slow_num == pytest.approx(r.T_slow, rel=1e-7)
        assert r.T_fast_num == pytest.approx(r.T_fast, rel=1e-7, abs=1e-9)
        np.testing.assert_allclose(r.extra["gd_path_num"], r.gd_path, rtol=1e-10, atol=1e-10)
        for beta in (r.beta_slow, r.beta_slow_num, r.beta_fast, r.beta_fast_num):
            assert cv.train_loss(beta, S, bstar) == pytest.approx(0.05, rel=1e-7)


# --------------------------------------------------------------------------------------------------
# Lemma 2: bounds on random instances, the role of the conditions, tightness
# --------------------------------------------------------------------------------------------------

def test_lemma2_bounds_hold_on_random_instances_satisfying_the_conditions():
    rng = np.random.default_rng(9)
    kept = 0
    for _ in range(400):
        d = int(rng.integers(2, 6))
        U, lam, gam, Sig, S = _instance(rng, d)
        n_small = int(rng.integers(1, d))
        bstar = rng.standard_normal(d)
        delta0 = rng.standard_normal(d) * 10 ** rng.uniform(0, 4)
        beta0 = bstar + U @ delta0
        eps = 10 ** rng.uniform(-3, 0)
        alpha = rng.uniform(0.05, 0.9)
        K = int(rng.integers(0, 30))
        c1, c2, rho = _conditions(lam, gam, delta0, eps, n_small)
        r = cv.lemma2(Sig, S, bstar, beta0, eps=eps, alpha=alpha, K=K, n_small=n_small, numerical=False)
        assert r.cond1_value == pytest.approx(c1, rel=1e-9)
        assert r.cond2_value == pytest.approx(c2, rel=1e-7)
        assert r.rho == pytest.approx(rho, rel=1e-9)
        if not (c1 > eps and c2 <= alpha):
            continue
        kept += 1
        k = d - n_small
        bound_slow = eps * (1 - alpha) * np.min(lam[k:] / gam[k:])
        c = np.max((1 - 2 * gam[1:] / gam[0]) ** 2)
        bound_fast = eps * lam[0] / gam[0] + c ** K * np.sum(lam[1:] * delta0[1:] ** 2)
        assert r.test_slow >= bound_slow * (1 - RTOL)
        assert r.test_fast <= bound_fast * (1 + RTOL)
        assert r.bound_slow == pytest.approx(bound_slow, rel=1e-9)
        assert r.bound_fast == pytest.approx(bound_fast, rel=1e-7)
    assert kept >= 100


def test_gradient_flow_bound_can_fail_when_condition_2_is_violated():
    # the small-gamma coordinate starts tiny, so at the stop most of the train loss sits on the
    # sharp coordinate: L_D ~ eps lambda_1/gamma_1 = eps < eps (1 - alpha) lambda_2/gamma_2 = 2 eps (1 - alpha)
    Sig, S = np.eye(2), np.diag([1.0, 0.5])
    bstar, beta0 = np.zeros(2), np.array([10.0, 0.01])
    eps, alpha = 0.01, 0.1
    r = cv.lemma2(Sig, S, bstar, beta0, eps=eps, alpha=alpha, K=0, n_small=1, numerical=False)
    assert r.cond1 and not r.cond2
    assert r.test_slow < eps * (1 - alpha) * 2.0
    assert not r.slow_bound_holds


def test_gradient_flow_bound_becomes_tight_as_alpha_to_zero():
    # |S| = 1: L_D(slow) <= eps (lam_d/gam_d) + alpha eps max_{Sbar} lam/gam, so
    # L_D(slow)/bound_slow <= (1 + alpha M)/(1 - alpha), M = max_{Sbar}(lam/gam) / (lam_d/gam_d)
    rng = np.random.default_rng(10)
    U, lam, gam, Sig, S = _instance(rng, 3, gap=1.3)
    u = rng.standard_normal(3)
    eps = 0.1
    _, c2_unit, rho = _conditions(lam, gam, u, eps, 1)
    M = np.max(lam[:2] / gam[:2]) / (lam[2] / gam[2])
    prev = np.inf
    for alpha in (0.3, 0.1, 0.01, 1e-3, 1e-4):
        s = 1.01 * (c2_unit / alpha) ** (1 / (2 * rho))  # condition 2 scales as s^(-2 rho)
        r = cv.lemma2(Sig, S, np.zeros(3), U @ (s * u), eps=eps, alpha=alpha, K=3, n_small=1, numerical=False)
        assert r.conditions_hold
        q = r.test_slow / r.bound_slow
        assert 1 - RTOL <= q <= (1 + alpha * M) / (1 - alpha) * (1 + RTOL)
        assert q < prev
        prev = q
    assert prev - 1 < 5e-4


def test_annealed_gd_bound_becomes_tight_as_K_grows():
    rng = np.random.default_rng(11)
    U, lam, gam, Sig, S = _instance(rng, 3, gap=1.3)
    delta0 = np.array([30.0, -20.0, 25.0])
    eps = 0.1
    c = np.max((1 - 2 * gam[1:] / gam[0]) ** 2)
    main = eps * lam[0] / gam[0]
    prev = np.inf
    for K in (0, 2, 5, 10, 20, 40, 80):
        r = cv.lemma2(Sig, S, np.zeros(3), U @ delta0, eps=eps, alpha=0.5, K=K, n_small=1, numerical=(K == 40))
        tau = c ** K * np.sum(lam[1:] * delta0[1:] ** 2)
        excess = r.test_fast - main
        assert excess <= tau * (1 + RTOL) + 1e-15
        if K >= 10 and prev > 1e-12:  # decreasing until it reaches rounding level
            assert abs(excess) < prev
        prev = abs(excess)
        if K == 40:  # the numerical integration agrees
            assert cv.population_loss(r.beta_fast_num, Sig, np.zeros(3)) == pytest.approx(r.test_fast, rel=1e-7)
    assert r.test_fast / main == pytest.approx(1.0, abs=1e-10)


# --------------------------------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------------------------------

_SIG, _S, _B = np.eye(2), np.diag([2 / 3, 1 / 3]), np.ones(2)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(eps=0.0), r"eps must be a finite number > 0"),
    (dict(eps=-1.0), r"eps must be a finite number > 0"),
    (dict(eps=float("nan")), r"eps must be a finite number > 0"),
    (dict(eta=0.0), r"eta must be a finite number > 0"),
    (dict(eta=-0.5), r"eta must be a finite number > 0"),
    (dict(alpha=0.0), r"alpha must be a number in the open interval \(0, 1\)"),
    (dict(alpha=1.0), r"alpha must be a number in the open interval \(0, 1\)"),
    (dict(K=-1), r"K must be an integer >= 0"),
    (dict(K=1.5), r"K must be an integer >= 0"),
    (dict(n_small=0), r"n_small must be an integer in \[1, 1\]"),
    (dict(n_small=2), r"n_small must be an integer in \[1, 1\]"),
    (dict(beta_star=np.ones(3)), r"beta_star must be a 1-D array of shape \(2,\)"),
    (dict(beta0=np.ones((2, 1))), r"beta0 must be a 1-D array of shape \(2,\)"),
    (dict(Sigma=np.ones((2, 3))), r"Sigma must be a square matrix"),
    (dict(S=np.eye(3)), r"S must have shape \(2, 2\)"),
    (dict(Sigma=np.diag([1.0, 0.0])), r"Sigma must be positive definite"),
    (dict(S=np.array([[1.0, 0.2], [0.0, 1.0]])), r"S must be symmetric"),
    (dict(S=np.diag([1.0, -0.1])), r"S must be positive semidefinite"),
])
def test_bad_inputs_name_the_parameter_and_range(kwargs, pattern):
    args = dict(Sigma=_SIG, S=_S, beta_star=_B, beta0=None, eps=0.1, alpha=0.5, K=1, n_small=None, numerical=False)
    args.update(kwargs)
    Sigma, S, bstar, beta0 = args.pop("Sigma"), args.pop("S"), args.pop("beta_star"), args.pop("beta0")
    with pytest.raises(ValueError, match=pattern):
        cv.lemma2(Sigma, S, bstar, beta0, **args)


def test_bad_inputs_small_block():
    S3 = np.diag([1.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="n_small = 1 does not split the sample spectrum at a strict gap"):
        cv.lemma2(np.eye(3), S3, np.ones(3), eps=0.1, alpha=0.5, K=1, n_small=1, numerical=False)
    with pytest.raises(ValueError, match="single distinct eigenvalue"):
        cv.lemma2(np.eye(2), np.eye(2), np.ones(2), eps=0.1, alpha=0.5, K=1, numerical=False)
    with pytest.raises(ValueError, match=r"X must be a design matrix of shape \(n, d\)"):
        cv.sample_covariance(np.ones(3))
