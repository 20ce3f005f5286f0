"""The engine's compiled backend against its numpy loop (the oracle): the same random numbers, so
the same paths to floating-point rounding; backend selection and its errors.

Tolerances: the compiled kernels do the numpy loop's arithmetic in another summation order, so a
state after a few hundred steps agrees to about 1e-13 relative (asserted: rtol 1e-10, atol 1e-12).
"""
import numpy as np
import pytest

from lrdecay.theory.engine import driver
from lrdecay.theory.engine.backends import blas_step, kernels
from lrdecay.theory.engine.backends import numba as numba_backend
from lrdecay.theory.models import nonlinear as m
from lrdecay.theory.engine import StopWhen, simulate
from lrdecay.theory.problem import Problem
from lrdecay.theory.schedules import Constant, StepDecay

RTOL, ATOL = 1e-10, 1e-12


def assert_same_run(a, b, rtol=RTOL, atol=ATOL):
    """Two SimulationResults: the same final states, records, status and stop steps."""
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a.stop_step, b.stop_step)
    np.testing.assert_allclose(b.W_final, a.W_final, rtol=rtol, atol=atol)
    assert set(a.records) == set(b.records)
    for k in a.records:
        np.testing.assert_allclose(b.records[k], a.records[k], rtol=rtol, atol=atol, err_msg=k)
    np.testing.assert_allclose(b.times, a.times, rtol=1e-14)
    np.testing.assert_array_equal(b.tau, a.tau)      # computed from the rates alone, before any backend runs


def both(*args, **kw):
    a = simulate(*args, backend="numpy", **kw)
    b = simulate(*args, backend="numba", **kw)
    assert a.config["backend"] == "numpy" and b.config["backend"] == "numba"
    return a, b


CASES = {
    "gd": dict(method="gd", lr=0.05),
    "sgd": dict(method="sgd", lr=0.05),
    "sgd_minibatch": dict(method="sgd", lr=0.05, batch_size=2),
    "em": dict(method="em", lr=0.5, dt=0.05),
    "sgd_schedules": dict(method="sgd", lr=[StepDecay(0.05, 100), Constant(0.02), StepDecay(0.08, 30, 0.1)]),
    "sgd_per_path_eta": dict(method="sgd", lr=np.array([0.01, 0.03, 0.05])),
    "stop_loss": dict(method="gd", lr=0.05, stop_loss=0.02),
    "stop_fn": dict(method="sgd", lr=0.05, stop_fn=lambda obs, k: obs["train_loss"] < 0.05),
    "custom_observables": dict(method="sgd", lr=0.05, observables=["norm", ("sq", lambda W: np.sum(W**2, 1))]),
    "subset_observables": dict(method="sgd", lr=0.05, observables=["test_loss", "norm"]),
    "reduce": dict(method="sgd", lr=0.05, reduce=True),
    "reduce_minibatch": dict(method="sgd", lr=0.05, reduce=True, batch_size=3),
}


@pytest.mark.parametrize("case", list(CASES))
def test_numba_matches_numpy_engine(case):
    p = Problem.generate(d=18, n=5, gamma=1.3, sigma=0.4, seed=3)
    a, b = both(p, n_paths=3, steps=300, seed=7, record_every=23, **CASES[case])
    assert_same_run(a, b)


def test_numba_matches_numpy_with_divergence_and_chunks():
    """A path that diverges (per-step loss test) next to ones that do not; chunked differently."""
    p = Problem.generate(d=20, n=5, gamma=1.0, sigma=0.2, seed=2)
    lr = [Constant(0.05), Constant(5.0), Constant(0.02), Constant(0.04)]
    a = simulate(p, n_paths=4, steps=200, lr=lr, seed=1, backend="numpy", record_every=10)
    for chunk in (1, 3, 4):
        b = simulate(p, n_paths=4, steps=200, lr=lr, seed=1, backend="numba", record_every=10, chunk_size=chunk)
        assert_same_run(a, b)
    assert list(a.status) == ["completed", "diverged", "completed", "completed"]


