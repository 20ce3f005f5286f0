import numpy as np
import pytest

from lrdecay.theory.problem import Problem, UnderparameterizedWarning


def test_generate_is_deterministic_and_matches_spec():
    a = Problem.generate(d=30, n=5, gamma=2.0, sigma=0.1, alpha_norm=2.0, w0_norm=0.7, seed=3)
    b = Problem.generate(d=30, n=5, gamma=2.0, sigma=0.1, alpha_norm=2.0, w0_norm=0.7, seed=3)
    c = Problem.generate(d=30, n=5, gamma=2.0, sigma=0.1, alpha_norm=2.0, w0_norm=0.7, seed=4)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.allclose(a.X, c.X)
    assert np.isclose(np.linalg.norm(a.alpha_star), 2.0)
    assert np.isclose(np.linalg.norm(a.w0), 0.7)
    np.testing.assert_allclose(a.y, a.X @ a.alpha_star, rtol=1e-13)  # noiseless labels
    assert a.n == 5 and a.d == 30 and a.overparameterized


def test_observation_noise_changes_labels_only():
    a = Problem.generate(d=20, n=5, seed=1)
    b = Problem.generate(d=20, n=5, obs_noise=0.5, seed=1)
    np.testing.assert_array_equal(a.X, b.X)
    resid = b.y - b.X @ b.alpha_star
    assert 0.05 < np.std(resid) < 2.0


def test_min_norm_test_loss_closed_form(small_problem):
    p = small_problem
    proj_null = np.eye(p.d) - np.linalg.pinv(p.X) @ p.X
    expected = 0.5 * np.sum((proj_null @ p.alpha_star) ** 2)
    assert np.isclose(p.min_norm_test_loss, expected, rtol=1e-10)


def test_save_load_roundtrip(tmp_path, small_problem):
    path = small_problem.save(tmp_path / "prob.npz")
    q = Problem.load(path)
    for f in ("X", "y", "alpha_star", "w0"):
        np.testing.assert_array_equal(getattr(q, f), getattr(small_problem, f))
    assert q.gamma == small_problem.gamma and q.sigma == small_problem.sigma and q.seed == 7
    assert q.meta == small_problem.meta
    assert not list(tmp_path.glob("*.tmp"))


def test_load_rejects_other_files(tmp_path):
    from lrdecay.theory.io import save_result
    save_result(tmp_path / "x.npz", {"a": np.zeros(2)}, {"kind": "Other"})
    with pytest.raises(ValueError, match="not a saved Problem"):
        Problem.load(tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError):
        Problem.load(tmp_path / "missing.npz")


def test_with_replaces_gamma(small_problem):
    q = small_problem.with_(gamma=0.0)
    assert q.gamma == 0.0 and q.config()["gamma"] == 0.0 and q.meta == small_problem.meta
    np.testing.assert_array_equal(q.X, small_problem.X)


@pytest.mark.parametrize("kwargs, match", [
    (dict(gamma=-0.5), "gamma must be a finite number >= 0"),
    (dict(gamma=float("nan")), "gamma must be a finite number >= 0"),
    (dict(sigma=-1.0), "sigma must be a finite number >= 0"),
    (dict(d=0), "d must be an integer >= 1"),
    (dict(n=2.5), "n must be an integer >= 1"),
    (dict(w0_norm=0.0), "w0_norm must be a finite number > 0"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(alpha_norm=-1.0), "alpha_norm must be a finite number >= 0"),
])
def test_generate_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Problem.generate(**kwargs)


def test_constructor_validates_shapes_and_values(small_problem):
    p = small_problem
    with pytest.raises(ValueError, match=r"y must have shape \(n,\)"):
        Problem(X=p.X, y=p.y[:-1], alpha_star=p.alpha_star, w0=p.w0, gamma=1.0)
    with pytest.raises(ValueError, match=r"alpha_star must have shape \(d,\)"):
        Problem(X=p.X, y=p.y, alpha_star=p.alpha_star[:-1], w0=p.w0, gamma=1.0)
    with pytest.raises(ValueError, match=r"w0 must have shape \(d,\)"):
        Problem(X=p.X, y=p.y, alpha_star=p.alpha_star, w0=p.w0[:3], gamma=1.0)
    with pytest.raises(ValueError, match="X must be a 2-D array"):
        Problem(X=p.X[0], y=p.y, alpha_star=p.alpha_star, w0=p.w0, gamma=1.0)
    Xbad = p.X.copy()
    Xbad[0, 0] = np.inf
    with pytest.raises(ValueError, match="X must contain finite values only"):
        Problem(X=Xbad, y=p.y, alpha_star=p.alpha_star, w0=p.w0, gamma=1.0)


def test_underparameterized_is_allowed_with_a_warning():
    with pytest.warns(UnderparameterizedWarning, match="single point"):
        p = Problem.generate(d=5, n=8, seed=0)
    assert not p.overparameterized
    # least-squares solution: X^T (X alpha - y) = 0
    np.testing.assert_allclose(p.X.T @ (p.X @ p.alpha_mn - p.y), 0, atol=1e-10)
