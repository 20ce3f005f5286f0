r"""``lrdecay rate-law``: how long the Phase II drift to ``w_mn`` takes, against gamma, ``||w0||`` and ``n/d``.

For each cell ``(gamma, ||w0||, n)`` (``d`` fixed) and each of ``n_instances`` random instances
(:meth:`lrdecay.theory.problem.Problem.generate` with seed ``1_000_000 * seed + i``: the same ``X`` rows, ``alpha*`` and
direction of ``w0`` in every cell):

1. ``eta = lr_factor / lambda_max(J^T J / n)`` at ``retract(w0)`` (the rule of :mod:`lrdecay.theory.studies.gamma`);
2. **landing point** ``w_L``: noise-free gradient descent at that ``eta`` from ``w0`` until ``L_n <= 1e-14``
   (Phase I without the noise), retracted onto M;
3. **prediction**: the drift ODE ``dw/dtau = -(a/4) P_T grad tr Hess L_n`` (:mod:`lrdecay.theory.quasistatic`) from ``w_L``
   until ``||w - w_mn|| / ||w_mn|| < tol`` (a terminal event): the deterministic drift time ``tau_ODE``; beside it
   the finite-``eta`` drift ODE ``-(a/4) P_T grad R_eta`` (:func:`lrdecay.theory.quasistatic.discrete_regularizer`),
   ``tau_ODE_eta``, which keeps the ``O(eta)`` correction of the normal covariance;
4. **measurement**: full-batch label-noise SGD at ``eta`` from ``w_L`` until ``dist_M < tol`` and near M
   (:func:`lrdecay.theory.studies.gamma.run_paths`), ``tau_SGD = eta^2 k``, or censored at ``cap_factor`` times the
   largest predicted step count ``tau_ODE / eta^2`` of its group (pairs whose ODE never gets within ``tol``, i.e.
   that fail the flatness condition, are not run) (paths run in groups of similar ``eta`` so that no group waits for
   another's slow paths; records every ``1 %`` of the smallest predicted ``tau`` in the group).

**The law (derived).** Near ``w_mn`` the drift is linear: a tangent displacement ``v`` decays like
``exp(-kappa tau)`` with

``kappa = (a/4) h'(r_mn) / ((1 + gamma) r_mn) = sigma^2 gamma ||X||_F^2 r_mn^(2 gamma - 2) (1 - 1/rho) / (2 n^2 (1 + gamma))``,

``r_mn = ||w_mn|| = ||alpha_mn||^(1/(gamma+1))``, ``rho = y^T (X X^T)^{-1} y ||X||_F^2 / ((gamma + 2) ||y||^2)`` the
flatness margin (the drift reaches ``w_mn`` iff ``rho >= 1``). The factor ``1/(1 + gamma)`` is the tilt of the
normal space: at ``w = w_mn + v``, ``||P_T w_hat|| = ||v|| / ((1 + gamma) r_mn)`` to first order. So
``tau ~ ln(d_0 / tol) / kappa`` with ``d_0 = ||w_L - w_mn|| / ||w_mn||``: ``||w0||`` enters only through the log
of the landing distance, ``n/d`` through ``||X||_F^2 / n^2 ~ d / n``, ``r_mn`` and ``rho ~ n / (gamma + 2)``, and
gamma through ``gamma / (1 + gamma)``, ``r_mn^(2 gamma - 2)`` and the margin, which closes as ``gamma -> n - 2``.
The fitted law is ``log tau = log C + p log(ln(d_0 / tol) / kappa) + s e`` (``e ~ N(0, 1)``), by maximum likelihood
with right-censoring (:func:`lrdecay.theory.stats.censored_normal_regression`), once on ``tau_SGD`` and once on
``tau_ODE``, with 95 % intervals from a bootstrap over instances (all cells of an instance resampled together).
A descriptive fit ``log tau = b_0 + b_gamma gamma + b_w log ||w0|| + b_n log(n/d)`` is reported beside it.

**Censoring.** Per cell the median drift time is the Kaplan–Meier median (:func:`lrdecay.theory.stats.km_median`); the
claim compares, per cell, the Kaplan–Meier median of the paired ratio ``tau_SGD / tau_ODE`` with 1.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
from scipy.integrate import solve_ivp

from lrdecay.theory import io
from lrdecay.theory.models import nonlinear as m
from lrdecay.theory.budget import check_work, sgd_work
from lrdecay.theory.engine import simulate
from lrdecay.theory.problem import Problem
from lrdecay.theory.quasistatic import discrete_drift_velocity, drift_velocity
from lrdecay.theory.reduction import Reduction
from lrdecay.theory.stats import censored_normal_regression, km_median
from lrdecay.theory.studies.gamma import INSTANCE_SEED_STRIDE, GammaPathsModel, landing_sharpness, run_paths
from lrdecay.theory.validation import integer, numbers, positive

#: claim: per cell, the Kaplan–Meier median of tau_SGD / tau_ODE lies in [1 - lr_factor / 2 - RATIO_MC, 1 + RATIO_MC].
#: At eta lambda_max = lr_factor the normal variances are eta a / (2 - eta lambda_j) instead of eta a / 2, so the
#: drift is faster by a factor between 1 and 1 / (1 - lr_factor / 2) and tau_SGD / tau_ODE lies in
#: [1 - lr_factor / 2, 1] to first order; RATIO_MC covers the Monte Carlo error of a median of n_instances
#: first-passage times and the record resolution (1 % of tau).
RATIO_MC = 0.10
CONFIDENCE = 0.95
LAND_LOSS = 1e-14
MAX_W0_NORM = 10.0        # start norms at most this (see RateLawConfig.validate)
MAX_CAP_FACTOR = 1000.0   # the SGD step cap, as a multiple of the predicted steps, at most this
MIN_GROUP = 12        # at least this many paths per engine call (the per-step cost is mostly overhead)


@dataclass(frozen=True)
class RateLawConfig:
    gammas: tuple = (0.5, 1.0, 2.0, 3.0, 4.0)
    w0_norms: tuple = (0.5, 1.0)
    ns: tuple = (10, 20)
    d: int = 50
    n_instances: int = 8
    sigma: float = 1.0
    alpha_norm: float = 1.0
    lr_factor: float = 0.5
    tol: float = 0.05
    cap_factor: float = 3.0
    n_groups: int = 8
    bootstrap: int = 300
    seed: int = 0

    def validate(self) -> "RateLawConfig":
        numbers("gammas", self.gammas, 0.0, strict=True)
        if np.any(numbers("w0_norms", self.w0_norms, 0.0, strict=True) > MAX_W0_NORM):
            raise ValueError(f"w0_norms must be in (0, {MAX_W0_NORM:g}] (the landing point's sharpness grows as "
                             f"||w0||^(2 gamma), so eta = lr_factor / lambda_max shrinks and the SGD steps tau / eta^2 "
                             f"grow as ||w0||^(4 gamma)), got {list(self.w0_norms)}")
        d = integer("d", self.d, 3)
        for n in self.ns:
            integer("ns[i]", n, 2, d - 1)
        integer("n_instances", self.n_instances, 2, INSTANCE_SEED_STRIDE)
        positive("sigma", self.sigma)
        positive("alpha_norm", self.alpha_norm)
        if not 0 < positive("lr_factor", self.lr_factor) < 2:
            raise ValueError(f"lr_factor must be in (0, 2), got {self.lr_factor!r}")
        if not 0 < positive("tol", self.tol) < 1:
            raise ValueError(f"tol must be in (0, 1) (a distance to w_mn relative to ||w_mn||), got {self.tol!r}")
        if not 1 <= positive("cap_factor", self.cap_factor) <= MAX_CAP_FACTOR:
            raise ValueError(f"cap_factor must be in [1, {MAX_CAP_FACTOR:g}] (a path not done by then is censored), "
                             f"got {self.cap_factor!r}")
        integer("n_groups", self.n_groups, 1)
        integer("bootstrap", self.bootstrap, 0)
        integer("seed", self.seed, 0, 2**31 // INSTANCE_SEED_STRIDE)
        return self

    def smoke(self) -> "RateLawConfig":
        """A tiny run (seconds)."""
        return replace(self, gammas=(0.5, 1.0), w0_norms=(1.0,), ns=(8,), d=20, n_instances=4, n_groups=1,
                       bootstrap=20)


# --------------------------------------------------------------------------------------------------
# The derived rate and the ODE's drift time
# --------------------------------------------------------------------------------------------------

def linear_rate(problem: Problem, a: float | None = None) -> float:
    """``kappa = (a/4) h'(r_mn) / ((1 + gamma) r_mn)``: the decay rate of a tangent displacement from ``w_mn``
    under the drift ODE (``a = sigma^2 / n`` by default); negative when the flatness condition fails."""
    a = problem.sigma**2 / problem.n if a is None else a
    r = float(np.linalg.norm(problem.w_mn))
    g = problem.gamma
    return 0.25 * a * float(m.manifold_hessian_trace_deriv(r, problem.X, problem.y, g)) / ((1 + g) * r)


def flatness_margin(problem: Problem) -> float:
    """``rho = lhs / rhs`` of :func:`lrdecay.theory.models.nonlinear.flatness_condition`."""
    _, lhs, rhs = m.flatness_condition(problem.X, problem.y, problem.gamma)
    return lhs / rhs


def ode_drift_time(problem: Problem, w_start, tol: float, a: float | None = None, tau_max: float = 200.0,
                   rtol: float = 1e-7, atol: float = 1e-10, eta: float | None = None) -> float:
    """First ``tau`` at which the drift ODE from ``retract(w_start)`` has ``||w - w_mn|| / ||w_mn|| < tol``
    (terminal event; ``inf`` if not by ``tau_max``). Runs in the invariant subspace ``span{w_start, x_i}``.
    With ``eta``: the finite-``eta`` drift of :func:`lrdecay.theory.quasistatic.discrete_drift_velocity`."""
    a = problem.sigma**2 / problem.n if a is None else a
    w = m.retract(np.asarray(w_start, dtype=float), problem.X, problem.y, problem.gamma)
    red = Reduction.from_problem(problem, w[None, :])
    P = red.reduced
    wmn = P.w_mn
    nm = float(np.linalg.norm(wmn))
    u0 = red.project(w)
    if np.linalg.norm(u0 - wmn) / nm < tol:
        return 0.0

    def hit(_t, u):
        return float(np.linalg.norm(u - wmn)) / nm - tol
    hit.terminal, hit.direction = True, -1
    if eta is None:
        def rhs(_t, u):
            return drift_velocity(P, u, a)
    else:
        def rhs(_t, u):
            return discrete_drift_velocity(P, u, a, eta)
    sol = solve_ivp(rhs, (0.0, tau_max), u0, events=hit, method="LSODA", rtol=rtol, atol=atol)
    return float(sol.t_events[0][0]) if sol.t_events[0].size else float("inf")


# --------------------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------------------

def _ratio(a, b) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return a / b


@dataclass
class RateLawResult(io.Result):
    """One row per (cell, instance) pair, ``P = cells x n_instances``; cells in the order of ``cells``."""

    KIND = "RateLawResult"

    config: dict
    cells: np.ndarray          # (Cn, 3): gamma, ||w0||, n
    cell: np.ndarray           # (P,) cell index
    instance: np.ndarray       # (P,) instance index
    gamma: np.ndarray
    w0_norm: np.ndarray
    n: np.ndarray
    eta: np.ndarray
    land_steps: np.ndarray     # Phase I GD steps to L_n <= 1e-14
    d0: np.ndarray             # ||w_L - w_mn|| / ||w_mn||
    kappa: np.ndarray          # the derived linear rate
    margin: np.ndarray         # flatness margin rho
    tau_ode: np.ndarray        # the eta -> 0 drift ODE's time (the prediction)
    tau_ode_eta: np.ndarray    # the finite-eta drift ODE's time (R_eta, lrdecay.theory.quasistatic.discrete_regularizer)
    tau_sgd: np.ndarray        # the drift time, or the censoring time where censored
    censored: np.ndarray
    status: np.ndarray         # engine status: completed (censored) / stopped (converged) / diverged
    steps: np.ndarray          # SGD steps to converge (or the cap)
    fits: dict                 # law and descriptive fits (JSON)
    wall_time: float = 0.0

    # ---- per pair ------------------------------------------------------------------------------
    @property
    def ratio(self) -> np.ndarray:
        """``tau_SGD / tau_ODE`` (a lower bound where censored; NaN for pairs not run, e.g. landed within tol)."""
        return _ratio(self.tau_sgd, self.tau_ode)

    @property
    def usable(self) -> np.ndarray:
        """Pairs with a finite ODE time, run with SGD, and no diverged SGD path."""
        return np.isfinite(self.tau_ode) & (self.tau_ode > 0) & ~np.isin(self.status, ["diverged", "not run"])

    @property
    def law_x(self) -> np.ndarray:
        """The law's regressor ``ln(d_0 / tol) / kappa``."""
        return np.log(self.d0 / self.config["tol"]) / self.kappa

    # ---- per cell ------------------------------------------------------------------------------
    def cell_rows(self) -> list[dict]:
        rows = []
        for c, (g, w, n) in enumerate(self.cells):
            sel = (self.cell == c) & self.usable
            k = int(sel.sum())
            cens = self.censored[sel]
            rows.append(dict(
                gamma=float(g), w0_norm=float(w), n=int(n), pairs=int(np.sum(self.cell == c)), usable=k,
                censored=int(cens.sum()), diverged=int(np.sum((self.cell == c) & (self.status == "diverged"))),
                ode_inf=int(np.sum((self.cell == c) & ~np.isfinite(self.tau_ode))),
                km_tau_sgd=km_median(self.tau_sgd[sel], cens) if k else float("nan"),
                median_tau_ode=float(np.median(self.tau_ode[sel])) if k else float("nan"),
                km_ratio=km_median(self.ratio[sel], cens) if k else float("nan"),
                eta_stall=int(np.sum(sel & ~np.isfinite(self.tau_ode_eta))),
                eta_stall_censored=int(np.sum(sel & ~np.isfinite(self.tau_ode_eta) & self.censored)),
                km_ratio_eta=km_median(_ratio(self.tau_sgd, self.tau_ode_eta)[sel & np.isfinite(self.tau_ode_eta)],
                                       self.censored[sel & np.isfinite(self.tau_ode_eta)])
                if np.any(sel & np.isfinite(self.tau_ode_eta)) else float("nan"),
                median_law=float(np.median(self.law_x[sel])) if k else float("nan"),
                median_eta=float(np.median(self.eta[self.cell == c])),
                median_margin=float(np.median(self.margin[self.cell == c]))))
        return rows

    @property
    def ratio_range(self) -> tuple[float, float]:
        f = self.config["lr_factor"]
        return 1 - f / 2 - RATIO_MC, 1 + RATIO_MC

    def table(self) -> str:
        lo, hi = self.ratio_range
        lines = [f"{'gamma':>5} {'||w0||':>6} {'n':>3} {'pairs':>5} {'cens':>4} {'med eta':>8} {'margin':>6} "
                 f"{'KM tau_SGD':>10} {'med tau_ODE':>11} {'KM ratio':>8} {'in range':>8} {'ratio (eta ODE)':>15} "
                 f"{'eta stall':>9}"]
        for r in self.cell_rows():
            ok = lo <= r["km_ratio"] <= hi
            lines.append(f"{r['gamma']:>5g} {r['w0_norm']:>6g} {r['n']:>3d} {r['usable']:>5d} {r['censored']:>4d} "
                         f"{r['median_eta']:>8.4f} {r['median_margin']:>6.2f} {r['km_tau_sgd']:>10.3f} "
                         f"{r['median_tau_ode']:>11.3f} {r['km_ratio']:>8.3f} {'yes' if ok else 'NO':>8} "
                         f"{r['km_ratio_eta']:>15.3f} {r['eta_stall']:>9d}")
        lines.append(f"ratio = tau_SGD / tau_ODE per instance (eta -> 0 drift ODE), Kaplan-Meier median per cell; range "
                     f"[{lo:.2f}, {hi:.2f}]; ratio (eta ODE): against the finite-eta drift ODE (R_eta), over the pairs it brings "
                     f"within tol; eta stall: pairs it never brings within tol ({int(np.sum(~np.isfinite(self.tau_ode_eta)))}, "
                     f"of which {int(np.sum(~np.isfinite(self.tau_ode_eta) & self.censored))} are censored SGD paths; "
                     f"{int(self.censored.sum())} censored in all)")
        for key, label in (("law", "law  log tau = log C + p log(ln(d0/tol)/kappa)"),
                           ("factors", "factors  log tau = b0 + b_g gamma + b_w log||w0|| + b_n log(n/d)")):
            lines.append(label)
            for src in ("sgd", "ode"):
                f = self.fits.get(f"{key}_{src}")
                if f:
                    terms = ", ".join(f"{nm} = {v:.3f} [{lo_:.3f}, {hi_:.3f}]" for nm, v, lo_, hi_ in
                                      zip(f["names"], f["coef"], f["ci_low"], f["ci_high"]))
                    lines.append(f"  {src.upper():>3}: {terms}; scale s = {f['scale']:.3f} "
                                 f"({f['n_obs']} observed, {f['n_censored']} censored)")
        return "\n".join(lines)

    def _extra_config(self) -> dict:
        return {"cell_rows": self.cell_rows()}


