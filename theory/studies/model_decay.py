r"""Label-noise SGD on a model of :mod:`lrdecay.theory.models` against its quasistatic drift ODE, with a late-decay sweep.

Shared by :mod:`lrdecay.theory.studies.diagonal` and :mod:`lrdecay.theory.studies.two_layer`. From the landing point
``theta_L`` on M (where Phase I ends: gradient flow from the model's start), ``paths`` label-noise SGD paths
per row run at ``eta = lr_factor / lambda_max(J J^T / n)`` (at ``theta_L``) for ``T = tau_max / eta^2`` steps
and are decayed to ``eta * factor`` at ``k_i = f_i T`` for each fraction ``f_i`` (the row ``f = 1`` is the
constant-``eta`` run over ``[0, T]``), then run ``phase3_steps`` more steps. The drift ODE
``d theta / d tau = -(a/4) P_T grad tr Hess L_n`` starts at the same ``theta_L``.

Predictions (docs/science.md, §1 Phase II and §1 Phase III, for any model of the layer):

* **Phase II tracks the ODE:** the test loss of the *retracted* SGD iterate (the position along M, without
  the normal fluctuation) follows the ODE's test loss against ``tau = eta^2 k``.
* **Phase III freezes the position:** the position on M of the row decayed at ``k_i`` (the test loss of its
  retracted final iterate) is the ODE's at ``tau_i = eta^2 k_i + (eta factor)^2 (k_end - k_i)``: after the
  decay the drift is ``factor^2`` slower. The raw final test loss adds the normal fluctuation at ``eta * factor``, ``O(eta factor a)``. A later
  decay therefore helps exactly when the ODE's test loss falls along the drift, i.e. when the test minimum
  lies towards the trace-minimising point, and hurts when it lies behind.

The gap of each prediction is reported relative to the *travel* of the ODE's test loss,
``max_tau L_ODE - min_tau L_ODE`` over ``[0, tau_max]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lrdecay.theory import io
from lrdecay.theory.budget import check_memory, check_ode_horizon, check_work, drift_rate, sgd_work
from lrdecay.theory.engine import SimulationResult, simulate
from lrdecay.theory.models.base import LinearReadoutModel, drift_ode
from lrdecay.theory.schedules import StepDecay
from lrdecay.theory.stats import mean_sem
from lrdecay.theory.validation import fraction, integer, numbers, positive


@dataclass
class ModelDecayStudy(io.Result):
    """One model instance: SGD rows (decay at ``decay_steps``) and the drift ODE on the record grid."""

    KIND = "ModelDecayStudy"

    label: str
    model: LinearReadoutModel
    theta_land: np.ndarray
    eta: float
    decay_steps: np.ndarray       # (rows,), the last is T (no decay within [0, T])
    sim: SimulationResult
    ode_tau: np.ndarray           # (R2,): eta^2 * record steps up to T and each row's effective drift time
    ode_test: np.ndarray          # (R2,)
    ode_trace: np.ndarray
    ode_beta: np.ndarray          # (R2, d)
    ode_theta_end: np.ndarray     # (D,) at tau_max = eta^2 T
    long_tau: float               # a long ODE run (end-point check)
    long_theta: np.ndarray        # (D,) its end point
    config: dict = field(default_factory=dict)

    @property
    def paths(self) -> int:
        return int(self.config["paths"])

    @property
    def T(self) -> int:
        return int(self.decay_steps[-1])

    @property
    def tau_max(self) -> float:
        return float(self.eta**2 * self.T)

    def rows(self, name: str) -> np.ndarray:
        """Records ``(R, rows, paths)`` of observable ``name``."""
        rec = self.sim.records[name]
        return rec.reshape(rec.shape[0], len(self.decay_steps), self.paths)

    @property
    def final_test(self) -> np.ndarray:
        """``(rows, paths)``: the final test loss of each row."""
        return self.rows("test_loss")[-1]

    @property
    def phase2_mask(self) -> np.ndarray:
        """Record steps within ``[0, T]``."""
        return self.sim.steps <= self.T

    @property
    def sgd_test_M(self) -> np.ndarray:
        """``(R2, paths)``: test loss of the retracted iterate of the undecayed row over ``[0, T]``."""
        return self.rows("test_M")[self.phase2_mask, -1, :]

    @property
    def ode_test_on_records(self) -> np.ndarray:
        """The ODE's test loss at the SGD record times ``eta^2 k`` within ``[0, T]``."""
        return np.interp(self.eta**2 * self.sim.steps[self.phase2_mask], self.ode_tau, self.ode_test)

    @property
    def travel(self) -> float:
        """``max - min`` of the ODE's test loss over ``[0, tau_max]``."""
        return float(np.ptp(self.ode_test_on_records))

    @property
    def drift_gap(self) -> float:
        """``max_tau |mean_paths L(retract(theta_SGD)) - L_ODE| / travel`` over ``[0, tau_max]``."""
        return float(np.max(np.abs(self.sgd_test_M.mean(1) - self.ode_test_on_records)) / max(self.travel, 1e-300))

    @property
    def tau_effective(self) -> np.ndarray:
        """Drift time each row has had at the end: ``eta^2 k_i + (eta factor)^2 (total - k_i)``."""
        total = int(self.sim.steps[-1])
        return self.eta**2 * self.decay_steps + (self.eta * self.config["factor"]) ** 2 * (total - self.decay_steps)

    @property
    def predicted_final(self) -> np.ndarray:
        """The ODE's test loss at each row's drift time :attr:`tau_effective`."""
        return np.interp(self.tau_effective, self.ode_tau, self.ode_test)

    @property
    def final_test_M(self) -> np.ndarray:
        """``(rows, paths)``: the test loss of the retracted final iterate (the position frozen on M)."""
        return self.rows("test_M")[-1]

    @property
    def decay_gaps(self) -> np.ndarray:
        """``(mean final position test loss of row i - predicted_final_i) / travel``."""
        return (self.final_test_M.mean(1) - self.predicted_final) / max(self.travel, 1e-300)

    def late_minus_early(self) -> tuple[float, float]:
        """Mean final test loss of the latest decay minus that of the earliest, and its standard error."""
        m, s = mean_sem(self.final_test)
        return float(m[-1] - m[0]), float(np.hypot(s[-1], s[0]))

    @property
    def diverged(self) -> bool:
        return bool(np.any(self.sim.status == "diverged"))

    def table(self) -> str:
        m, s = mean_sem(self.final_test)
        mM = self.final_test_M.mean(1)
        lines = [f"{self.label}: eta = {self.eta:.4g}, T = {self.T} steps (tau = {self.tau_max:.3g}), "
                 f"{self.paths} paths per row; drift gap {100 * self.drift_gap:.1f} % of the travel {self.travel:.4g}",
                 f"{'decay step':>11} {'tau_eff':>9} {'final test (SGD)':>20} {'on M':>10} {'ODE at tau':>11} "
                 f"{'gap/travel':>10}"]
        for i, k in enumerate(self.decay_steps):
            lines.append(f"{k:>11d} {self.tau_effective[i]:>9.3g} {m[i]:>11.4g} ± {s[i]:<7.2g} {mM[i]:>10.4g} "
                         f"{self.predicted_final[i]:>11.4g} {100 * self.decay_gaps[i]:>9.1f}%")
        return "\n".join(lines)

    def _extra_config(self) -> dict:
        return {"drift_gap": self.drift_gap, "decay_gaps": self.decay_gaps, "travel": self.travel}


