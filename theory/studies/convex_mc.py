r"""Proposition 1 of Nakkiran (2020) by Monte Carlo, Lemma 2 against K, and the data of Figure 1.

The closed forms, the numerical flows and Lemma 2 live in :mod:`lrdecay.theory.convex` (with the setting and
the normalization); this study draws the samples and collects the numbers that ``lrdecay convex`` and
the report show:

* :func:`proposition1_monte_carlo`: over ``trials`` draws of the 3 samples, the probability of the
  factor-2 separation with an exact (Clopper–Pearson) interval, and the test-loss ratio on the 2-1 draws;
* :func:`lemma2_k_sweep`: Lemma 2 on a fixed 3-D instance for several K;
* :func:`figure1_data`: the trajectories of Figure 1;
* :func:`run_convex_study`: all three, as one :class:`ConvexStudy` result, from a :class:`ConvexConfig`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from lrdecay.theory import io
from lrdecay.theory.convex import (BOUND_RTOL, NORMALIZATION, PROP1_N, PROP1_SIGMA, EigenBasis, gd_phase_closed, gf_delta,
                           gf_stopping_time, gradient_descent_numerical, gradient_flow_numerical, lemma2,
                           population_loss, prop1_beta_star, prop1_sample_covariance, simultaneous_eigenbasis)
from lrdecay.theory.stats import clopper_pearson
from lrdecay.theory.validation import finite_array, integer, integers, open_unit, positive

#: Relative slack on the 0.75 eps side of Proposition 1's separation event (stands in for the tail).
SEP_RTOL = 1e-6
#: Claims: |ratio - 2| at the smallest alpha (the ratio is 2 (1 - alpha) up to O(alpha) terms)
RATIO_TOL = 1e-3
#: Claims: relative tolerance on Figure 1's annealed end point (0.75 eps)
FIGURE1_RTOL = 0.01
#: Claims: Proposition 1's probability by a two-sided exact binomial test of P = 3/4 at this level (a false
#: alarm in 1 of 1000 runs with correct code) ...
PROP1_LEVEL = 1e-3
#: ... with enough draws for power PROP1_POWER against |P - 3/4| >= PROP1_EFFECT (else: not testable)
PROP1_POWER = 0.9
PROP1_EFFECT = 0.02
#: Claims: relative slack allowed when comparing losses with Lemma 2's bounds (rounding)
LEMMA2_RTOL = 1e-9


def prop1_draws_needed(level: float = PROP1_LEVEL, power: float = PROP1_POWER, effect: float = PROP1_EFFECT) -> int:
    """Draws for a two-sided level-``level`` test of P = 3/4 to detect ``|P - 3/4| >= effect`` with
    probability ``power`` (normal approximation): ``n = (z_{1-level/2} + z_power)^2 p (1 - p) / effect^2``."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - level / 2) + NormalDist().inv_cdf(power)
    return int(math.ceil(z**2 * 0.75 * 0.25 / effect**2))


def lemma2_bounds_from_eigendata(lam, gam, delta0, *, eps: float, alpha: float, K: int, n_small: int) -> tuple:
    r"""Lemma 2's two bounds written out from the eigen-data (``gam`` descending, ``delta0`` in the eigenbasis,
    step ``eta = 1/gam[0]``), independently of :func:`lrdecay.theory.convex.lemma2`:
    ``slow >= eps (1 - alpha) min_{j in S} lam_j / gam_j`` over the last ``n_small`` coordinates, and
    ``fast <= eps max_{gam_j = gam_1} lam_j / gam_j + c^K sum_{i in Q} lam_i delta_i(0)^2`` with
    ``Q = {i : gam_i != gam_1}``, ``c = max_{j in Q} (1 - 2 gam_j / gam_1)^2``. Returns ``(slow, fast)``."""
    lam, gam, delta0 = (np.asarray(v, dtype=float) for v in (lam, gam, delta0))
    small = slice(len(gam) - n_small, None)
    slow = eps * (1 - alpha) * float(np.min(lam[small] / gam[small]))
    top = gam == gam[0]
    Q = ~top
    c = float(np.max((1 - 2 * gam[Q] / gam[0]) ** 2)) if Q.any() else 0.0
    fast = eps * float(np.max(lam[top] / gam[top])) + c**K * float(np.sum(lam[Q] * delta0[Q] ** 2))
    return slow, fast

