r"""``lrdecay drift-any``: the quasistatic picture for a model given only as ``f(theta, X)``.

The model is a :class:`lrdecay.theory.models.generic.GenericModel`: a built-in example of
:data:`lrdecay.theory.models.generic_examples.EXAMPLES` (``relu``: a two-layer ReLU teacher–student network with fewer samples
than parameters, no closed form; ``diagonal3``: the depth-3 diagonal network, whose drift ends at the minimum
weighted-l_{4/3} interpolator) or any function ``module:function`` returning one (called with ``seed=``).

1. **Landing:** gradient descent without noise at ``eta = lr_factor / lambda_max(J J^T / n)`` (at the start) from the
   model's ``theta0`` until ``L_n <= landing_loss`` (default ``1e-4``) or ``landing_steps``, then the Gauss–Newton
   retraction onto M (Phase I; the retraction moves the point by ``O(sqrt(L_n))``, mostly along the normal space).
2. **Phase II and the late-decay sweep:** :func:`lrdecay.theory.studies.model_decay.run_model_decay` from the landing point:
   label-noise SGD rows decayed at fractions of the budget ``T = tau_max / eta^2`` against the drift ODE
   ``d theta / d tau = -(a/4) P_T grad tr H`` (the same rows, predictions and gaps as for the hand-written models).
3. **End point:** :func:`lrdecay.theory.models.generic.drift_flow` continues the ODE of step 2 from its point at
   ``tau_max`` to ``long_tau_factor * tau_max`` (the drift is integrated once), with a stop at a drift speed ``1e-6``
   of the landing point's; for ``diagonal3`` its distance to the l_{4/3} interpolator
   (:func:`lrdecay.theory.models.generic_examples.min_l43_interpolator`) relative to the landing point's.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from lrdecay.theory import io
from lrdecay.theory.models import generic as _generic  # noqa: F401 - registers GenericModel for load
from lrdecay.theory.studies.model_decay import ModelDecayStudy, run_model_decay
from lrdecay.theory.validation import fraction, integer, numbers, positive

#: Phase II: retracted SGD test loss against the ODE's, as a fraction of the ODE's travel (as for the diagonal network:
#: corrections of relative order eta lambda_mean, and the Monte Carlo error of the paths).
#: The same 0.10 holds for the ReLU network (``relu``), fixed before its first measured run, for three reasons:
#: eta lambda_mean is about 0.06 there (lambda_mean = tr H / n = 0.11 at the default instance's landing point,
#: eta = 0.5 / lambda_max = 0.5); the SGD iterate's normal fluctuation (variance about eta sigma^2 / 2 spread over D
#: directions, a pre-activation spread of order 0.1 against pre-activations of order 1) averages the drift field over
#: the kinks of the few per cent of unit-sample pairs whose pre-activation lies that close to zero, where the ODE
#: follows the unaveraged field; and 4 paths per row bring the tangential diffusion below a few per cent of the travel.
DRIFT_TOL = 0.10
#: Phase III: the position frozen by each decay against the ODE at that row's drift time (fraction of the travel;
#: the same corrections, for every model)
DECAY_TOL = 0.10
#: diagonal3: the long drift ends within this fraction of the landing point's distance from the l_{4/3} interpolator
END_TOL = 0.02


@dataclass(frozen=True)
class DriftAnyConfig:
    model: str = "relu"                   # a name of EXAMPLES or "module:function"
    sigma: float = 1.0
    lr_factor: float = 0.5
    tau_max: float = 60.0
    decay_fractions: tuple = (0.0, 0.25, 0.5, 1.0)
    factor: float = 0.1
    phase3_steps: int = 500
    paths: int = 4
    long_tau_factor: float = 5.0
    landing_steps: int = 5000
    landing_loss: float = 1e-4
    ode_method: str = "auto"               # solve_ivp method of the drift, or "heun" (fixed step ode_step);
    ode_step: float = 1.0                  # auto = LSODA for D <= 50, else heun
    n_records: int = 50
    seed: int = 0

    def validate(self) -> "DriftAnyConfig":
        from lrdecay.theory.models.generic_examples import EXAMPLES

        if not isinstance(self.model, str) or (self.model not in EXAMPLES and ":" not in self.model):
            raise ValueError(f"model must be one of {tuple(EXAMPLES)} or 'module:function', got {self.model!r}")
        positive("sigma", self.sigma)
        lr = positive("lr_factor", self.lr_factor)
        if lr >= 2:
            raise ValueError(f"lr_factor must be in (0, 2), got {self.lr_factor!r}")
        positive("tau_max", self.tau_max)
        fr = numbers("decay_fractions", self.decay_fractions, 0.0)
        if fr[-1] != 1.0 or np.any(fr > 1) or np.any(np.diff(fr) <= 0):
            raise ValueError(f"decay_fractions must increase strictly within [0, 1] and end with 1, got {list(fr)}")
        fraction("factor", self.factor)
        integer("phase3_steps", self.phase3_steps, 1)
        integer("paths", self.paths, 1)
        if not positive("long_tau_factor", self.long_tau_factor) >= 1:
            raise ValueError(f"long_tau_factor must be >= 1, got {self.long_tau_factor!r}")
        positive("ode_step", self.ode_step)
        integer("landing_steps", self.landing_steps, 1)
        positive("landing_loss", self.landing_loss)
        integer("n_records", self.n_records, 2)
        integer("seed", self.seed, 0)
        if self.ode_method not in ("auto", "heun", "RK45", "DOP853", "LSODA", "BDF", "Radau", "RK23"):
            raise ValueError(f"ode_method must be 'auto', 'heun' or a solve_ivp method (RK45, DOP853, LSODA, ...), "
                             f"got {self.ode_method!r}")
        return self

    def smoke(self) -> "DriftAnyConfig":
        """A tiny run (seconds)."""
        return replace(self, tau_max=1.0, phase3_steps=100, paths=2, decay_fractions=(0.0, 1.0), long_tau_factor=5.0,
                       n_records=10)

    def realistic(self) -> "DriftAnyConfig":
        """The size of the measured ReLU study of docs/drift_any.md (a few minutes on one core)."""
        return replace(self, tau_max=400.0, paths=16, decay_fractions=(0.0, 0.125, 0.25, 0.5, 1.0),
                       long_tau_factor=4.0, n_records=80)

    def solver(self, dim: int):
        """The drift ODE's method for a model of ``dim`` parameters: LSODA for ``dim <= 50`` (its Jacobian by finite
        differences costs ``dim`` evaluations of the field), else Heun's method at the fixed step ``ode_step``, which
        also crosses the kinks of a ReLU network's drift field where an error-controlled step stalls."""
        from lrdecay.theory.fixed_step import fixed_step_heun

        name = self.ode_method if self.ode_method != "auto" else ("LSODA" if dim <= 50 else "heun")
        return fixed_step_heun(self.ode_step) if name == "heun" else name

    def build(self):
        """The model: the example's factory, or the entry point, called with ``seed`` and ``sigma``."""
        from lrdecay.theory.models.generic import GenericModel, load_reference
        from lrdecay.theory.models.generic_examples import EXAMPLES

        fn = EXAMPLES.get(self.model) or load_reference(self.model)
        model = fn(seed=self.seed, sigma=self.sigma)
        if not isinstance(model, GenericModel):
            raise ValueError(f"model {self.model!r} must return a GenericModel, got {type(model).__name__}")
        return model


