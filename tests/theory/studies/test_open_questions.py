"""The open-question studies: the rate law's derived rate and drift times, the finite-eta drift, the drift-budget
rule of cyclic schedules, the discrete-eta fits, and the model studies (small sizes)."""
import numpy as np
import pytest

from lrdecay.theory.models import nonlinear as m
from lrdecay.theory.problem import Problem
from lrdecay.theory.quasistatic import discrete_drift_velocity, discrete_regularizer, drift_ode, drift_velocity
from lrdecay.theory.reduction import Reduction
from lrdecay.theory.studies.cyclic import CyclicConfig, CyclicStudy, cyclic_schedules, run_cyclic_study
from lrdecay.theory.studies.diagonal import DiagonalConfig, DiagonalStudy, run_diagonal_study
from lrdecay.theory.studies.discrete_eta import DiscreteEtaConfig, DiscreteEtaStudy, run_discrete_eta
from lrdecay.theory.studies.model_decay import run_model_decay
from lrdecay.theory.studies.rate_law import RateLawConfig, RateLawResult, linear_rate, ode_drift_time, run_rate_law
from lrdecay.theory.studies.two_layer import TwoLayerConfig, TwoLayerStudy, run_two_layer_study
from lrdecay.theory.models.two_layer import TwoLayerLinear


@pytest.fixture(scope="module")
def prob():
    return Problem.generate(d=30, n=8, gamma=1.5, sigma=1.0, w0_norm=1.0, seed=3)


def test_linear_rate_is_the_decay_rate_of_the_drift_near_w_mn(prob):
    """Start the ODE at w_mn plus a small tangent displacement: ||w - w_mn|| decays like exp(-kappa tau), with
    kappa = (a/4) h'(r_mn) / ((1 + gamma) r_mn) (the log-slope over tau in [1, 3], within 2 %)."""
    wmn = prob.w_mn
    v = m.project_tangent(wmn, np.random.default_rng(0).standard_normal(prob.d), prob.X, prob.gamma)
    w = m.retract(wmn + 1e-3 * v / np.linalg.norm(v), prob.X, prob.y, prob.gamma)
    a = prob.sigma**2 / prob.n
    sol = drift_ode(prob, w, 3.0, a, n_eval=31)
    dist = np.linalg.norm(sol.w - wmn, axis=1)
    slope = -np.polyfit(sol.tau[10:], np.log(dist[10:]), 1)[0]
    assert slope == pytest.approx(linear_rate(prob), rel=0.02)


def test_ode_drift_time_is_where_the_ode_crosses_tol(prob):
    a = prob.sigma**2 / prob.n
    w0 = m.retract(prob.w0, prob.X, prob.y, prob.gamma)
    tau = ode_drift_time(prob, w0, 0.05)
    sol = drift_ode(prob, w0, 1.5 * tau, a, n_eval=3001)
    rel = np.linalg.norm(sol.w - prob.w_mn, axis=1) / np.linalg.norm(prob.w_mn)
    first = sol.tau[np.argmax(rel < 0.05)]
    assert first == pytest.approx(tau, abs=1.5 * tau / 3000 + 1e-6)
    assert ode_drift_time(prob, prob.w_mn, 0.05) == 0.0


def test_finite_eta_regularizer_and_drift(prob):
    """R_eta -> tr H = h(r) on M as eta -> 0, with second-order term (eta/4) sum lambda^2; the finite-eta drift
    tends to the eta -> 0 drift."""
    w = m.retract(prob.w0, prob.X, prob.y, prob.gamma)
    J = m.jacobian(w, prob.X, prob.gamma)
    lam = np.linalg.eigvalsh(J @ J.T / prob.n)
    h = m.manifold_hessian_trace(np.linalg.norm(w), prob.X, prob.y, prob.gamma)
    assert discrete_regularizer(prob, w, 1e-9) == pytest.approx(h, rel=1e-7)
    eta = 1e-3
    assert discrete_regularizer(prob, w, eta) - lam.sum() == pytest.approx(eta / 4 * np.sum(lam**2), rel=2e-3)
    assert discrete_regularizer(prob, w, 2.5 / lam.max()) == np.inf
    red = Reduction.from_problem(prob, w[None])
    u = red.project(w)
    v0 = drift_velocity(red.reduced, u, 0.1)
    np.testing.assert_allclose(discrete_drift_velocity(red.reduced, u, 0.1, 1e-7), v0, atol=1e-5 * np.abs(v0).max())


