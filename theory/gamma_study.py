r"""``lrdecay gamma-study``: does label-noise SGD at a large constant learning rate reach ``w_mn``, against gamma?

For each gamma on a grid and each of many random instances (data ``X``, target ``alpha*``, start
``w0``; :meth:`theory.problem.Problem.generate`, one seed per instance) one path of full-batch
label-noise SGD runs at a large constant learning rate (Phase II of THEORY.md §1, never decayed) until
its position *along the minima manifold M* is within a relative tolerance of the minimum-norm solution,
or until ``max_steps``. Measured per instance and gamma:

(a) the first step ``k`` at which it is within tolerance, and ``tau = eta^2 k`` (the drift time of the
    quasistatic picture, ``dw/dtau = -(a/4) P_T grad tr Hess L_n``);
(b) whether it got there at all: the fraction of instances that converge, with a Wilson 95 % interval,
    set against the source's bound ``P(converge) >= 1 - exp(-0.1 gamma^2)``;
(c) the flattest-point condition ``y^T (X X^T)^{-1} y >= (gamma + 2) ||y||^2 / ||X||_F^2``
    (:func:`theory.model.flatness_condition`), under which ``h(r) = tr Hess L_n`` on M increases with
    ``r = ||w||`` so that its minimizer on M is ``w_mn``; the convergence fraction is split by it.

**Distance.** The label noise keeps the iterate a distance of order ``sqrt(eta sigma^2 / 2)`` *off* M in
the normal directions, so the raw ``||w - w_mn||`` never reaches 0. The stopping distance is therefore
measured after the retraction onto M (:func:`theory.model.retract`): ``alpha(w)`` keeps its component in
``ker X`` and gets the row-space component of ``alpha_mn``, and
``dist_M = ||retract(w) - w_mn|| / ||w_mn||``. It removes the normal fluctuation and keeps the position
along M, which is what the drift moves. Near ``w_mn`` a tangent displacement ``v`` changes ``alpha`` by
``r^gamma v``, so ``dist_M`` is also the relative distance of ``alpha`` from ``alpha_mn`` there, whatever
gamma. The retraction is only meaningful near M: during Phase I at large gamma, and after a collapse
towards ``w = 0`` (where ``alpha ~ 0`` retracts exactly onto ``alpha_mn``), ``dist_M`` can be small while the
iterate is far from M. A path has therefore *converged* at the first record step where ``dist_M < tol``
**and** its train loss is at most ``NEAR_M_FACTOR = 5`` times the quasistatic plateau ``(eta a / 4) h(r)``
(the larger of its values at the landing estimate and at ``w_mn``; capped at half the zero-predictor loss
``||y||^2 / 4n``). Records every ``record_every`` steps: the step count has that resolution. The raw
``||w - w_mn|| / ||w_mn||`` is recorded too. Paths that end with ``||alpha(w)|| < 0.1 ||alpha_mn||`` are
counted as *collapsed* (gradients vanish like ``||w||^(2 gamma)`` there, so they stay).

**Scale and learning rate.** ``||alpha*|| = 1`` and ``||w0|| = 1`` by default, so ``alpha(w0) = w0``: the
start is the same effective predictor for every gamma. The curvature grows like ``r^(2 gamma)`` and by
``(1 + gamma)^2`` along ``w``, so one learning rate for all gamma either diverges at large gamma or crawls
at small gamma. Each (instance, gamma) gets ``eta = lr_factor / lambda_max``, ``lambda_max`` the largest
eigenvalue of the Gauss–Newton matrix ``J^T J / n`` at the landing estimate ``retract(w0)`` (the full
Hessian on M equals it). ``lr_factor = 0.5`` is a large learning rate (GD is stable below 2) that keeps the
normal Ornstein–Uhlenbeck process well inside its stability range. A fixed ``eta`` can be forced instead;
paths that diverge are reported as such, never counted as converged or dropped.

**What it depends on.** The measured fractions depend on ``max_steps`` (slow paths are censored), on
``tol`` (when the condition fails, the drift stops on the sphere ``r = r*`` of M, whose ``dist_M`` is
``sqrt(rhs/lhs - 1)``; a marginal failure can lie within ``tol``), and strongly on ``n``: for Gaussian
data the condition reads roughly ``n >= gamma + 2``, so at fixed ``n`` it fails for large gamma, while the
source's bound *rises* with gamma. At a finite learning rate the condition is not sufficient either: instances
that satisfy it only narrowly can settle at a stationary distance from ``w_mn`` (measured: at gamma = 4 with
``lr_factor = 0.5`` every instance with margin ``lhs/rhs <= 1.36`` stalled, and halving ``eta`` lowered that
margin), so ``pred`` (the ``eta -> 0`` prediction) is an upper estimate. See docs/gamma_study.md.

**Engine use.** All (gamma, instance) pairs run as the paths of one :func:`theory.sde.simulate` call
with a stacked model: every instance reduced exactly to its invariant subspace ``span{x_i, w0}``
(:class:`theory.reduction.Reduction`, dimension ``n + 1`` whatever ``d``), gamma and ``eta`` per path.
The engine runs with ``lr = 1`` and the model multiplies its increment by the path's own ``eta``, which is
exactly full-batch label-noise SGD with that ``eta`` (tested against ``simulate(problem, reduce=True)``);
path ``p = g * n_instances + i`` draws its label noise from ``SeedSequence(seed, spawn_key=(p, 0))``.
Instance ``i`` is ``Problem.generate(seed = 1_000_000 * seed + i)``; its arrays are the same for every
gamma and are saved with the result.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_GAMMAS = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)
DEFAULTS = dict(n_instances=40, d=50, n=10, sigma=1.0, lr_factor=0.5, max_steps=200_000, tol=0.05,
                alpha_norm=1.0, w0_norm=1.0, record_every=200)
FULL = dict(n_instances=200, max_steps=1_000_000, record_every=1000)
INSTANCE_SEED_STRIDE = 1_000_000
CONFIDENCE = 0.95
COLLAPSE_RATIO = 0.1
NEAR_M_FACTOR = 5.0   # "near M": train loss <= NEAR_M_FACTOR x the quasistatic plateau (eta a / 4) h (see model)


# --------------------------------------------------------------------------------------------------
# Small pieces
# --------------------------------------------------------------------------------------------------

def source_bound(gamma):
    """The source's lower bound on the probability of converging to ``w_mn``: ``1 - exp(-0.1 gamma^2)``."""
    g = np.asarray(gamma, dtype=float)
    out = 1.0 - np.exp(-0.1 * g**2)
    return float(out) if out.ndim == 0 else out


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n``.

    ``center = (p + z^2/2n) / (1 + z^2/n)``, ``half = z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n)``, with
    ``z`` the two-sided normal quantile of ``confidence``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not (0 <= k <= n):
        raise ValueError(f"k must be an integer in [0, n] = [0, {n}], got {k!r}")
    if not (0 < confidence < 1):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    denom = 1 + z**2 / n
    center = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    lo = 0.0 if k == 0 else max(0.0, center - half)
    hi = 1.0 if k == n else min(1.0, center + half)
    return lo, hi


