"""The engine's paths, bit for bit: every backend (numpy, numba, torch) on a set of calls covering GD,
label-noise SGD, Euler–Maruyama, minibatches, per-path rates, stop rules, record grids, chunking,
custom observables, stacked and generic models and diverging paths, against results stored in
``tests/data/engine_golden.npz``.

The stored results were computed by the engine before it was split into the package
:mod:`lrdecay.theory.engine`; the refactor had to reproduce them exactly (same seed, same chunking:
the same bytes). Arrays of up to ``_KEEP`` numbers are stored as they are, larger ones as SHA-256
digests of their bytes; the status labels are compared as strings (the numpy loop stored them as
``'<U10'``, the other backends as ``'<U9'``; every backend now gives ``'<U9'``). The numbers depend
on the machine's BLAS and libm only through the summation order of matrix products, which is fixed
for a given build; on another build a mismatch of a few ulp in ``W_final`` would mean that, not a
change of the engine (rerun with ``--write`` there from a known-good commit).

Write the file: ``python tests/theory/test_engine_golden.py --write``.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

from lrdecay.theory.engine import StopWhen, simulate
from lrdecay.theory.models.diagonal import DiagonalNetwork
from lrdecay.theory.models.nonlinear import NonlinearModel
from lrdecay.theory.problem import Problem
from lrdecay.theory.schedules import Constant, StepDecay

DATA = Path(__file__).resolve().parent.parent / "data" / "engine_golden.npz"
_KEEP = 4096      # arrays with at most this many entries are stored whole, larger ones as digests


def _small():
    return Problem.generate(d=18, n=5, gamma=1.3, sigma=0.4, seed=3)


def _large():
    """n d >= 8192 with shared data: the numba backend's BLAS stepper."""
    return Problem.generate(d=420, n=20, gamma=1.0, sigma=0.6, seed=1)


def _stacked(cls=NonlinearModel):
    probs = [Problem.generate(d=10, n=4, gamma=g, sigma=0.5, seed=s)
             for g, s in ((0.0, 1), (1.0, 2), (2.5, 3), (1.0, 4))]
    return cls.stack(probs), np.stack([p.w0 for p in probs])


def _sim(backend, *args, **kw):
    """``simulate`` on ``backend``; torch on the CPU with one thread (its CUDA numbers differ)."""
    if backend == "torch":
        import torch
        torch.set_num_threads(1)
        kw.setdefault("device", "cpu")
    return simulate(*args, backend=backend, **kw)


class _Extra(NonlinearModel):
    """The built-in dynamics with one more observable (served by every backend, observed in Python)."""

    def observables(self, W):
        out = super().observables(W)
        out["half_norm"] = 0.5 * out["norm"]
        return out


def _stop_train(level):
    return lambda obs, k: obs["train_loss"] < level


