"""The batched gradient flow against stored outcomes: every number the same as when the file was written.

``tests/data/flow_golden.npz`` holds, for each case below, what :func:`batched_gradient_flow` returned
(stop times, final states and losses, statuses, messages, right-hand-side evaluations, accepted steps)
when it was written by the single-function integrator, before that function was cut into scipy's pieces
(initial step, DOP853 step, step-size update, dense output, event location). On a machine whose compute
environment (CPU kind, BLAS build, numpy version) is the recorded one the arrays must agree bit for bit;
elsewhere BLAS and numpy's vectorised ``**`` may round differently, and the floats must agree to 1e-9
(relative) with the same statuses.

Regenerate only on purpose (it re-baselines the test): ``python -m tests.theory.test_flow_golden --write``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from lrdecay.theory.flow import batched_gradient_flow, problem_gradient_flow_batch
from lrdecay.theory.io import compute_environment, load_result, save_result
from lrdecay.theory.problem import Problem

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "flow_golden.npz"
FIELDS = ("t_final", "W_final", "loss_final", "status", "nfev", "n_steps", "messages")


def _starts(p, P, scale=0.3, seed=1):
    return p.w0 + scale * np.random.default_rng(seed).standard_normal((P, p.d))


def _square(W):                      # dw/dt = w^2: blows up at t = 1/w0 for w0 > 0, decays for w0 < 0
    return -W**2


def _half_norm2(W):
    return 0.5 * np.sum(W**2, axis=1)


def cases() -> dict:
    """name -> a function running one batched flow (stops and no stops, every status)."""
    p1 = Problem.generate(d=20, n=5, gamma=1.0, seed=3)
    p2 = Problem.generate(d=20, n=5, gamma=1.0, seed=1)
    p3 = Problem.generate(d=30, n=6, gamma=2.0, seed=9)
    p4 = Problem.generate(d=20, n=5, gamma=0.0, seed=5)
    mixed = np.stack([p2.w_mn, p2.w0, 2.0 * p2.w0, 0.05 * p2.w0])
    return {
        "reach_eps": lambda: problem_gradient_flow_batch(p1, _starts(p1, 6), eps=1e-6, t_max=1e4, reduce=False),
        "mixed": lambda: problem_gradient_flow_batch(p2, mixed, eps=1e-5, t_max=3.0, reduce=False),
        "no_stop_reduced": lambda: problem_gradient_flow_batch(p3, _starts(p3, 4), eps=None, t_max=50.0),
        "linear_loose_tol": lambda: problem_gradient_flow_batch(p4, _starts(p4, 5), eps=1e-4, t_max=1e3,
                                                                rtol=1e-6, atol=1e-9, reduce=False),
        "blowup_or_eps": lambda: batched_gradient_flow(_square, np.array([[0.5, 0.1], [-0.5, -0.2], [2.0, 0.0],
                                                                          [-3.0, -1.0]]),
                                                       loss=_half_norm2, eps=1e-4, t_max=1e4, blowup=1e6),
        "step_too_small": lambda: batched_gradient_flow(_square, np.array([[1.0], [-1.0]]), loss=_half_norm2,
                                                        eps=None, t_max=10.0, blowup=1e300),
        "all_below_eps": lambda: batched_gradient_flow(_square, np.array([[1e-3], [-2e-3]]), loss=_half_norm2,
                                                       eps=1e-3, t_max=1.0),
    }


def outcome(batch) -> dict:
    return {f: np.asarray(getattr(batch, f)) for f in FIELDS}


def _environment() -> dict:
    return {"compute": compute_environment(), "numpy": np.__version__}


def write() -> None:
    arrays = {f"{name}__{k}": v for name, run in cases().items() for k, v in outcome(run()).items()}
    save_result(GOLDEN, arrays, {"cases": list(cases()), "environment": _environment()})


@pytest.fixture(scope="module")
def golden():
    arrays, config = load_result(GOLDEN)
    return arrays, config["environment"] == _environment()


@pytest.mark.parametrize("name", list(cases()))
def test_batched_flow_reproduces_the_stored_outcome(golden, name):
    arrays, same_machine = golden
    got = outcome(cases()[name]())
    for k, v in got.items():
        want = arrays[f"{name}__{k}"]
        assert v.shape == want.shape, (name, k)
        if same_machine or v.dtype.kind in "iuU":
            np.testing.assert_array_equal(v, want, err_msg=f"{name}: {k}")
        else:
            np.testing.assert_allclose(v, want, rtol=1e-9, atol=1e-12, err_msg=f"{name}: {k}")


def test_the_cases_cover_every_status(golden):
    arrays, _ = golden
    seen = set(np.concatenate([arrays[f"{name}__status"] for name in cases()]))
    assert seen == {"reached_eps", "time_limit", "diverged", "failed"}


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.theory.test_flow_golden --write   (re-baselines the stored outcomes)")
    write()
    print(f"wrote {GOLDEN}")
