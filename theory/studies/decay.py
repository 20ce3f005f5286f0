r"""Decay-time studies: label-noise SGD decayed at different steps, and schedules at an equal budget.

* :func:`decay_sweep` runs one batch of paths per decay step (all in one engine call, one schedule per
  path) and returns the final test loss per decay step next to two reference values: the min-norm test
  loss and the test loss of the gradient-flow landing point from ``w0``.
* :func:`schedule_comparison` runs named schedules with the same step budget.
* :func:`run_demo` is ``lrdecay demo``: on a default problem (d = 50, n = 10, sigma = 0.3, eta = 0.02,
  decay to eta/10) the late-decay sweep for gamma = 1 and gamma = 0 (the linear model, where the decay
  time should not matter), and the equal-budget schedule comparison for gamma = 1.

The three phases (docs/science.md, §1 Phase I to §1 Phase III): Phase I, the fall onto M (``O(1/eta)``
steps); Phase II, the drift along M towards ``w_mn`` while the large rate is kept; Phase III, after the
decay to ``eta' = factor eta``, the normal fluctuations shrink and the drift slows by ``(eta'/eta)^2``, so
the final test loss is about the test loss at the decay.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from lrdecay.theory import io
from lrdecay.theory.engine import SimulationResult, simulate
from lrdecay.theory.phases import flow_landing_test_loss
from lrdecay.theory.problem import Problem
from lrdecay.theory.schedules import Cosine, Schedule, StepDecay, WarmupStableDecay
from lrdecay.theory.stats import mean_sem
from lrdecay.theory.validation import fraction, integer, integers, numbers, positive

# --------------------------------------------------------------------------------------------------
# Claims' tolerances (fixed in advance; the report imports them)
# --------------------------------------------------------------------------------------------------
#: a later decay must lower the mean final test loss by more than this many standard errors
LATE_DECAY_SE = 2.0
#: ... unless both rows are within this absolute distance of the min-norm test loss (both converged)
CONVERGED_ATOL = 1e-3
#: the latest decay ends within this relative distance of the min-norm test loss and norm
TO_MIN_NORM_RTOL = 0.03
#: gamma = 0: relative spread (max - min) / mean of the final test loss over decay steps
GAMMA0_SPREAD = 1e-3
#: Phase III: measured/predicted drop after the decay must lie in this interval ...
FREEZE_RANGE = (0.7, 1.4)
#: ... for decays after Phase I (step >= this) whose predicted drop exceeds FREEZE_MIN_DROP
FREEZE_MIN_STEP = 1000
FREEZE_MIN_DROP = 1e-3
#: schedules: differences judged at this many standard errors
SCHEDULES_SE = 2.0


# --------------------------------------------------------------------------------------------------
# Decay sweeps
# --------------------------------------------------------------------------------------------------

@dataclass
class DecaySweep(io.Result):
    """Label-noise SGD for each decay step (``paths_per_decay`` paths each, path ``i * paths + j`` is
    row ``i``); the final values are read from the simulation's records."""

    KIND = "DecaySweep"

    problem: Problem
    decay_steps: np.ndarray
    sim: SimulationResult
    flow_landing_test_loss: float
    config: dict = field(default_factory=dict)
    ode_tau: np.ndarray | None = None      # the quasistatic drift ODE from the landing point: tau = eta^2 k ...
    ode_test: np.ndarray | None = None     # ... and its test loss (the prediction of the position along M)

    def predicted_test(self, k) -> np.ndarray:
        """The drift ODE's test loss at ``tau = eta^2 k``: where the position along M is at step ``k`` of the
        large rate, hence (the position freezing after the decay) about the final test loss of a decay at ``k``."""
        return np.interp(np.asarray(k, dtype=float) * self.config["eta"] ** 2, self.ode_tau, self.ode_test)

    @property
    def paths_per_decay(self) -> int:
        return int(self.config["paths_per_decay"])

    @property
    def total_steps(self) -> int:
        return int(self.sim.steps[-1])

    def _final(self, name):
        return self.sim.final(name).reshape(len(self.decay_steps), self.paths_per_decay)

    @property
    def final_test(self) -> np.ndarray:
        """``(n_decay, paths)`` final test losses."""
        return self._final("test_loss")

    @property
    def final_train(self) -> np.ndarray:
        return self._final("train_loss")

    @property
    def final_norm(self) -> np.ndarray:
        return self._final("norm")

    @property
    def min_norm_test_loss(self) -> float:
        return self.problem.min_norm_test_loss

    @property
    def mean_final_test(self) -> np.ndarray:
        return mean_sem(self.final_test)[0]

    @property
    def sem_final_test(self) -> np.ndarray:
        return mean_sem(self.final_test)[1]

    @property
    def diverged_rows(self) -> np.ndarray:
        """Rows (decay steps) with at least one diverged path: their numbers are not data."""
        return (self.sim.status == "diverged").reshape(len(self.decay_steps), -1).any(axis=1)

    def row_records(self, name: str, row: int) -> np.ndarray:
        """Records ``(R, paths)`` of observable ``name`` for decay row ``row``."""
        per = self.paths_per_decay
        return self.sim.records[name][:, row * per:(row + 1) * per]

    def table(self) -> str:
        rows = [f"{'decay step':>11} {'final test loss':>22} {'final train loss':>17} {'||w||':>8}"]
        for i, k in enumerate(self.decay_steps):
            if self.diverged_rows[i]:
                rows.append(f"{k:>11d} {'diverged':>22}")
                continue
            rows.append(f"{k:>11d} {self.mean_final_test[i]:>12.4f} ± {self.sem_final_test[i]:<7.4f} "
                        f"{self.final_train[i].mean():>17.2e} {self.final_norm[i].mean():>8.4f}")
        rows.append(f"{'min-norm':>11} {self.min_norm_test_loss:>12.4f}   (||w_mn|| = {np.linalg.norm(self.problem.w_mn):.4f})")
        rows.append(f"{'GF landing':>11} {self.flow_landing_test_loss:>12.4f}")
        rows.append("± is one standard error of the mean over the paths of a row")
        return "\n".join(rows)

    def _extra_config(self) -> dict:
        return {"mean_final_test": self.mean_final_test, "min_norm_test_loss": self.min_norm_test_loss}


