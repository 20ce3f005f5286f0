import numpy as np
import pytest

from lrdecay.theory.models import nonlinear as m
from lrdecay.theory.problem import Problem
from lrdecay.theory.quasistatic import (drift_at_budget, drift_ode, drift_velocity, noise_scale, plateau_prediction,
                                radial_velocity)
from lrdecay.theory.schedules import StepDecay
from lrdecay.theory.engine import simulate


@pytest.fixture(scope="module")
def prob():
    return Problem.generate(d=30, n=6, gamma=1.0, sigma=0.3, seed=1)


def test_plateau_prediction_matches_sgd_at_a_large_learning_rate():
    """At eta lambda_max = 0.7 the exact plateau (eta a / 4) sum lambda / (1 - eta lambda / 2) and the leading
    order (eta a / 4) tr H differ by 30 %: SGD must match the exact one. Start at w_mn (a fixed point of the
    drift), sigma = 0.05 (so the linearisation's O(sqrt(eta a)) corrections are below 0.1 %), 256 paths run for
    20 relaxation times of the slowest normal direction, second half averaged. Tolerance: 4 Monte Carlo
    standard errors of the path means plus 1 % for the residual correlation between the two halves."""
    p = Problem.generate(d=30, n=6, gamma=1.0, sigma=0.05, seed=1)
    lam = plateau_prediction(p, p.w_mn, 0.01).eigs
    eta = 0.7 / lam.max()
    pred = plateau_prediction(p, p.w_mn, eta)
    assert pred.exact / pred.leading > 1.25                      # the two formulas are distinguishable here
    P, steps = 256, int(20 / (eta * lam.min())) + 2000
    sim = simulate(p, np.tile(p.w_mn, (P, 1)), steps=steps, lr=eta, seed=3, record_every=10, reduce=True)
    path_means = sim.records["train_loss"][len(sim.steps) // 2:].mean(axis=0)
    ratio, se = path_means.mean() / pred.exact, path_means.std(ddof=1) / np.sqrt(P) / pred.exact
    assert abs(ratio - 1) <= 4 * se + 0.01, (ratio, se)
    assert abs(path_means.mean() / pred.leading - 1) > 0.2


def test_leading_order_plateau_at_a_small_learning_rate(prob):
    eta = 0.02
    pred = plateau_prediction(prob, prob.w_mn, eta)
    # the leading-order form is within the O(eta lambda) correction of the exact one
    assert pred.leading == pytest.approx(pred.exact, rel=2 * eta * pred.eigs.max())
    assert pred.leading == pytest.approx(0.25 * eta * noise_scale(prob) *
                                         m.manifold_hessian_trace(np.linalg.norm(prob.w_mn), prob.X, prob.y, 1.0), rel=1e-10)


def test_minibatch_noise_scale_and_plateau(prob):
    """Batch size b: a = sigma^2 / b; the plateau scales accordingly (SGD measurement, 12 %)."""
    eta, b = 0.01, 3
    assert noise_scale(prob, b) == pytest.approx(prob.sigma**2 / b)
    pred = plateau_prediction(prob, prob.w_mn, eta, batch_size=b)
    sim = simulate(prob, np.tile(prob.w_mn, (64, 1)), steps=6000, lr=eta, batch_size=b, seed=4, record_every=20, reduce=True)
    assert sim.records["train_loss"][len(sim.steps) // 2:].mean() == pytest.approx(pred.exact, rel=0.12)


def test_drift_is_tangent_radial_and_vanishes_at_min_norm(prob):
    rng = np.random.default_rng(0)
    W = m.retract(prob.w0 + 0.3 * rng.standard_normal((5, prob.d)), prob.X, prob.y, prob.gamma)
    a = noise_scale(prob)
    v = drift_velocity(prob, W, a)
    J = m.jacobian(W, prob.X, prob.gamma)
    np.testing.assert_allclose(np.einsum("pnd,pd->pn", J, v), 0, atol=1e-10)     # tangent to M
    # radial form: d||w||/dtau = w_hat . v
    np.testing.assert_allclose(np.sum(W * v, axis=1) / np.linalg.norm(W, axis=1), radial_velocity(prob, W, a), rtol=1e-9)
    np.testing.assert_allclose(drift_velocity(prob, prob.w_mn, a), 0, atol=1e-12)
    # gamma = 0: the trace is constant on M, no drift at all
    p0 = prob.with_(gamma=0.0)
    W0 = m.retract(W, p0.X, p0.y, 0.0)
    np.testing.assert_allclose(drift_velocity(p0, W0, a), 0, atol=1e-12)


def test_drift_ode_stays_on_manifold_and_reaches_min_norm(prob):
    sol = drift_ode(prob, prob.w0, tau_max=200.0, a=noise_scale(prob), n_eval=4001)
    assert sol.status == "ok" and sol.off_manifold < 1e-12
    assert np.all(np.diff(sol.norm) <= 1e-12)                 # the norm never grows
    assert sol.dist_mn[-1] < 1e-3 * sol.dist_mn[0]
    # radial form along the solution: finite-difference d||w||/dtau against the formula
    dn = np.gradient(sol.norm, sol.tau)
    np.testing.assert_allclose(dn[5:400], radial_velocity(prob, sol.w[5:400], noise_scale(prob)), rtol=1e-2, atol=1e-6)


def test_drift_at_budget_equals_separate_integrations_to_each_budget(prob):
    """One call, three schedules (a number, a Schedule, a plain function): the budgets against direct sums of
    eta_k^2, the points against drift_ode run separately to each budget (tolerance: the solver's rtol 1e-9,
    accumulated, and the retraction)."""
    T = 3000
    lrs = [0.02, StepDecay(0.02, 1000, 0.1), lambda k: 0.01 if k < 2000 else 0.03]
    res = drift_at_budget(prob, lrs, T)
    direct = [T * 0.02**2, 1000 * 0.02**2 + 2000 * 0.002**2, 2000 * 0.01**2 + 1000 * 0.03**2]
    np.testing.assert_allclose(res.budgets, direct, rtol=1e-12)
    for i, tau in enumerate(direct):
        alone = drift_ode(prob, prob.w0, tau_max=tau, a=noise_scale(prob), n_eval=2)
        np.testing.assert_allclose(res.w[i], alone.w[-1], rtol=1e-6, atol=1e-8)
        assert res.test_loss[i] == pytest.approx(float(alone.test_loss[-1]), rel=1e-6)
    assert np.all(np.diff(res.ode.tau) > 0) and res.ode.tau[-1] == pytest.approx(max(direct), rel=1e-15)


def test_drift_at_a_zero_budget_is_the_start_on_M(prob):
    res = drift_at_budget(prob, StepDecay(0.02, 10), 0)
    np.testing.assert_allclose(res.w[0], m.retract(prob.w0, prob.X, prob.y, prob.gamma), rtol=1e-14)
    assert res.budgets.tolist() == [0.0]


@pytest.mark.parametrize("call, match", [
    (lambda p: drift_at_budget(p, [], 10), "lr: an empty list"),
    (lambda p: drift_at_budget(p, 0.1, -1), "steps must be an integer >= 0"),
    (lambda p: drift_at_budget(p, lambda k: -0.1, 10), "schedule: schedule .*<lambda> gives a negative learning rate"),
    (lambda p: plateau_prediction(p, p.w_mn, 0.0), "eta must be a finite number > 0"),
    (lambda p: plateau_prediction(p, p.w_mn, 0.1, batch_size=99), r"batch_size must be an integer in \[1, 6\]"),
    (lambda p: drift_ode(p, p.w0, tau_max=-1.0, a=0.1), "tau_max must be a finite number > 0"),
    (lambda p: drift_ode(p, p.w0, tau_max=1.0, a=-0.1), "a must be a finite number >= 0"),
])
def test_bad_inputs(prob, call, match):
    with pytest.raises(ValueError, match=match):
        call(prob)