# --------------------------------------------------------------------------------------------------
# Fits
# --------------------------------------------------------------------------------------------------

def _design(kind: str, res_like: dict, d: int) -> tuple[np.ndarray, list]:
    if kind == "law":
        return np.c_[np.ones(len(res_like["law_x"])), np.log(res_like["law_x"])], ["log C", "p"]
    return (np.c_[np.ones(len(res_like["gamma"])), res_like["gamma"], np.log(res_like["w0_norm"]),
                  np.log(res_like["n"] / d)], ["b0", "b_gamma", "b_w", "b_n"])


def fit_laws(data: dict, d: int, tol: float, bootstrap: int, seed: int, confidence: float = CONFIDENCE) -> dict:
    """The law and descriptive fits on SGD (censored) and ODE times, with cluster-bootstrap intervals."""
    out = {}
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(99,)))
    inst = data["instance"]
    ids = np.unique(inst)
    draws = [rng.choice(ids, size=ids.size, replace=True) for _ in range(bootstrap)]
    q = (1 - confidence) / 2
    for kind in ("law", "factors"):
        for src in ("sgd", "ode"):
            t = data["tau_sgd"] if src == "sgd" else data["tau_ode"]
            cens = data["censored"] if src == "sgd" else np.zeros(t.shape, dtype=bool)
            X, names = _design(kind, data, d)
            y = np.log(t)
            if np.sum(~cens) <= X.shape[1] or np.linalg.matrix_rank(X[~cens]) < X.shape[1]:
                continue
            f = censored_normal_regression(y, X, cens)
            boots = []
            for dr in draws:
                rows = np.concatenate([np.nonzero(inst == i)[0] for i in dr])
                if np.sum(~cens[rows]) > X.shape[1] and np.linalg.matrix_rank(X[rows][~cens[rows]]) == X.shape[1]:
                    boots.append(censored_normal_regression(y[rows], X[rows], cens[rows])["coef"])
            B = np.array(boots) if boots else np.full((1, X.shape[1]), np.nan)
            out[f"{kind}_{src}"] = dict(names=names, coef=f["coef"].tolist(), scale=f["scale"],
                                        n_obs=f["n_obs"], n_censored=f["n_censored"], success=f["success"],
                                        ci_low=np.quantile(B, q, axis=0).tolist(),
                                        ci_high=np.quantile(B, 1 - q, axis=0).tolist(), n_boot=len(boots))
    return out