def log_record_steps(total: int) -> np.ndarray:
    """Log-spaced early records (Phase I) plus a linear grid of about 300 points."""
    return np.unique(np.concatenate([np.geomspace(1, total, 150).astype(np.int64),
                                     np.linspace(0, total, 301).astype(np.int64)]))


def decay_sweep(problem: Problem, *, eta: float = 0.02, decay_steps=(0, 1000, 10000, 100000),
                factor: float = 0.1, phase3_steps: int = 20000, paths_per_decay: int = 4, seed: int = 0,
                batch_size: int | None = None, record_every: int | None = None, reduce: bool = True,
                progress: bool = False) -> DecaySweep:
    """Label-noise SGD at ``eta`` decayed to ``eta * factor`` at each of ``decay_steps``.

    Every run has the same step budget ``max(decay_steps) + phase3_steps``, so the decay time is the
    only difference between rows. Paths of different rows use different noise streams (path index).
    """
    ds = integers("decay_steps", decay_steps)
    positive("eta", eta)
    integer("phase3_steps", phase3_steps, 1)
    integer("paths_per_decay", paths_per_decay, 1)
    total = int(ds.max()) + int(phase3_steps)
    schedules = [StepDecay(eta, int(k), factor) for k in ds for _ in range(paths_per_decay)]
    rec = log_record_steps(total) if record_every is None else np.arange(0, total + 1, integer("record_every", record_every, 1))
    sim = simulate(problem, n_paths=len(schedules), steps=total, lr=schedules, method="sgd",
                   batch_size=batch_size, seed=seed, record_steps=rec, reduce=reduce, progress=progress)
    cfg = dict(eta=float(eta), decay_steps=ds.tolist(), factor=float(factor), phase3_steps=int(phase3_steps),
               paths_per_decay=int(paths_per_decay), seed=int(seed), batch_size=batch_size,
               reduce=bool(reduce), sim_message=sim.message)
    ode_tau, ode_test = _drift_prediction(problem, eta * eta * max(int(ds.max()), 1), batch_size)
    return DecaySweep(problem, ds, sim, flow_landing_test_loss(problem), cfg, ode_tau, ode_test)


def _drift_prediction(problem: Problem, tau_max: float, batch_size) -> tuple[np.ndarray, np.ndarray]:
    """The drift ODE from the landing point ``retract(w0)`` up to ``tau_max`` (a = sigma^2 / b); for
    gamma = 0 it is at rest."""
    from lrdecay.theory.models import nonlinear as m
    from lrdecay.theory.quasistatic import drift_ode, noise_scale

    a = noise_scale(problem, batch_size)
    if problem.gamma == 0 or a == 0:
        w = m.retract(problem.w0, problem.X, problem.y, problem.gamma)
        t = float(m.test_loss(w, problem.alpha_star, problem.gamma, 0.0, problem.test_offset))
        return np.array([0.0, tau_max]), np.array([t, t])
    sol = drift_ode(problem, problem.w0, tau_max=tau_max, a=a, n_eval=400)
    return sol.tau, sol.test_loss


