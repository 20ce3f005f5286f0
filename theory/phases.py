r"""The three phases of label-noise SGD with a late learning-rate decay.

* **Phase I** (large ``eta``): the iterate falls onto a neighbourhood of the minima manifold M.
  Its end is detected as the first record where the train loss enters the plateau band
  ``[plateau / band, plateau * band]`` around the quasistatic prediction
  ``(eta a / 4) tr Hess L_n`` (see :mod:`theory.quasistatic`).
* **Phase II** (large ``eta`` kept): the iterate drifts along M towards ``w_mn``; tracked through
  ``||w - w_mn||``.
* **Phase III** (after the decay to ``eta * factor``): normal fluctuations shrink, the train loss drops
  and the position along M freezes, so the final test loss is about the test loss at the decay.

:func:`decay_sweep` runs one batch of paths per decay step (all in one engine call, one schedule per
path) and returns the final test loss per decay step next to two reference values: the min-norm test
loss and the test loss of the gradient-flow landing point from ``w0``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from theory import io
from theory.problem import Problem
from theory.schedules import Cosine, Schedule, StepDecay, WarmupStableDecay
from theory.sde import SimulationResult, simulate
from theory.validation import integer


def _nonneg_ints(name, values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 0):
        raise ValueError(f"{name} must be a non-empty list of integers >= 0, got {values!r}")
    return arr.astype(np.int64)


def flow_landing_test_loss(problem: Problem, eps: float = 1e-10, t_max: float = 1e7) -> float:
    """Test loss of the point where gradient flow from ``w0`` lands on M (train loss ``eps``)."""
    from theory.flow import problem_gradient_flow
    from theory.model import test_loss

    res = problem_gradient_flow(problem, eps=eps, t_max=t_max, rtol=1e-9, atol=1e-12)
    return float(test_loss(res.w_final, problem.alpha_star, problem.gamma, 0.0, problem.test_offset))


@dataclass
class DecaySweep:
    """Final losses of label-noise SGD for each decay step (``paths_per_decay`` paths each)."""

    problem: Problem
    decay_steps: np.ndarray
    total_steps: int
    final_test: np.ndarray          # (n_decay, paths)
    final_train: np.ndarray
    final_norm: np.ndarray
    sim: SimulationResult
    min_norm_test_loss: float
    flow_landing_test_loss: float
    config: dict = field(default_factory=dict)

    @property
    def mean_final_test(self) -> np.ndarray:
        return self.final_test.mean(axis=1)

    @property
    def sem_final_test(self) -> np.ndarray:
        k = self.final_test.shape[1]
        return self.final_test.std(axis=1, ddof=1) / np.sqrt(k) if k > 1 else np.zeros(len(self.decay_steps))

    def table(self) -> str:
        rows = [f"{'decay step':>11} {'final test loss':>22} {'final train loss':>17} {'||w||':>8}"]
        for i, k in enumerate(self.decay_steps):
            rows.append(f"{k:>11d} {self.mean_final_test[i]:>12.4f} ± {self.sem_final_test[i]:<7.4f} "
                        f"{self.final_train[i].mean():>17.2e} {self.final_norm[i].mean():>8.4f}")
        rows.append(f"{'min-norm':>11} {self.min_norm_test_loss:>12.4f}   (||w_mn|| = {np.linalg.norm(self.problem.w_mn):.4f})")
        rows.append(f"{'GF landing':>11} {self.flow_landing_test_loss:>12.4f}")
        return "\n".join(rows)

    def save(self, path):
        arrays = {"decay_steps": self.decay_steps, "final_test": self.final_test,
                  "final_train": self.final_train, "final_norm": self.final_norm,
                  "steps": self.sim.steps, "times": np.asarray(self.sim.times)}
        arrays.update({f"rec_{k}": v for k, v in self.sim.records.items()})
        arrays.update(self.problem.arrays(prefix="problem_"))
        cfg = {"kind": "DecaySweep", **self.config, "problem": self.problem.config(),
               "min_norm_test_loss": self.min_norm_test_loss,
               "flow_landing_test_loss": self.flow_landing_test_loss, "total_steps": self.total_steps}
        return io.save_result(path, arrays, cfg)


def decay_sweep(problem: Problem, *, eta: float = 0.02, decay_steps=(0, 1000, 10000, 100000),
                factor: float = 0.1, phase3_steps: int = 20000, paths_per_decay: int = 4, seed: int = 0,
                batch_size: int | None = None, record_every: int | None = None, reduce: bool = True,
                progress: bool = False) -> DecaySweep:
    """Label-noise SGD at ``eta`` decayed to ``eta * factor`` at each of ``decay_steps``.

    Every run has the same step budget ``max(decay_steps) + phase3_steps``, so the decay time is the
    only difference between rows. Paths of different rows use different noise streams (path index).
    """
    ds = _nonneg_ints("decay_steps", decay_steps)
    integer("phase3_steps", phase3_steps, 1)
    integer("paths_per_decay", paths_per_decay, 1)
    total = int(ds.max()) + int(phase3_steps)
    schedules = [StepDecay(eta, int(k), factor) for k in ds for _ in range(paths_per_decay)]
    if record_every is None:  # log-spaced early records (Phase I) plus a linear grid
        rec = np.unique(np.concatenate([np.geomspace(1, total, 150).astype(np.int64), np.linspace(0, total, 301).astype(np.int64)]))
    else:
        rec = np.arange(0, total + 1, record_every)
    sim = simulate(problem, n_paths=len(schedules), steps=total, lr=schedules, method="sgd",
                   batch_size=batch_size, seed=seed, record_steps=rec, reduce=reduce, progress=progress)
    shape = (len(ds), paths_per_decay)
    cfg = dict(eta=eta, decay_steps=ds.tolist(), factor=factor, phase3_steps=int(phase3_steps),
               paths_per_decay=int(paths_per_decay), seed=int(seed), batch_size=batch_size,
               reduce=bool(reduce), sim=sim.config, sim_message=sim.message)
    return DecaySweep(problem, ds, total, sim.final("test_loss").reshape(shape),
                      sim.final("train_loss").reshape(shape), sim.final("norm").reshape(shape), sim,
                      problem.min_norm_test_loss, flow_landing_test_loss(problem), cfg)


def equal_budget_schedules(eta: float, total_steps: int, factor: float = 0.1,
                           decay_fractions=(0.25, 0.5, 0.75, 0.9)) -> dict[str, Schedule]:
    """Schedules with the same step budget: step decay at several fractions of it, cosine to
    ``eta * factor``, and warmup-stable-decay (5 % warm-up, decay over the last 10 %)."""
    out: dict[str, Schedule] = {f"step@{f:.2f}": StepDecay(eta, int(f * total_steps), factor) for f in decay_fractions}
    out["cosine"] = Cosine(eta, total_steps, eta_min=eta * factor)
    out["wsd"] = WarmupStableDecay(eta, warmup_steps=int(0.05 * total_steps), decay_start=int(0.9 * total_steps),
                                   decay_steps=int(0.1 * total_steps), final_factor=factor)
    return out


def schedule_comparison(problem: Problem, schedules: dict, *, total_steps: int, paths: int = 4, seed: int = 0,
                        batch_size: int | None = None, reduce: bool = True, progress: bool = False) -> dict:
    """Final test/train loss of each named schedule at an equal step budget (one engine call)."""
    names = list(schedules)
    lr = [schedules[nm] for nm in names for _ in range(paths)]
    sim = simulate(problem, n_paths=len(lr), steps=total_steps, lr=lr, batch_size=batch_size, seed=seed,
                   record_every=max(1, total_steps // 200), reduce=reduce, progress=progress)
    test = sim.final("test_loss").reshape(len(names), paths)
    train = sim.final("train_loss").reshape(len(names), paths)
    return {"names": names, "final_test": test, "final_train": train, "sim": sim,
            "min_norm_test_loss": problem.min_norm_test_loss}


def phase_boundaries(sim: SimulationResult, plateau: np.ndarray | float, decay_step: int | np.ndarray,
                     band: float = 3.0) -> dict:
    """Per path: the end of Phase I (first record with train loss <= ``band`` x plateau) and the
    start of Phase III (the decay step). ``plateau`` is the predicted Phase II train-loss level."""
    tl = sim.records["train_loss"]
    plateau = np.broadcast_to(np.asarray(plateau, dtype=float), tl.shape[1:])
    inside = tl <= band * plateau[None, :]
    first = np.where(inside.any(axis=0), sim.steps[np.argmax(inside, axis=0)], -1)
    return {"phase1_end": first, "phase3_start": np.broadcast_to(np.asarray(decay_step), first.shape)}