# --------------------------------------------------------------------------------------------------
# The study
# --------------------------------------------------------------------------------------------------

def _landing(problems, etas, sigma, max_steps=50_000):
    """Noise-free GD at each pair's eta from w0 until L_n <= LAND_LOSS (one engine call), retracted onto M."""
    model = GammaPathsModel(problems, etas, sigma=sigma)
    sim = simulate(model, model.W0, steps=max_steps, lr=model.eta, method="gd", stop_loss=LAND_LOSS,
                   record_every=max_steps, observables=["train_loss"])
    W = model.lift(sim.W_final)
    W = np.stack([m.retract(w, p.X, p.y, p.gamma) for w, p in zip(W, problems)])
    return W, np.where(sim.status == "stopped", sim.stop_step, max_steps)


def _instances(cfg: RateLawConfig) -> tuple[np.ndarray, np.ndarray, list]:
    """The cells (gamma, ||w0||, n), one row (cell, instance, gamma, ||w0||, n) per pair, and the problems."""
    cells = np.array([(g, w, n) for n in cfg.ns for g in cfg.gammas for w in cfg.w0_norms], dtype=float)
    seeds = INSTANCE_SEED_STRIDE * cfg.seed + np.arange(cfg.n_instances)
    problems, rows = [], []
    for c, (g, w, n) in enumerate(cells):
        for i in range(cfg.n_instances):
            problems.append(Problem.generate(d=cfg.d, n=int(n), gamma=float(g), sigma=cfg.sigma,
                                             alpha_norm=cfg.alpha_norm, w0_norm=float(w), seed=int(seeds[i])))
            rows.append((c, i, g, w, n))
    return cells, np.array(rows, dtype=float), problems