@dataclass
class DriftAnyResult(io.Result):
    """The landing, the SGD rows against the drift ODE (``study``) and the long drift run's end point."""

    KIND = "DriftAnyResult"

    config: dict
    study: ModelDecayStudy
    flow_tau: np.ndarray            # (R,) the long drift run's record times
    flow_test: np.ndarray           # (R,) its test loss
    flow_trace: np.ndarray          # (R,) its Gauss–Newton trace
    flow_theta_end: np.ndarray      # (D,)
    flow_status: str
    flow_tau_stop: float
    reference: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)     # wall seconds of the landing, the SGD rows and ODE, the long run
    wall_time: float = 0.0

    @property
    def end_gap(self) -> float | None:
        """diagonal3: ``||beta(end) - beta_ref|| / ||beta(landing) - beta_ref||`` (None for other models)."""
        ref = self.reference.get("beta_ref")
        if ref is None:
            return None
        from lrdecay.theory.models.generic_examples import diagonal3_beta

        M, ref = self.study.model, np.asarray(ref)
        return float(np.linalg.norm(diagonal3_beta(M, self.flow_theta_end) - ref)
                     / np.linalg.norm(diagonal3_beta(M, self.study.theta_land) - ref))

    def table(self) -> str:
        st = self.study
        lines = [f"{st.model!r}: landing after {self.config.get('landing_steps_run')} GD steps; "
                 f"test loss at landing {st.model.test_loss(st.theta_land):.4g}",
                 st.table(),
                 f"long drift run ({self.flow_status} at tau = {self.flow_tau_stop:.4g}): test loss "
                 f"{self.flow_test[0]:.4g} -> {self.flow_test[-1]:.4g}, trace {self.flow_trace[0]:.4g} -> "
                 f"{self.flow_trace[-1]:.4g}"]
        if self.timings:
            lines.append("wall time: " + ", ".join(f"{k[:-2].replace('_', ' ')} {v:.1f} s" for k, v in self.timings.items()))
        if self.end_gap is not None:
            lines.append(f"end point: distance to the l_(4/3) interpolator {100 * self.end_gap:.3g} % of the landing's "
                         f"(test loss there {self.reference['test_ref']:.4g})")
        return "\n".join(lines)

    def _extra_config(self) -> dict:
        return {"drift_gap": self.study.drift_gap, "end_gap": self.end_gap}


