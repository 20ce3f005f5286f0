"""Bad input to the library ends in one ValueError naming the parameter, before any long computation: the
engine's shapes on every backend, non-finite data, stop conditions of the wrong shape, the batched flow's
W0, and the caps on memory, work and the drift ODE's horizon (lrdecay.theory.budget)."""
from __future__ import annotations

import numpy as np
import pytest

from lrdecay.theory import budget
from lrdecay.theory.engine import simulate
from lrdecay.theory.flow import batched_gradient_flow
from lrdecay.theory.engine.backends.kernels import HAVE_NUMBA
from lrdecay.theory.models.nonlinear import NonlinearModel
from lrdecay.theory.problem import Problem

BACKENDS = ["numpy"] + (["numba", "auto"] if HAVE_NUMBA else [])
try:
    import torch  # noqa: F401
    BACKENDS.append("torch")
except ImportError:
    pass


@pytest.fixture(scope="module")
def stacked():
    p0 = Problem.generate(d=6, n=3, gamma=1.0, sigma=0.1, seed=0)
    p1 = Problem.generate(d=6, n=3, gamma=1.0, sigma=0.1, seed=1)
    return NonlinearModel.stack([p0, p1])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rows", [1, 3, 40])
def test_stacked_model_needs_one_W0_row_per_path(stacked, backend, rows):
    # the compiled kernels index the per-path data without bounds checks: a mismatch must stop before them
    with pytest.raises(ValueError, match=r"W0 must have one row per path of the stacked model \(2 rows\)"):
        simulate(stacked, np.full((rows, 6), 0.3), steps=5, lr=0.01, sigma=0.1, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stacked_model_with_matching_W0_runs(stacked, backend):
    sim = simulate(stacked, np.full((2, 6), 0.3), steps=5, lr=0.01, sigma=0.1, backend=backend)
    assert sim.W_final.shape == (2, 6) and np.all(sim.status == "completed")


@pytest.mark.parametrize("name", ["X", "y", "alpha_star", "w_mn"])
def test_model_refuses_non_finite_data(name):
    p = Problem.generate(d=6, n=3, gamma=1.0, seed=0)
    kw = dict(X=p.X.copy(), y=p.y.copy(), gamma=1.0, alpha_star=p.alpha_star.copy(), w_mn=p.w_mn.copy())
    kw[name].reshape(-1)[0] = np.nan
    with pytest.raises(ValueError, match=f"^{name} must contain finite values only"):
        NonlinearModel(**kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_fn_of_the_wrong_shape_is_named(backend):
    p = Problem.generate(d=6, n=3, gamma=1.0, sigma=0.1, seed=0)

    def stop(obs, k):                 # one value too many
        return np.zeros(len(obs["norm"]) + 1, dtype=bool)
    with pytest.raises(ValueError, match=r"^stop_fn must return one bool per path, shape \(4,\)"):
        simulate(p, n_paths=4, steps=20, lr=0.01, stop_fn=stop, record_every=5, backend=backend)


def test_stop_fn_returning_one_bool_applies_to_every_path():
    p = Problem.generate(d=6, n=3, gamma=1.0, sigma=0.1, seed=0)
    sim = simulate(p, n_paths=3, steps=20, lr=0.01, stop_fn=lambda obs, k: k >= 10, record_every=5)
    assert np.all(sim.status == "stopped") and np.all(sim.stop_step == 10)


def test_batched_gradient_flow_names_a_W0_of_the_wrong_width():
    p = Problem.generate(d=6, n=3, gamma=1.0, seed=0)
    from lrdecay.theory.models import nonlinear as m

    def grad(W):
        return m.train_grad(W, p.X, p.y, p.gamma)

    def loss(W):
        return m.train_loss(W, p.X, p.y, p.gamma)
    with pytest.raises(ValueError, match=r"^W0 has 5 columns"):
        batched_gradient_flow(grad, np.ones((2, 5)), loss=loss, eps=1e-6, t_max=1.0)
    with pytest.raises(ValueError, match=r"^W0 has 4 columns: grad\(W0\[:1\]\) returned shape"):
        batched_gradient_flow(lambda W: W[:, :3], np.ones((2, 4)), loss=lambda W: W[:, 0], eps=1e-6, t_max=1.0)


def test_default_starts_are_built_one_chunk_at_a_time():
    # problem.w0 for every path is a broadcast view (no P x d array before the chunks), reduced or not;
    # the results equal those from an explicit W0 (to rounding when reduced: one row is projected, not five)
    from lrdecay.theory.engine.setup import prepare_model as _prepare_model

    p = Problem.generate(d=8, n=3, gamma=1.0, sigma=0.1, seed=0)
    for reduce in (False, True):
        _, W0, _, _ = _prepare_model(p, None, 5, reduce)
        assert W0.shape[0] == 5 and W0.strides[0] == 0
        a = simulate(p, n_paths=5, steps=30, lr=0.02, chunk_size=2, reduce=reduce, backend="numpy")
        b = simulate(p, np.tile(p.w0, (5, 1)), steps=30, lr=0.02, chunk_size=2, reduce=reduce, backend="numpy")
        np.testing.assert_allclose(a.W_final, b.W_final, rtol=0, atol=1e-14)


def test_results_too_large_for_memory_are_refused_before_computing():
    # 10^7 paths of d = 1000: the final states alone are 74.5 GiB, above any cap we test on
    p = Problem.generate(d=1000, n=3, gamma=1.0, sigma=0.1, seed=0)
    with pytest.raises(ValueError, match=r"^n_paths: .* GiB of memory, above the cap"):
        simulate(p, n_paths=10**7, steps=10, lr=0.01, chunk_size=1000)


def test_too_many_records_are_refused():
    p = Problem.generate(d=6, n=3, gamma=1.0, sigma=0.1, seed=0)
    with pytest.raises(ValueError, match=r"^record_every: "):
        simulate(p, n_paths=1, steps=10**12, lr=1e-9, record_every=1)


def test_budget_caps_name_the_parameter_and_the_alternatives():
    with pytest.raises(ValueError, match=r"^tau_max: .* above the cap of 5e\+12 .*; lower tau_max or paths$"):
        budget.check_work("tau_max", 2 * budget.WORK_CAP, "SGD", ("tau_max", "paths"))
    assert budget.check_work("tau_max", budget.WORK_CAP, "SGD") == budget.WORK_CAP
    with pytest.raises(ValueError, match=r"^d: .* GiB of memory, above the cap .*; lower d$"):
        budget.check_memory("d", 2 * budget.memory_cap(), "a model")
    with pytest.raises(ValueError, match=r"^tau_max: the drift ODE would run 2e\+08 of its relaxation times"):
        budget.check_ode_horizon("tau_max", 1e8, 2.0)
    assert budget.memory_cap() == int(budget.MEMORY_FRACTION * budget.physical_memory())
    # the rate scale a tr Hess / ||theta||^2 of the nonlinear model at a point: closed form h(r) / r^2 on M
    p = Problem.generate(d=6, n=3, gamma=1.0, sigma=0.1, seed=0)
    from lrdecay.theory.models import nonlinear as m

    w = m.retract(p.w0, p.X, p.y, p.gamma)
    r = float(np.linalg.norm(w))
    h = float(m.manifold_hessian_trace(r, p.X, p.y, p.gamma))
    assert budget.drift_rate(0.5, float(m.hessian_trace(w, p.X, p.y, p.gamma)), r * r) == pytest.approx(0.5 * h / r**2,
                                                                                                      rel=1e-10)