def _ode_times(landed, d0, kappa, eta, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """The drift ODE's time to within ``tol`` of w_mn, at eta -> 0 and with each pair's eta."""
    tau_ode = np.array([ode_drift_time(p, p.w0, tol,
                                       tau_max=max(50.0, 20 * np.log(max(d, 1.01 * tol) / tol) / k)
                                       if k > 0 else 50.0)
                        for p, d, k in zip(landed, d0, kappa)])
    tau_ode_eta = np.array([ode_drift_time(p, p.w0, tol, eta=e, tau_max=max(50.0, 3 * t) if np.isfinite(t) else 50.0,
                                           rtol=1e-6, atol=1e-9) for p, e, t in zip(landed, eta, tau_ode)])
    return tau_ode, tau_ode_eta


def _sgd_groups(cfg: RateLawConfig, n_col, tau_ode, k_pred, problems) -> tuple[list, list]:
    """Pairs grouped by similar predicted step counts within one n (a stacked model needs a common n), and each
    group's step cap; pairs the eta -> 0 ODE never brings within tol are left out. Refuses too much work."""
    groups = []
    for n in cfg.ns:
        sel = np.nonzero((n_col == n) & np.isfinite(tau_ode))[0]
        if sel.size == 0:
            continue
        order = sel[np.argsort(k_pred[sel], kind="stable")]
        k = max(1, min(cfg.n_groups // len(cfg.ns), sel.size // MIN_GROUP))
        groups += [g for g in np.array_split(order, k) if g.size]
    caps = [int(np.ceil(cfg.cap_factor * k_pred[grp].max())) for grp in groups]
    check_work("cap_factor", sum(sgd_work(c * len(g), int(problems[g[0]].n), int(problems[g[0]].n) + 1)
                                 for c, g in zip(caps, groups)),
               f"SGD up to cap_factor x the predicted steps ({max(caps, default=0):.3g} steps at most)",
               ("cap_factor", "n_instances"))
    return groups, caps


def run_rate_law(config: RateLawConfig = RateLawConfig(), progress: bool = False) -> RateLawResult:
    cfg = config.validate()
    t0 = time.perf_counter()
    cells, rows, problems = _instances(cfg)
    P = len(problems)
    eta = np.array([cfg.lr_factor / landing_sharpness(p) for p in problems])
    t_land = time.perf_counter()
    # Phase I without noise, per n (one stacked model needs a common n)
    W_L = np.zeros((P, cfg.d))
    land_steps = np.zeros(P, dtype=np.int64)
    for n in cfg.ns:
        sel = np.nonzero(rows[:, 4] == n)[0]
        W_L[sel], land_steps[sel] = _landing([problems[j] for j in sel], eta[sel], cfg.sigma)
    landed = [p.with_(w0=w) for p, w in zip(problems, W_L)]
    t_land = time.perf_counter() - t_land
    d0 = np.array([np.linalg.norm(p.w0 - p.w_mn) / np.linalg.norm(p.w_mn) for p in landed])
    cell_measurable = np.array([np.any(d0[rows[:, 0] == c] > cfg.tol) for c in range(len(cells))])
    if not cell_measurable.all():
        raise ValueError(f"tol: in {int(np.sum(~cell_measurable))} of {len(cells)} cells every landing point is already "
                         f"within tol = {cfg.tol:g} of w_mn (no drift to time); lower tol")
    kappa = np.array([linear_rate(p) for p in landed])
    margin = np.array([flatness_margin(p) for p in landed])
    t_ode = time.perf_counter()
    tau_ode, tau_ode_eta = _ode_times(landed, d0, kappa, eta, cfg.tol)
    t_ode = time.perf_counter() - t_ode
    # SGD in groups of similar predicted step counts; predicted steps: the eta -> 0 ODE's
    k_pred = np.where(np.isfinite(tau_ode), tau_ode, 0.0) / eta**2
    tau_sgd, censored = np.full(P, np.nan), np.zeros(P, dtype=bool)
    status, steps = np.full(P, "not run", dtype="U10"), np.zeros(P, dtype=np.int64)
    t_sgd = time.perf_counter()
    groups, caps = _sgd_groups(cfg, rows[:, 4], tau_ode, k_pred, problems)
    for gi, grp in enumerate(groups):
        cap = caps[gi]
        rec = max(1, int(0.01 * np.min(tau_ode[grp]) / np.max(eta[grp]) ** 2))   # every 1 % of the smallest tau
        out = run_paths([landed[j] for j in grp], eta[grp], max_steps=cap, tol=cfg.tol, seed=cfg.seed,
                        sigma=cfg.sigma, record_every=rec, progress=progress, path_offset=gi * P)
        conv = out["converged"]
        tau_sgd[grp] = np.where(conv, out["tau"], eta[grp] ** 2 * cap)
        censored[grp] = ~conv
        status[grp] = out["status"]
        steps[grp] = np.where(conv, out["steps"], cap)
    timing = dict(sgd=time.perf_counter() - t_sgd, groups=len(groups))
    data = dict(instance=rows[:, 1].astype(int), gamma=rows[:, 2], w0_norm=rows[:, 3], n=rows[:, 4],
                tau_sgd=tau_sgd, tau_ode=tau_ode, censored=censored,
                law_x=np.log(d0 / cfg.tol) / kappa)
    ok = np.isfinite(tau_ode) & (tau_ode > 0) & ~np.isin(status, ["diverged", "not run"]) & (kappa > 0) & (d0 > cfg.tol)
    t_fit = time.perf_counter()
    fits = fit_laws({k: v[ok] for k, v in data.items()}, cfg.d, cfg.tol, cfg.bootstrap, cfg.seed)
    timing.update(landing=t_land, fits=time.perf_counter() - t_fit)
    timing.update(odes=t_ode, total=time.perf_counter() - t0)
    res = RateLawResult(dict(io.config_to_dict(cfg), command="rate-law", land_loss=LAND_LOSS, timing=timing,
                             instance_seed_rule=f"Problem.generate(d, n, gamma, sigma, alpha_norm, w0_norm, "
                                                f"seed={INSTANCE_SEED_STRIDE} * seed + i)",
                             noise_seed_rule="group g runs paths with offset g * P: SeedSequence(seed, spawn_key=(g P + j, 0))"),
                        cells, rows[:, 0].astype(int), rows[:, 1].astype(int), rows[:, 2], rows[:, 3],
                        rows[:, 4].astype(int), eta, land_steps, d0, kappa, margin, tau_ode, tau_ode_eta, tau_sgd,
                        censored, status, steps, fits)
    res.wall_time = time.perf_counter() - t0
    return res