def test_rate_law_smoke_runs_saves_and_fits(tmp_path):
    res = run_rate_law(RateLawConfig().smoke())
    back = RateLawResult.load(res.save(tmp_path / "r.npz"))
    np.testing.assert_array_equal(back.tau_sgd, res.tau_sgd)
    assert back.table() == res.table()
    rows = res.cell_rows()
    assert len(rows) == len(res.cells) and all(r["usable"] == r["pairs"] for r in rows)
    assert np.all(np.isfinite(res.tau_ode)) and np.all(res.tau_sgd > 0)
    assert res.fits["law_ode"]["n_obs"] == len(res.tau_ode)
    # the SGD times are first passages at record steps: tau = eta^2 k
    conv = ~res.censored
    np.testing.assert_allclose(res.tau_sgd[conv], res.eta[conv] ** 2 * res.steps[conv], rtol=1e-12)


def test_rate_law_bad_config():
    with pytest.raises(ValueError, match="lr_factor must be in"):
        RateLawConfig(lr_factor=2.5).validate()
    with pytest.raises(ValueError, match=r"ns\[i\] must be an integer in"):
        RateLawConfig(ns=(60,)).validate()


def test_cyclic_schedules_share_the_budget_and_the_rule_holds():
    sch = cyclic_schedules(0.02, 1000, 0.1, 2)
    assert set(sch) >= {"constant", "step@0.90", "multistep", "cosine", "wsd", "triangular", "cosine-restarts",
                        "one-cycle"}
    st = run_cyclic_study(CyclicConfig().smoke())
    assert np.all(np.abs(st.tau_ratio - 1) <= st.tolerance)
    # the effective drift time inverts the ODE's distance curve
    k = len(st.ode_tau) // 3
    assert st.effective_tau(st.ode_dist[k]) == pytest.approx(st.ode_tau[k], rel=1e-6)
    # schedules with a larger budget end closer to w_mn
    order = np.argsort([st.budgets[nm] for nm in st.names])
    d = st.position_dist.mean(1)[order]
    assert d[0] > d[-1]


def test_cyclic_study_saves_and_loads(tmp_path):
    st = run_cyclic_study(CyclicConfig().smoke())
    back = CyclicStudy.load(st.save(tmp_path / "c.npz"))
    assert back.table() == st.table() and back.budgets == st.budgets


def test_discrete_eta_fit_recovers_a_power_law_and_runs(tmp_path):
    st = run_discrete_eta(DiscreteEtaConfig().smoke())
    back = DiscreteEtaStudy.load(st.save(tmp_path / "d.npz"))
    assert back.table() == st.table()
    # planted errors c eta^p: the fit returns p and c exactly (every path carries the same value)
    E, P = back.drift_err_paths.shape
    back.drift_err_paths = -0.7 * back.etas[:, None] ** 1.5 * np.ones((E, P))
    f = back.fit("drift")
    assert f["p"] == pytest.approx(1.5, rel=1e-10) and f["c"] == pytest.approx(0.7, rel=1e-10)
    assert f["p_low"] == pytest.approx(1.5, rel=1e-9) and f["same_sign"]


def test_diagonal_study_smoke(tmp_path):
    cfg = DiagonalConfig(d=16, n=8, sparsity=1, tau_max=2.0, phase3_steps=300, paths=2, decay_fractions=(0.0, 1.0))
    st = run_diagonal_study(cfg)
    back = DiagonalStudy.load(st.save(tmp_path / "g.npz"))
    assert set(back.cases) == {"sparse", "rowspace"} and back.table() == st.table()
    for c in back.cases.values():
        assert c.final_test.shape == (2, 2) and c.sgd_test_M.shape[1] == 2
        assert c.tau_effective[-1] > c.tau_effective[0]
        np.testing.assert_allclose(c.ode_test[0], c.model.test_loss(c.theta_land), rtol=1e-9)


def test_two_layer_study_smoke(tmp_path):
    cfg = TwoLayerConfig(d=10, n=4, hidden=3, tau_max=2.0, phase3_steps=200, paths=2, decay_fractions=(0.0, 1.0))
    st = run_two_layer_study(cfg)
    back = TwoLayerStudy.load(st.save(tmp_path / "t.npz"))
    s = back.summary()
    assert s["kernel_change_sgd"] < 1e-12 and s["kernel_change_ode"] < 1e-12
    assert s["dist_mn_long"] == pytest.approx(s["kernel_term_long"], rel=1e-6)


def test_model_decay_bad_inputs():
    M = TwoLayerLinear.generate(d=6, n=2, hidden=2, seed=0)
    with pytest.raises(ValueError, match="decay_fractions must increase"):
        run_model_decay(M, M.theta0, label="x", decay_fractions=(0.0, 0.5))
    with pytest.raises(ValueError, match="lr_factor must be in"):
        run_model_decay(M, M.theta0, label="x", lr_factor=3.0)