# --------------------------------------------------------------------------------------------------
# Equal-budget schedules
# --------------------------------------------------------------------------------------------------

def equal_budget_schedules(eta: float, total_steps: int, factor: float = 0.1,
                           decay_fractions=(0.25, 0.5, 0.75, 0.9)) -> dict[str, Schedule]:
    """Schedules with the same step budget: step decay at several fractions of it, cosine to
    ``eta * factor``, and warmup-stable-decay (5 % warm-up, decay over the last 10 %)."""
    out: dict[str, Schedule] = {f"step@{f:.2f}": StepDecay(eta, int(f * total_steps), factor) for f in decay_fractions}
    out["cosine"] = Cosine(eta, total_steps, eta_min=eta * factor)
    out["wsd"] = WarmupStableDecay(eta, warmup_steps=int(0.05 * total_steps), decay_start=int(0.9 * total_steps),
                                   decay_steps=int(0.1 * total_steps), final_factor=factor)
    return out


@dataclass
class ScheduleComparison(io.Result):
    """Final losses of named schedules at an equal step budget, ``paths`` paths each."""

    KIND = "ScheduleComparison"

    problem: Problem
    names: list
    sim: SimulationResult
    schedules: dict
    config: dict = field(default_factory=dict)

    @property
    def paths(self) -> int:
        return int(self.config["paths"])

    @property
    def total_steps(self) -> int:
        return int(self.sim.steps[-1])

    @property
    def final_test(self) -> np.ndarray:
        return self.sim.final("test_loss").reshape(len(self.names), self.paths)

    @property
    def final_train(self) -> np.ndarray:
        return self.sim.final("train_loss").reshape(len(self.names), self.paths)

    @property
    def min_norm_test_loss(self) -> float:
        return self.problem.min_norm_test_loss

    def mean_sem_test(self) -> tuple[dict, dict]:
        """Mean and standard error of the final test loss, by schedule name."""
        m, s = mean_sem(self.final_test)
        return dict(zip(self.names, m)), dict(zip(self.names, s))

    def table(self) -> str:
        m, s = self.mean_sem_test()
        lines = [f"  {nm:>10}: final test loss {m[nm]:.4f} ± {s[nm]:.4f}" for nm in self.names]
        lines.append(f"  {'min-norm':>10}: {self.min_norm_test_loss:.4f}")
        return "\n".join(lines)