@dataclass
class Prop1Cell:
    r"""Monte Carlo summary for one (alpha, K).

    ``n_sep``: draws with the factor-2 separation of Proposition 1, defined as
    :math:`L_{\mathcal D}(\beta_\text{slow}) \ge \frac32(1-\alpha)\varepsilon` and
    :math:`L_{\mathcal D}(\beta_\text{fast}) \le \frac34\varepsilon\,(1 + 10^{-6})` (the tolerance stands in
    for the tail :math:`\tau_K`, which is 0 up to rounding for :math:`K \ge 1` here because
    :math:`1 - 2\gamma_2/\gamma_1 = 0`); ``p_hat`` and the Clopper–Pearson interval ``ci``. On the draws where exactly two samples coincide
    ("2-1 draws"): the ratio, both test losses and both bounds divided by eps, and the fraction where
    Lemma 2's conditions and both bounds hold. On the draws where all samples coincide ("same-x"):
    the fraction with equal test losses and with equal end points.
    """

    alpha: float
    K: int
    trials: int
    n_sep: int
    p_hat: float
    ci: tuple[float, float]
    n_21: int
    ratio_21: float
    ratio_21_min: float
    test_slow_21: float
    test_fast_21: float
    bound_slow_21: float
    bound_fast_21: float
    lemma_ok_21: float
    n_same: int
    same_losses_equal: float
    same_beta_equal: float
    max_discrepancy: float


@dataclass
class Prop1MonteCarlo:
    """All cells of the Monte Carlo, the draws and the configuration."""

    cells: list
    alphas: list
    Ks: list
    eps: float
    trials: int
    seed: int
    confidence: float
    draws: np.ndarray

    def cell(self, alpha, K) -> Prop1Cell:
        for c in self.cells:
            if c.alpha == alpha and c.K == K:
                return c
        raise KeyError((alpha, K))

    def to_arrays(self) -> dict:
        names = ["alpha", "K", "n_sep", "p_hat", "n_21", "ratio_21", "ratio_21_min", "test_slow_21",
                 "test_fast_21", "bound_slow_21", "bound_fast_21", "lemma_ok_21", "n_same",
                 "same_losses_equal", "same_beta_equal", "max_discrepancy"]
        out = {f"mc_{n}": np.array([getattr(c, n) for c in self.cells]) for n in names}
        out["mc_ci_low"] = np.array([c.ci[0] for c in self.cells])
        out["mc_ci_high"] = np.array([c.ci[1] for c in self.cells])
        out["mc_draws"] = self.draws
        return out

    def table(self) -> str:
        pct = int(round(100 * self.confidence))
        head = (f"{'alpha':>7} {'K':>3} {'P(sep)':>7} {f'{pct}% CI':>17} {'ratio(2-1)':>11} "
                f"{'2-ratio':>9} {'L_GF/eps':>9} {'L_AGD/eps':>9} {'bnd_GF':>7} {'bnd_AGD':>10} "
                f"{'lemma ok':>8} {'same-x: L=':>10} {'beta=':>6} {'|cf-num|':>8}")
        lines = [head, "-" * len(head)]
        for c in self.cells:
            lines.append(
                f"{c.alpha:>7.3g} {c.K:>3d} {c.p_hat:>7.4f} [{c.ci[0]:.4f}, {c.ci[1]:.4f}] "
                f"{c.ratio_21:>11.6f} {2 - c.ratio_21:>9.2e} {c.test_slow_21:>9.5f} {c.test_fast_21:>9.5f} "
                f"{c.bound_slow_21:>7.4f} {c.bound_fast_21:>10.4g} {c.lemma_ok_21:>8.3f} "
                f"{c.same_losses_equal:>10.3f} {c.same_beta_equal:>6.3f} {c.max_discrepancy:>8.1e}")
        return "\n".join(lines)


def _draw_pattern(idx) -> tuple[int, ...]:
    return tuple(int(v) for v in np.sort(idx))


