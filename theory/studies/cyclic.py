r"""``lrdecay cyclic``: cyclic learning-rate schedules beside constant, step, multistep, cosine and WSD at an equal budget.

One problem of the nonlinear model (docs/science.md, §1 model) and one step budget ``T``. Every schedule starts at the same
landing point ``w_L`` on M (noise-free gradient descent at the peak rate ``eta`` from ``w0`` until
``L_n <= 1e-14``, retracted), with ``paths`` label-noise SGD paths each (one engine call; the result is a
:class:`lrdecay.theory.studies.decay.ScheduleComparison`). Schedules (:func:`cyclic_schedules`): ``constant``;
``step@0.90`` (``eta -> eta factor`` at 0.9 T); ``multistep`` (x ``factor`` at T/2 and 3T/4); ``cosine`` (to
``eta factor``); ``wsd`` (5 % warm-up, decay over the last 10 %); ``triangular`` (``cycles`` triangles between
``eta factor`` and ``eta``, starting low); ``cosine-restarts`` (SGDR, ``cycles`` cosine cycles from ``eta`` to
``eta factor``); ``one-cycle`` (up from ``eta/25`` over 30 %, then down to ``eta / 25e4``).

**Prediction (quasistatic, derived).** Each step moves the point along M by ``-(eta_k^2 a / 4) P_T grad tr Hess L_n``
when the normal fluctuations have settled at ``eta_k a / 2``, so after any schedule the position on M is the drift
ODE's at the *drift budget* ``tau_S = sum_{k<T} eta_k^2`` (:func:`lrdecay.theory.schedules.drift_budget`), whatever the
schedule's shape. Measured: the distance ``||retract(w_T) - w_mn|| / ||w_mn||`` of the final position on M, turned
into an *effective drift time* ``tau_hat`` (the ODE time at which the ODE is as far from ``w_mn``), and the test loss
of the retracted final iterate (the raw final test loss adds the normal fluctuation of the final rate). Consequently schedules are ranked by ``tau_S``: a cyclic
schedule spends part of its budget at small rates and reaches less far along M than keeping ``eta`` and decaying
late. The rule needs the rate to change slowly against the normal relaxation time ``1 / (eta lambda_min)``
(reported as ``adiabaticity``: the half-period of a cycle over the relaxation time at ``eta factor``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from lrdecay.theory import io
from lrdecay.theory.models import nonlinear as m
from lrdecay.theory.budget import check_ode_horizon, check_work, drift_rate, sgd_work
from lrdecay.theory.engine import simulate
from lrdecay.theory.problem import Problem
from lrdecay.theory.quasistatic import drift_ode, normal_hessian_eigs
from lrdecay.theory.reduction import Reduction
from lrdecay.theory.schedules import (Constant, Cosine, CosineWarmRestarts, MultiStep, OneCycle, Schedule, StepDecay,
                              Triangular, WarmupStableDecay, drift_budget)
from lrdecay.theory.stats import mean_sem
from lrdecay.theory.studies.decay import ScheduleComparison
from lrdecay.theory.validation import fraction, integer, nonneg, positive

#: claim: for every schedule the effective drift time of its final position, tau_hat (the ODE time at which the
#: ODE is as far from w_mn on M), satisfies |tau_hat / tau_S - 1| <= eta lambda_max / 2 + CYCLIC_MC, with
#: lambda_max the Gauss-Newton sharpness at the landing point and eta the peak rate: the first-order finite-eta
#: correction of the normal covariance is at most eta lambda_max / 2 in relative size (lrdecay.theory.quasistatic,
#: discrete_regularizer), and CYCLIC_MC covers the Monte Carlo error of 8 paths and the lag of the normal
#: fluctuations behind a changing rate (small when the adiabaticity ratio is >= 1).
CYCLIC_MC = 0.05
LAND_LOSS = 1e-14


@dataclass(frozen=True)
class CyclicConfig:
    d: int = 50
    n: int = 10
    gamma: float = 1.0
    sigma: float = 1.0
    w0_norm: float = 1.5
    eta: float = 0.02
    total_steps: int = 8000
    factor: float = 0.1
    cycles: int = 4
    paths: int = 8
    seed: int = 0

    def validate(self) -> "CyclicConfig":
        integer("d", self.d, 2)
        integer("n", self.n, 1, self.d - 1)
        nonneg("gamma", self.gamma)
        positive("sigma", self.sigma)
        positive("w0_norm", self.w0_norm)
        positive("eta", self.eta)
        integer("total_steps", self.total_steps, 20)
        fraction("factor", self.factor)
        integer("cycles", self.cycles, 1, self.total_steps // 4)
        integer("paths", self.paths, 1)
        integer("seed", self.seed, 0)
        n_paths = self.paths * len(cyclic_schedules(self.eta, self.total_steps, self.factor, self.cycles))
        check_work("total_steps", sgd_work(n_paths * self.total_steps, self.n, self.n + 1),
                   f"{n_paths} SGD paths of {self.total_steps} steps", ("total_steps", "paths"))
        return self

    def smoke(self) -> "CyclicConfig":
        return replace(self, d=20, n=5, total_steps=1200, paths=2, cycles=2)


def cyclic_schedules(eta: float, total_steps: int, factor: float = 0.1, cycles: int = 4) -> dict[str, Schedule]:
    """The equal-budget schedules of the study (see the module docstring)."""
    T = integer("total_steps", total_steps, 20)
    c = integer("cycles", cycles, 1, T // 4)
    lo = eta * factor
    return {
        "constant": Constant(eta),
        "step@0.90": StepDecay(eta, int(0.9 * T), factor),
        "multistep": MultiStep(eta, [T // 2, (3 * T) // 4], factor),
        "cosine": Cosine(eta, T, eta_min=lo),
        "wsd": WarmupStableDecay(eta, warmup_steps=int(0.05 * T), decay_start=int(0.9 * T),
                                 decay_steps=int(0.1 * T), final_factor=factor),
        "triangular": Triangular(eta, half_period=T // (2 * c), eta_min=lo, start="low"),
        "cosine-restarts": CosineWarmRestarts(eta, period=T // c, eta_min=lo),
        "one-cycle": OneCycle(eta, T),
    }


CYCLIC = ("triangular", "cosine-restarts", "one-cycle")


@dataclass
class CyclicStudy(io.Result):
    KIND = "CyclicStudy"

    config: dict
    comparison: ScheduleComparison
    budgets: dict                 # name -> tau_S
    final_eta: dict               # name -> eta at the last step
    ode_tau: np.ndarray
    ode_test: np.ndarray
    ode_dist: np.ndarray          # ||w - w_mn|| / ||w_mn|| along the ODE
    landing_test: float
    adiabaticity: float           # cycle half-period x eta factor x lambda_min
    lam_max: float                # Gauss-Newton sharpness at the landing point
    wall_time: float = 0.0

    @property
    def tolerance(self) -> float:
        """``eta lambda_max / 2 + CYCLIC_MC`` (see the constant)."""
        return float(self.config["eta"]) * self.lam_max / 2 + CYCLIC_MC

    def effective_tau(self, dist) -> np.ndarray:
        """The ODE time at which the ODE's distance to ``w_mn`` equals ``dist`` (inverse of the monotone envelope)."""
        env = np.minimum.accumulate(self.ode_dist)
        return np.interp(-np.asarray(dist, dtype=float), -env, self.ode_tau)

    @property
    def tau_ratio(self) -> np.ndarray:
        """``tau_hat / tau_S`` per schedule (``tau_hat`` from the mean final distance on M)."""
        return self.effective_tau(self.position_dist.mean(1)) / np.array([self.budgets[nm] for nm in self.names])

    @property
    def names(self) -> list:
        return list(self.comparison.names)

    def _final(self, name: str) -> np.ndarray:
        sc = self.comparison
        return sc.sim.final(name).reshape(len(sc.names), sc.paths)

    @property
    def position_test(self) -> np.ndarray:
        """``(schedules, paths)``: test loss of the retracted final iterate."""
        return self._final("test_M")

    @property
    def position_dist(self) -> np.ndarray:
        """``(schedules, paths)``: ``||retract(w_final) - w_mn|| / ||w_mn||``."""
        return self._final("dist_M")

    @property
    def predicted_test(self) -> np.ndarray:
        return np.interp([self.budgets[nm] for nm in self.names], self.ode_tau, self.ode_test)

    @property
    def predicted_dist(self) -> np.ndarray:
        return np.interp([self.budgets[nm] for nm in self.names], self.ode_tau, self.ode_dist)

    @property
    def travel(self) -> float:
        """``L_ODE(0) - L_ODE(max tau_S)``."""
        return float(self.ode_test[0] - np.interp(max(self.budgets.values()), self.ode_tau, self.ode_test))

    @property
    def gaps(self) -> np.ndarray:
        """``(mean position test loss - L_ODE(tau_S)) / travel`` per schedule."""
        return (self.position_test.mean(1) - self.predicted_test) / max(self.travel, 1e-300)

    def rows(self) -> list[dict]:
        raw_m, raw_s = mean_sem(self.comparison.final_test)
        pos_m, pos_s = mean_sem(self.position_test)
        out = []
        for i, nm in enumerate(self.names):
            out.append(dict(name=nm, tau_S=float(self.budgets[nm]), final_eta=float(self.final_eta[nm]),
                            final_test=float(raw_m[i]), final_test_se=float(raw_s[i]),
                            position_test=float(pos_m[i]), position_test_se=float(pos_s[i]),
                            predicted_test=float(self.predicted_test[i]),
                            position_dist=float(self.position_dist[i].mean()),
                            predicted_dist=float(self.predicted_dist[i]), gap=float(self.gaps[i]),
                            tau_ratio=float(self.tau_ratio[i]), cyclic=nm in CYCLIC))
        return out

    def table(self) -> str:
        sc = self.comparison
        lines = [f"equal budget of {sc.total_steps} steps, gamma = {sc.problem.gamma:g}, sigma = {sc.problem.sigma:g}, "
                 f"{sc.paths} paths each; landing test loss {self.landing_test:.4g}, min-norm {sc.min_norm_test_loss:.4g}; "
                 f"adiabaticity {self.adiabaticity:.2g}",
                 f"{'schedule':>16} {'tau_S':>6} {'final eta':>9} {'final test':>18} {'on M':>8} {'ODE(tau_S)':>10} "
                 f"{'dist_M':>7} {'ODE':>7} {'tau_hat/tau_S':>13}"]
        for r in sorted(self.rows(), key=lambda r: -r["tau_S"]):
            lines.append(f"{r['name']:>16} {r['tau_S']:>6.3f} {r['final_eta']:>9.2g} {r['final_test']:>9.4f} ± "
                         f"{r['final_test_se']:<6.4f} {r['position_test']:>8.4f} {r['predicted_test']:>10.4f} "
                         f"{r['position_dist']:>7.4f} {r['predicted_dist']:>7.4f} {r['tau_ratio']:>13.3f}")
        lines.append(f"tau_hat: the ODE time with the same distance to w_mn on M; claim |tau_hat/tau_S - 1| <= "
                     f"eta lambda_max / 2 + {CYCLIC_MC:g} = {self.tolerance:.3f}")
        return "\n".join(lines)

    def _extra_config(self) -> dict:
        return {"rows": self.rows(), "travel": self.travel}