def landing(model, lr_factor: float, max_steps: int, seed: int = 0, loss: float = 1e-4):
    """Gradient descent at ``lr_factor / lambda_max`` (at the start) until ``L_n <= loss``, then retracted onto M.
    Returns ``(theta_land, steps run)``; a one-line ``RuntimeError`` if it does not land."""
    from lrdecay.theory.engine import simulate

    eta = lr_factor / model.sharpness(model.theta0)
    sim = simulate(model, model.theta0[None], steps=max_steps, lr=eta, method="gd", seed=seed,
                   record_steps=[0, max_steps], observables=["train_loss"], stop_loss=loss)
    th, ok = model.retract_status(sim.W_final[0])
    if not ok:
        raise RuntimeError(f"landing: gradient descent did not reach M in {max_steps} steps "
                           f"(train loss {float(model.train_loss(sim.W_final[0])):.3g})")
    return th, int(sim.stop_step[0]) if sim.status[0] == "stopped" else max_steps


def run_drift_any(config: DriftAnyConfig = DriftAnyConfig(), progress: bool = False) -> DriftAnyResult:
    """Landing, the SGD rows against the drift ODE over ``[0, tau_max]``, and the drift continued from the ODE's point
    at ``tau_max`` to ``long_tau_factor * tau_max`` (the drift is integrated once: the long run starts where the
    ODE of the comparison ends; its speed stop is ``1e-6`` of the landing point's drift speed)."""
    from lrdecay.theory.models.generic import drift_flow

    cfg = config.validate()
    t0 = time.perf_counter()
    model = cfg.build()
    th_land, k_land = landing(model, cfg.lr_factor, cfg.landing_steps, cfg.seed, cfg.landing_loss)
    t1 = time.perf_counter()
    method = cfg.solver(model.dim)
    st = run_model_decay(model, th_land, label=f"{model.name}, generic", lr_factor=cfg.lr_factor, tau_max=cfg.tau_max,
                         decay_fractions=cfg.decay_fractions, factor=cfg.factor, phase3_steps=cfg.phase3_steps,
                         paths=cfg.paths, seed=cfg.seed, long_tau_factor=1.0, n_records=cfg.n_records,
                         progress=progress, ode_method=method)
    t2 = time.perf_counter()
    a = model.sigma**2 / model.n
    keep = st.ode_tau <= st.tau_max
    tau, test, trace = st.ode_tau[keep], st.ode_test[keep], st.ode_trace[keep]
    theta_end, status, tau_stop = st.ode_theta_end, "time_limit", st.tau_max
    if cfg.long_tau_factor > 1:
        speed_tol = 1e-6 * float(np.linalg.norm(model.drift_velocity(st.theta_land, a)))
        fl = drift_flow(model, st.ode_theta_end, (cfg.long_tau_factor - 1) * st.tau_max, a, n_eval=10,
                        speed_tol=max(speed_tol, 1e-300), method=method)
        tau = np.concatenate([tau, st.tau_max + fl.tau[1:]])
        test, trace = np.concatenate([test, fl.test_loss[1:, 0]]), np.concatenate([trace, fl.trace[1:, 0]])
        theta_end, status, tau_stop = fl.theta_end[0], str(fl.status[0]), st.tau_max + float(fl.tau_stop[0])
    t3 = time.perf_counter()
    reference = {}
    if model.name == "diagonal3":
        from lrdecay.theory.models.generic_examples import min_l43_interpolator

        ref = min_l43_interpolator(model.X, model.y)
        reference = {"beta_ref": ref.tolist(),
                     "test_ref": float(0.5 * np.sum((ref - model.y_test / np.sqrt(model.X.shape[1])) ** 2))}
    timings = {"landing_s": t1 - t0, "sgd_and_ode_s": t2 - t1, "long_drift_s": t3 - t2}
    return DriftAnyResult(dict(io.config_to_dict(cfg), command="drift-any", landing_steps_run=k_land), st,
                          tau, test, trace, theta_end, status, tau_stop, reference, timings,
                          wall_time=time.perf_counter() - t0)
