r"""``lrdecay discrete-eta``: how the quasistatic picture's errors grow with the learning rate.

On one problem of the nonlinear model, for each ``eta`` on a grid (default 0.005 ... 0.05, i.e.
``eta lambda_max`` from about 0.06 to 0.6 at the start), :func:`lrdecay.theory.studies.drift.compare_drift_with_sgd` runs
``paths`` label-noise SGD paths and the drift ODE from the same point of M over ``tau = eta^2 k <= tau_max``.
Measured per ``eta`` (``P`` paths, records ``r`` after the first):

* **drift error** ``e_drift = mean_r (mean_paths ||w_SGD|| - ||w_ODE||) / |Delta_ODE|``, the signed gap in ``||w||``
  averaged over the run, relative to the distance the ODE's norm travels (``Delta_ODE``); the same against the
  finite-``eta`` drift ODE ``-(a/4) P_T grad R_eta`` (:func:`lrdecay.theory.quasistatic.discrete_regularizer`);
* **plateau error** ``e_plateau = <L_n> / <(eta a / 4) tr H> - 1`` against the leading-order plateau, and against
  the exact OU plateau ``(eta a / 4) sum_j lambda_j / (1 - eta lambda_j / 2)`` (both averaged along the ODE's
  path); the linear OU predicts the first to be ``<exact> / <leading> - 1 = eta sum lambda_j^2 / (2 sum lambda_j)
  + O(eta^2)``.

Fits: ``log |e| = log c + p log eta`` by least squares over the grid; 95 % intervals of ``p`` and ``c`` from a
bootstrap over paths (every ``eta`` resampled independently). ``O(eta)`` means ``p = 1``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from lrdecay.theory import io
from lrdecay.theory.models import nonlinear as m
from lrdecay.theory.budget import check_ode_horizon, check_work, drift_rate, sgd_work
from lrdecay.theory.problem import Problem
from lrdecay.theory.quasistatic import drift_ode, noise_scale, plateau_prediction
from lrdecay.theory.studies.drift import DriftComparison, compare_drift_with_sgd
from lrdecay.theory.validation import integer, nonneg, numbers, positive

#: the fitted log-log slopes of the drift error and of the leading-order plateau error must lie in this range:
#: O(eta) means p = 1; over eta lambda_max in [0.06, 0.6] an O(eta^2) term up to about a third of the linear one
#: at the largest eta raises the slope by up to ~0.15, and the Monte Carlo error of the smallest errors
#: (32 paths) moves it by about as much; a slope of 2 (no first-order error) or 0 (no eta dependence) is excluded.
SLOPE_RANGE = (0.7, 1.3)
#: the grid of learning rates must span at least this factor, and each run at least MIN_STEPS steps
MIN_ETA_SPAN = 1.5
MIN_STEPS = 100
CONFIDENCE = 0.95


@dataclass(frozen=True)
class DiscreteEtaConfig:
    d: int = 50
    n: int = 10
    gamma: float = 1.0
    sigma: float = 1.0
    w0_norm: float = 1.0
    etas: tuple = (0.005, 0.01, 0.02, 0.035, 0.05)
    tau_max: float = 2.0
    paths: int = 32
    bootstrap: int = 200
    seed: int = 0

    def validate(self) -> "DiscreteEtaConfig":
        integer("d", self.d, 2)
        integer("n", self.n, 1, self.d - 1)
        nonneg("gamma", self.gamma)
        positive("sigma", self.sigma)
        positive("w0_norm", self.w0_norm)
        et = numbers("etas", self.etas, 0.0, strict=True)
        if et.size < 2 or np.any(np.diff(et) <= 0):
            raise ValueError(f"etas must be at least two increasing learning rates, got {list(self.etas)}")
        if et[-1] / et[0] < MIN_ETA_SPAN:
            raise ValueError(f"etas must span a factor of at least {MIN_ETA_SPAN:g} (largest / smallest) for a "
                             f"log-log slope, got {et[-1] / et[0]:.4g}")
        positive("tau_max", self.tau_max)
        integer("paths", self.paths, 2)
        integer("bootstrap", self.bootstrap, 0)
        integer("seed", self.seed, 0)
        steps = self.tau_max / et**2
        if steps.min() < MIN_STEPS:
            raise ValueError(f"tau_max: tau_max / eta^2 = {steps.min():.3g} steps at eta = {et[-1]:g}, fewer than "
                             f"{MIN_STEPS}; raise tau_max or lower etas")
        check_work("tau_max", sgd_work(self.paths * steps.sum(), self.n, self.n + 1),
                   f"{self.paths} SGD paths of tau_max / eta^2 steps per eta ({steps.sum():.3g} steps in all)",
                   ("tau_max", "etas", "paths"))
        return self

    def smoke(self) -> "DiscreteEtaConfig":
        return replace(self, etas=(0.02, 0.035, 0.05), paths=8, bootstrap=20)


@dataclass
class DiscreteEtaStudy(io.Result):
    KIND = "DiscreteEtaStudy"

    config: dict
    problem: Problem
    etas: np.ndarray
    lam_start: np.ndarray          # eigenvalues of J J^T / n at the start
    # per eta, per path: time-averaged signed errors (so that paths can be resampled)
    drift_err_paths: np.ndarray    # (E, P) vs the eta -> 0 ODE
    drift_err_eta_paths: np.ndarray  # (E, P) vs the finite-eta ODE
    train_paths: np.ndarray        # (E, P) time-averaged train loss after the first tenth
    plateau_leading: np.ndarray    # (E,) time-averaged leading-order prediction along the ODE
    plateau_exact: np.ndarray      # (E,) time-averaged exact OU prediction along the ODE
    comparisons: dict              # "eta<value>" -> summary numbers (JSON)
    wall_time: float = 0.0

    @property
    def drift_err(self) -> np.ndarray:
        return self.drift_err_paths.mean(1)

    @property
    def drift_err_eta(self) -> np.ndarray:
        return self.drift_err_eta_paths.mean(1)

    @property
    def plateau_err_leading(self) -> np.ndarray:
        return self.train_paths.mean(1) / self.plateau_leading - 1

    @property
    def plateau_err_exact(self) -> np.ndarray:
        return self.train_paths.mean(1) / self.plateau_exact - 1

    @property
    def plateau_err_pred(self) -> np.ndarray:
        """The linear OU's leading-order plateau error along the path, ``<exact> / <leading> - 1`` per ``eta``."""
        return self.plateau_exact / self.plateau_leading - 1

    @property
    def plateau_coef_pred(self) -> float:
        """The linear OU's coefficient ``sum lambda_j^2 / (2 sum lambda_j)`` (averaged along the path): the predicted
        ``e_plateau / eta`` as ``eta -> 0``, read off at the smallest ``eta``."""
        return float(self.plateau_err_pred[0] / self.etas[0])

    @staticmethod
    def _slope(etas, errs):
        A = np.c_[np.ones(len(etas)), np.log(etas)]
        coef = np.linalg.lstsq(A, np.log(np.abs(errs)), rcond=None)[0]
        return float(coef[1]), float(np.exp(coef[0]))

    def fit(self, which: str) -> dict:
        """``p``, ``c`` of ``|e| = c eta^p`` and their bootstrap intervals; ``which`` in
        ``("drift", "drift_eta", "plateau")``."""
        rng = np.random.default_rng(np.random.SeedSequence(self.config["seed"], spawn_key=(7, len(which))))
        E, P = self.drift_err_paths.shape

        def errs(idx):
            if which == "drift":
                return np.array([self.drift_err_paths[e, idx[e]].mean() for e in range(E)])
            if which == "drift_eta":
                return np.array([self.drift_err_eta_paths[e, idx[e]].mean() for e in range(E)])
            return np.array([self.train_paths[e, idx[e]].mean() for e in range(E)]) / self.plateau_leading - 1
        full = errs([np.arange(P)] * E)
        p, c = self._slope(self.etas, full)
        boots = np.array([self._slope(self.etas, errs([rng.integers(0, P, P) for _ in range(E)]))
                          for _ in range(int(self.config["bootstrap"]))]) if self.config["bootstrap"] else np.full((1, 2), np.nan)
        q = (1 - CONFIDENCE) / 2
        lo, hi = np.nanquantile(boots, q, axis=0), np.nanquantile(boots, 1 - q, axis=0)
        return dict(p=p, c=c, p_low=float(lo[0]), p_high=float(hi[0]), c_low=float(lo[1]), c_high=float(hi[1]),
                    errors=full.tolist(), same_sign=bool(np.all(np.sign(full) == np.sign(full[-1]))))

    def table(self) -> str:
        lines = [f"{'eta':>6} {'eta*lmax':>8} {'drift err':>10} {'(eta ODE)':>10} {'plateau err':>11} "
                 f"{'(exact OU)':>10} {'pred (OU)':>10}"]
        lmax = float(self.lam_start.max())
        for i, e in enumerate(self.etas):
            lines.append(f"{e:>6g} {e * lmax:>8.3f} {self.drift_err[i]:>10.4f} {self.drift_err_eta[i]:>10.4f} "
                         f"{self.plateau_err_leading[i]:>11.4f} {self.plateau_err_exact[i]:>10.4f} "
                         f"{self.plateau_err_pred[i]:>10.4f}")
        for which, label in (("drift", "drift error (eta -> 0 ODE)"), ("drift_eta", "drift error (finite-eta ODE)"),
                             ("plateau", "plateau error (leading order)")):
            f = self.fit(which)
            lines.append(f"{label}: |e| = c eta^p, p = {f['p']:.3f} [{f['p_low']:.3f}, {f['p_high']:.3f}], "
                         f"c = {f['c']:.3g} [{f['c_low']:.3g}, {f['c_high']:.3g}]")
        lines.append(f"pred (OU): the linear OU's leading-order plateau error along the path; its coefficient "
                     f"sum lambda^2 / (2 sum lambda) = {self.plateau_coef_pred:.3f}")
        return "\n".join(lines)

    def _extra_config(self) -> dict:
        return {w: self.fit(w) for w in ("drift", "drift_eta", "plateau")}