def landing_point(problem: Problem, eta: float, max_steps: int = 50_000) -> np.ndarray:
    """Noise-free gradient descent at ``eta`` from ``w0`` until ``L_n <= 1e-14``, retracted onto M; a
    ``ValueError`` naming ``eta`` when it diverges or does not land within ``max_steps``."""
    sim = simulate(problem, steps=max_steps, lr=eta, method="gd", stop_loss=LAND_LOSS, record_every=max_steps,
                   reduce=True, observables=["train_loss"], n_paths=1)
    if sim.status[0] != "stopped":
        how = "diverged" if sim.status[0] == "diverged" else f"did not reach L_n <= {LAND_LOSS:g} in {max_steps} steps"
        raise ValueError(f"eta: gradient descent from w0 at eta = {eta:g} {how} (the landing needs a stable rate, "
                         f"eta lambda_max < 2); lower eta")
    return m.retract(sim.W_final[0], problem.X, problem.y, problem.gamma)


def run_cyclic_study(config: CyclicConfig = CyclicConfig(), progress: bool = False) -> CyclicStudy:
    cfg = config.validate()
    t0 = time.perf_counter()
    prob = Problem.generate(d=cfg.d, n=cfg.n, gamma=cfg.gamma, sigma=cfg.sigma, w0_norm=cfg.w0_norm, seed=cfg.seed)
    w_L = landing_point(prob, cfg.eta)
    lam = normal_hessian_eigs(prob, w_L)
    if cfg.eta * lam.max() >= 2:
        raise ValueError(f"eta: eta lambda_max = {cfg.eta * lam.max():.3g} >= 2 at the landing point (lambda_max = "
                         f"{lam.max():.3g}): SGD at the peak rate is unstable on the normal directions; lower eta "
                         f"below {2 / lam.max():.3g}")
    red = Reduction.from_problem(prob, w_L[None, :])
    R = red.reduced
    u_L = red.project(w_L)
    scheds = cyclic_schedules(cfg.eta, cfg.total_steps, cfg.factor, cfg.cycles)
    names = list(scheds)
    T = cfg.total_steps
    budgets = {nm: drift_budget(s, T) for nm, s in scheds.items()}
    final_eta = {nm: float(s(T - 1)) for nm, s in scheds.items()}
    wmn, nmn = R.w_mn, float(np.linalg.norm(R.w_mn))
    a = cfg.sigma**2 / cfg.n
    check_ode_horizon("eta", 2 * max(budgets.values()),
                      drift_rate(a, m.hessian_trace(w_L, prob.X, prob.y, prob.gamma), w_L @ w_L),
                      "the drift ODE to twice the largest drift budget sum eta_k^2", ("eta", "total_steps", "sigma"))

    def on_M(U):
        return m.retract(U, R.X, R.y, R.gamma)
    obs = ["train_loss", "test_loss", "norm", "dist_mn",
           ("test_M", lambda U: m.test_loss(on_M(U), R.alpha_star, R.gamma, 0.0, R.test_offset)),
           ("dist_M", lambda U: np.linalg.norm(on_M(U) - wmn, axis=1) / nmn)]
    lr = [scheds[nm] for nm in names for _ in range(cfg.paths)]
    sim = simulate(R, np.tile(u_L, (len(lr), 1)), steps=T, lr=lr, method="sgd", seed=cfg.seed,
                   record_every=max(1, T // 200), observables=obs, progress=progress)
    comp = ScheduleComparison(prob, names, sim, {k: v.describe() for k, v in scheds.items()},
                              dict(paths=int(cfg.paths), seed=int(cfg.seed), batch_size=None, start="landing point"))
    ode = drift_ode(prob, w_L, tau_max=2 * max(budgets.values()), a=a, n_eval=800)
    lam_min = float(lam.min())
    adiab = (T // (2 * cfg.cycles)) * cfg.eta * cfg.factor * lam_min
    return CyclicStudy(dict(io.config_to_dict(cfg), command="cyclic", land_loss=LAND_LOSS), comp, budgets, final_eta,
                       ode.tau, ode.test_loss, ode.dist_mn / nmn, float(m.test_loss(w_L, prob.alpha_star, prob.gamma)),
                       float(adiab), float(lam.max()), wall_time=time.perf_counter() - t0)
