r"""``lrdecay diagonal``: label-noise SGD on the diagonal linear network, against its drift ODE and the l1 interpolator.

The model is :class:`lrdecay.theory.models.diagonal.DiagonalNetwork` (``beta = u * u - v * v``, columns of ``X``
normalised so that the Hessian trace ``(4/n) sum_j c_j (u_j^2 + v_j^2)`` is minimised on M at the minimum-l1
interpolator). From ``u_0 = v_0 = init_scale 1`` gradient flow lands (closed form,
:meth:`~lrdecay.theory.models.diagonal.DiagonalNetwork.flow_landing`) near the minimum-l2 interpolator when
``init_scale`` is of order 1; label-noise SGD at a large learning rate then drifts along M towards the
minimum-l1 interpolator (:func:`~lrdecay.theory.models.diagonal.min_l1_interpolator`, ``linprog``). Two targets:

* ``sparse`` (``sparsity`` non-zeros, ``n`` large enough for l1 recovery): the test minimum *is* the
  trace-minimising point, so a later decay helps;
* ``rowspace`` (``beta*`` in the row space of ``X``): the test minimum is the minimum-l2 interpolator, near
  the landing point, so the drift moves away from it and a later decay hurts.

Each target is one :func:`lrdecay.theory.studies.model_decay.run_model_decay` (SGD rows decayed at fractions of the
Phase II budget, and the ODE), plus a long ODE run (``long_tau_factor`` = 50 x the SGD horizon) for the end point: for the row-space
target the approach to the l1 point is slow (its dual certificate has entries close to the bound, and the
rate of each coordinate is proportional to the gap), 8.5 % of the landing's distance remains at 10 x the horizon.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from lrdecay.theory import io
from lrdecay.theory.models.diagonal import DiagonalNetwork
from lrdecay.theory.studies.model_decay import ModelDecayStudy, check_model_memory, run_model_decay
from lrdecay.theory.validation import integer, positive

#: Phase II: the retracted SGD test loss may differ from the ODE's by this fraction of the ODE's travel.
#: The quasistatic picture neglects corrections of relative order eta * lambda_mean (the mean Gauss–Newton
#: eigenvalue; about 0.1 at lr_factor = 0.5 with n/d = 0.5, where lambda_mean / lambda_max ~ 0.17), and 4
#: paths per row average the tangential diffusion to below 1 % of the travel.
#: largest start scale: eta = lr_factor / lambda_max ~ init_scale^-2, so the steps of a drift time grow as init_scale^4
MAX_INIT_SCALE = 10.0
DRIFT_TOL = 0.10
#: Phase III: the position frozen by the decay may differ from the ODE at the decay time by this fraction of
#: the travel (the same corrections; the drift during phase3_steps at eta * factor is factor^2 slower)
DECAY_TOL = 0.10
#: the long ODE run ends within this fraction of its start distance from the weighted-l1 interpolator
END_TOL = 0.02
#: helps / hurts: |late - early| beyond this many standard errors, with the sign of the ODE's change
DIRECTION_SE = 2.0


@dataclass(frozen=True)
class DiagonalConfig:
    d: int = 40
    n: int = 20
    sparsity: int = 3
    init_scale: float = 1.0
    sigma: float = 2.0
    lr_factor: float = 0.5
    tau_max: float = 8.0
    decay_fractions: tuple = (0.0, 0.125, 0.25, 0.5, 1.0)
    factor: float = 0.1
    phase3_steps: int = 3000
    paths: int = 4
    long_tau_factor: float = 50.0
    targets: tuple = ("sparse", "rowspace")
    seed: int = 0

    def validate(self) -> "DiagonalConfig":
        integer("d", self.d, 2)
        integer("n", self.n, 1, self.d - 1)
        integer("sparsity", self.sparsity, 1, self.d)
        if positive("init_scale", self.init_scale) > MAX_INIT_SCALE:
            raise ValueError(f"init_scale must be in (0, {MAX_INIT_SCALE:g}] (the landing point's sharpness grows as "
                             f"init_scale^2, so the SGD steps tau_max / eta^2 grow as init_scale^4), got {self.init_scale!r}")
        positive("sigma", self.sigma)
        positive("tau_max", self.tau_max)
        integer("paths", self.paths, 1)
        integer("seed", self.seed, 0)
        for t in self.targets:
            if t not in ("sparse", "dense", "rowspace"):
                raise ValueError(f"targets must be among ('sparse', 'dense', 'rowspace'), got {t!r}")
        check_model_memory("d", self.n, self.d, 2 * self.d, len(self.decay_fractions) * self.paths, ("d",))
        return self

    def smoke(self) -> "DiagonalConfig":
        """A tiny run (about a second)."""
        return replace(self, phase3_steps=1000, paths=3,
                       decay_fractions=(0.0, 0.5, 1.0))

    def model(self, target: str) -> DiagonalNetwork:
        return DiagonalNetwork.generate(d=self.d, n=self.n, sparsity=self.sparsity, init_scale=self.init_scale,
                                        sigma=self.sigma, target=target, seed=self.seed)


@dataclass
class DiagonalStudy(io.Result):
    """One :class:`ModelDecayStudy` per target (``cases[target]``), saved as one file."""

    KIND = "DiagonalStudy"

    config: dict
    sparse: ModelDecayStudy | None = None
    rowspace: ModelDecayStudy | None = None
    dense: ModelDecayStudy | None = None
    wall_time: float = 0.0

    @property
    def cases(self) -> dict:
        return {t: getattr(self, t) for t in ("sparse", "rowspace", "dense") if getattr(self, t) is not None}

    @staticmethod
    def references(st: ModelDecayStudy) -> dict:
        """``beta`` of the trace-minimiser (weighted l1, linprog), the minimum-l1 and minimum-l2 interpolators,
        the landing point and the ODE's end points; their test losses."""
        M = st.model
        out = {"trace_min": M.trace_minimizer(), "min_l1": M.min_l1(), "min_l2": M.min_l2(),
               "landing": M.beta(st.theta_land), "ode_end": M.beta(st.ode_theta_end),
               "long_end": M.beta(st.long_theta), "beta_star": M.beta_star}
        return out

    @staticmethod
    def end_gap(st: ModelDecayStudy) -> float:
        """``||beta(long ODE end) - beta_ref|| / ||beta(landing) - beta_ref||``, ``beta_ref`` the weighted-l1 interpolator."""
        M = st.model
        ref = M.trace_minimizer()
        return float(np.linalg.norm(M.beta(st.long_theta) - ref) / np.linalg.norm(M.beta(st.theta_land) - ref))

    def table(self) -> str:
        lines = []
        for t, st in self.cases.items():
            r = self.references(st)
            tl = {k: 0.5 * float(np.sum((v - r["beta_star"]) ** 2)) for k, v in r.items() if k != "beta_star"}
            lines.append(st.table())
            lines.append(f"  test loss: landing {tl['landing']:.4g}, min-l2 {tl['min_l2']:.4g}, min-l1 {tl['min_l1']:.4g}"
                         f" (trace-minimiser {tl['trace_min']:.4g}); ODE end at tau = {st.long_tau:.3g}: {tl['long_end']:.4g}, "
                         f"distance to the trace-minimiser {100 * self.end_gap(st):.2g} % of the landing's")
        return "\n".join(lines)


def run_diagonal_study(config: DiagonalConfig = DiagonalConfig(), progress: bool = False) -> DiagonalStudy:
    cfg = config.validate()
    t0 = time.perf_counter()
    cases = {}
    for t in cfg.targets:
        M = cfg.model(t)
        cases[t] = run_model_decay(M, M.flow_landing(), label=f"diagonal, {t} target", lr_factor=cfg.lr_factor,
                                   tau_max=cfg.tau_max, decay_fractions=cfg.decay_fractions, factor=cfg.factor,
                                   phase3_steps=cfg.phase3_steps, paths=cfg.paths, seed=cfg.seed,
                                   long_tau_factor=cfg.long_tau_factor, progress=progress)
    return DiagonalStudy(dict(io.config_to_dict(cfg), command="diagonal"), **cases,
                         wall_time=time.perf_counter() - t0)
