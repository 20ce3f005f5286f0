"""The generic model's cheaper paths against independent oracles: the one-sample Jacobian against the ReLU network's
Jacobian written by hand in numpy, the traced SGD step against the eager one (bit for bit) and against a plain
per-path loop, the whole-batch fallback for a predict that couples its samples, the fixed-step Heun integrator against
closed forms (smooth and with a kink), and the drift-any study integrating its drift once."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lrdecay.theory.engine import path_generators, simulate  # noqa: E402
from lrdecay.theory.fixed_step import fixed_step_heun  # noqa: E402
from lrdecay.theory.models import generic_examples as ge  # noqa: E402
from lrdecay.theory.models.generic import GenericModel  # noqa: E402


def _relu_jacobian(M, th):
    """``J`` of ``relu(X W_1^T) w_2 / sqrt(h)`` by hand: ``w_2k 1[a_ik > 0] x_i / sqrt(h)`` and ``relu(a_ik) / sqrt(h)``."""
    h, d = M.meta["hidden"], M.meta["d"]
    W1, w2 = th[:h * d].reshape(h, d), th[h * d:]
    A = M.X @ W1.T                                                   # (n, h)
    JW = (w2 * (A > 0))[:, :, None] * M.X[:, None, :] / math.sqrt(h)  # (n, h, d)
    return np.concatenate([JW.reshape(M.n, -1), np.maximum(A, 0) / math.sqrt(h)], axis=1)


def test_one_sample_jacobian_equals_the_hand_written_relu_jacobian():
    M = ge.relu_teacher_student(d=4, hidden=6, n=7, n_test=5, seed=3)
    assert M._per_sample
    W = M.theta0 + 0.3 * np.random.default_rng(0).standard_normal((3, M.dim))
    J = M.jacobian(W)
    for p in range(3):
        np.testing.assert_allclose(J[p], _relu_jacobian(M, W[p]), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(M.hessian_trace(W), [np.sum(_relu_jacobian(M, w) ** 2) / M.n for w in W], rtol=1e-13)


def _coupled(theta, X):
    """Predictions minus half their mean: the samples are coupled, so one-sample calls do not reproduce the batch."""
    out = X @ theta
    return out - 0.5 * out.mean()


def test_a_predict_that_couples_its_samples_takes_the_whole_batch_jacobian():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((4, 3))
    M = GenericModel(_coupled, X, rng.standard_normal(4), rng.standard_normal(3))
    assert not M._per_sample
    C = np.eye(4) - 0.5 * np.ones((4, 4)) / 4
    np.testing.assert_allclose(M.jacobian(M.theta0), C @ X, rtol=1e-13, atol=1e-15)


def test_traced_step_is_the_eager_step_bit_for_bit_and_sgd_equals_a_plain_loop():
    """Past TRACE_AFTER calls the SGD step runs as a traced graph: equal to the eager step exactly on fresh inputs,
    and simulate over TRACE_AFTER + 30 steps equals w <- w - (eta/n) J^T (r - sigma xi) with the hand-written ReLU
    Jacobian and the engine's noise streams (rounding, 1e-10)."""
    M = ge.relu_teacher_student(d=3, hidden=5, n=6, n_test=5, sigma=0.5, seed=2)
    W0 = M.theta0 + 0.1 * np.random.default_rng(3).standard_normal((2, M.dim))
    eta, steps = 0.05, M.TRACE_AFTER + 30
    sim = simulate(M, W0, steps=steps, lr=eta, method="sgd", sigma=M.sigma, seed=7, record_every=steps)
    assert 2 in M._traced_steps and M._traced_steps[2] is not None
    noise = np.stack([g.standard_normal((steps, M.n)) for g in path_generators(7, range(2), 0)], axis=1)
    W = W0.copy()
    for k in range(steps):
        for p in range(2):
            J = _relu_jacobian(M, W[p])
            r = (M.predict(W[p]) - M.y)
            W[p] = W[p] - eta / M.n * J.T @ (r - M.sigma * noise[k, p])
    np.testing.assert_allclose(sim.W_final, W, rtol=1e-10, atol=1e-12)
    rng = np.random.default_rng(4)
    for _ in range(5):
        args = (torch.as_tensor(W0 + rng.standard_normal(W0.shape)), torch.as_tensor(rng.random((2, 1))),
                torch.as_tensor(rng.standard_normal((2, M.n))))
        for a, b in zip(M._traced_steps[2](*args), M._eager_step(*args)):
            assert torch.equal(a, b)