def proposition1_monte_carlo(alphas: Sequence[float], Ks: Sequence[int], *, trials: int, eps: float = 0.1,
                             seed: int = 0, confidence: float = 0.95, numerical: bool = True) -> Prop1MonteCarlo:
    r"""Monte Carlo over sample draws for Proposition 1.

    Each trial draws :math:`n = 3` points :math:`x_i` uniformly from :math:`\{e_1, e_2\}` (one set of
    draws, from ``numpy.random.default_rng(seed)``, shared by every :math:`(\alpha, K)`), forms
    :math:`S = \frac13\sum x_i x_i^\top`, and runs gradient flow and annealed GD
    (:math:`\eta = 1/\gamma_1`, :math:`K` steps) from 0 to train loss ``eps`` with
    :math:`\beta^* = 100\alpha^{-1/2}(1,1)`, :math:`\Sigma = I/2`. Given the draw, everything is
    deterministic, so :func:`lemma2` runs once per distinct multiset of sample points (at most 4),
    with the numerical integrations when ``numerical``.
    """
    trials = integer("trials", trials, 1)
    eps = open_unit("eps", eps)        # an early-stopping train loss below the loss at the start (scale 1)
    alphas = [open_unit("alpha", a) for a in alphas]
    Ks = [integer("K", k, 0) for k in Ks]
    if not alphas or not Ks:
        raise ValueError("alphas and Ks must each hold at least one value")
    confidence = open_unit("confidence", confidence)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, 2, size=(trials, PROP1_N))
    patterns = [_draw_pattern(r) for r in draws]
    distinct = sorted(set(patterns))
    counts = {p: patterns.count(p) for p in distinct}
    cells = []
    for a in alphas:
        bstar = prop1_beta_star(a)
        for K in Ks:
            per = {p: _pattern_outcome(p, a, bstar, eps, K, numerical) for p in distinct}
            cells.append(_cell(a, K, per, counts, trials=trials, eps=eps, confidence=confidence, numerical=numerical))
    return Prop1MonteCarlo(cells=cells, alphas=alphas, Ks=Ks, eps=eps, trials=trials, seed=int(seed),
                           confidence=confidence, draws=draws)


def _pattern_outcome(p, a, bstar, eps, K, numerical) -> dict:
    """Both optimizers' test losses (and Lemma 2's bounds where it applies) for one multiset ``p`` of sample points."""
    S = prop1_sample_covariance(np.array(p))
    if len(set(p)) == 1:
        return _same_x_case(S, bstar, eps, K, numerical)
    r = lemma2(PROP1_SIGMA, S, bstar, np.zeros(2), eps=eps, alpha=a, K=K, n_small=1, numerical=numerical)
    return dict(
        slow=r.test_slow, fast=r.test_fast, bound_slow=r.bound_slow, bound_fast=r.bound_fast,
        lemma_ok=r.conditions_hold and r.slow_bound_holds and r.fast_bound_holds,
        disc=max(r.slow_discrepancy, r.fast_discrepancy) if numerical else float("nan"),
        beta_equal=bool(np.allclose(r.beta_slow, r.beta_fast, rtol=1e-9, atol=1e-9 * np.abs(bstar).max())),
        same=False)


def _cell(a, K, per: dict, counts: dict, *, trials, eps, confidence, numerical) -> Prop1Cell:
    """One (alpha, K) cell: the outcomes of the distinct draw patterns ``per``, weighted by their ``counts``."""
    n_sep = 0
    n21 = nsame = 0
    r21, s21, f21, bs21, bf21, ok21 = [], [], [], [], [], []
    same_L = same_b = 0
    disc = 0.0
    for p in per:
        q = per[p]
        cnt = counts[p]
        ratio = q["slow"] / q["fast"] if q["fast"] > 0 else float("inf")
        if (q["slow"] >= 1.5 * (1 - a) * eps * (1 - BOUND_RTOL)
                and q["fast"] <= 0.75 * eps * (1 + SEP_RTOL)):
            n_sep += cnt
        if numerical:
            disc = max(disc, q["disc"])
        if q["same"]:
            nsame += cnt
            same_L += cnt * bool(abs(q["slow"] - q["fast"]) <= 1e-9 * max(q["slow"], 1e-300))
            same_b += cnt * q["beta_equal"]
        else:
            n21 += cnt
            r21.append(ratio)
            s21.append(q["slow"] / eps)
            f21.append(q["fast"] / eps)
            bs21.append(q["bound_slow"] / eps)
            bf21.append(q["bound_fast"] / eps)
            ok21 += [q["lemma_ok"]] * cnt
    lo, hi = clopper_pearson(n_sep, trials, confidence)
    nan = float("nan")
    return Prop1Cell(
        alpha=a, K=K, trials=trials, n_sep=n_sep, p_hat=n_sep / trials, ci=(lo, hi), n_21=n21,
        ratio_21=float(np.mean(r21)) if r21 else nan, ratio_21_min=float(np.min(r21)) if r21 else nan,
        test_slow_21=float(np.mean(s21)) if s21 else nan, test_fast_21=float(np.mean(f21)) if f21 else nan,
        bound_slow_21=float(np.mean(bs21)) if bs21 else nan,
        bound_fast_21=float(np.max(bf21)) if bf21 else nan,
        lemma_ok_21=float(np.mean(ok21)) if ok21 else nan, n_same=nsame,
        same_losses_equal=same_L / nsame if nsame else nan,
        same_beta_equal=same_b / nsame if nsame else nan,
        max_discrepancy=disc if numerical else nan)


