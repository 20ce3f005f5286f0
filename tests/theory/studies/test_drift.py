"""The drift study: label-noise SGD over many paths against the quasistatic drift ODE."""
import numpy as np
import pytest

from theory.problem import Problem
from theory.studies.drift import DriftComparison, compare_drift_with_sgd


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


@pytest.mark.parametrize("kwargs, match", [(dict(eta=-0.1), "eta must be a finite number > 0"),
                                           (dict(eta=0.1, paths=0), "paths must be an integer >= 1"),
                                           (dict(eta=0.1, tau_max=float("nan")), "tau_max must be a finite number > 0")])
def test_bad_inputs(prob, kwargs, match):
    with pytest.raises(ValueError, match=match):
        compare_drift_with_sgd(prob, **{"tau_max": 1.0, **kwargs})