def check_model_memory(name: str, n: int, d: int, D: int, n_paths: int, lower) -> None:
    """Refuse a model too large for memory before building it (:func:`lrdecay.theory.budget.check_memory`): the data
    ``X`` (n x d), the SGD states of every path with the temporaries of a step (about 8 copies of ``P x D``),
    and the drift ODE's dense Jacobian (``D x D``, LSODA's stiff steps)."""
    nbytes = 8.0 * (n * d + 8 * n_paths * D + D * D)
    check_memory(name, nbytes, f"a model with D = {D} parameters (d = {d}, n = {n}) and {n_paths} paths", lower)


def check_run_size(model: LinearReadoutModel, theta_land, eta: float, tau_max: float, rows: int, paths: int,
                   phase3_steps: int, long_tau_factor: float, a: float) -> None:
    """Refuse, before any SGD step, a run whose SGD work or drift-ODE horizon is past the caps of
    :mod:`lrdecay.theory.budget` (messages start with ``tau_max``, the option that sets both)."""
    steps = tau_max / eta**2 + phase3_steps
    check_work("tau_max", sgd_work(rows * paths * steps, model.n, model.dim),
               f"{rows * paths} SGD paths of tau_max / eta^2 + phase3_steps = {steps:.3g} steps (eta = "
               f"lr_factor / lambda_max = {eta:.3g} at the landing point)", ("tau_max", "paths", "init_scale"))
    th = np.asarray(theta_land, dtype=float)
    check_ode_horizon("tau_max", long_tau_factor * tau_max,
                      drift_rate(a, model.hessian_trace(th), th @ th),
                      f"the long drift-ODE run (to {long_tau_factor:g} x tau_max)", ("tau_max", "sigma"))