def _same_x_case(S, bstar, eps, K, numerical):
    """All samples at one point: S = diag(1, 0) up to order; one-dimensional dynamics (Lemma 2 needs a
    block with gamma > 0, so the two optimizers are run directly)."""
    basis = simultaneous_eigenbasis(PROP1_SIGMA, S)
    gam = basis.gam
    delta0 = basis.to_eigen(np.zeros(2), bstar)
    T = gf_stopping_time(gam, delta0, eps)
    b_slow = basis.from_eigen(gf_delta(gam, delta0, T), bstar)
    eta = 1.0 / gam[0]
    _, path = gd_phase_closed(gam, delta0, eta, K, eps)
    T2 = gf_stopping_time(gam, path[-1], eps)
    b_fast = basis.from_eigen(gf_delta(gam, path[-1], T2), bstar)
    disc = float("nan")
    if numerical:
        slow = gradient_flow_numerical(S, bstar, np.zeros(2), eps)
        _, gdp = gradient_descent_numerical(S, bstar, np.zeros(2), eta, K, eps)
        fast = gradient_flow_numerical(S, bstar, gdp[-1], eps)
        scale = 2 * np.linalg.norm(bstar) + 1
        disc = max(np.linalg.norm(slow.beta_final - b_slow), np.linalg.norm(fast.beta_final - b_fast)) / scale
    return dict(slow=population_loss(b_slow, PROP1_SIGMA, bstar), fast=population_loss(b_fast, PROP1_SIGMA, bstar),
                bound_slow=float("nan"), bound_fast=float("nan"), lemma_ok=False, disc=disc,
                beta_equal=bool(np.allclose(b_slow, b_fast, rtol=1e-9, atol=1e-9 * np.abs(bstar).max())),
                same=True)


# --------------------------------------------------------------------------------------------------
# Lemma 2 dependence on K (a 3-D instance where the tail decays geometrically)
# --------------------------------------------------------------------------------------------------

#: A fixed 3-D instance for the K-sweep: Sigma and S share the basis of a fixed rotation.
_DEMO_GAM = np.array([1.0, 0.7, 0.25])
_DEMO_LAM = np.array([0.4, 1.0, 0.8])
_DEMO_BETA_EIGEN = np.array([30.0, 30.0, 30.0])   # beta* = U (30, 30, 30); the start is 0


def _demo_instance():
    c, s = math.cos(0.6), math.sin(0.6)
    U = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.array(
        [[1.0, 0.0, 0.0], [0.0, math.cos(0.3), -math.sin(0.3)], [0.0, math.sin(0.3), math.cos(0.3)]])
    Sigma = U @ np.diag(_DEMO_LAM) @ U.T
    S = U @ np.diag(_DEMO_GAM) @ U.T
    beta_star = U @ _DEMO_BETA_EIGEN
    return Sigma, S, beta_star


def lemma2_k_sweep(Ks: Sequence[int], *, eps: float = 0.1, alpha: float = 0.1, numerical: bool = True) -> list:
    r"""Lemma 2 on a fixed 3-D instance (:math:`\gamma = (1, 0.7, 0.25)`, :math:`\lambda = (0.4, 1, 0.8)`
    in a rotated basis, :math:`|\mathcal S| = 1`) for several :math:`K`: the annealed-GD test loss
    approaches :math:`\varepsilon\lambda_1/\gamma_1` as the tail :math:`\tau_K = c^K\sum_Q\lambda_i\delta_i(0)^2`,
    :math:`c = \max(|1-1.4|, |1-0.5|)^2 = 0.25`, vanishes."""
    Sigma, S, beta_star = _demo_instance()
    return [lemma2(Sigma, S, beta_star, eps=eps, alpha=alpha, K=k, n_small=1, numerical=numerical) for k in Ks]