def test_numba_matches_numpy_on_stacked_model_with_record_stops():
    """Per-path data, gamma and eta (the gamma study's set-up) with a record-time stop on an extra
    observable of a subclass: the compiled steps run between records, the Python observer at them."""
    probs = [Problem.generate(d=12, n=4, gamma=g, sigma=0.5, seed=s) for g, s in ((0.0, 1), (1.0, 2), (2.5, 3), (1.0, 4))]

    class Sub(m.NonlinearModel):
        def observables(self, W):
            out = super().observables(W)
            out["half_norm"] = 0.5 * out["norm"]
            return out

    model = Sub.stack(probs)
    W0 = np.stack([p.w0 for p in probs])
    kw = dict(steps=400, lr=np.array([0.02, 0.03, 0.01, 0.05]), method="sgd", sigma=0.5, seed=4, record_every=20,
              stop_fn=lambda obs, k: obs["train_loss"] < 0.2, path_offset=5)
    a = simulate(model, W0, backend="numpy", **kw)
    b = simulate(model, W0, backend="numba", **kw)
    assert_same_run(a, b)
    assert "half_norm" in b.records and (a.status == "stopped").any()


@pytest.mark.parametrize("method, kw", [("em", dict(dt=0.01, lr=1.0)), ("sgd", dict(lr=0.004)),
                                        ("gd", dict(lr=0.004, stop_loss=3.0))])
def test_numba_batched_full_d_matches_numpy(method, kw):
    """Large d with shared data: BLAS products and the fused update (backends.blas_step.BatchedStep)."""
    p = Problem.generate(d=400, n=25, gamma=1.0, sigma=1.0, seed=0)
    assert p.n * p.d >= numba_backend._BATCHED_MIN_SIZE
    a, b = both(p, n_paths=6, steps=40, method=method, seed=2, record_every=7, **kw)
    assert_same_run(a, b)


def test_numba_batched_full_d_with_record_stops_and_custom_observables():
    """Full d with a record-time stop and an extra observable: the Python observer reads the states
    between steps (the stepper folds its row scales in first)."""
    p = Problem.generate(d=400, n=25, gamma=1.0, sigma=0.5, seed=0)
    kw = dict(n_paths=4, steps=120, method="sgd", lr=[Constant(0.004), Constant(0.002), Constant(0.003), Constant(0.001)],
              seed=2, record_every=3, stop_fn=lambda obs, k: obs["train_loss"] < 1.0,
              observables=["train_loss", "dist_mn", ("sq", lambda W: np.sum(W**2, 1))])
    a, b = both(p, **kw)
    assert_same_run(a, b)
    assert np.all(a.status == "stopped") and len(set(a.stop_step)) > 1   # stops at different records


def test_numba_batched_divergence_keeps_last_finite_state():
    p = Problem.generate(d=400, n=25, gamma=1.0, sigma=0.0, seed=0)
    a, b = both(p, n_paths=2, steps=60, method="gd", lr=[Constant(0.002), Constant(0.2)], record_every=5)
    assert_same_run(a, b)
    assert list(b.status) == ["completed", "diverged"] and np.all(np.isfinite(b.W_final))


def test_numba_results_do_not_depend_on_noise_block_size(monkeypatch):
    """Random numbers are drawn ahead in blocks; the block size does not change a path's numbers."""
    p = Problem.generate(d=15, n=5, gamma=1.0, sigma=0.3, seed=3)
    ref = simulate(p, n_paths=3, steps=250, lr=0.05, seed=9, record_every=50, batch_size=2, backend="numba")
    monkeypatch.setattr(driver, "_BLOCK_BYTES", 8 * 3 * 2 * 7)      # blocks of 7 steps
    r = simulate(p, n_paths=3, steps=250, lr=0.05, seed=9, record_every=50, batch_size=2, backend="numba")
    np.testing.assert_array_equal(r.W_final, ref.W_final)


