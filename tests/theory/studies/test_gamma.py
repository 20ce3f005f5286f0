import dataclasses
import math

import numpy as np
import pytest

from lrdecay.theory.models import nonlinear as m
from lrdecay.theory.stats import wilson_interval
from lrdecay.theory.studies.gamma import (GammaPathsModel, GammaStudyResult, drift_limit_distance, landing_sharpness,
                                  run_gamma_study, run_paths, source_bound)
from lrdecay.theory.problem import Problem
from lrdecay.theory.engine import simulate


def test_source_bound():
    assert source_bound(0) == 0.0
    assert source_bound(8.0) == pytest.approx(1 - math.exp(-6.4))
    np.testing.assert_allclose(source_bound([1, 2]), 1 - np.exp(-0.1 * np.array([1, 4])))


# ---------------------------------------------------------------- the stacked model ----------------
def test_stacked_model_is_label_noise_sgd_of_each_instance():
    """Paths with their own gamma and eta equal simulate(problem, reduce=True) on the same noise stream."""
    p = Problem.generate(d=40, n=6, gamma=2.0, sigma=0.7, w0_norm=1.0, seed=3)
    probs = [p, p.with_(gamma=0.5), Problem.generate(d=40, n=6, gamma=1.0, sigma=0.7, w0_norm=1.0, seed=4)]
    etas = [0.5 / landing_sharpness(q) for q in probs]
    out = run_paths(probs, etas, max_steps=300, tol=1e-12, seed=5, record_every=50)
    W = out["model"].lift(out["sim"].W_final)
    for j, (q, e) in enumerate(zip(probs, etas)):
        ref = simulate(q, steps=300, lr=e, seed=5, path_offset=j, reduce=True, record_every=50)
        np.testing.assert_allclose(W[j], ref.W_final[0], rtol=1e-9, atol=1e-12)
        for name in ("train_loss", "test_loss", "norm", "dist_mn"):
            np.testing.assert_allclose(out["sim"].records[name][:, j], ref.records[name][:, 0], rtol=1e-9, atol=1e-12)


def test_stacked_retraction_matches_model_retract():
    probs = [Problem.generate(d=30, n=5, gamma=g, seed=s) for g, s in ((1.0, 1), (3.0, 2))]
    sm = GammaPathsModel(probs, [0.01, 0.01], sigma=1.0)
    U = sm.W0 + 0.1 * np.random.default_rng(0).standard_normal(sm.W0.shape)
    lifted = sm.lift(sm.retract(U))
    for j, q in enumerate(probs):
        w = sm.lift(U)[j]
        np.testing.assert_allclose(lifted[j], m.retract(w, q.X, q.y, q.gamma), rtol=1e-10, atol=1e-12)
        assert m.train_loss(lifted[j], q.X, q.y, q.gamma) < 1e-20


def test_drift_limit_distance_is_the_r_star_sphere():
    """Where the flattest-point condition fails, h'(r*) = 0 on M and the formula gives ||w - w_mn|| there."""
    for seed in range(40):
        p = Problem.generate(d=50, n=10, gamma=8.0, seed=seed)
        holds, lhs, rhs = m.flatness_condition(p.X, p.y, 8.0)
        if not holds:
            break
    assert not holds
    r_star = rhs ** (1 / 18)
    h = m.manifold_hessian_trace(r_star, p.X, p.y, 8.0)
    assert abs(m.manifold_hessian_trace_deriv(r_star, p.X, p.y, 8.0)) < 1e-8 * h
    v = np.random.default_rng(1).standard_normal(p.d)
    v -= np.linalg.pinv(p.X) @ (p.X @ v)                       # in ker X
    v *= math.sqrt(rhs - lhs) / np.linalg.norm(v)              # ||alpha||^2 = lhs + ||v||^2 = rhs
    w = m.alpha_inverse(p.alpha_mn + v, 8.0)
    assert np.linalg.norm(w) == pytest.approx(r_star, rel=1e-10)
    expect = np.linalg.norm(w - p.w_mn) / np.linalg.norm(p.w_mn)
    assert drift_limit_distance(8.0, lhs, rhs) == pytest.approx(expect, rel=1e-9)
    assert drift_limit_distance(8.0, rhs, lhs) == 0.0           # condition holds: the drift ends at w_mn


# ---------------------------------------------------------------- the dynamics ---------------------
def test_gamma_zero_does_not_move_along_M():
    """gamma = 0: every step moves in the row space of X, so the kernel component of w (the position along
    the affine M) never changes and the path cannot reach w_mn, however long it runs."""
    p = Problem.generate(d=30, n=6, gamma=0.0, sigma=1.0, w0_norm=1.0, seed=2)
    out = run_paths([p], [0.5 / landing_sharpness(p)], max_steps=4000, tol=0.05, seed=0, record_every=100)
    assert not out["converged"][0] and out["status"][0] == "completed"
    rec = out["sim"].records["rel_dist_M"][:, 0]
    np.testing.assert_allclose(rec, rec[0], rtol=1e-9)
    assert rec[0] > 0.5
    ker0 = p.w0 - np.linalg.pinv(p.X) @ (p.X @ p.w0)
    W = out["model"].lift(out["sim"].W_final)[0]
    np.testing.assert_allclose(W - np.linalg.pinv(p.X) @ (p.X @ W), ker0, atol=1e-10)


def test_gamma_zero_started_in_the_row_space_converges():
    """... unless it starts there: w0 in the row space of X (kernel component 0) retracts onto w_mn."""
    p = Problem.generate(d=30, n=6, gamma=0.0, sigma=1.0, seed=2)
    w0 = p.w_mn + 0.3 * p.X[0] / np.linalg.norm(p.X[0])
    q = p.with_(w0=w0)
    out = run_paths([q], [0.5 / landing_sharpness(q)], max_steps=4000, tol=0.05, seed=0, record_every=100)
    assert out["converged"][0] and out["steps"][0] <= 400