def test_fixed_step_heun_against_closed_forms():
    """y' = -y: error O(step^2) at the step grid (halving the step quarters it, within 10 %) and a terminal event at
    y = 1/2 (t = log 2 within the step's error); y' = -sign(y) from 0.35 (a kink at 0 where the field pushes from both
    sides): the Filippov solution max(0.35 - t, 0) within one step."""
    from scipy.integrate import solve_ivp

    te = np.linspace(0, 2, 11)                                  # on both step grids
    err = [np.max(np.abs(solve_ivp(lambda t, y: -y, (0, 2), [1.0], method=fixed_step_heun(h), t_eval=te).y[0]
                         - np.exp(-te))) for h in (0.02, 0.01)]
    assert 3.6 < err[0] / err[1] < 4.4 and err[1] < 1e-5, err

    def half(t, y):
        return y[0] - 0.5
    half.terminal = True
    s = solve_ivp(lambda t, y: -y, (0, 2), [1.0], method=fixed_step_heun(0.01), events=half)
    assert s.status == 1 and abs(s.t_events[0][0] - math.log(2)) < 1e-4
    h = 0.1
    s = solve_ivp(lambda t, y: -np.sign(y), (0, 2), [0.35], method=fixed_step_heun(h), t_eval=te)
    assert s.success and np.max(np.abs(s.y[0] - np.maximum(0.35 - te, 0))) <= h
    with pytest.raises(ValueError, match="step"):
        fixed_step_heun(0.0)


def tiny(seed: int = 0, sigma: float = 1.0):
    """An entry point: the two-layer linear network (d = 4, n = 2, h = 2) as a generic model."""
    from lrdecay.theory.models.two_layer import TwoLayerLinear

    return ge.from_linear_readout(TwoLayerLinear.generate(d=4, n=2, hidden=2, sigma=sigma, seed=seed))


@pytest.mark.parametrize("long_tau_factor", [1.0, 3.0])
def test_drift_any_integrates_the_drift_once(monkeypatch, tmp_path, long_tau_factor):
    """The comparison's ODE runs once over [0, tau_max] (plus the decayed rows' drift times); the long run continues it
    from its point at tau_max, so the saved drift record starts with the ODE's own (the same numbers)."""
    from dataclasses import replace

    from lrdecay.theory.studies import drift_any, model_decay

    calls, flows = [], []
    ode = model_decay.drift_ode

    def counting_ode(*a, **k):
        calls.append(k.get("tau_eval") is not None)
        return ode(*a, **k)
    monkeypatch.setattr(model_decay, "drift_ode", counting_ode)
    import lrdecay.theory.models.generic as gen
    real_flow = gen.drift_flow

    def counting_flow(model, start, *a, **k):
        flows.append(np.array(start))
        return real_flow(model, start, *a, **k)
    monkeypatch.setattr(gen, "drift_flow", counting_flow)     # run_drift_any imports it when it runs
    cfg = replace(drift_any.DriftAnyConfig(model=f"{__name__}:tiny").smoke(), long_tau_factor=long_tau_factor)
    res = drift_any.run_drift_any(cfg)
    st = res.study
    assert calls == [True]
    keep = st.ode_tau <= st.tau_max
    assert np.array_equal(res.flow_tau[:keep.sum()], st.ode_tau[keep])
    assert np.array_equal(res.flow_test[:keep.sum()], st.ode_test[keep])
    if long_tau_factor == 1.0:
        assert flows == [] and res.flow_tau[-1] == st.tau_max
    else:
        assert len(flows) == 1 and np.array_equal(flows[0], st.ode_theta_end)
        assert res.flow_tau[-1] == pytest.approx(long_tau_factor * st.tau_max)
    res.save(tmp_path / "r.npz")
    back = drift_any.DriftAnyResult.load(tmp_path / "r.npz")
    assert set(back.timings) == {"landing_s", "sgd_and_ode_s", "long_drift_s"}
    assert np.array_equal(back.flow_tau, res.flow_tau)