def schedule_comparison(problem: Problem, schedules: dict, *, total_steps: int, paths: int = 4, seed: int = 0,
                        batch_size: int | None = None, reduce: bool = True, progress: bool = False) -> ScheduleComparison:
    """Final test/train loss of each named schedule at an equal step budget (one engine call)."""
    names = list(schedules)
    integer("paths", paths, 1)
    lr = [schedules[nm] for nm in names for _ in range(paths)]
    sim = simulate(problem, n_paths=len(lr), steps=total_steps, lr=lr, batch_size=batch_size, seed=seed,
                   record_every=max(1, total_steps // 200), reduce=reduce, progress=progress)
    return ScheduleComparison(problem, names, sim, {k: v.describe() for k, v in schedules.items()},
                              dict(paths=int(paths), seed=int(seed), batch_size=batch_size))


# --------------------------------------------------------------------------------------------------
# The demo (lrdecay demo; the report's "demo" job)
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DemoConfig:
    d: int = 50
    n: int = 10
    sigma: float = 0.3
    eta: float = 0.02
    factor: float = 0.1
    decay_steps: tuple = (0, 2000, 10000, 30000, 100000)
    phase3_steps: int = 20000
    paths: int = 4
    seed: int = 0
    gammas: tuple = (1.0, 0.0)
    schedule_fractions: tuple = (0.1, 0.5, 0.9)

    def quick(self) -> "DemoConfig":
        """Shorter runs (a few seconds)."""
        return replace(self, decay_steps=(0, 1000, 5000, 20000), phase3_steps=5000)

    def validate(self) -> "DemoConfig":
        integer("seed", self.seed, 0)
        integer("paths", self.paths, 1)
        integers("decay_steps", list(self.decay_steps))
        d = integer("d", self.d, 2)
        integer("n", self.n, 1, d - 1)
        numbers("gammas", self.gammas, 0.0)
        positive("eta", self.eta)
        positive("sigma", self.sigma)
        fraction("factor", self.factor)
        integer("phase3_steps", self.phase3_steps, 1)
        return self

    @property
    def total_steps(self) -> int:
        return max(self.decay_steps) + self.phase3_steps


@dataclass
class DemoResult:
    """Decay sweeps by gamma and the equal-budget schedule comparison; saved as a directory
    (``decay_sweep_gamma<g>.npz``, ``schedules.npz``, ``demo.json``)."""

    config: DemoConfig
    sweeps: dict          # gamma -> DecaySweep
    schedules: ScheduleComparison

    def sweep_path(self, out, gamma) -> Path:
        return Path(out) / f"decay_sweep_gamma{gamma:g}.npz"

    def save(self, out) -> list[Path]:
        out = Path(out)
        paths = [sw.save(self.sweep_path(out, g)) for g, sw in self.sweeps.items()]
        paths.append(self.schedules.save(out / "schedules.npz"))
        io.save_json(out / "demo.json", {"kind": "DemoResult", "config": io.config_to_dict(self.config),
                                         "gammas": list(self.sweeps), "provenance": io.provenance()})
        return paths

    @classmethod
    def load(cls, out) -> "DemoResult":
        out = Path(out)
        meta = io.load_json(out / "demo.json")
        cfg = io.config_from_dict(DemoConfig, meta["config"])
        sweeps = {float(g): DecaySweep.load(out / f"decay_sweep_gamma{float(g):g}.npz") for g in meta["gammas"]}
        return cls(cfg, sweeps, ScheduleComparison.load(out / "schedules.npz"))


def run_demo(config: DemoConfig = DemoConfig(), progress: bool = True) -> DemoResult:
    """The late-decay sweep for each gamma, and the schedules at an equal budget (first gamma > 0)."""
    cfg = config.validate()
    sweeps = {}
    for gamma in cfg.gammas:
        prob = Problem.generate(d=cfg.d, n=cfg.n, gamma=gamma, sigma=cfg.sigma, seed=cfg.seed)
        sweeps[float(gamma)] = decay_sweep(prob, eta=cfg.eta, decay_steps=cfg.decay_steps, factor=cfg.factor,
                                           phase3_steps=cfg.phase3_steps, paths_per_decay=cfg.paths,
                                           seed=cfg.seed, progress=progress)
    g1 = next((g for g in sweeps if g > 0), None)
    prob1 = sweeps[g1].problem if g1 is not None else Problem.generate(d=cfg.d, n=cfg.n, gamma=1.0, sigma=cfg.sigma, seed=cfg.seed)
    scheds = equal_budget_schedules(cfg.eta, cfg.total_steps, cfg.factor, cfg.schedule_fractions)
    comp = schedule_comparison(prob1, scheds, total_steps=cfg.total_steps, paths=cfg.paths, seed=cfg.seed,
                               progress=progress)
    return DemoResult(cfg, sweeps, comp)


# --------------------------------------------------------------------------------------------------
# Phase III: the drift after the decay slows by factor^2
# --------------------------------------------------------------------------------------------------

def freeze_ratios(sweep: DecaySweep) -> list[float]:
    """For each decay step ``k`` after Phase I: the measured drop of the mean test loss after the
    decay, divided by the drop of the latest-decay row (still at ``eta``) between ``k`` and
    ``k + factor^2 (total - k)``, the prediction of a drift slowed by ``(eta'/eta)^2``. Rows whose
    predicted drop is below ``FREEZE_MIN_DROP`` are left out."""
    steps, ds = sweep.sim.steps, sweep.decay_steps
    ref = sweep.row_records("test_loss", len(ds) - 1).mean(1)
    factor, total = sweep.config["factor"], sweep.total_steps
    ratios = []
    for j, k in enumerate(ds[:-1]):
        if k < FREEZE_MIN_STEP:   # still in Phase I at the decay
            continue
        row = sweep.row_records("test_loss", j).mean(1)
        k_eq = k + factor**2 * (total - k)
        pred = np.interp(k, steps, ref) - np.interp(k_eq, steps, ref)
        if pred > FREEZE_MIN_DROP:
            ratios.append(float((np.interp(k, steps, row) - row[-1]) / pred))
    return ratios