def _cases():
    """``name -> (backends, thunk(backend) -> SimulationResult)``."""
    S, NN = ("numpy", "numba", "torch"), ("numpy", "numba")
    p = _small
    rates = [StepDecay(0.05, 100), Constant(0.02), StepDecay(0.08, 30, 0.1)]
    div_lr = [Constant(0.05), Constant(6.0), Constant(0.02), Constant(0.04)]
    norm_stop = StopWhen(lambda obs, k: obs["norm"] < 1.2, status="diverged", name="norm")
    sq = ("sq", lambda W: np.sum(W**2, 1))
    cases = {
        "gd": (S, lambda b: _sim(b, p(), n_paths=3, steps=150, lr=0.05, method="gd", record_every=17)),
        "sgd": (S, lambda b: _sim(b, p(), n_paths=3, steps=200, lr=0.05, seed=7, record_every=23)),
        "sgd_minibatch": (S, lambda b: _sim(b, p(), n_paths=3, steps=200, lr=0.05, batch_size=2, seed=5,
                                            record_every=40)),
        "em": (S, lambda b: _sim(b, p(), n_paths=3, steps=120, lr=0.5, method="em", dt=0.05, seed=2)),
        "em_a": (NN, lambda b: _sim(b, p(), n_paths=2, steps=80, lr=StepDecay(0.5, 30), method="em", dt=0.05,
                                    a=0.02, seed=4, record_steps=[0, 3, 50, 80])),
        "schedules_chunked": (S, lambda b: _sim(b, p(), n_paths=3, steps=180, lr=rates, seed=1, chunk_size=2,
                                                path_offset=3, record_every=30)),
        "per_path_eta": (S, lambda b: _sim(b, p(), n_paths=3, steps=160, lr=np.array([0.01, 0.03, 0.05]), seed=3,
                                           record_steps=[0, 1, 2, 77, 160])),
        "stop_loss": (S, lambda b: _sim(b, p(), n_paths=3, steps=400, lr=0.05, method="gd", stop_loss=0.02,
                                        record_every=50)),
        "stop_fn": (S, lambda b: _sim(b, p(), n_paths=4, steps=300, lr=0.05, seed=8, record_every=10,
                                      stop_fn=_stop_train(0.05))),
        "stop_when_diverged": (S, lambda b: _sim(b, p(), n_paths=3, steps=200, lr=0.05, seed=8, record_every=20,
                                                 stop_fn=norm_stop)),
        "diverging_chunks": (S, lambda b: _sim(b, p(), n_paths=4, steps=200, lr=div_lr, seed=1, chunk_size=3,
                                               record_every=10)),
        "all_diverge_early": (S, lambda b: _sim(b, p(), n_paths=2, steps=300, lr=40.0, seed=1, record_every=25)),
        "custom_observables": (S, lambda b: _sim(b, p(), n_paths=3, steps=100, lr=0.05, seed=2, record_every=9,
                                                 observables=["norm", sq])),
        "subset_observables": (S, lambda b: _sim(b, p(), n_paths=3, steps=100, lr=0.05, seed=2,
                                                 observables=["test_loss", "norm"])),
        "reduce": (NN, lambda b: _sim(b, p(), n_paths=3, steps=150, lr=0.05, seed=6, reduce=True)),
        "reduce_minibatch": (NN, lambda b: _sim(b, p(), n_paths=3, steps=150, lr=0.05, seed=6, reduce=True,
                                                batch_size=3)),
        "no_steps": (S, lambda b: _sim(b, p(), n_paths=2, steps=0, lr=0.05)),
        "sgd_no_noise": (S, lambda b: _sim(b, p(), n_paths=2, steps=50, lr=0.05, sigma=0.0)),
        "per_step_stopwhen": (("numpy",), lambda b: _sim(
            b, p(), n_paths=3, steps=200, lr=0.05, seed=4,
            stop_fn=StopWhen(lambda loss, k: loss < 0.3, every_step=True, name="low"))),
        "torch_float32": (("torch",), lambda b: _sim(b, p(), n_paths=3, steps=100, lr=0.05, seed=1,
                                                     dtype="float32")),
        # per-path data (the gamma study's set-up), with a record-time stop on a subclass's observable
        "stacked_stop": (S, lambda b: _sim(b, *_stacked(_Extra), steps=300, lr=np.array([0.02, 0.03, 0.01, 0.05]),
                                           sigma=0.5, seed=4, record_every=20, path_offset=5, chunk_size=3,
                                           stop_fn=lambda obs, k: obs["half_norm"] < 0.57)),
        "stacked_minibatch": (S, lambda b: _sim(b, *_stacked(), steps=120, lr=0.03, batch_size=2, seed=2)),
        # large d, shared data: the numba backend's BLAS stepper (kernel observables or the Python observer)
        "large_stop_fn_custom": (S, lambda b: _sim(
            b, _large(), n_paths=3, steps=90, method="sgd", lr=[Constant(0.004), Constant(0.002), Constant(0.003)],
            seed=2, record_every=3, stop_fn=_stop_train(1.5), observables=["train_loss", "dist_mn", sq])),
        "large_diverge": (S, lambda b: _sim(b, _large(), n_paths=2, steps=60, method="gd",
                                            lr=[Constant(0.002), Constant(0.2)], record_every=5)),
        "large_all_diverge": (S, lambda b: _sim(b, _large(), n_paths=2, steps=40, lr=0.5, record_every=6, seed=3)),
        # a generic model (the numpy loop only)
        "diagonal_sgd": (("numpy",), lambda b: _sim(b, _diagonal(3), np.full((3, 12), 0.3), steps=150, lr=0.02,
                                                    seed=3, record_every=15)),
        "diagonal_minibatch": (("numpy",), lambda b: _sim(b, _diagonal(4), np.full((2, 12), 0.3), steps=100,
                                                          lr=0.02, batch_size=2, seed=3, record_every=10)),
        "diagonal_em": (("numpy",), lambda b: _sim(b, _diagonal(4), np.full((2, 12), 0.3), steps=100, lr=0.5,
                                                   method="em", dt=0.02, seed=3, record_every=10)),
    }
    for method, kw in (("em", dict(dt=0.01, lr=1.0)), ("sgd", dict(lr=0.004)), ("gd", dict(lr=0.004, stop_loss=3.0))):
        cases[f"large_{method}"] = (S, lambda b, method=method, kw=kw: _sim(
            b, _large(), n_paths=3, steps=70, method=method, seed=2, record_every=7, **kw))
    return cases