@pytest.mark.parametrize("gamma", [1.0, 2.0])
def test_flat_instance_converges_to_w_mn(gamma):
    p = Problem.generate(d=50, n=10, gamma=gamma, sigma=1.0, w0_norm=1.0, seed=0)
    assert m.flatness_condition(p.X, p.y, gamma)[0]
    out = run_paths([p], [0.5 / landing_sharpness(p)], max_steps=30000, tol=0.05, seed=0, record_every=100)
    assert out["converged"][0], out["sim"].message
    assert out["init_rel_dist_M"][0] > 0.5               # it really travelled along M
    w = out["model"].lift(out["sim"].W_final)[0]
    w_ret = m.retract(w, p.X, p.y, gamma)
    assert np.linalg.norm(w_ret - p.w_mn) / np.linalg.norm(p.w_mn) < 0.05
    assert m.train_loss(w, p.X, p.y, gamma) < 0.1 * m.train_loss(p.w0, p.X, p.y, gamma)
    assert out["tau"][0] == pytest.approx((0.5 / landing_sharpness(p)) ** 2 * out["steps"][0])


# ---------------------------------------------------------------- the study ------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    res = run_gamma_study(gammas=(0, 1, 2), n_instances=4, d=30, n=6, sigma=1.0, max_steps=3000, tol=0.05,
                          seed=3, progress=False, record_every=100)
    path = res.save(tmp_path_factory.mktemp("gs") / "gamma_study.npz")
    return res, path


def test_tiny_study_saves_loads_and_regenerates(tiny):
    res, path = tiny
    back = GammaStudyResult.load(path)
    for name in res.__dataclass_fields__:
        if name == "config":
            continue
        a, b = getattr(res, name), getattr(back, name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            assert a == b, name
    assert back.config == {**res.config}
    assert back.converged.shape == (3, 4) and back.rec_rel_dist_M.shape[0::2] == (3, 4)
    for i, s in enumerate(back.instance_seeds):        # instances regenerate exactly from their seeds
        p = Problem.generate(d=30, n=6, gamma=1.0, sigma=1.0, alpha_norm=1.0, w0_norm=1.0, seed=int(s))
        np.testing.assert_array_equal(p.X, back.X[i])
        np.testing.assert_array_equal(p.w0, back.w0[i])
        np.testing.assert_array_equal(back.problem(i, 2.0).w_mn, p.with_(gamma=2.0).w_mn)
    # every gamma = 0 path stays put; steps and tau are consistent with the status
    assert not back.converged[0].any()
    assert np.all((back.steps >= 0) == back.converged) and np.all(np.isnan(back.tau) == ~back.converged)
    np.testing.assert_allclose(back.tau[back.converged], (back.eta**2 * back.steps)[back.converged])


def test_flatness_condition_per_instance_matches_model(tiny):
    res, _ = tiny
    for gi, g in enumerate(res.gammas):
        for i in range(res.n_instances):
            holds, lhs, rhs = m.flatness_condition(res.X[i], res.y[i], g)
            assert res.flat_holds[gi, i] == holds
            assert res.flat_lhs[i] == pytest.approx(lhs) and res.flat_rhs[gi, i] == pytest.approx(rhs)


def test_summary_table_and_verdict(tiny):
    res, _ = tiny
    rows = res.summary()
    assert [r["gamma"] for r in rows] == [0, 1, 2]
    for r, conv in zip(rows, res.converged):
        assert r["n_converged"] == conv.sum()
        assert (r["ci_low"], r["ci_high"]) == wilson_interval(int(conv.sum()), 4)
        assert r["respects_ci"] == (r["ci_high"] >= r["bound"])
    assert len(res.table().splitlines()) == 4
    # a made-up violation is reported as one
    fake = dataclasses.replace(res, converged=np.zeros_like(res.converged), gammas=np.array([0.0, 6.0, 8.0]))
    fake.config = {**res.config, "max_steps": 10}
    assert "VIOLATE" in fake.verdict() and "gamma = 6, 8:" in fake.verdict()


# ---------------------------------------------------------------- bad input ------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(gammas=(1.0, -0.5)), r"gammas must be a non-empty list of finite numbers >= 0"),
    (dict(gammas=()), r"gammas must be a non-empty list"),
    (dict(tol=0.0), r"tol must be a finite number > 0"),
    (dict(tol=-1.0), r"tol must be a finite number > 0"),
    (dict(n=10, d=10), r"n must be an integer in \[1, 9\]"),
    (dict(n_instances=0), r"n_instances must be an integer in \[1, "),
    (dict(sigma=0.0), r"sigma must be a finite number > 0"),
    (dict(max_steps=0), r"max_steps must be an integer >= 1"),
    (dict(lr_factor=2.0), r"lr_factor must be in \(0, 2\)"),
    (dict(eta=float("nan")), r"eta must be a finite number > 0"),
    (dict(seed=-1), r"seed must be an integer in \[0, "),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_gamma_study(**{"n_instances": 2, "max_steps": 10, "progress": False, **kwargs})


def test_verdict_names_diverged_gammas_instead_of_judging_them():
    res = run_gamma_study([2.0], n_instances=3, d=20, n=5, eta=50.0, max_steps=200, progress=False, record_every=50)
    assert np.all(res.status == "diverged")
    v = res.verdict()
    assert "DIVERGED" in v and "No significant violation" not in v and "respect" not in v