def landing_sharpness(problem) -> float:
    """``lambda_max(J^T J / n)`` at ``retract(w0)``: the sharpness where Phase I lands (estimate)."""
    from theory.model import jacobian, retract

    w = retract(problem.w0, problem.X, problem.y, problem.gamma)
    J = jacobian(w, problem.X, problem.gamma)
    return float(np.linalg.eigvalsh(J @ J.T / problem.n)[-1])


def drift_limit_distance(gamma, lhs, rhs):
    r"""Relative distance ``||w - w_mn|| / ||w_mn||`` of the end point of the quasistatic drift on M (gamma > 0).

    On M, ``h(r)`` is smallest at ``r*`` with ``r*^(2 gamma + 2) = rhs = (gamma + 2) ||y||^2 / ||X||_F^2``, while
    ``||w_mn||^(2 gamma + 2) = lhs = y^T (X X^T)^{-1} y``. If the flattest-point condition ``lhs >= rhs`` holds the
    drift ends at ``w_mn`` (distance 0). Otherwise it ends on the sphere ``r = r*`` of M, where every point has
    ``alpha = alpha_mn + v``, ``v`` in ``ker X``; with ``rho = ||alpha|| / ||alpha_mn|| = sqrt(rhs / lhs)`` the
    distance is ``sqrt(rho^(2/(gamma+1)) + 1 - 2 rho^(-gamma/(gamma+1)))``.
    """
    g = float(gamma)
    rho = np.sqrt(np.maximum(np.asarray(rhs, dtype=float) / np.asarray(lhs, dtype=float), 1.0))
    return np.sqrt(np.maximum(rho ** (2 / (g + 1)) + 1 - 2 * rho ** (-g / (g + 1)), 0.0))


def instance_seeds(seed: int, n_instances: int) -> np.ndarray:
    return INSTANCE_SEED_STRIDE * int(seed) + np.arange(n_instances, dtype=np.int64)


from theory.validation import integer as _int, positive as _pos  # noqa: E402


def _gammas(gammas) -> np.ndarray:
    try:
        g = np.asarray(gammas, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"gammas must be a non-empty list of finite numbers >= 0, got {gammas!r}") from None
    if g.size == 0 or not np.all(np.isfinite(g)) or np.any(g < 0):
        raise ValueError(f"gammas must be a non-empty list of finite numbers >= 0, got {gammas!r}")
    return g


# --------------------------------------------------------------------------------------------------
# The stacked model: many reduced instances, gamma and eta per path
# --------------------------------------------------------------------------------------------------