# ---------------------------------------------------------------- selection ----------------------
class _Linear1D:
    """A custom model (dX = -X dt + dB): only the numpy loop can run it."""
    dim, noise_dim = 1, 1

    def increment(self, W, dt, coef, xi):
        return -W * dt + (0 if xi is None else coef * xi), None

    def observables(self, W):
        return {"x": W[:, 0]}


def test_auto_picks_numba_for_the_builtin_model_and_numpy_otherwise():
    p = Problem.generate(d=10, n=3, gamma=1.0, sigma=0.1, seed=0)
    assert simulate(p, n_paths=2, steps=5, lr=0.1).config["backend"] == "numba"
    r = simulate(_Linear1D(), np.ones((2, 1)), steps=5, method="em", dt=0.1, a=1.0)
    assert r.config["backend"] == "numpy"
    every_step = StopWhen(lambda loss, k: loss < 0.0, every_step=True)
    assert simulate(p, n_paths=2, steps=5, lr=0.1, stop_fn=every_step).config["backend"] == "numpy"


def test_forced_backends_that_cannot_serve_raise():
    p = Problem.generate(d=10, n=3, gamma=1.0, sigma=0.1, seed=0)
    with pytest.raises(ValueError, match=r"backend='numba' cannot serve this call: the model \(_Linear1D\)"):
        simulate(_Linear1D(), np.ones((2, 1)), steps=5, method="em", dt=0.1, a=1.0, backend="numba")
    with pytest.raises(ValueError, match="backend='numba' cannot serve this call: a per-step StopWhen"):
        simulate(p, steps=5, lr=0.1, stop_fn=StopWhen(lambda loss, k: loss < 0, every_step=True), backend="numba")

    class Overrides(m.NonlinearModel):
        def increment(self, W, dt, coef, xi):
            return super().increment(W, dt, coef, xi)
    with pytest.raises(ValueError, match="overrides NonlinearModel.increment"):
        simulate(Overrides.from_problem(p), p.w0, steps=5, lr=0.1, backend="numba")
    with pytest.raises(ValueError, match="backend must be one of"):
        simulate(p, steps=5, lr=0.1, backend="jax")
    with pytest.raises(ValueError, match="device and dtype apply to backend 'torch' only"):
        simulate(p, steps=5, lr=0.1, device="cpu")


def test_without_numba_auto_uses_numpy_and_forcing_numba_says_so(monkeypatch):
    p = Problem.generate(d=10, n=3, gamma=1.0, sigma=0.1, seed=0)
    monkeypatch.setattr(kernels, "HAVE_NUMBA", False)
    assert simulate(p, n_paths=2, steps=5, lr=0.1).config["backend"] == "numpy"
    with pytest.raises(ValueError, match="backend='numba' needs numba"):
        simulate(p, n_paths=2, steps=5, lr=0.1, backend="numba")


# ---------------------------------------------------------------- torch --------------------------
def _z(a, b):
    """|mean difference| / its standard error, for two independent samples."""
    se = np.hypot(a.std(ddof=1) / np.sqrt(len(a)), b.std(ddof=1) / np.sqrt(len(b)))
    return abs(a.mean() - b.mean()) / se


