import numpy as np
import pytest

from lrdecay.theory.models import nonlinear as m
from lrdecay.theory.problem import Problem
from lrdecay.theory.schedules import Constant, StepDecay
from lrdecay.theory.engine import SimulationResult, path_generators, simulate


# ---------------------------------------------------------------- deterministic: GD ---------------
def test_gd_linear_matches_closed_form():
    """gamma = 0: w_k = w_inf + V (1 - eta s^2/n)^k V^T (w0 - X^+ y)."""
    p = Problem.generate(d=25, n=5, gamma=0.0, sigma=0.0, seed=4)
    eta, K = 0.05, 300
    r = simulate(p, steps=K, lr=eta, method="gd", record_steps=[0, K])
    _, s, Vt = np.linalg.svd(p.X, full_matrices=False)
    w_ls = np.linalg.pinv(p.X) @ p.y
    w_inf = p.w0 - Vt.T @ (Vt @ p.w0) + w_ls
    wK = w_inf + Vt.T @ ((1 - eta * s**2 / p.n) ** K * (Vt @ (p.w0 - w_ls)))
    np.testing.assert_allclose(r.W_final[0], wK, rtol=1e-10, atol=1e-12)


def test_gd_nonlinear_matches_plain_loop_and_schedule():
    p = Problem.generate(d=20, n=4, gamma=1.5, seed=3)
    sch = StepDecay(0.05, decay_step=40, factor=0.2)
    r = simulate(p, steps=100, lr=sch, method="gd", record_every=10)
    w = p.w0.copy()
    for k in range(100):
        w = w - sch(k) * m.train_grad(w, p.X, p.y, p.gamma)
    np.testing.assert_allclose(r.W_final[0], w, rtol=1e-11)
    np.testing.assert_allclose(r.times, [sum(sch(j) for j in range(k)) for k in r.steps], rtol=1e-12)
    assert r.status[0] == "completed"


