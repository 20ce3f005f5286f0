r"""The three phases of label-noise SGD with a late learning-rate decay, located on a simulation.

* **Phase I** (large ``eta``): the iterate falls onto a neighbourhood of the minima manifold M.
  Its end is detected as the first record where the train loss enters the plateau band
  ``train loss <= band * plateau`` around the quasistatic prediction ``(eta a / 4) tr Hess L_n``
  (see :mod:`lrdecay.theory.quasistatic`).
* **Phase II** (large ``eta`` kept): the iterate drifts along M towards ``w_mn``; tracked through
  ``||w - w_mn||``.
* **Phase III** (after the decay to ``eta * factor``): normal fluctuations shrink, the train loss drops
  and the drift along M slows by ``factor^2``, so the final test loss is about the test loss at the
  decay.

The studies that sweep the decay time are in :mod:`lrdecay.theory.studies.decay`.
"""
from __future__ import annotations

import numpy as np

from lrdecay.theory.engine import SimulationResult
from lrdecay.theory.problem import Problem


def flow_landing_test_loss(problem: Problem, eps: float = 1e-10, t_max: float = 1e7) -> float:
    """Test loss of the point where gradient flow from ``w0`` lands on M (train loss ``eps``)."""
    from lrdecay.theory.flow import problem_gradient_flow
    from lrdecay.theory.models.nonlinear import test_loss

    res = problem_gradient_flow(problem, eps=eps, t_max=t_max, rtol=1e-9, atol=1e-12)
    return float(test_loss(res.w_final, problem.alpha_star, problem.gamma, 0.0, problem.test_offset))


def phase_boundaries(sim: SimulationResult, plateau: np.ndarray | float, decay_step: int | np.ndarray,
                     band: float = 3.0) -> dict:
    """Per path: the end of Phase I (first record with train loss <= ``band`` x plateau; -1 if never)
    and the start of Phase III (the decay step). ``plateau`` is the predicted Phase II train-loss level."""
    tl = sim.records["train_loss"]
    plateau = np.broadcast_to(np.asarray(plateau, dtype=float), tl.shape[1:])
    inside = tl <= band * plateau[None, :]
    first = np.where(inside.any(axis=0), sim.steps[np.argmax(inside, axis=0)], -1)
    return {"phase1_end": first, "phase3_start": np.broadcast_to(np.asarray(decay_step), first.shape)}
