r"""The quasistatic drift ODE against label-noise SGD over many paths (``lrdecay drift``).

For every gamma and learning rate of the configuration (by default gamma in {0.5, 1, 2} and eta in {0.02, 0.01}),
SGD paths and the drift ODE
``dw/dtau = -(a/4) P_T grad tr Hess L_n`` start at the same point of M (the retraction of ``w0``); the
study reports the largest gap between the paths' mean ``||w||`` and the ODE's (relative to the distance
the norm travels) and the measured/predicted train-loss plateau ratio. Breakdown cases: a large
learning rate, minibatch noise (b = 2) and few samples (n = 3); a small gamma (0.25) is a control where the
approximation should hold.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from lrdecay.theory import io
from lrdecay.theory.models import nonlinear as m
from lrdecay.theory.engine import simulate
from lrdecay.theory.problem import Problem
from lrdecay.theory.quasistatic import drift_ode, noise_scale, plateau_prediction
from lrdecay.theory.schedules import as_schedule
from lrdecay.theory.validation import integer, numbers, positive

#: cases where the quasistatic picture is expected to degrade: eta lambda no longer small, sampling noise
#: on top of the label noise away from M, few samples (a low-dimensional normal space)
BREAKDOWN_CASES = [
    dict(label="large eta", gamma=1.0, eta=0.05),
    dict(label="minibatch b=2", gamma=1.0, eta=0.02, batch_size=2),
    dict(label="few samples n=3", gamma=1.0, eta=0.02, n=3),
]
#: a control: a small gamma slows the drift but leaves the normal relaxation as it is, so the separation of
#: time scales (and the approximation) should hold
CONTROL_CASES = [dict(label="small gamma 0.25", gamma=0.25, eta=0.02)]
#: accepted agreement for the main cases: the quasistatic picture neglects corrections of relative
#: order eta * lambda (about 0.05 here), and 32 paths give a Monte Carlo error below 1 % of the travel.
NORM_TOL = 0.08
PLATEAU_TOL = 0.10


@dataclass
class DriftComparison(io.Result):
    """SGD (many paths) against the drift ODE on the same problem, at one learning rate."""

    KIND = "DriftComparison"

    problem: Problem
    eta: float                    # the constant rate (a schedule: its largest rate at the records)
    a: float
    tau: np.ndarray               # sum_{j<k} eta_j^2 at the SGD records (eta^2 k at a constant rate)
    sgd_norm: np.ndarray          # (R, P)
    sgd_test: np.ndarray
    sgd_train: np.ndarray
    ode_norm: np.ndarray          # (R,) on the same tau grid
    ode_test: np.ndarray
    plateau_pred: np.ndarray      # (R,) exact plateau prediction at the ODE's point of M
    plateau_exact: float          # at the start point: (eta a / 4) sum lambda / (1 - eta lambda / 2)
    plateau_leading: float        # (eta a / 4) tr H
    config: dict = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        return "diverged" in self.config.get("sim_message", "")

    @property
    def norm_rel_error(self) -> float:
        """``max_tau |mean ||w_SGD|| - ||w_ODE||| / (||w(0)|| - ||w_mn||)``: error relative to the
        distance the norm travels."""
        span = abs(self.ode_norm[0] - np.linalg.norm(self.problem.w_mn))
        return float(np.max(np.abs(self.sgd_norm.mean(1) - self.ode_norm)) / max(span, 1e-12))

    @property
    def plateau_ratio(self) -> float:
        """Measured train loss (mean over paths and over the records after the first tenth of the
        run, once the normal fluctuations have equilibrated) over the predicted plateau
        ``(eta a / 4) sum lambda_j / (1 - eta lambda_j / 2)`` at the ODE's point for the same tau."""
        sl = slice(max(1, len(self.tau) // 10), None)
        return float(self.sgd_train[sl].mean() / self.plateau_pred[sl].mean())

    def _extra_config(self) -> dict:
        return {"norm_rel_error": self.norm_rel_error, "plateau_ratio": self.plateau_ratio,
                "min_norm_norm": float(np.linalg.norm(self.problem.w_mn)),
                "min_norm_test_loss": self.problem.min_norm_test_loss}


def compare_drift_with_sgd(problem: Problem, eta, *, tau_max: float | None = None, steps: int | None = None,
                           paths: int = 32, batch_size: int | None = None, seed: int = 0, n_records: int = 100,
                           progress: bool = False) -> DriftComparison:
    """Start SGD paths and the drift ODE at the same point of M (the retraction of ``w0``) and compare ``||w||``
    and test loss against the drift time ``tau_k = sum_{j<k} eta_j^2`` (:attr:`SimulationResult.tau`).

    ``eta`` is a constant learning rate (run ``steps = round(tau_max / eta^2)`` steps; give ``tau_max``) or a
    schedule, any callable ``step -> eta`` (give ``steps``; the ODE then runs to the schedule's drift budget
    ``sum_{k<steps} eta_k^2``). The predicted plateau at a record uses the rate of the step before it."""
    paths = integer("paths", paths, 1)
    if callable(eta):
        if tau_max is not None:
            raise ValueError("tau_max applies to a constant eta; with a schedule give steps (the ODE runs to the "
                             "schedule's drift budget)")
        if steps is None:
            raise ValueError("steps is required with a schedule (an integer >= 1)")
        steps = integer("steps", steps, 1)
        sched = as_schedule(eta)
    else:
        eta = positive("eta", eta)
        if steps is not None:
            raise ValueError("steps applies to a schedule; with a constant eta give tau_max (steps = tau_max / eta^2)")
        if tau_max is None:
            raise ValueError("tau_max is required with a constant eta (a finite number > 0)")
        tau_max = positive("tau_max", tau_max)
        steps = int(round(tau_max / eta**2))
        sched = eta
    w_start = m.retract(problem.w0, problem.X, problem.y, problem.gamma)
    sim = simulate(problem, np.tile(w_start, (paths, 1)), steps=steps, lr=sched, method="sgd",
                   batch_size=batch_size, seed=seed, record_every=max(1, steps // n_records), reduce=True,
                   progress=progress)
    tau = sim.tau
    a = noise_scale(problem, batch_size)
    ode = drift_ode(problem, w_start, tau_max=float(tau[-1]) if callable(eta) else tau_max, a=a, n_eval=400)
    ode_norm = np.interp(tau, ode.tau, ode.norm)
    ode_test = np.interp(tau, ode.tau, ode.test_loss)
    nearest = np.clip(np.searchsorted(ode.tau, tau), 0, len(ode.tau) - 1)
    rate = (np.full(len(tau), eta) if not callable(eta)
            else sched(np.maximum(sim.steps - 1, 0)))        # the rate of the step before each record
    plateau_pred = np.array([plateau_prediction(problem, ode.w[i], e, batch_size).exact for i, e in zip(nearest, rate)])
    peak = float(eta) if not callable(eta) else float(np.max(rate))
    start = plateau_prediction(problem, w_start, float(rate[0]) if callable(eta) else eta, batch_size)
    cfg = dict(eta=peak, tau_max=float(tau[-1]) if callable(eta) else tau_max, paths=paths, batch_size=batch_size,
               seed=seed, steps=steps, sim_message=sim.message, off_manifold=ode.off_manifold, lr=sim.config["lr"])
    return DriftComparison(problem, peak, a, tau, sim.records["norm"], sim.records["test_loss"],
                           sim.records["train_loss"], ode_norm, ode_test, plateau_pred, start.exact,
                           start.leading, cfg)


def case_name(c: dict) -> str:
    s = f"g{c['gamma']:g}_eta{c['eta']:g}"
    if c.get("batch_size"):
        s += f"_b{c['batch_size']}"
    if c.get("n"):
        s += f"_n{c['n']}"
    return s


@dataclass(frozen=True)
class DriftConfig:
    seed: int = 0
    paths: int = 32
    tau_max: float = 24.0
    d: int = 50
    n: int = 10
    sigma: float = 0.3
    etas: tuple = (0.02, 0.01)    # learning rates of the main cases
    gammas: tuple = (0.5, 1.0, 2.0)   # gammas of the main cases

    def validate(self) -> "DriftConfig":
        integer("seed", self.seed, 0)
        integer("paths", self.paths, 1)
        positive("tau_max", self.tau_max)
        d = integer("d", self.d, 4)          # the breakdown case "few samples" has n = 3 < d
        integer("n", self.n, 2, d - 1)       # the breakdown case "minibatch" draws b = 2 of the n samples
        positive("sigma", self.sigma)
        numbers("etas", self.etas, 0.0, strict=True)
        numbers("gammas", self.gammas, 0.0, strict=True)   # at gamma = 0 nothing drifts: no travel to compare
        return self

    def quick(self) -> "DriftConfig":
        """One learning rate (0.02) per gamma."""
        return replace(self, etas=(0.02,))

    def cases(self) -> list[dict]:
        main = [dict(gamma=float(g), eta=float(e), kind="main") for g in self.gammas for e in self.etas]
        return (main + [dict(c, kind="breakdown") for c in BREAKDOWN_CASES]
                + [dict(c, kind="control") for c in CONTROL_CASES])


@dataclass
class DriftStudy:
    """Every case's comparison and the summary rows; saved as a directory (``drift_<case>.npz``,
    ``drift_summary.json``)."""

    config: DriftConfig
    rows: list
    comparisons: dict     # case name -> DriftComparison

    def save(self, out) -> list[Path]:
        out = Path(out)
        paths = [c.save(out / f"drift_{name}.npz") for name, c in self.comparisons.items()]
        cfg = dict(io.config_to_dict(self.config), norm_tol=NORM_TOL, plateau_tol=PLATEAU_TOL)
        paths.append(io.save_json(out / "drift_summary.json", {"kind": "DriftStudy", "config": cfg,
                                                               "rows": self.rows, "provenance": io.provenance()}))
        return paths

    @classmethod
    def load(cls, out) -> "DriftStudy":
        out = Path(out)
        meta = io.load_json(out / "drift_summary.json")
        cfg = io.config_from_dict(DriftConfig, {k: v for k, v in meta["config"].items()
                                                if k not in ("norm_tol", "plateau_tol")})
        comps = {r["case"]: DriftComparison.load(out / f"drift_{r['case']}.npz") for r in meta["rows"]}
        return cls(cfg, meta["rows"], comps)

    def main_rows(self) -> list[dict]:
        return [r for r in self.rows if r["kind"] == "main"]

    def breakdown_rows(self) -> list[dict]:
        return [r for r in self.rows if r["kind"] == "breakdown"]

    def control_rows(self) -> list[dict]:
        return [r for r in self.rows if r["kind"] == "control"]

    def table(self) -> str:
        lines = [f"{'case':<26} {'gamma':>5} {'eta':>6} {'|ΔN|/travel':>12} {'plateau meas/pred':>18}  within tol",
                 "-" * 80]
        for r in self.rows:
            lab = r["case"] + (f" ({r['label']})" if r["label"] else "")
            lines.append(f"{lab[:26]:<26} {r['gamma']:>5g} {r['eta']:>6g} {r['norm_rel_error']:>12.3f} "
                         f"{r['plateau_ratio']:>18.3f}  {'yes' if r['within_tol'] else 'no'}"
                         + ("  [diverged paths]" if r["diverged"] else ""))
        return "\n".join(lines)


def run_drift_study(config: DriftConfig = DriftConfig(), progress: bool = True) -> DriftStudy:
    cfg = config.validate()
    rows, comps = [], {}
    for c in cfg.cases():
        prob = Problem.generate(d=cfg.d, n=c.get("n", cfg.n), gamma=c["gamma"], sigma=cfg.sigma, seed=cfg.seed)
        t0 = time.perf_counter()
        cmp_ = compare_drift_with_sgd(prob, c["eta"], tau_max=cfg.tau_max, paths=cfg.paths,
                                      batch_size=c.get("batch_size"), seed=cfg.seed, progress=progress)
        name = case_name(c)
        comps[name] = cmp_
        row = dict(case=name, label=c.get("label", ""), kind=c["kind"], gamma=c["gamma"], eta=c["eta"],
                   batch_size=c.get("batch_size"), n=prob.n, norm_rel_error=cmp_.norm_rel_error,
                   plateau_ratio=cmp_.plateau_ratio, sim_message=cmp_.config["sim_message"],
                   diverged=cmp_.diverged, start_norm=float(cmp_.ode_norm[0]),
                   final_sgd_norm=float(np.nanmean(cmp_.sgd_norm[-1])), final_ode_norm=float(cmp_.ode_norm[-1]),
                   min_norm_norm=float(np.linalg.norm(prob.w_mn)), seconds=time.perf_counter() - t0)
        row["within_tol"] = bool(row["norm_rel_error"] <= NORM_TOL and abs(row["plateau_ratio"] - 1) <= PLATEAU_TOL)
        rows.append(row)
    return DriftStudy(cfg, rows, comps)