def _diagonal(n):
    return DiagonalNetwork.generate(d=6, n=n, sparsity=2, sigma=0.5, seed=1)


def _fields(r) -> dict:
    out = {"steps": r.steps, "times": r.times, "tau": r.tau, "W_final": r.W_final, "status": r.status,
           "stop_step": r.stop_step, "message": np.array(r.message)}
    out.update({f"records/{k}": v for k, v in sorted(r.records.items())})
    return out


def _digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return f"{a.dtype.str}{a.shape}:" + hashlib.sha256(a.tobytes()).hexdigest()


def _stored(a: np.ndarray):
    return a if a.size <= _KEEP else np.array(_digest(a))


def _run(case: str, backend: str):
    return _cases()[case][1](backend)


def _keys():
    return [(c, b) for c, (backends, _) in _cases().items() for b in backends]


def write() -> None:
    data = {}
    for case, backend in _keys():
        for name, v in _fields(_run(case, backend)).items():
            data[f"{case}|{backend}|{name}"] = _stored(np.asarray(v))
    DATA.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(DATA, **data)
    print(f"wrote {len(data)} arrays for {len(_keys())} runs to {DATA}")


@pytest.mark.parametrize("case, backend", _keys(), ids=[f"{c}-{b}" for c, b in _keys()])
def test_engine_paths_are_bit_identical_to_the_stored_ones(case, backend):
    if backend == "torch":
        pytest.importorskip("torch")
    if backend == "numba":
        pytest.importorskip("numba")
    stored = np.load(DATA)
    prefix = f"{case}|{backend}|"
    want = {k[len(prefix):]: stored[k] for k in stored.files if k.startswith(prefix)}
    got = {k: _stored(np.asarray(v)) for k, v in _fields(_run(case, backend)).items()}
    assert set(got) == set(want)
    for name in want:
        a, b = got[name], want[name]
        if b.dtype.kind == "U" and b.ndim == 0 and a.dtype.kind != "U":
            raise AssertionError(f"{name}: stored as a digest, got a small array")
        if name == "status":          # the labels; their string width was '<U10' on numpy, '<U9' elsewhere
            assert a.tolist() == b.tolist(), (a, b)
            continue
        assert a.dtype == b.dtype and a.shape == b.shape, (name, a.dtype, b.dtype, a.shape, b.shape)
        assert a.tobytes() == b.tobytes(), f"{name} differs: got {a!r}, stored {b!r}"


if __name__ == "__main__":
    if "--write" in sys.argv:
        write()