def run_model_decay(model: LinearReadoutModel, theta_land, *, label: str, lr_factor: float = 0.5,
                    tau_max: float = 10.0, decay_fractions=(0.0, 0.25, 0.5, 1.0), factor: float = 0.1,
                    phase3_steps: int = 2000, paths: int = 4, seed: int = 0, long_tau_factor: float = 10.0,
                    n_records: int = 200, progress: bool = False, ode_method: str = "LSODA") -> ModelDecayStudy:
    """Run the rows and the ODE (see the module docstring). ``decay_fractions`` must end with 1. ``ode_method``: the
    ``solve_ivp`` method of the drift ODE (LSODA; an explicit one where the model's Jacobian by finite differences,
    D evaluations of the field, is dear; or a :class:`scipy.integrate.OdeSolver` class such as
    :func:`lrdecay.theory.fixed_step.fixed_step_heun`'s). ``long_tau_factor = 1``: no long run, its end point is the
    ODE's at ``tau_max``."""
    lr_factor = positive("lr_factor", lr_factor)
    if lr_factor >= 2:
        raise ValueError(f"lr_factor must be in (0, 2), got {lr_factor!r}")
    tau_max = positive("tau_max", tau_max)
    fr = numbers("decay_fractions", decay_fractions, 0.0)
    if fr[-1] != 1.0 or np.any(fr > 1) or np.any(np.diff(fr) <= 0):
        raise ValueError(f"decay_fractions must increase strictly within [0, 1] and end with 1, got {list(fr)}")
    factor = fraction("factor", factor)
    phase3_steps = integer("phase3_steps", phase3_steps, 1)
    paths = integer("paths", paths, 1)
    long_tau_factor = positive("long_tau_factor", long_tau_factor)
    theta_land = model.retract(np.asarray(theta_land, dtype=float))
    eta = lr_factor / model.sharpness(theta_land)
    a = model.sigma**2 / model.n
    check_run_size(model, theta_land, eta, tau_max, len(fr), paths, phase3_steps, long_tau_factor, a)
    T = max(1, int(round(tau_max / eta**2)))
    ks = np.unique((fr * T).astype(np.int64))
    total = T + phase3_steps
    rec = np.unique(np.concatenate([np.linspace(0, T, n_records + 1).astype(np.int64), ks,
                                    np.linspace(T, total, 21).astype(np.int64)]))
    lr = [StepDecay(eta, int(k), factor) for k in ks for _ in range(paths)]
    obs = [("test_M", lambda W: model.test_loss(model.retract(W)))]
    obs = list(model.observables(model.theta0[None]).keys()) + obs
    sim = simulate(model, np.tile(theta_land, (len(lr), 1)), steps=total, lr=lr, method="sgd", sigma=model.sigma,
                   seed=seed, record_steps=rec, observables=obs, progress=progress)
    tau_eff = eta**2 * ks + (eta * factor) ** 2 * (total - ks)
    tau2 = np.unique(np.concatenate([eta**2 * rec[rec <= T], tau_eff]))
    ode = drift_ode(model, theta_land, float(tau2[-1]), a, tau_eval=tau2, method=ode_method)
    i_T = int(np.searchsorted(ode.tau, eta**2 * T))
    if long_tau_factor == 1.0:                        # the long run would repeat the ODE up to tau_max
        long_tau, long_theta = float(ode.tau[i_T]), ode.theta[i_T]
    else:
        long = drift_ode(model, theta_land, long_tau_factor * eta**2 * T, a, n_eval=2, method=ode_method)
        long_tau, long_theta = float(long.tau[-1]), long.theta[-1]
    cfg = dict(lr_factor=float(lr_factor), tau_max=float(tau_max), decay_fractions=fr.tolist(), factor=float(factor),
               phase3_steps=int(phase3_steps), paths=int(paths), seed=int(seed), a=float(a),
               long_tau_factor=float(long_tau_factor), sim_message=sim.message, ode_status=ode.status,
               ode_off_manifold=ode.off_manifold)
    return ModelDecayStudy(label, model, theta_land, float(eta), ks, sim, ode.tau, ode.test_loss, ode.trace, ode.beta,
                           ode.theta[i_T], long_tau, long_theta, cfg)