class StackedReducedModel:
    """Paths ``p = 0..P-1``, each its own reduced instance (data ``X_p Q_p``), ``gamma_p`` and ``eta_p``.

    Engine interface (see :mod:`theory.sde`). With the engine's ``lr = 1`` and ``method = "sgd"``,
    ``increment`` is one step of full-batch label-noise SGD with the path's own learning rate:
    ``w <- w - (eta_p / n) J^T (res - sigma xi)``.
    """

    def __init__(self, problems, etas, sigma: float | None = None):
        from theory.reduction import Reduction

        if len(problems) != len(etas) or len(problems) == 0:
            raise ValueError("problems and etas must be non-empty and of equal length")
        ns = {p.n for p in problems}
        if len(ns) != 1:
            raise ValueError(f"all problems must have the same n, got {sorted(ns)}")
        self.n = ns.pop()
        self.noise_dim = self.n
        reds = [Reduction.from_problem(p) for p in problems]
        self.dim = m = max(r.m for r in reds)
        P, n = len(problems), self.n
        self.reductions = reds
        self.Xr = np.zeros((P, n, m))
        self.W0 = np.zeros((P, m))
        self.w_mn = np.zeros((P, m))
        self.alpha_mn = np.zeros((P, m))
        self.alpha_star = np.zeros((P, m))
        self.B = np.zeros((P, m, n))     # orthonormal basis of the row space of X_p Q_p
        for p, (prob, red) in enumerate(zip(problems, reds)):
            k = red.m
            q = red.reduced
            self.Xr[p, :, :k] = q.X
            self.W0[p, :k] = q.w0
            self.w_mn[p, :k] = q.w_mn
            self.alpha_mn[p, :k] = q.alpha_mn
            self.alpha_star[p, :k] = q.alpha_star
            self.B[p, :k, :] = np.linalg.qr(q.X.T)[0]
        self.y = np.stack([p.y for p in problems])
        self.gamma = np.array([p.gamma for p in problems], dtype=float)[:, None]
        self.eta = np.asarray(etas, dtype=float).reshape(-1, 1)
        self.offset = np.array([r.reduced.test_offset for r in reds])
        self.w_mn_norm = np.linalg.norm(self.w_mn, axis=1)
        self.sigma = float(problems[0].sigma if sigma is None else sigma)
        self.fro2 = np.sum(self.Xr**2, axis=(1, 2))
        self.y2 = np.sum(self.y**2, axis=1)
        # "near M": train loss <= NEAR_M_FACTOR x the larger of the quasistatic plateaus (eta a / 4) h(r) at the
        # landing estimate r = ||retract(w0)|| and at r = ||w_mn||. h on M is monotone between the two (or is
        # smallest at r* in between), so this bounds the plateau along the drift; it is a per-path constant.
        # At large gamma this plateau can approach the loss of the zero predictor, L(0) = ||y||^2 / 2n, so the
        # threshold is capped at L(0) / 2: an iterate that collapsed towards w = 0 (alpha ~ 0, gradients ~ r^(2 gamma))
        # retracts exactly onto w_mn and must not count as converged.
        r_land = np.linalg.norm(self.retract(self.W0), axis=1)
        self.near_M_loss = np.minimum(NEAR_M_FACTOR * np.maximum(self.plateau(r_land), self.plateau(self.w_mn_norm)),
                                      0.5 * self.y2 / (2 * self.n))

    def _rpow(self, r, gamma):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gamma == 0, 1.0, np.power(r, gamma))

    def increment(self, W, dt, noise_coef, xi):
        r = np.linalg.norm(W, axis=1, keepdims=True)
        rg = self._rpow(r, self.gamma)
        res = np.matmul(self.Xr, (rg * W)[:, :, None])[:, :, 0] - self.y
        V = res * (-np.asarray(dt) * self.eta / self.n)
        if xi is not None:
            V = V + (np.asarray(noise_coef) * self.eta / np.sqrt(self.n)) * xi
        g = np.matmul(V[:, None, :], self.Xr)[:, 0, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            radial = np.where(self.gamma == 0, 0.0, self.gamma * rg / r**2)
        dW = rg * g + radial * np.sum(W * g, axis=1, keepdims=True) * W
        return dW, res

    def alpha(self, W):
        r = np.linalg.norm(W, axis=1, keepdims=True)
        return self._rpow(r, self.gamma) * W

    def retract(self, W):
        """Reduced coordinates of ``retract(w)``: ``alpha -> alpha_mn + P_ker alpha``, mapped back."""
        a = self.alpha(W)
        a_row = np.matmul(self.B, np.matmul(np.swapaxes(self.B, 1, 2), a[:, :, None]))[:, :, 0]
        a_new = self.alpha_mn + a - a_row
        s = np.linalg.norm(a_new, axis=1, keepdims=True)
        return np.power(s, -self.gamma / (self.gamma + 1.0)) * a_new

    def observables(self, W) -> dict:
        a = self.alpha(W)
        res = np.matmul(self.Xr, a[:, :, None])[:, :, 0] - self.y
        dist = np.linalg.norm(W - self.w_mn, axis=1)
        return {
            "train_loss": 0.5 * np.mean(res**2, axis=1),
            "test_loss": 0.5 * np.sum((a - self.alpha_star) ** 2, axis=1) + self.offset,
            "norm": np.linalg.norm(W, axis=1),
            "dist_mn": dist,
            "rel_dist": dist / self.w_mn_norm,
            "rel_dist_M": np.linalg.norm(self.retract(W) - self.w_mn, axis=1) / self.w_mn_norm,
            "near_M": (0.5 * np.mean(res**2, axis=1) <= self.near_M_loss).astype(float),
        }

    def plateau(self, r) -> np.ndarray:
        """Quasistatic train-loss plateau on M at radius ``r``: ``(eta a / 4) h(r)``, ``a = sigma^2 / n``
        (meaningful on M only: off M, e.g. near w = 0, h(||w||) is not the Hessian trace)."""
        g = self.gamma[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            h = (np.where(g == 0, 1.0, np.power(r, 2 * g)) * self.fro2 + (g**2 + 2 * g) * self.y2 / r**2) / self.n
        return self.eta[:, 0] * self.sigma**2 / self.n / 4 * h

    def lift(self, W) -> np.ndarray:
        """Back to ``R^d`` (each path with its own basis)."""
        return np.stack([red.lift(W[p, :red.m]) for p, red in enumerate(self.reductions)])


def run_paths(problems, etas, *, max_steps: int, tol: float, seed: int = 0, sigma: float | None = None,
              record_every: int = 100, progress: bool = False, path_offset: int = 0) -> dict:
    """Label-noise SGD, one path per ``problems[p]`` at learning rate ``etas[p]``, stopped once
    ``dist_M < tol`` (checked every ``record_every`` steps). Returns per-path arrays and the records."""
    from theory.sde import simulate

    sig = problems[0].sigma if sigma is None else float(sigma)
    model = StackedReducedModel(problems, etas, sigma=sig)

    def stop(obs, k):
        return (obs["rel_dist_M"] < tol) & (obs["near_M"] > 0)

    sim = simulate(model, model.W0, steps=int(max_steps), lr=1.0, method="sgd", sigma=sig, seed=seed,
                   record_every=int(record_every), stop_fn=stop, progress=progress, path_offset=path_offset)
    converged = sim.status == "stopped"
    steps = np.where(converged, sim.stop_step, -1)
    return dict(sim=sim, model=model, status=sim.status, converged=converged, steps=steps,
                tau=np.where(converged, model.eta[:, 0] ** 2 * steps, np.nan),
                init_rel_dist_M=sim.records["rel_dist_M"][0],
                final_rel_dist_M=sim.records["rel_dist_M"][-1], final_rel_dist=sim.records["rel_dist"][-1],
                final_train_loss=sim.records["train_loss"][-1], final_test_loss=sim.records["test_loss"][-1],
                final_norm=sim.records["norm"][-1], final_near_M=sim.records["near_M"][-1] > 0,
                near_M_loss=model.near_M_loss)


# --------------------------------------------------------------------------------------------------
# The study
# --------------------------------------------------------------------------------------------------

_PER_PAIR = ("eta", "sharpness", "converged", "steps", "tau", "status", "flat_holds", "flat_rhs",
             "init_rel_dist_M", "final_rel_dist_M", "final_rel_dist", "final_train_loss",
             "final_test_loss", "final_norm", "final_near_M", "near_M_loss", "w_mn_norm")


@dataclass
class GammaStudyResult:
    """Everything the study measured, with its instances. Per-pair arrays have shape ``(G, N)``
    (gamma, instance); ``steps = -1`` and ``tau = nan`` where a path did not converge."""

    config: dict
    gammas: np.ndarray
    instance_seeds: np.ndarray
    X: np.ndarray                 # (N, n, d)
    y: np.ndarray                 # (N, n)
    alpha_star: np.ndarray        # (N, d)
    w0: np.ndarray                # (N, d)
    flat_lhs: np.ndarray          # (N,)  y^T (X X^T)^{-1} y (does not depend on gamma)
    min_norm_test_loss: np.ndarray  # (N,)
    eta: np.ndarray
    sharpness: np.ndarray
    converged: np.ndarray
    steps: np.ndarray
    tau: np.ndarray
    status: np.ndarray
    flat_holds: np.ndarray
    flat_rhs: np.ndarray
    init_rel_dist_M: np.ndarray
    final_rel_dist_M: np.ndarray
    final_rel_dist: np.ndarray
    final_train_loss: np.ndarray
    final_test_loss: np.ndarray
    final_norm: np.ndarray
    final_near_M: np.ndarray      # train loss within the near-M threshold at the last record
    near_M_loss: np.ndarray       # that threshold (per pair)
    w_mn_norm: np.ndarray
    record_steps: np.ndarray      # (R,)
    rec_rel_dist_M: np.ndarray    # (G, R, N)
    wall_time: float = 0.0

    @property
    def n_instances(self) -> int:
        return len(self.instance_seeds)

    def problem(self, i: int, gamma: float):
        """Instance ``i`` as a :class:`~theory.problem.Problem` with this gamma (from the saved arrays)."""
        from theory.problem import Problem

        c = self.config
        meta = dict(d=c["d"], n=c["n"], gamma=float(gamma), sigma=c["sigma"], alpha_norm=c["alpha_norm"],
                    w0_norm=c["w0_norm"], obs_noise=0.0, seed=int(self.instance_seeds[i]))
        return Problem(X=self.X[i], y=self.y[i], alpha_star=self.alpha_star[i], w0=self.w0[i], gamma=gamma,
                       sigma=c["sigma"], seed=int(self.instance_seeds[i]), meta=meta)

    @property
    def collapsed(self) -> np.ndarray:
        """Pairs whose last state has ``||alpha(w)|| < COLLAPSE_RATIO ||alpha_mn||``: fallen towards ``w = 0``, where
        the gradients vanish like ``||w||^(2 gamma)`` (a large-gamma failure mode, not a divergence)."""
        return (self.final_norm / self.w_mn_norm) ** (self.gammas[:, None] + 1) < COLLAPSE_RATIO

    @property
    def limit_rel_dist(self) -> np.ndarray:
        """``dist_M`` of the end point of the quasistatic drift, per pair (G, N): see :func:`drift_limit_distance`;
        for gamma = 0 (no drift) the starting ``dist_M``."""
        out = np.stack([drift_limit_distance(g, self.flat_lhs, self.flat_rhs[i]) for i, g in enumerate(self.gammas)])
        return np.where(self.gammas[:, None] == 0, self.init_rel_dist_M, out)

    @property
    def predicted(self) -> np.ndarray:
        """Pairs the quasistatic picture says converge with unlimited steps: drift end point within ``tol``."""
        return self.limit_rel_dist < self.config["tol"]

    def summary(self) -> list[dict]:
        """One row per gamma (see :meth:`table` for the columns)."""
        rows = []
        N = self.n_instances
        pred_all = self.predicted
        nan = float("nan")
        for g, gamma in enumerate(self.gammas):
            conv, flat, pred = self.converged[g], self.flat_holds[g], pred_all[g]
            k = int(conv.sum())
            lo, hi = wilson_interval(k, N)
            kp = int(pred.sum())
            plo, phi = wilson_interval(kp, N)
            b = source_bound(gamma)
            frac = k / N
            steps_c, tau_c = self.steps[g][conv], self.tau[g][conv]
            nf = int(flat.sum())
            div = self.status[g] == "diverged"
            rows.append(dict(
                gamma=float(gamma), n=N, n_converged=k, fraction=frac, ci_low=lo, ci_high=hi, bound=b,
                respects_point=bool(frac >= b), respects_ci=bool(hi >= b),
                n_diverged=int(div.sum()),
                n_off_M=int(np.sum(~conv & ~div & ~self.final_near_M[g])),
                n_collapsed=int(np.sum(~div & self.collapsed[g])),
                median_steps=float(np.median(steps_c)) if k else nan,
                median_tau=float(np.median(tau_c)) if k else nan,
                tau_q25=float(np.quantile(tau_c, 0.25)) if k else nan,
                tau_q75=float(np.quantile(tau_c, 0.75)) if k else nan,
                median_eta=float(np.median(self.eta[g])),
                flat_fraction=nf / N, n_flat=nf,
                conv_given_flat=float(conv[flat].mean()) if nf else nan,
                conv_given_not_flat=float(conv[~flat].mean()) if nf < N else nan,
                predicted_fraction=kp / N, predicted_ci_low=plo, predicted_ci_high=phi,
                predicted_respects_ci=bool(phi >= b),
                median_final_rel_dist_M=float(np.median(self.final_rel_dist_M[g])),
            ))
        return rows

    def table(self) -> str:
        pct = int(round(100 * CONFIDENCE))
        head = (f"{'gamma':>5} {'conv':>7} {'frac':>5} {'Wilson ' + str(pct) + '% CI':>14} {'bound':>6} "
                f"{'frac>=b':>7} {'CI>=b':>5} {'div':>3} {'coll':>4} {'med k|conv':>10} {'med tau|conv':>12} "
                f"{'med eta':>8} {'flat':>5} {'P(c|flat)':>9} {'P(c|not)':>8} {'pred':>5}")
        lines = [head]

        def f(x, fmt):
            return "-" if not np.isfinite(x) else format(x, fmt)

        for r in self.summary():
            lines.append(
                f"{r['gamma']:>5g} {str(r['n_converged']) + '/' + str(r['n']):>7} {r['fraction']:>5.2f} "
                f"{'[' + format(r['ci_low'], '.2f') + ', ' + format(r['ci_high'], '.2f') + ']':>14} "
                f"{r['bound']:>6.3f} {'yes' if r['respects_point'] else 'NO':>7} "
                f"{'yes' if r['respects_ci'] else 'NO':>5} {r['n_diverged']:>3d} {r['n_collapsed']:>4d} "
                f"{f(r['median_steps'], '.0f'):>10} {f(r['median_tau'], '.3g'):>12} {r['median_eta']:>8.3g} "
                f"{r['flat_fraction']:>5.2f} {f(r['conv_given_flat'], '.2f'):>9} "
                f"{f(r['conv_given_not_flat'], '.2f'):>8} {r['predicted_fraction']:>5.2f}")
        return "\n".join(lines)

    def verdict(self) -> str:
        """A plain statement: does the measured convergence fraction respect ``1 - exp(-0.1 gamma^2)``?"""
        rows = self.summary()
        pct = int(round(100 * CONFIDENCE))
        fmt = lambda gs: ", ".join(f"{g:g}" for g in gs)  # noqa: E731
        below_pt = [r["gamma"] for r in rows if not r["respects_point"]]
        below_ci = [r["gamma"] for r in rows if not r["respects_ci"]]
        if not below_pt:
            return ("The measured fractions respect the bound 1 - exp(-0.1 gamma^2) at every gamma "
                    "(point estimates at or above it).")
        s = ""
        if below_ci:
            s += (f"The measured fractions VIOLATE the bound 1 - exp(-0.1 gamma^2) at gamma = {fmt(below_ci)}: "
                  f"even the upper end of the Wilson {pct}% interval lies below it. ")
            intrinsic = [r["gamma"] for r in rows if r["gamma"] in below_ci and not r["predicted_respects_ci"]]
            budget = [g for g in below_ci if g not in intrinsic]
            if intrinsic:
                s += (f"At gamma = {fmt(intrinsic)} this is not a matter of the step budget: the fraction whose "
                      f"quasistatic drift ends within tol of w_mn (flattest-point condition, or the r* sphere "
                      f"within tol) is itself significantly below the bound. ")
            if budget:
                s += (f"At gamma = {fmt(budget)} the eta -> 0 drift end point is within tol often enough: more steps "
                      f"(or a smaller eta) may close the gap. ")
        only_pt = [g for g in below_pt if g not in below_ci]
        if only_pt:
            s += (f"At gamma = {fmt(only_pt)} the measured fraction is below the bound but its interval still "
                  f"reaches it (not a significant violation). ")
        if not below_ci:
            s = "No significant violation of the bound 1 - exp(-0.1 gamma^2). " + s
        return s.strip()

    # ---- persistence ---------------------------------------------------------------------------
    def save(self, path) -> Path:
        from theory import io

        arrays = {"gammas": self.gammas, "instance_seeds": self.instance_seeds, "X": self.X, "y": self.y,
                  "alpha_star": self.alpha_star, "w0": self.w0, "flat_lhs": self.flat_lhs,
                  "min_norm_test_loss": self.min_norm_test_loss, "record_steps": self.record_steps,
                  "rec_rel_dist_M": self.rec_rel_dist_M}
        for k in _PER_PAIR:
            arrays[k] = self.status.astype("U10") if k == "status" else getattr(self, k)
        cfg = {"kind": "GammaStudyResult", **self.config, "wall_time": self.wall_time,
               "summary": self.summary(), "verdict": self.verdict()}
        return io.save_result(path, arrays, cfg)

    @classmethod
    def load(cls, path) -> "GammaStudyResult":
        from theory import io

        arrays, cfg = io.load_result(path)
        if cfg.get("kind") != "GammaStudyResult":
            raise ValueError(f"path: {path} is not a saved gamma study (kind = {cfg.get('kind')!r})")
        wall = cfg.pop("wall_time", 0.0)
        for k in ("kind", "summary", "verdict"):
            cfg.pop(k, None)
        names = [f for f in cls.__dataclass_fields__ if f not in ("config", "wall_time")]
        return cls(config=cfg, wall_time=wall, **{k: arrays[k] for k in names})


def run_gamma_study(gammas=DEFAULT_GAMMAS, n_instances: int = DEFAULTS["n_instances"], d: int = DEFAULTS["d"],
                    n: int = DEFAULTS["n"], sigma: float = DEFAULTS["sigma"], eta: float | None = None,
                    max_steps: int = DEFAULTS["max_steps"], tol: float = DEFAULTS["tol"], seed: int = 0,
                    progress: bool = True, *, lr_factor: float = DEFAULTS["lr_factor"],
                    alpha_norm: float = DEFAULTS["alpha_norm"], w0_norm: float = DEFAULTS["w0_norm"],
                    record_every: int = DEFAULTS["record_every"]) -> GammaStudyResult:
    """Run the study (see the module docstring). ``eta=None``: per-pair ``eta = lr_factor / lambda_max``
    at the landing estimate; a number forces that ``eta`` for every pair."""
    from theory.model import flatness_condition
    from theory.problem import Problem

    g_arr = _gammas(gammas)
    N = _int("n_instances", n_instances, 1, INSTANCE_SEED_STRIDE)
    d = _int("d", d, 2)
    n = _int("n", n, 1, d - 1)
    sigma = _pos("sigma", sigma)
    max_steps = _int("max_steps", max_steps, 1)
    tol = _pos("tol", tol)
    seed = _int("seed", seed, 0, 2**31 // INSTANCE_SEED_STRIDE)
    lr_factor = _pos("lr_factor", lr_factor)
    if lr_factor >= 2:
        raise ValueError(f"lr_factor must be in (0, 2) (GD on the normal directions is unstable beyond 2), "
                         f"got {lr_factor!r}")
    if eta is not None:
        eta = _pos("eta", eta)
    alpha_norm = _pos("alpha_norm", alpha_norm)
    w0_norm = _pos("w0_norm", w0_norm)
    record_every = _int("record_every", record_every, 1)

    t0 = time.perf_counter()
    seeds = instance_seeds(seed, N)
    base = [Problem.generate(d=d, n=n, gamma=0.0, sigma=sigma, alpha_norm=alpha_norm, w0_norm=w0_norm,
                             seed=int(s)) for s in seeds]
    G = len(g_arr)
    problems = []
    etas, sharp, flat_rhs = np.zeros((G, N)), np.zeros((G, N)), np.zeros((G, N))
    flat_holds, flat_lhs = np.zeros((G, N), bool), np.zeros(N)
    for gi, gamma in enumerate(g_arr):
        for i, b in enumerate(base):
            p = b.with_(gamma=float(gamma))
            problems.append(p)
            sharp[gi, i] = landing_sharpness(p)
            etas[gi, i] = lr_factor / sharp[gi, i] if eta is None else eta
            flat_holds[gi, i], flat_lhs[i], flat_rhs[gi, i] = flatness_condition(p.X, p.y, gamma)
    out = run_paths(problems, etas.reshape(-1), max_steps=max_steps, tol=tol, seed=seed, sigma=sigma,
                    record_every=record_every, progress=progress)
    sim, model = out["sim"], out["model"]
    per = {k: np.asarray(out[k]).reshape(G, N) for k in ("converged", "steps", "tau", "status", "init_rel_dist_M",
                                                       "final_rel_dist_M", "final_rel_dist", "final_train_loss",
                                                       "final_test_loss", "final_norm",
                                                       "final_near_M", "near_M_loss")}
    config = dict(command="gamma-study", gammas=g_arr.tolist(), n_instances=N, d=d, n=n, sigma=sigma,
                  eta=eta, lr_factor=lr_factor, lr_rule=("eta = lr_factor / lambda_max(J^T J / n) at retract(w0)"
                                                          if eta is None else "fixed eta"),
                  max_steps=max_steps, tol=tol,
                  tol_kind="||retract(w) - w_mn|| / ||w_mn|| < tol and near M, at a record step",
                  record_every=record_every, seed=seed, alpha_norm=alpha_norm, w0_norm=w0_norm,
                  method="full-batch label-noise SGD, constant eta", confidence=CONFIDENCE,
                  instance_seed_rule=f"Problem.generate(d, n, sigma=sigma, alpha_norm, w0_norm, "
                                     f"seed={INSTANCE_SEED_STRIDE} * seed + i)",
                  noise_seed_rule="path p = g * n_instances + i: SeedSequence(seed, spawn_key=(p, 0))",
                  bound="1 - exp(-0.1 gamma^2)", engine_message=sim.message)
    res = GammaStudyResult(
        config=config, gammas=g_arr, instance_seeds=seeds, X=np.stack([b.X for b in base]),
        y=np.stack([b.y for b in base]), alpha_star=np.stack([b.alpha_star for b in base]),
        w0=np.stack([b.w0 for b in base]), flat_lhs=flat_lhs,
        min_norm_test_loss=np.array([b.min_norm_test_loss for b in base]), eta=etas, sharpness=sharp,
        flat_holds=flat_holds, flat_rhs=flat_rhs, w_mn_norm=model.w_mn_norm.reshape(G, N),
        record_steps=sim.steps,
        rec_rel_dist_M=sim.records["rel_dist_M"].reshape(len(sim.steps), G, N).transpose(1, 0, 2),
        wall_time=0.0, **per)
    res.wall_time = time.perf_counter() - t0
    return res


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------

def _add_arguments(p) -> None:
    p.add_argument("--out", default="results/gamma_study", help="output directory (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="instance and noise seed (default: %(default)s)")
    p.add_argument("--instances", type=int, default=None,
                   help=f"random instances per gamma (default: {DEFAULTS['n_instances']}, "
                        f"{FULL['n_instances']} with --full)")
    p.add_argument("--full", action="store_true",
                   help=f"thorough run: {FULL['n_instances']} instances, max_steps {FULL['max_steps']}")
    p.add_argument("--gammas", type=float, nargs="+", default=list(DEFAULT_GAMMAS),
                   help="gamma grid (default: 0 0.5 1 2 3 4 6 8)")
    p.add_argument("--d", type=int, default=DEFAULTS["d"], help="dimension (default: %(default)s)")
    p.add_argument("--n", type=int, default=DEFAULTS["n"], help="training points, 1 <= n < d (default: %(default)s)")
    p.add_argument("--sigma", type=float, default=DEFAULTS["sigma"], help="label-noise level (default: %(default)s)")
    p.add_argument("--lr-factor", type=float, default=DEFAULTS["lr_factor"],
                   help="eta = lr_factor / lambda_max at the landing estimate (default: %(default)s)")
    p.add_argument("--eta", type=float, default=None, help="force one learning rate for every pair")
    p.add_argument("--tol", type=float, default=DEFAULTS["tol"],
                   help="relative distance to w_mn after retraction onto M (default: %(default)s)")
    p.add_argument("--max-steps", type=int, default=None,
                   help=f"step budget (default: {DEFAULTS['max_steps']}, {FULL['max_steps']} with --full)")
    p.add_argument("--no-figure", action="store_true", help="skip the figure")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def register(subparsers) -> None:
    """Add the ``gamma-study`` subcommand."""
    p = subparsers.add_parser(
        "gamma-study", help="convergence of large-LR label-noise SGD to the min-norm solution against gamma",
        description="For gamma on a grid and many random instances: steps and tau = eta^2 k for label-noise SGD "
                    "at a large constant learning rate to reach w_mn (after retraction onto M), the fraction "
                    "that converge against the bound 1 - exp(-0.1 gamma^2), and the flattest-point condition.")
    _add_arguments(p)
    p.set_defaults(func=run_cli)


def run_cli(args) -> int:
    """Run the study, print the table and verdict, save ``<out>/gamma_study.npz`` and the figure."""
    out = Path(args.out)
    cfg = dict(FULL) if args.full else dict(DEFAULTS)
    n_inst = args.instances if args.instances is not None else cfg["n_instances"]
    max_steps = args.max_steps if args.max_steps is not None else cfg["max_steps"]
    res = run_gamma_study(args.gammas, n_instances=n_inst, d=args.d, n=args.n, sigma=args.sigma, eta=args.eta,
                          max_steps=max_steps, tol=args.tol, seed=args.seed, progress=not args.no_progress,
                          lr_factor=args.lr_factor, record_every=cfg["record_every"])
    c = res.config
    print(f"\nGamma study: d = {c['d']}, n = {c['n']}, ||alpha*|| = {c['alpha_norm']:g}, ||w0|| = {c['w0_norm']:g}, "
          f"sigma = {c['sigma']:g}, {c['n_instances']} instances per gamma, seed {c['seed']}; "
          f"full-batch label-noise SGD at constant eta ({c['lr_rule']}, lr_factor = {c['lr_factor']:g}); "
          f"converged: ||retract(w) - w_mn|| / ||w_mn|| < {c['tol']:g} within {c['max_steps']} steps "
          f"(checked every {c['record_every']}); {res.wall_time:.1f} s")
    print("frac: fraction converged; bound: 1 - exp(-0.1 gamma^2); frac>=b: point estimate respects it; "
          "CI>=b: upper Wilson 95% end reaches it; div: diverged paths; med k|conv, med tau|conv: medians over "
          "converged paths (tau = eta^2 k); flat: fraction where y^T(XX^T)^-1 y >= (gamma+2)||y||^2/||X||_F^2; "
          "P(c|flat), P(c|not): convergence fraction given the condition holds / fails; coll: paths that "
          "collapsed towards w = 0 (final ||alpha(w)|| < 0.1 ||alpha_mn||; gradients vanish like ||w||^(2 gamma) "
          "there); pred: fraction whose quasistatic drift ends within tol of w_mn (unlimited steps).")
    print(res.table())
    print(res.verdict())
    print(f"engine: {c['engine_message']}")
    path = res.save(out / "gamma_study.npz")
    print(f"saved {path}")
    if not args.no_figure:
        from paper_figures.gamma_convergence import make_figure

        paths = make_figure(path, out / "figures" / "gamma_convergence")
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def main(argv=None) -> int:
    """``python -m theory.gamma_study`` (the same as ``lrdecay gamma-study``)."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m theory.gamma_study", description=__doc__.split("\n")[0])
    _add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run_cli(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"gamma-study: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