def _errors(c: DriftComparison, ode_eta_norm: np.ndarray, prob: Problem, ode_w: np.ndarray, ode_tau: np.ndarray):
    span = abs(c.ode_norm[0] - c.ode_norm[-1])
    sl = slice(1, None)
    e0 = ((c.sgd_norm[sl] - c.ode_norm[sl, None]) / span).mean(0)
    e1 = ((c.sgd_norm[sl] - ode_eta_norm[sl, None]) / span).mean(0)
    pl = slice(max(1, len(c.tau) // 10), None)
    train = c.sgd_train[pl].mean(0)
    idx = np.clip(np.searchsorted(ode_tau, c.tau[pl]), 0, len(ode_tau) - 1)
    preds = [plateau_prediction(prob, ode_w[i], c.eta) for i in idx]
    return e0, e1, train, float(np.mean([p.leading for p in preds])), float(np.mean([p.exact for p in preds]))


def run_discrete_eta(config: DiscreteEtaConfig = DiscreteEtaConfig(), progress: bool = False) -> DiscreteEtaStudy:
    cfg = config.validate()
    t0 = time.perf_counter()
    prob = Problem.generate(d=cfg.d, n=cfg.n, gamma=cfg.gamma, sigma=cfg.sigma, w0_norm=cfg.w0_norm, seed=cfg.seed)
    w_start = m.retract(prob.w0, prob.X, prob.y, prob.gamma)
    a = noise_scale(prob)
    J = m.jacobian(w_start, prob.X, prob.gamma)
    lam = np.linalg.eigvalsh(J @ J.T / prob.n)
    etas = np.asarray(cfg.etas, dtype=float)
    if etas[-1] * lam.max() >= 2:
        raise ValueError(f"etas: eta lambda_max = {etas[-1] * lam.max():.3g} >= 2 at the start on M for eta = "
                         f"{etas[-1]:g} (lambda_max = {lam.max():.3g}): SGD is unstable on the normal directions; lower "
                         f"etas below {2 / lam.max():.3g}")
    check_ode_horizon("tau_max", cfg.tau_max, drift_rate(a, m.hessian_trace(w_start, prob.X, prob.y, prob.gamma),
                                                         w_start @ w_start), lower=("tau_max", "sigma"))
    ode0 = drift_ode(prob, w_start, cfg.tau_max, a, n_eval=400)
    D0, D1, TR, PL, PE, comps = [], [], [], [], [], {}
    for eta in etas:
        c = compare_drift_with_sgd(prob, float(eta), tau_max=cfg.tau_max, paths=cfg.paths, seed=cfg.seed,
                                   progress=progress)
        ode_e = drift_ode(prob, w_start, cfg.tau_max, a, n_eval=400, eta=float(eta))
        e0, e1, tr, pl, pe = _errors(c, np.interp(c.tau, ode_e.tau, ode_e.norm), prob, ode0.w, ode0.tau)
        D0.append(e0), D1.append(e1), TR.append(tr), PL.append(pl), PE.append(pe)
        comps[f"eta{eta:g}"] = dict(eta=float(eta), steps=c.config["steps"], sim_message=c.config["sim_message"],
                                    norm_rel_error=c.norm_rel_error, plateau_ratio=c.plateau_ratio,
                                    diverged=c.diverged)
    return DiscreteEtaStudy(dict(io.config_to_dict(cfg), command="discrete-eta"), prob, etas, lam, np.array(D0),
                            np.array(D1), np.array(TR), np.array(PL), np.array(PE), comps,
                            wall_time=time.perf_counter() - t0)
