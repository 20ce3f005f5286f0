import numpy as np
import pytest

from lrdecay.theory.phases import phase_boundaries
from lrdecay.theory.studies.decay import DecaySweep, decay_sweep, equal_budget_schedules, schedule_comparison
from lrdecay.theory.problem import Problem
from lrdecay.theory.quasistatic import plateau_prediction
from lrdecay.theory.engine import simulate
from lrdecay.theory.models import nonlinear as m


def test_late_decay_benefit_monotone_for_gamma_positive_and_absent_for_gamma_zero():
    decays = [0, 1000, 4000, 15000]
    p1 = Problem.generate(d=30, n=6, gamma=1.0, sigma=0.3, seed=2)
    s1 = decay_sweep(p1, eta=0.03, decay_steps=decays, phase3_steps=3000, paths_per_decay=4, seed=1)
    mean = s1.mean_final_test
    assert np.all(np.diff(mean) < 0), mean                     # later decay -> lower test loss
    assert mean[-1] < 0.5 * s1.flow_landing_test_loss
    # the latest decay removes most of the gap to the min-norm test loss
    assert mean[-1] - s1.min_norm_test_loss < 0.1 * (mean[0] - s1.min_norm_test_loss)
    p0 = p1.with_(gamma=0.0)
    s0 = decay_sweep(p0, eta=0.03, decay_steps=decays, phase3_steps=3000, paths_per_decay=4, seed=1)
    assert np.ptp(s0.mean_final_test) < 1e-3 * s0.mean_final_test.mean()  # no effect of the decay time
    assert s0.mean_final_test.mean() == pytest.approx(s0.flow_landing_test_loss, rel=1e-2)


def test_decay_sweep_saves_with_config(tmp_path):
    p = Problem.generate(d=20, n=5, gamma=1.0, sigma=0.3, seed=0)
    s = decay_sweep(p, eta=0.02, decay_steps=[0, 100], phase3_steps=50, paths_per_decay=2, seed=5)
    back = DecaySweep.load(s.save(tmp_path / "s.npz"))
    np.testing.assert_array_equal(back.final_test, s.final_test)
    np.testing.assert_array_equal(back.problem.X, p.X)
    assert back.config["seed"] == 5 and back.config["decay_steps"] == [0, 100] and back.problem.gamma == 1.0
    assert back.flow_landing_test_loss == s.flow_landing_test_loss
    assert back.provenance["package_version"] and back.provenance["numpy"] == np.__version__
    assert "min-norm" in s.table()


def test_phase_one_end_detected_in_plateau_band():
    p = Problem.generate(d=30, n=6, gamma=1.0, sigma=0.3, seed=3)
    eta = 0.02
    sim = simulate(p, n_paths=8, steps=3000, lr=eta, seed=0, record_every=10, reduce=True)
    landing = m.retract(p.w0, p.X, p.y, p.gamma)
    plateau = plateau_prediction(p, landing, eta).exact
    pb = phase_boundaries(sim, plateau, decay_step=3000)
    assert np.all(pb["phase1_end"] > 0) and np.all(pb["phase1_end"] < 3000)
    # recomputed from the records with the documented band of 3: the first record with L_n <= 3 x plateau
    tl = sim.records["train_loss"]
    for j in range(tl.shape[1]):
        first = next(i for i in range(len(sim.steps)) if tl[i, j] <= 3.0 * plateau)
        assert pb["phase1_end"][j] == sim.steps[first]
        assert tl[first - 1, j] > 3.0 * plateau
    # before the detected end, the loss is well above the plateau (it was falling onto M)
    assert sim.records["train_loss"][0].min() > 10 * plateau


def test_equal_budget_schedule_comparison_favours_late_decay():
    p = Problem.generate(d=30, n=6, gamma=1.0, sigma=0.3, seed=2)
    sch = equal_budget_schedules(0.03, 16000, decay_fractions=(0.1, 0.9))
    res = schedule_comparison(p, sch, total_steps=16000, paths=3, seed=0)
    t = dict(zip(res.names, res.final_test.mean(1)))
    assert t["step@0.90"] < t["step@0.10"]
    assert set(res.names) == {"step@0.10", "step@0.90", "cosine", "wsd"}


@pytest.mark.parametrize("kwargs, match", [
    (dict(decay_steps=[-1, 5]), "decay_steps must be a non-empty list of integers >= 0"),
    (dict(decay_steps=[]), "decay_steps must be a non-empty list"),
    (dict(phase3_steps=0), "phase3_steps must be an integer >= 1"),
    (dict(paths_per_decay=0), "paths_per_decay must be an integer >= 1"),
])
def test_bad_inputs(kwargs, match):
    p = Problem.generate(d=20, n=5, gamma=1.0, seed=0)
    with pytest.raises(ValueError, match=match):
        decay_sweep(p, **kwargs)


def test_diverged_rows_are_flagged_not_averaged():
    p = Problem.generate(d=20, n=5, gamma=1.0, sigma=0.3, seed=0)
    s = decay_sweep(p, eta=100.0, decay_steps=[0, 50], phase3_steps=50, paths_per_decay=2, seed=1)
    assert s.diverged_rows.all()
    assert s.table().count("diverged") >= 2