def k_sweep_table(k_sweep: dict, eps: float) -> str:
    """Lemma 2 against K (the arrays of :attr:`ConvexStudy.k_sweep`) as text."""
    head = (f"{'K':>3} {'L_AGD/eps':>10} {'excess':>9} {'tau_K':>9} {'paper e^-Om':>11} {'paper ok':>8} "
            f"{'L_GF/eps':>9} {'GF bnd/eps':>10} {'conds':>5}")
    lines = [head, "-" * len(head)]
    ks = k_sweep
    for i, K in enumerate(ks["K"]):
        excess = ks["test_fast"][i] - ks["bound_fast_main"][i]
        lines.append(f"{int(K):>3d} {ks['test_fast'][i] / eps:>10.5f} {excess:>9.2e} {ks['tail'][i]:>9.2e} "
                     f"{ks['tail_paper'][i]:>11.2e} {'yes' if excess <= ks['tail_paper'][i] else 'NO':>8} "
                     f"{ks['test_slow'][i] / eps:>9.5f} {ks['bound_slow'][i] / eps:>10.5f} "
                     f"{'yes' if ks['conditions_hold'][i] else 'no':>5}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Figure 1 data
# --------------------------------------------------------------------------------------------------

def figure1_data(*, beta_star=(1.0, 1.0), eps: float = 0.05, K: int = 5, n_points: int = 400) -> dict:
    r"""Trajectories for Figure 1 on the 2-1 draw :math:`\{e_1, e_1, e_2\}` (:math:`S=\mathrm{diag}(2/3,1/3)`,
    :math:`\Sigma = I/2`): (a) gradient flow from 0 to :math:`\hat L = \varepsilon`; (b) ``K`` GD steps with
    :math:`\eta = 1/\gamma_1 = 3/2`, then gradient flow to :math:`\hat L = \varepsilon`. Closed-form paths
    (sampled at ``n_points`` times) plus the numerical end points."""
    K = integer("K", K, 0)
    eps = positive("eps", eps)
    S = prop1_sample_covariance(np.array([0, 0, 1]))
    bstar = finite_array("beta_star", beta_star, 1)
    r = lemma2(PROP1_SIGMA, S, bstar, np.zeros(2), eps=eps, alpha=0.5, K=K, n_small=1, numerical=True)
    basis = EigenBasis(r.U, r.lam, r.gam, 0.0)
    ts = np.linspace(0.0, r.T_slow, n_points)
    slow_path = basis.from_eigen(gf_delta(r.gam, r.delta0, ts), bstar)
    dK = basis.to_eigen(r.gd_path[-1], bstar)
    ts2 = np.linspace(0.0, r.T_fast, n_points)
    fast_flow = basis.from_eigen(gf_delta(r.gam, dK, ts2), bstar)
    return {
        "fig_S": S, "fig_Sigma": PROP1_SIGMA, "fig_beta_star": bstar, "fig_eps": np.array(eps),
        "fig_K": np.array(K), "fig_eta": np.array(r.eta),
        "fig_slow_path": slow_path, "fig_gd_path": r.gd_path, "fig_fast_flow_path": fast_flow,
        "fig_beta_slow": r.beta_slow, "fig_beta_fast": r.beta_fast,
        "fig_beta_slow_num": r.beta_slow_num, "fig_beta_fast_num": r.beta_fast_num,
        "fig_test_slow": np.array(r.test_slow), "fig_test_fast": np.array(r.test_fast),
        "fig_alpha": np.array(r.cond2_value),
        "fig_train_slow": np.array(r.train_slow), "fig_train_fast": np.array(r.train_fast),
    }


# --------------------------------------------------------------------------------------------------
# The whole study (lrdecay convex; the report's "convex" job)
# --------------------------------------------------------------------------------------------------

DEFAULT_ALPHAS = (0.5, 0.1, 0.01, 0.001)
DEFAULT_KS = (0, 1, 2, 5, 20)
#: Figure 1's instance: beta* = (1, 1), eps, K large steps (Nakkiran's Figure 1 is schematic)
FIGURE1 = dict(beta_star=(3.0, 3.0), eps=0.1, K=5)    # the same eps as the Monte Carlo
K_SWEEP = (0, 1, 2, 5, 10, 20, 40)


@dataclass
class ConvexStudy(io.Result):
    """The Monte Carlo cells (one dict per (alpha, K), the fields of :class:`Prop1Cell`), the draws,
    Lemma 2 against K (arrays ``ks_*``) and the arrays of Figure 1 (``fig_*``)."""

    KIND = "ConvexStudy"

    config: dict
    cells: list
    draws: np.ndarray
    k_sweep: dict
    figure: dict

    def table(self) -> str:
        mc = Prop1MonteCarlo([Prop1Cell(**{**c, "ci": tuple(c["ci"])}) for c in self.cells], self.config["alphas"],
                             self.config["Ks"], self.config["eps"], self.config["trials"], self.config["seed"],
                             self.config["confidence"], self.draws)
        return mc.table()

    def k_sweep_table(self) -> str:
        return k_sweep_table(self.k_sweep, self.config["eps"])


@dataclass(frozen=True)
class ConvexConfig:
    """The convex study: ``trials`` draws of the samples from ``seed``, early stopping at train loss ``eps``,
    Proposition 1's cells for each ``alpha`` in ``alphas`` and ``K`` in ``Ks``, intervals at ``confidence``."""

    trials: int = 10000
    seed: int = 0
    eps: float = 0.1
    alphas: tuple = DEFAULT_ALPHAS
    Ks: tuple = DEFAULT_KS
    confidence: float = 0.95

    def validate(self) -> "ConvexConfig":
        integer("trials", self.trials, 1)
        integer("seed", self.seed, 0)
        open_unit("eps", self.eps)        # an early-stopping train loss below the loss at the start (scale 1)
        for a in self.alphas:
            open_unit("alphas", a)
        integers("Ks", list(self.Ks), 0)
        open_unit("confidence", self.confidence)
        return self


def run_convex_study(config: ConvexConfig | None = None, **keywords) -> ConvexStudy:
    """Proposition 1 Monte Carlo, Lemma 2 on a 3-D instance for several K, and Figure 1's data.

    ``config`` (default :class:`ConvexConfig`) with any of its fields replaced by ``keywords``, so that
    ``run_convex_study(trials=300, seed=7)`` still reads as before."""
    c = replace(config or ConvexConfig(), **keywords).validate()
    mc = proposition1_monte_carlo(c.alphas, c.Ks, trials=c.trials, eps=c.eps, seed=c.seed, confidence=c.confidence)
    ks_rows = lemma2_k_sweep(sorted(set(list(K_SWEEP) + list(mc.Ks))), eps=mc.eps)
    k_sweep = {
        **{k: np.array([getattr(r, k) for r in ks_rows]) for k in (
            "K", "test_fast", "bound_fast", "bound_fast_main", "tail", "tail_paper", "test_slow", "bound_slow",
            "conditions_hold")},
        # the instance's construction (eigen-data, start): Lemma 2's bounds can be rebuilt from these alone
        "lam": _DEMO_LAM.copy(), "gam": _DEMO_GAM.copy(), "delta0": -_DEMO_BETA_EIGEN.copy(),
        "alpha": np.array(0.1), "n_small": np.array(1),
    }
    config = {
        "command": "convex", "seed": mc.seed, "trials": mc.trials, "eps": mc.eps, "alphas": mc.alphas, "Ks": mc.Ks,
        "confidence": mc.confidence, "n": PROP1_N, "Sigma": PROP1_SIGMA, "beta_star": "100 alpha^(-1/2) (1, 1)",
        "beta0": [0.0, 0.0], "eta": "1/gamma_1", "normalization": NORMALIZATION,
        "separation": "L_D(GF)/L_D(AGD) >= 2(1-alpha)", "ci": "Clopper-Pearson",
        "figure": dict(FIGURE1, beta_star=list(FIGURE1["beta_star"])),
        "k_sweep": {"gam": _DEMO_GAM, "lam": _DEMO_LAM, "alpha": 0.1, "eps": mc.eps},
    }
    cells = [{**{k: getattr(c, k) for k in c.__dataclass_fields__ if k != "ci"}, "ci": list(c.ci)} for c in mc.cells]
    return ConvexStudy(config, cells, mc.draws, k_sweep, figure1_data(**FIGURE1))
