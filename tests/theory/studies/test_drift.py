"""The drift study: label-noise SGD over many paths against the quasistatic drift ODE."""
import numpy as np
import pytest

from lrdecay.theory.problem import Problem
from lrdecay.theory.schedules import StepDecay
from lrdecay.theory.studies.drift import DriftComparison, compare_drift_with_sgd


@pytest.fixture(scope="module")
def prob():
    return Problem.generate(d=30, n=6, gamma=1.0, sigma=0.3, seed=1)


def test_drift_ode_matches_sgd_mean_norm(prob):
    """Mean ||w|| of 32 SGD paths against the ODE, tau = eta^2 k up to 8: within 8 % of the travel
    (the quasistatic approximation is O(eta lambda) accurate; the study reports 3-5 % at eta = 0.02)."""
    c = compare_drift_with_sgd(prob, 0.02, tau_max=8.0, paths=32, seed=0)
    assert c.norm_rel_error < 0.08
    assert c.plateau_ratio == pytest.approx(1.0, abs=0.1)
    assert c.ode_norm[-1] < 0.9 * c.ode_norm[0]  # it actually moved


def test_comparison_saves_and_loads(prob, tmp_path):
    c = compare_drift_with_sgd(prob, 0.05, tau_max=1.0, paths=3, seed=2)
    back = DriftComparison.load(c.save(tmp_path / "c.npz"))
    np.testing.assert_array_equal(back.sgd_norm, c.sgd_norm)
    np.testing.assert_array_equal(back.problem.X, prob.X)
    assert back.norm_rel_error == c.norm_rel_error and back.plateau_ratio == c.plateau_ratio


def test_a_constant_schedule_gives_the_constant_rate_comparison(prob):
    """A function returning eta everywhere, run for tau_max / eta^2 steps, against the number eta: the same SGD
    paths (bit for bit) and the same drift times to rounding."""
    a = compare_drift_with_sgd(prob, 0.05, tau_max=1.0, paths=3, seed=2)
    b = compare_drift_with_sgd(prob, lambda k: 0.05, steps=400, paths=3, seed=2)
    np.testing.assert_array_equal(a.sgd_norm, b.sgd_norm)
    np.testing.assert_allclose(b.tau, a.tau, rtol=1e-12)
    np.testing.assert_allclose(b.ode_norm, a.ode_norm, rtol=1e-6)


def test_a_step_decay_schedule_is_compared_on_its_drift_time(prob):
    """tau at the records against a direct sum of eta_k^2; the ODE's end against drift_ode run to the
    schedule's drift budget; after the decay the drift time (and the ODE) advance 100 times slower."""
    from lrdecay.theory.quasistatic import drift_ode, noise_scale

    sched = StepDecay(0.04, 600, 0.1)
    c = compare_drift_with_sgd(prob, sched, steps=1000, paths=4, seed=0, n_records=10)
    k = np.arange(0, 1001, 100)
    np.testing.assert_allclose(c.tau, [min(j, 600) * 0.04**2 + max(j - 600, 0) * 0.004**2 for j in k], rtol=1e-12)
    end = drift_ode(prob, prob.w0, tau_max=600 * 0.04**2 + 400 * 0.004**2, a=noise_scale(prob), n_eval=2)
    assert c.ode_norm[-1] == pytest.approx(float(end.norm[-1]), rel=1e-6)
    assert c.eta == 0.04 and c.config["lr"]["kind"] == "StepDecay"
    assert c.norm_rel_error < 0.15          # 4 paths, a short run: a loose check that SGD follows the ODE


@pytest.mark.parametrize("kwargs, match", [(dict(eta=-0.1), "eta must be a finite number > 0"),
                                           (dict(eta=0.1, paths=0), "paths must be an integer >= 1"),
                                           (dict(eta=0.1, tau_max=float("nan")), "tau_max must be a finite number > 0"),
                                           (dict(eta=0.1, tau_max=None), "tau_max is required with a constant eta"),
                                           (dict(eta=0.1, steps=10), "steps applies to a schedule"),
                                           (dict(eta=lambda k: 0.1, tau_max=None), "steps is required with a schedule"),
                                           (dict(eta=lambda k: 0.1), "tau_max applies to a constant eta"),
                                           (dict(eta=lambda k: -0.1, tau_max=None, steps=5),
                                            "lr: schedule .*<lambda> gives a negative learning rate")])
def test_bad_inputs(prob, kwargs, match):
    with pytest.raises(ValueError, match=match):
        compare_drift_with_sgd(prob, **{"tau_max": 1.0, **kwargs})
