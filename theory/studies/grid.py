"""A grid over (gamma, eta, decay step, seed) run through :mod:`lrdecay.theory.sweep` (``lrdecay sweep``).

Each task generates its problem from ``seed`` (so the instance is the same for every gamma, eta and
decay step of that seed), runs label-noise SGD decayed at ``decay_step`` and returns the final test
and train loss with the min-norm reference. Step budget (``budget``): ``"equal"`` (the default) runs every
task for ``max(decay_steps) + phase3_steps`` steps, so that the decay time is the only difference between the
tasks of one (gamma, eta, seed); ``"fixed-after-decay"`` runs ``decay_step + phase3_steps`` steps, so a later
decay also trains longer. The noise stream of a task comes from
:func:`lrdecay.theory.sweep.config_seed`, so results do not depend on the executor or the number of workers.
Finished tasks are cached under ``<out>/cache``; a killed sweep resumes where it stopped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lrdecay.theory import io
from lrdecay.theory.problem import Problem
from lrdecay.theory.studies.decay import decay_sweep
from lrdecay.theory.sweep import config_seed, grid, run_sweep
from lrdecay.theory.validation import choice, integer, integers, numbers, positive


#: part of every task's configuration (hence of its cache key): raised when the task's output changes
TASK_VERSION = 2


def decay_task(config: dict) -> dict:
    """One grid point: final losses of ``paths`` SGD paths decayed at ``config['decay_step']``."""
    prob = Problem.generate(d=config["d"], n=config["n"], gamma=config["gamma"], sigma=config["sigma"],
                            seed=config["seed"])
    noise_seed = int(config_seed(config).generate_state(1)[0])
    sw = decay_sweep(prob, eta=config["eta"], decay_steps=[config["decay_step"]], factor=config["factor"],
                     phase3_steps=config["phase3_steps"], paths_per_decay=config["paths"], seed=noise_seed,
                     record_every=max(1, (config["decay_step"] + config["phase3_steps"]) // 20))
    diverged = sw.sim.status == "diverged"
    return {"final_test": sw.final_test[0], "final_train": sw.final_train[0], "final_norm": sw.final_norm[0],
            "min_norm_test_loss": sw.min_norm_test_loss, "flow_landing_test_loss": sw.flow_landing_test_loss,
            "noise_seed": noise_seed, "status": sw.sim.status.astype("U10"),
            "first_divergence": int(sw.sim.stop_step[diverged].min()) if diverged.any() else -1}


BUDGETS = ("equal", "fixed-after-decay")


@dataclass(frozen=True)
class GridConfig:
    gammas: tuple = (0.0, 1.0, 2.0)
    etas: tuple = (0.02,)
    decay_steps: tuple = (0, 2000, 10000, 40000)
    seeds: tuple = (0, 1)
    d: int = 50
    n: int = 10
    sigma: float = 0.3
    factor: float = 0.1
    phase3_steps: int = 10000     # steps after the latest decay ("equal") or after each task's decay
    paths: int = 2
    budget: str = "equal"

    def validate(self, prefix: str = "") -> "GridConfig":
        """Every axis checked before any task is dispatched; ``prefix="--"`` names the CLI options."""
        name = (lambda s: prefix + s.replace("_", "-")) if prefix else (lambda s: s)
        numbers(name("gammas"), self.gammas, 0.0)
        numbers(name("etas"), self.etas, 0.0, strict=True)
        integers(name("decay_steps"), list(self.decay_steps), 0)
        integers(name("seeds"), list(self.seeds), 0)
        integer(name("paths"), self.paths, 1)
        d = integer(name("d"), self.d, 2)
        integer(name("n"), self.n, 1, d - 1)
        positive(name("sigma"), self.sigma)
        integer(name("phase3_steps"), self.phase3_steps, 1)
        choice(name("budget"), self.budget, BUDGETS)
        return self

    def total_steps(self, decay_step: int) -> int:
        """The steps of the task decayed at ``decay_step``: the same for all under ``"equal"``."""
        last = max(self.decay_steps) if self.budget == "equal" else decay_step
        return int(last) + int(self.phase3_steps)

    def configs(self) -> list[dict]:
        """One task per grid point; its ``phase3_steps`` are the steps after its own decay (under ``"equal"``
        the latest decay's ``phase3_steps`` plus the gap to the latest decay)."""
        out = grid(gamma=list(self.gammas), eta=list(self.etas), decay_step=list(self.decay_steps),
                   seed=list(self.seeds), d=self.d, n=self.n, sigma=self.sigma, factor=self.factor,
                   phase3_steps=self.phase3_steps, paths=self.paths, task_version=TASK_VERSION)
        for c in out:
            c["phase3_steps"] = self.total_steps(c["decay_step"]) - c["decay_step"]
        return out


@dataclass
class GridResult(io.Result):
    """One row per task: its configuration and mean final losses."""

    KIND = "GridResult"

    rows: list = field(default_factory=list)

    @property
    def n_diverged(self) -> int:
        return sum(r["status"] != "ok" for r in self.rows)

    def table(self) -> str:
        lines = [f"{'gamma':>6} {'eta':>6} {'decay':>7} {'steps':>7} {'seed':>5} {'final test':>11} {'min-norm':>9}"]
        for r in self.rows:
            value = f"{r['final_test_mean']:>11.4f}" if r["status"] == "ok" else f"{r['status']:>11}"
            lines.append(f"{r['gamma']:>6g} {r['eta']:>6g} {r['decay_step']:>7d} "
                         f"{r['decay_step'] + r['phase3_steps']:>7d} {r['seed']:>5d} {value} {r['min_norm_test_loss']:>9.4f}")
        return "\n".join(lines)

    def csv(self) -> str:
        """The rows as CSV text: one line per task, its configuration, ``total_steps``, status and mean losses
        (``nan`` for a diverged task)."""
        import csv
        import io as _io

        cols = ["gamma", "eta", "decay_step", "total_steps", "seed", "d", "n", "sigma", "factor", "paths", "status",
                "final_test_mean", "final_train_mean", "min_norm_test_loss", "flow_landing_test_loss"]
        buf = _io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for r in self.rows:
            row = dict(r, total_steps=r["decay_step"] + r["phase3_steps"])
            w.writerow([repr(row[c]) if isinstance(row[c], float) else row[c] for c in cols])
        return buf.getvalue()

    def save_csv(self, path) -> Path:
        """:meth:`csv` written to ``path``, atomically."""
        return io.atomic_write_text(path, self.csv())


def run_grid(config: GridConfig, out, *, executor="processes", workers=None, progress=True,
             recompute=False) -> GridResult:
    """Run every grid point (cached under ``<out>/cache``) and collect the rows. A task with a diverged
    path has status ``"diverged at step k"`` and no mean (nan): its numbers are not data."""
    configs = config.validate().configs()
    results = run_sweep(decay_task, configs, cache_dir=Path(out) / "cache", executor=executor, max_workers=workers,
                        progress=progress, recompute=recompute)
    rows = []
    for cfg, r in zip(configs, results):
        ok = r["first_divergence"] < 0
        rows.append(dict(cfg, status="ok" if ok else f"diverged at step {r['first_divergence']}",
                         final_test_mean=float(np.mean(r["final_test"])) if ok else float("nan"),
                         final_train_mean=float(np.mean(r["final_train"])) if ok else float("nan"),
                         min_norm_test_loss=float(r["min_norm_test_loss"]),
                         flow_landing_test_loss=float(r["flow_landing_test_loss"])))
    return GridResult(rows)
