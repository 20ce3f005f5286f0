"""The engine's grouped options and its status enumeration: the option objects give the same paths as
the plain keywords, both at once are refused, and every backend reports status through :class:`Status`."""
import numpy as np
import pytest

from lrdecay.theory.engine import (STATUSES, BackendOptions, EngineModel, NoiseOptions, RecordOptions, Status,
                                   StopWhen, simulate)
from lrdecay.theory.models.nonlinear import NonlinearModel
from lrdecay.theory.problem import Problem


def _problem():
    return Problem.generate(d=12, n=4, gamma=1.0, sigma=0.3, seed=1)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_option_objects_give_the_keywords_paths(backend):
    pytest.importorskip(backend)
    p = _problem()
    kw = dict(n_paths=3, steps=60, lr=0.05, seed=4)
    a = simulate(p, record_steps=[0, 7, 60], observables=["norm"], batch_size=2, sigma=0.2, chunk_size=2,
                 backend=backend, **kw)
    b = simulate(p, records=RecordOptions(steps=[0, 7, 60], observables=["norm"]),
                 noise=NoiseOptions(sigma=0.2, batch_size=2), backend=BackendOptions(backend, chunk_size=2), **kw)
    np.testing.assert_array_equal(a.W_final, b.W_final)
    np.testing.assert_array_equal(a.records["norm"], b.records["norm"])
    np.testing.assert_array_equal(a.steps, [0, 7, 60])
    assert a.config == b.config


def test_an_option_object_and_its_keywords_together_are_refused():
    p = _problem()
    with pytest.raises(ValueError, match=r"give either a RecordOptions or its keywords \(record_every, record_steps"):
        simulate(p, steps=5, lr=0.1, record_every=2, records=RecordOptions(every=3))
    with pytest.raises(ValueError, match="give either a NoiseOptions or its keywords"):
        simulate(p, steps=5, lr=0.1, sigma=0.1, noise=NoiseOptions(sigma=0.2))
    with pytest.raises(ValueError, match="give either a BackendOptions or its keywords"):
        simulate(p, steps=5, lr=0.1, chunk_size=1, backend=BackendOptions("numpy"))
    with pytest.raises(ValueError, match="expected a NoiseOptions, got dict"):
        simulate(p, steps=5, lr=0.1, noise={"sigma": 0.1})
    with pytest.raises(ValueError, match="device and dtype apply to backend 'torch' only"):
        BackendOptions("numpy", device="cpu")
    with pytest.raises(ValueError, match="backend must be one of"):
        BackendOptions("jax")


def test_status_is_one_enumeration_with_labels_and_messages():
    assert STATUSES == ("completed", "stopped", "diverged")
    assert [int(s) for s in Status] == [0, 1, 2] and [s.label for s in Status] == list(STATUSES)
    assert all(s.message for s in Status)
    assert Status.parse("diverged") is Status.DIVERGED and Status.parse(Status.STOPPED) is Status.STOPPED
    np.testing.assert_array_equal(Status.labels(np.array([2, 0, 1], dtype=np.int8)),
                                  ["diverged", "completed", "stopped"])
    with pytest.raises(ValueError, match="status must be 'stopped' or 'diverged', got 'completed'"):
        StopWhen(lambda obs, k: True, status="completed")


@pytest.mark.parametrize("backend", ["numpy", "numba", "torch"])
def test_every_backend_reports_the_three_statuses(backend):
    pytest.importorskip(backend)
    p = _problem()
    lr = np.array([0.02, 40.0, 0.02])                      # path 1 diverges
    stop = StopWhen(lambda obs, k: np.array([False, False, k >= 10]), name="third")   # path 2 stops at step 10
    kw = {"device": "cpu"} if backend == "torch" else {}
    r = simulate(p, n_paths=3, steps=40, lr=lr, method="gd", record_every=5, stop_fn=stop, backend=backend, **kw)
    assert list(r.status) == ["completed", "diverged", "stopped"]
    assert r.stop_step[0] == -1 and r.stop_step[2] == 10 and r.stop_step[1] >= 0


def test_the_builtin_model_satisfies_the_engine_protocol():
    model = NonlinearModel.from_problem(_problem())
    assert isinstance(model, EngineModel)
    data = model.kernel_data()
    assert data.builtin_observables and not data.stacked

    class Extra(NonlinearModel):
        def observables(self, W):
            return {**super().observables(W), "x": W[:, 0]}

    class Stepper(NonlinearModel):
        def minibatch_increment(self, W, eta, idx, xi, sigma):
            return super().minibatch_increment(W, eta, idx, xi, sigma)

    assert not Extra.from_problem(_problem()).kernel_data().builtin_observables
    with pytest.raises(NotImplementedError, match="Stepper overrides NonlinearModel.minibatch_increment"):
        Stepper.from_problem(_problem()).kernel_data()
