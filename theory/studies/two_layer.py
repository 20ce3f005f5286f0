r"""``lrdecay two-layer``: label-noise SGD on the two-layer linear network, against its drift ODE.

The model is :class:`lrdecay.theory.models.two_layer.TwoLayerLinear` (``beta = W_1^T w_2``, hidden width h). On M the
Hessian trace ``(||w_2||^2 ||X||_F^2 + ||X W_1^T||_F^2) / n`` is minimised, at ``2 ||y|| ||X||_F / n``, by every
"X-balanced" factorisation (``||w_2||^2 = ||y|| / ||X||_F``, ``X W_1^T`` of rank one along ``w_2``) of *any*
interpolator, and ``K = W_1 (I - X^+ X)`` never changes, so ``beta = beta_mn + K^T w_2`` on M. Predictions:

* the drift ODE (and SGD) end X-balanced, at the trace minimum, with ``K`` unchanged;
* ``beta`` moves only through ``w_2``: from a start with ``||w_2||^2 > ||y|| / ||X||_F`` the drift shrinks
  ``K^T w_2``, so a later decay helps, but it stops at ``beta_mn + K^T w_2*`` (``||w_2*||^2 = ||y|| / ||X||_F``),
  not at the minimum-norm interpolator ``beta_mn`` (the end point of gradient flow from a small start).

The start is gradient flow from the model's ``theta0`` (:func:`lrdecay.theory.flow.gradient_flow`) retracted onto M;
the rows and the ODE are :func:`lrdecay.theory.studies.model_decay.run_model_decay`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from lrdecay.theory import io
from lrdecay.theory.flow import gradient_flow
from lrdecay.theory.models.two_layer import TwoLayerLinear
from lrdecay.theory.studies.model_decay import ModelDecayStudy, check_model_memory, run_model_decay
from lrdecay.theory.validation import integer, positive

#: Phase II and Phase III gaps, as for the diagonal network (corrections of relative order eta * lambda_mean,
#: here about 0.1 at lr_factor = 0.5; 8 paths per row)
#: largest start scale: eta = lr_factor / lambda_max ~ init_scale^-2, so the steps of a drift time grow as init_scale^4
MAX_INIT_SCALE = 10.0
DRIFT_TOL = 0.10
DECAY_TOL = 0.10
#: the long ODE run's Hessian trace and ||w_2||^2 within this relative distance of the closed forms
BALANCE_RTOL = 0.01
#: K = W_1 (I - X^+ X) unchanged along SGD to rounding (a few thousand steps of size ~1e-2)
KERNEL_ATOL = 1e-10
#: helps: the latest decay below the earliest by this many standard errors
DIRECTION_SE = 2.0


@dataclass(frozen=True)
class TwoLayerConfig:
    d: int = 30
    n: int = 10
    hidden: int = 5
    init_scale: float = 1.0
    sigma: float = 1.0
    lr_factor: float = 0.5
    tau_max: float = 8.0
    decay_fractions: tuple = (0.0, 0.0625, 0.125, 0.25, 0.5, 1.0)
    factor: float = 0.1
    phase3_steps: int = 2000
    paths: int = 8
    long_tau_factor: float = 10.0
    seed: int = 0

    def validate(self) -> "TwoLayerConfig":
        integer("d", self.d, 2)
        integer("n", self.n, 1, self.d - 1)
        integer("hidden", self.hidden, 1)
        if positive("init_scale", self.init_scale) > MAX_INIT_SCALE:
            raise ValueError(f"init_scale must be in (0, {MAX_INIT_SCALE:g}] (the landing point's sharpness grows as "
                             f"init_scale^2, so the SGD steps tau_max / eta^2 grow as init_scale^4), got {self.init_scale!r}")
        positive("sigma", self.sigma)
        positive("tau_max", self.tau_max)
        integer("paths", self.paths, 1)
        integer("seed", self.seed, 0)
        D = TwoLayerLinear.param_dim(self.d, hidden=self.hidden)
        check_model_memory("hidden" if self.hidden >= self.d else "d", self.n, self.d, D,
                           len(self.decay_fractions) * self.paths, ("hidden", "d"))
        return self

    def smoke(self) -> "TwoLayerConfig":
        """The default instance with fewer paths and rows (about a second)."""
        return replace(self, tau_max=4.0, phase3_steps=1000, paths=4, decay_fractions=(0.0, 0.25, 1.0))

    def model(self) -> TwoLayerLinear:
        return TwoLayerLinear.generate(d=self.d, n=self.n, hidden=self.hidden, init_scale=self.init_scale,
                                       sigma=self.sigma, seed=self.seed)


def flow_landing(model: TwoLayerLinear, theta0=None) -> np.ndarray:
    """Gradient flow of ``L_n`` from ``theta0`` until ``L_n = 1e-14`` (solve_ivp), retracted onto M."""
    th0 = model.theta0 if theta0 is None else np.asarray(theta0, dtype=float)
    res = gradient_flow(model.train_grad, th0, loss=lambda t: float(model.train_loss(t)), eps=1e-14, t_max=1e7,
                        rtol=1e-10, atol=1e-12)
    if not res.success:
        raise RuntimeError(f"two-layer landing: gradient flow did not reach M ({res.message})")
    return model.retract(res.w_final)


@dataclass
class TwoLayerStudy(io.Result):
    KIND = "TwoLayerStudy"

    config: dict
    study: ModelDecayStudy
    wall_time: float = 0.0

    def summary(self) -> dict:
        """Closed forms against the long ODE run and SGD: trace, ``||w_2||^2``, ``K`` and the test losses."""
        st, M = self.study, self.study.model
        K0 = M.kernel_part(st.theta_land)
        _, w2_end = M.split(st.long_theta)
        W_sgd = st.sim.W_final
        beta_mn = M.min_norm()
        return dict(
            trace_min=M.trace_minimum(), trace_land=float(M.hessian_trace(st.theta_land)),
            trace_long=float(M.hessian_trace(st.long_theta)), w2_pred=M.trace_min_w2_norm2(),
            w2_land=float(np.sum(M.split(st.theta_land)[1] ** 2)), w2_long=float(w2_end @ w2_end),
            x_balance_long=float(M.x_balance(st.long_theta)),
            kernel_change_sgd=float(np.max(np.abs(M.kernel_part(W_sgd) - K0))),
            kernel_change_ode=float(np.max(np.abs(M.kernel_part(st.long_theta) - K0))),
            test_land=float(M.test_loss(st.theta_land)), test_long=float(M.test_loss(st.long_theta)),
            test_min_norm=0.5 * float(np.sum((beta_mn - M.beta_star) ** 2)),
            dist_mn_long=float(np.linalg.norm(M.beta(st.long_theta) - beta_mn)),
            kernel_term_long=float(np.linalg.norm(K0.T @ w2_end)))

    def table(self) -> str:
        s = self.summary()
        return (self.study.table() + "\n"
                f"  trace: landing {s['trace_land']:.4g}, ODE end {s['trace_long']:.5g}, closed-form minimum "
                f"2||y|| ||X||_F / n = {s['trace_min']:.5g}; ||w_2||^2: landing {s['w2_land']:.4g}, ODE end "
                f"{s['w2_long']:.5g}, predicted ||y|| / ||X||_F = {s['w2_pred']:.5g}\n"
                f"  K = W_1 (I - X^+X) changed by {s['kernel_change_sgd']:.1e} (SGD) and {s['kernel_change_ode']:.1e} (ODE); "
                f"test loss: landing {s['test_land']:.4g}, ODE end {s['test_long']:.4g}, min-norm {s['test_min_norm']:.4g}; "
                f"||beta_end - beta_mn|| = {s['dist_mn_long']:.4g} = ||K^T w_2*|| = {s['kernel_term_long']:.4g}")

    def _extra_config(self) -> dict:
        return {"summary": self.summary()}


def run_two_layer_study(config: TwoLayerConfig = TwoLayerConfig(), progress: bool = False) -> TwoLayerStudy:
    cfg = config.validate()
    t0 = time.perf_counter()
    M = cfg.model()
    st = run_model_decay(M, flow_landing(M), label="two-layer linear", lr_factor=cfg.lr_factor, tau_max=cfg.tau_max,
                         decay_fractions=cfg.decay_fractions, factor=cfg.factor, phase3_steps=cfg.phase3_steps,
                         paths=cfg.paths, seed=cfg.seed, long_tau_factor=cfg.long_tau_factor, progress=progress)
    return TwoLayerStudy(dict(io.config_to_dict(cfg), command="two-layer"), st, wall_time=time.perf_counter() - t0)