@pytest.mark.parametrize("case", ["sgd", "em", "sgd_minibatch", "sgd_schedules_stacked"])
def test_torch_equals_numpy_engine_in_distribution(case):
    """Torch draws its own random numbers: the means of the final losses over 900 paths must agree
    with the engine's on numpy's streams within 4 combined standard errors (a false alarm has
    probability 6e-5). The reference runs on the numba backend, equal to the numpy loop to rounding
    (tests above), to keep the test short."""
    pytest.importorskip("torch")
    p = Problem.generate(d=15, n=5, gamma=1.0, sigma=0.5, seed=1)
    P = 900
    kw = dict(sgd=dict(method="sgd", lr=0.05), em=dict(method="em", lr=1.0, dt=0.05),
              sgd_minibatch=dict(method="sgd", lr=0.05, batch_size=2),
              sgd_schedules_stacked=dict(method="sgd", lr=[StepDecay(0.05, 100)] * P))[case]
    model, W0 = p, None
    if case == "sgd_schedules_stacked":
        probs = [p.with_(gamma=g) for g in (0.5, 1.0, 2.0)] * (P // 3)
        model, W0 = m.NonlinearModel.stack(probs), np.stack([q.w0 for q in probs])
    a = simulate(model, W0, n_paths=P, steps=200, seed=3, record_every=100, backend="numba", **kw)
    b = simulate(model, W0, n_paths=P, steps=200, seed=3, record_every=100, backend="torch", device="cpu", **kw)
    assert b.config["backend"] == "torch" and np.all(b.status == "completed")
    for name in ("train_loss", "test_loss", "norm"):
        assert _z(a.final(name), b.final(name)) < 4, name


def test_torch_gd_equals_numpy_to_rounding_and_is_reproducible():
    pytest.importorskip("torch")
    p = Problem.generate(d=300, n=30, gamma=1.5, sigma=0.5, seed=2)
    W0 = p.w0 + 0.05 * np.random.default_rng(0).standard_normal((4, p.d))
    lr = [Constant(0.002), Constant(0.001), Constant(0.3), Constant(0.002)]
    a = simulate(p, W0, steps=50, lr=lr, method="gd", record_every=10, stop_loss=2.0, backend="numpy")
    b = simulate(p, W0, steps=50, lr=lr, method="gd", record_every=10, stop_loss=2.0, backend="torch", device="cpu")
    assert_same_run(a, b, rtol=1e-9)
    assert "diverged" in set(a.status)
    s1 = simulate(p, n_paths=5, steps=30, lr=0.002, seed=4, backend="torch", device="cpu")
    s2 = simulate(p, n_paths=5, steps=30, lr=0.002, seed=4, backend="torch", device="cpu")
    s3 = simulate(p, n_paths=5, steps=30, lr=0.002, seed=5, backend="torch", device="cpu")
    np.testing.assert_array_equal(s1.W_final, s2.W_final)
    assert not np.allclose(s1.W_final, s3.W_final)


def test_torch_float32_and_record_time_stops():
    pytest.importorskip("torch")
    p = Problem.generate(d=15, n=5, gamma=1.0, sigma=0.2, seed=2)
    kw = dict(n_paths=400, steps=400, lr=0.05, seed=0, record_every=5, stop_fn=lambda obs, k: obs["train_loss"] < 0.005)
    a = simulate(p, backend="numba", **kw)
    b = simulate(p, backend="torch", device="cpu", dtype="float32", **kw)
    assert np.all(a.status == "stopped") and np.all(b.status == "stopped")
    assert _z(a.stop_step.astype(float), b.stop_step.astype(float)) < 4
    assert b.W_final.dtype == np.float64


def test_batched_step_equals_model_increment_including_large_steps():
    """backends.blas_step.BatchedStep (scaled rows, Z += V' X in place) against NonlinearModel.increment
    step by step. Rows 1 and 2 take steps whose factor 1 + rad (w . U) is 0.38 and -0.87 on the
    first step (measured), so they go through the direct update; resync every 2 steps."""
    p = Problem.generate(d=300, n=20, gamma=1.0, sigma=1.0, seed=4)
    model = m.NonlinearModel.from_problem(p)
    rng = np.random.default_rng(0)
    W = np.concatenate([p.w0 * 0.3 + 0.5 * rng.standard_normal((3, p.d)), p.w0 * 0.3 + 0.1 * rng.standard_normal((2, p.d))])
    st = blas_step.BatchedStep(model, W.copy(), resync=2)
    dt = np.array([1e-3, 1e-2, 3e-2, 1e-2, 3e-2])[:, None]
    ref = W.copy()
    for k in range(3):
        xi = rng.standard_normal((5, p.n))
        coef = 0.1 * dt
        dW, loss_ref = model.increment(ref, dt, coef, xi)
        np.testing.assert_allclose(st.loss(), loss_ref, rtol=1e-9)
        assert not st.update(dt, coef, xi, np.ones(5, dtype=bool)).any()
        ref = ref + dW
        np.testing.assert_allclose(st.W, ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max())