def test_record_times_are_block_independent(monkeypatch):
    """t_k = sum_{j<k} eta_j per path, whatever the block size of the running sum."""
    from lrdecay.theory.engine import setup as sde
    sch = [StepDecay(0.1, 5), StepDecay(0.2, 3, factor=0.5), Constant(0.05)]
    rec = np.array([0, 1, 4, 5, 9, 10, 17])
    ref = np.array([[sum(s(j) for j in range(k)) for s in sch] for k in rec])
    ref_tau = np.array([[sum(s(j) ** 2 for j in range(k)) for s in sch] for k in rec])
    for block in (3, 7, 2**22):
        monkeypatch.setattr(sde, "_TIMES_BLOCK", block)
        t, tau = sde.Rates(sch, 3, "sgd").times(rec, 3)
        np.testing.assert_allclose(t, ref, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(tau, ref_tau, rtol=1e-14, atol=1e-17)
        t, tau = sde.Rates(sch[0], 3, "sgd").times(rec, 3)
        np.testing.assert_allclose(t, ref[:, 0], rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(tau, ref_tau[:, 0], rtol=1e-14, atol=1e-17)


# ---------------------------------------------------------------- stochastic: SGD and EM ----------
def _naive_full_batch_sgd(p, W0, eta, steps, seed):
    gens = path_generators(seed, range(W0.shape[0]), 0)
    out = []
    for w, g in zip(W0, gens):
        w = w.copy()
        for _ in range(steps):
            xi = g.standard_normal(p.n)
            J = m.jacobian(w, p.X, p.gamma)
            w = w - eta / p.n * J.T @ (m.residual(w, p.X, p.y, p.gamma) - p.sigma * xi)
        out.append(w)
    return np.array(out)


def test_full_batch_sgd_matches_naive_loop_on_same_streams():
    p = Problem.generate(d=15, n=5, gamma=1.0, sigma=0.5, seed=1)
    W0 = np.tile(p.w0, (3, 1))
    r = simulate(p, W0, steps=50, lr=0.05, method="sgd", seed=11)
    np.testing.assert_allclose(r.W_final, _naive_full_batch_sgd(p, W0, 0.05, 50, 11), rtol=1e-11)


def test_minibatch_sgd_matches_naive_loop():
    p = Problem.generate(d=15, n=6, gamma=0.7, sigma=0.4, seed=2)
    b, eta, K, seed = 2, 0.05, 40, 5
    r = simulate(p, n_paths=2, steps=K, lr=eta, method="sgd", batch_size=b, seed=seed)
    ng, bg = path_generators(seed, range(2), 0), path_generators(seed, range(2), 1)
    for path in range(2):
        w = p.w0.copy()
        for _ in range(K):
            xi = ng[path].standard_normal(b)
            idx = np.argsort(bg[path].random(p.n))[:b]
            assert len(set(idx)) == b
            f = m.predict(w, p.X[idx], p.gamma)
            grads = m.jacobian(w, p.X[idx], p.gamma)
            w = w - eta / b * grads.T @ (f - p.y[idx] - p.sigma * xi)
        np.testing.assert_allclose(r.W_final[path], w, rtol=1e-11)


def test_em_with_dt_eta_is_full_batch_sgd():
    p = Problem.generate(d=15, n=5, gamma=2.0, sigma=0.3, seed=1)
    a = simulate(p, n_paths=4, steps=60, lr=0.03, method="sgd", seed=2)
    b = simulate(p, n_paths=4, steps=60, lr=0.03, method="em", dt=0.03, a=p.sigma**2 / p.n, seed=2)
    np.testing.assert_allclose(a.W_final, b.W_final, rtol=1e-12)


def test_results_do_not_depend_on_chunking_or_batch_composition():
    p = Problem.generate(d=30, n=6, gamma=1.0, sigma=0.3, seed=3)
    ref = simulate(p, n_paths=7, steps=200, lr=0.05, seed=9, record_every=50)
    for chunk in (1, 3, 5):
        r = simulate(p, n_paths=7, steps=200, lr=0.05, seed=9, record_every=50, chunk_size=chunk)
        np.testing.assert_allclose(r.W_final, ref.W_final, rtol=1e-12, atol=1e-14)
        for k in ref.records:
            np.testing.assert_allclose(r.records[k], ref.records[k], rtol=1e-12, atol=1e-14)
    # paths 3..6 alone, with path_offset, equal the same paths in the full batch
    sub = simulate(p, n_paths=4, steps=200, lr=0.05, seed=9, record_every=50, path_offset=3)
    np.testing.assert_allclose(sub.W_final, ref.W_final[3:], rtol=1e-12, atol=1e-14)


def test_paths_get_distinct_noise_and_seed_matters():
    p = Problem.generate(d=10, n=4, gamma=1.0, sigma=0.5, seed=0)
    r = simulate(p, n_paths=50, steps=20, lr=0.05, seed=1)
    assert len(np.unique(np.round(r.W_final[:, 0], 12))) == 50
    r2 = simulate(p, n_paths=50, steps=20, lr=0.05, seed=2)
    assert not np.allclose(r.W_final, r2.W_final)
    r3 = simulate(p, n_paths=50, steps=20, lr=0.05, seed=1)
    np.testing.assert_array_equal(r.W_final, r3.W_final)


def test_label_noise_step_covariance():
    """One SGD step from a point of M: the increment is (eta sigma / n) J^T xi, mean 0, covariance
    C = (eta sigma / n)^2 J^T J. sigma = 0.4 (so sigma and sigma^2 differ by 2.5x). N = 20000 paths; each
    entry of the sample covariance has standard error sqrt((C_ii C_jj + C_ij^2) / (N - 1)) (Gaussian
    increments), the mean sqrt(C_ii / N); tolerance 4 standard errors per entry, fixed in advance (a false
    alarm over the 27 entries has probability about 2e-3)."""
    p = Problem.generate(d=6, n=3, gamma=1.0, sigma=0.4, seed=0)
    eta, N = 0.1, 20000
    r = simulate(p, np.tile(p.w_mn, (N, 1)), steps=1, lr=eta, seed=3)
    dW = r.W_final - p.w_mn
    J = m.jacobian(p.w_mn, p.X, p.gamma)
    C = (eta * p.sigma / p.n) ** 2 * J.T @ J
    d = np.sqrt(np.diag(C))
    se_cov = np.sqrt((np.outer(d, d) ** 2 + C**2) / (N - 1))
    assert np.all(np.abs(np.cov(dW.T) - C) <= 4 * se_cov)
    assert np.all(np.abs(dW.mean(axis=0)) <= 4 * d / np.sqrt(N))
    # sigma instead of sigma^2 (or 1/n instead of 1/n^2) would be off by far more than the tolerance
    assert np.all(np.abs(C / p.sigma - C)[np.abs(C) > 0.1 * C.max()] > 10 * se_cov[np.abs(C) > 0.1 * C.max()])


def test_em_default_noise_scale_is_full_batch_sgd():
    """method="em" without ``a``: the default a = sigma^2 / n makes EM with dt = eta exactly full-batch
    label-noise SGD; checked against the independent per-path loop (sigma = 0.5, so sigma^2 != sigma)."""
    p = Problem.generate(d=15, n=5, gamma=1.0, sigma=0.5, seed=1)
    W0 = np.tile(p.w0, (3, 1))
    r = simulate(p, W0, steps=50, lr=0.05, method="em", dt=0.05, seed=11)
    np.testing.assert_allclose(r.W_final, _naive_full_batch_sgd(p, W0, 0.05, 50, 11), rtol=1e-11)
    assert r.config["a"] == pytest.approx(p.sigma**2 / p.n, rel=1e-15)


# ---------------------------------------------------------------- reduction ------------------------
def test_reduced_simulation_equals_full_on_same_noise():
    p = Problem.generate(d=80, n=6, gamma=1.0, sigma=0.3, seed=4)
    full = simulate(p, n_paths=3, steps=300, lr=0.05, seed=1, record_every=30)
    red = simulate(p, n_paths=3, steps=300, lr=0.05, seed=1, record_every=30, reduce=True)
    np.testing.assert_allclose(red.W_final, full.W_final, rtol=1e-9, atol=1e-12)
    for k in full.records:
        np.testing.assert_allclose(red.records[k], full.records[k], rtol=1e-9, atol=1e-12)


def test_reduction_with_minibatch_and_distinct_starts():
    p = Problem.generate(d=50, n=6, gamma=2.0, sigma=0.3, seed=5)
    W0 = p.w0 + 0.1 * np.random.default_rng(0).standard_normal((3, p.d))
    full = simulate(p, W0, steps=100, lr=0.005, batch_size=2, seed=1)
    red = simulate(p, W0, steps=100, lr=0.005, batch_size=2, seed=1, reduce=True)
    assert np.all(full.status == "completed")
    np.testing.assert_allclose(red.W_final, full.W_final, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- stopping and divergence ----------
def test_stop_loss_stops_each_path_at_first_crossing():
    p = Problem.generate(d=20, n=5, gamma=1.0, seed=2)
    W0 = np.stack([p.w0, 1.2 * p.w0, 0.6 * p.w0])
    eps = 1e-3
    r = simulate(p, W0, steps=5000, lr=0.05, method="gd", stop_loss=eps)
    for path in range(3):
        w, k = W0[path].copy(), 0
        while m.train_loss(w, p.X, p.y, p.gamma) > eps:
            w = w - 0.05 * m.train_grad(w, p.X, p.y, p.gamma)
            k += 1
        assert r.status[path] == "stopped" and r.stop_step[path] == k
        np.testing.assert_allclose(r.W_final[path], w, rtol=1e-11)


def test_divergence_reported_with_step_and_finite_state():
    p = Problem.generate(d=20, n=5, gamma=1.0, seed=2)
    r = simulate(p, np.stack([p.w0, p.w0]), steps=200, lr=[Constant(0.05), Constant(5.0)], method="gd")
    assert list(r.status) == ["completed", "diverged"]
    assert 0 <= r.stop_step[1] < 200 and np.all(np.isfinite(r.W_final))
    assert "diverged" in r.message and "lower the learning rate" in r.message
    assert np.all(np.isfinite(r.records["train_loss"]))


def test_stop_fn_and_save_load(tmp_path):
    p = Problem.generate(d=20, n=5, gamma=1.0, sigma=0.2, seed=2)
    r = simulate(p, n_paths=3, steps=400, lr=0.05, record_every=20, seed=0,
                 stop_fn=lambda obs, k: obs["train_loss"] < 0.05)
    assert np.all(r.status == "stopped")
    assert r.problem is p
    path = r.save(tmp_path / "sim.npz")
    r2 = SimulationResult.load(path)
    p2 = r2.problem
    np.testing.assert_array_equal(r2.W_final, r.W_final)
    np.testing.assert_array_equal(r2.records["test_loss"], r.records["test_loss"])
    assert r2.config["seed"] == 0 and r2.config["method"] == "sgd"
    np.testing.assert_array_equal(p2.X, p.X)


def test_chosen_observables_and_custom_functions():
    p = Problem.generate(d=40, n=5, gamma=1.0, sigma=0.2, seed=2)
    full = simulate(p, n_paths=3, steps=50, lr=0.05, seed=0, record_every=10)
    r = simulate(p, n_paths=3, steps=50, lr=0.05, seed=0, record_every=10, reduce=True,
                 observables=["norm", ("sq_norm", lambda W: np.sum(W**2, axis=1))])
    assert set(r.records) == {"norm", "sq_norm"}
    np.testing.assert_allclose(r.records["norm"], full.records["norm"], rtol=1e-10)
    np.testing.assert_allclose(r.records["sq_norm"], full.records["norm"] ** 2, rtol=1e-10)
    with pytest.raises(ValueError, match="unknown names"):
        simulate(p, steps=1, lr=0.1, observables=["speed"])
    with pytest.raises(ValueError, match="items must be names or"):
        simulate(p, steps=1, lr=0.1, observables=[3])


# ---------------------------------------------------------------- Euler–Maruyama orders ------------
class _OU:
    """dX = -theta X dt + s dB (d = 1)."""
    dim, noise_dim = 1, 1

    def __init__(self, theta, s):
        self.theta, self.s = theta, s

    def increment(self, W, dt, coef, xi):
        return -self.theta * W * dt + (0 if xi is None else coef * xi), None

    def observables(self, W):
        return {"x": W[:, 0]}


class _GBMWithBrownian:
    """State (X, B): dX = mu X dt + s X dB, dB = dB. Exact X_T = X_0 exp((mu - s^2/2) T + s B_T)."""
    dim, noise_dim = 2, 1

    def __init__(self, mu, s):
        self.mu, self.s = mu, s

    def increment(self, W, dt, coef, xi):
        dB = (coef * xi)[:, 0]  # coef = sqrt(dt) with lr = 1, a = 1
        return np.stack([self.mu * W[:, 0] * dt + self.s * W[:, 0] * dB, dB], axis=1), None

    def observables(self, W):
        return {"x": W[:, 0], "b": W[:, 1]}


def _slope(dts, errs):
    return np.polyfit(np.log(dts), np.log(errs), 1)[0]


def test_euler_maruyama_strong_order_half():
    mu, s, T, P = 1.0, 1.0, 1.0, 4000
    model = _GBMWithBrownian(mu, s)
    dts = np.array([1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128])
    errs = []
    for dt in dts:
        r = simulate(model, np.tile([1.0, 0.0], (P, 1)), steps=int(round(T / dt)), method="em", dt=dt,
                     a=1.0, seed=1, record_steps=[0])
        exact = np.exp((mu - s**2 / 2) * T + s * r.W_final[:, 1])
        errs.append(np.mean(np.abs(r.W_final[:, 0] - exact)))
    assert 0.35 < _slope(dts, errs) < 0.7, errs


def test_euler_maruyama_weak_order_one():
    theta, s, x0, T, P = 1.0, 0.5, 5.0, 1.0, 40000
    model = _OU(theta, s)
    dts = np.array([1 / 4, 1 / 8, 1 / 16, 1 / 32])
    errs = []
    for dt in dts:
        r = simulate(model, np.full((P, 1), x0), steps=int(round(T / dt)), method="em", dt=dt, a=s**2,
                     seed=2, record_steps=[0])
        errs.append(abs(r.W_final[:, 0].mean() - x0 * np.exp(-theta * T)))
    assert 0.8 < _slope(dts, errs) < 1.25, errs


# ---------------------------------------------------------------- bad input ------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=10, lr=0.1, method="adam"), "method must be one of"),
    (dict(steps=-1, lr=0.1), "steps must be an integer >= 0"),
    (dict(steps=10), "lr is required"),
    (dict(steps=10, lr=0.1, batch_size=0), r"batch_size must be an integer in \[1, 4\]"),
    (dict(steps=10, lr=0.1, batch_size=99), r"batch_size must be an integer in \[1, 4\]"),
    (dict(steps=10, lr=0.1, dt=0.1), "dt applies to method 'em' only"),
    (dict(steps=10, method="em"), "dt must be a finite number > 0"),
    (dict(steps=10, lr=0.1, stop_loss=0.0), "stop_loss must be a finite number > 0"),
    (dict(steps=10, lr=0.1, chunk_size=0), "chunk_size must be an integer >= 1"),
    (dict(steps=10, lr=0.1, seed=-3), "seed must be an integer >= 0"),
    (dict(steps=10, lr=[0.1, 0.2], n_paths=3), "one per path"),
    (dict(steps=10, lr=0.1, record_steps=[0, 20]), r"record_steps must lie in \[0, steps\]"),
    (dict(steps=10, lr=0.1, sigma=-1.0), "sigma must be a finite number >= 0"),
    (dict(steps=10, lr="fast"), r"lr must be a number > 0 or a schedule, got 'fast'; a schedule is a callable"),
    (dict(steps=10, lr=lambda k: 0.1 if k < 5 else -0.01), r"lr: schedule .*<lambda> gives a negative learning rate "
                                                            r"-0.01 at step 5; learning rates must be finite and >= 0"),
    (dict(steps=10, lr=[0.1, lambda k: float("nan")], n_paths=2), r"lr\[1\]: schedule .*<lambda> gives a non-finite "
                                                                  r"learning rate nan at step 0"),
    (dict(steps=10, lr=lambda k: -0.01, method="em", dt=0.1), "negative learning rate"),
])
def test_bad_inputs(small_problem, kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate(small_problem, **kwargs)


def test_bad_initial_points(small_problem):
    with pytest.raises(ValueError, match=r"W0 must have shape \(P, 12\)"):
        simulate(small_problem, np.zeros((2, 5)), steps=1, lr=0.1)
    with pytest.raises(ValueError, match="W0 must contain finite values"):
        simulate(small_problem, np.full((1, 12), np.nan), steps=1, lr=0.1)


def test_per_path_learning_rate_array_equals_separate_runs():
    """lr as an array of per-path constants: path j equals a run at lr[j] alone (same stream, path_offset=j)."""
    p = Problem.generate(d=15, n=4, gamma=1.0, sigma=0.3, seed=8)
    etas = np.array([0.01, 0.03, 0.05])
    r = simulate(p, n_paths=3, steps=120, lr=etas, seed=4, record_every=40)
    for j, e in enumerate(etas):
        ref = simulate(p, n_paths=1, steps=120, lr=float(e), seed=4, record_every=40, path_offset=j)
        np.testing.assert_allclose(r.W_final[j], ref.W_final[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(r.times, r.steps[:, None] * etas[None, :])   # t_k = eta k per path
    with pytest.raises(ValueError, match=r"lr\[1\] must be a finite number > 0"):
        simulate(p, n_paths=3, steps=5, lr=np.array([0.1, -1.0, 0.1]))
    with pytest.raises(ValueError, match="one per path"):
        simulate(p, n_paths=2, steps=5, lr=etas)


def test_gradient_at_the_origin_is_zero_for_gamma_positive():
    """w = 0 is a stationary point for gamma > 0 (D alpha(0) = 0), not a divergence."""
    p = Problem.generate(d=6, n=2, gamma=0.7, sigma=0.0, seed=1)
    np.testing.assert_array_equal(m.train_grad(np.zeros(p.d), p.X, p.y, p.gamma), np.zeros(p.d))
    r = simulate(p, np.zeros((1, p.d)), steps=10, lr=0.1, method="gd")
    assert r.status[0] == "completed" and np.all(r.W_final == 0)


def test_numpy_error_state_is_restored_after_an_exception():
    p = Problem.generate(d=6, n=2, gamma=1.0, seed=1)
    before = np.geterr()

    def boom(obs, k):
        raise RuntimeError("stop here")
    with pytest.raises(RuntimeError, match="stop here"):
        simulate(p, n_paths=1, steps=10, lr=0.1, record_every=1, stop_fn=boom)
    assert np.geterr() == before


def test_repr_and_unknown_record_name():
    p = Problem.generate(d=6, n=2, gamma=1.0, seed=1)
    r = simulate(p, n_paths=2, steps=10, lr=0.1, record_every=5)
    assert "2 paths" in repr(r) and "10 steps" in repr(r)
    with pytest.raises(KeyError, match=r"no record named 'nope'; recorded: \['dist_mn', 'norm', 'test_loss', 'train_loss'\]"):
        r.final("nope")


# ---------------------------------------------------------------- drift time and plain-function schedules
def test_drift_time_is_the_sum_of_squared_rates():
    """``tau`` at every record against a direct sum of eta_j^2 (per path for a list of schedules, eta^2 k for
    per-path constants) and ``dt sum eta_j`` for EM; a rate that is a bad number anywhere stops the run first."""
    p = Problem.generate(d=12, n=3, gamma=1.0, seed=2)
    sch = [StepDecay(0.05, 7, 0.2), lambda k: 0.03 if k % 2 else 0.01]
    r = simulate(p, steps=20, lr=sch, n_paths=2, record_steps=[0, 3, 7, 8, 20])
    ref = [[sum(float(s(j)) ** 2 for j in range(k)) for s in sch] for k in r.steps]
    np.testing.assert_allclose(r.tau, ref, rtol=1e-14, atol=0)
    assert r.tau.shape == r.times.shape == (5, 2)
    etas = np.array([0.02, 0.04])
    r = simulate(p, steps=9, lr=etas, n_paths=2, record_every=3)
    np.testing.assert_allclose(r.tau, r.steps[:, None] * etas**2, rtol=1e-15)
    r = simulate(p, steps=10, lr=StepDecay(0.5, 4, 0.1), method="em", dt=0.01, record_every=5)
    np.testing.assert_allclose(r.tau, [0.0, 0.01 * (4 * 0.5 + 0.05), 0.01 * (4 * 0.5 + 6 * 0.05)], rtol=1e-14)
    np.testing.assert_allclose(r.times, [0.0, 0.05, 0.1], rtol=1e-15)


def test_drift_time_survives_save_and_load(tmp_path):
    p = Problem.generate(d=12, n=3, gamma=1.0, seed=2)
    r = simulate(p, steps=30, lr=StepDecay(0.05, 10), record_every=10)
    back = SimulationResult.load(r.save(tmp_path / "r.npz"))
    np.testing.assert_array_equal(back.tau, r.tau)


def _scalar_decay(k):
    return 0.04 if k < 60 else 0.004


@pytest.mark.parametrize("method, backend", [("sgd", "numpy"), ("sgd", "auto"), ("gd", "numpy")])
def test_a_scalar_function_schedule_gives_the_path_of_the_equivalent_array_schedule(method, backend):
    """``lambda k: ... if k < K else ...`` (evaluated step by step) against the same rates written for arrays:
    bit-identical paths, records and drift times."""
    p = Problem.generate(d=15, n=4, gamma=1.5, seed=5)
    kw = dict(steps=150, method=method, n_paths=3, record_every=25, backend=backend, seed=1)
    a = simulate(p, lr=_scalar_decay, **kw)
    b = simulate(p, lr=lambda k: np.where(k < 60, 0.04, 0.004), **kw)
    np.testing.assert_array_equal(a.W_final, b.W_final)
    np.testing.assert_array_equal(a.records["test_loss"], b.records["test_loss"])
    np.testing.assert_array_equal(a.tau, b.tau)
    assert a.config["lr"]["name"].endswith("_scalar_decay") and "k < 60" in a.config["lr"]["source"]
