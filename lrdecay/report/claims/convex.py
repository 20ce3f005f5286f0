"""Claims on Nakkiran's (2020) convex example (the ``convex`` job)."""
from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

from lrdecay.theory.studies.convex_mc import (FIGURE1_RTOL, LEMMA2_RTOL, PROP1_EFFECT, PROP1_LEVEL, PROP1_POWER, RATIO_TOL,
                                      ConvexStudy, lemma2_bounds_from_eigendata, prop1_draws_needed)

from .base import NOT_TESTABLE, Judgement, caption, claim, load, verdict

FIG = caption(
    "convex/figures/nakkiran_fig1.png",
    "Nakkiran's Figure 1 on the 2-1 draw (S = diag(2/3, 1/3), Σ = I/2): (a) gradient flow from 0 (a small "
    "learning rate) to the train-loss level ε; (b) K steps of the large rate η = 1/γ₁, which jump across the "
    "top direction, then gradient flow to the same level; (c) the test-loss contours with both end points on "
    "the same train-loss ellipse (grey). convex.figure1 needs the annealed end at 0.75ε and the small-rate end "
    "between Lemma 2's bound 1.5(1 − α)ε and 1.5ε.")


def _study(d):
    return load(ConvexStudy, d / "convex.npz")


@claim("convex.prop1_probability", section="§2 convex", source="[seed]",
       statement="Proposition 1: with probability 3/4 over the 3 samples, annealed GD beats gradient flow by a factor 2",
       prediction="P = 3/4",
       tolerance=f"two-sided exact binomial test of P = 3/4 at level {PROP1_LEVEL:g}, with ≥ {prop1_draws_needed()} draws "
                 f"(power {PROP1_POWER:g} against |P − 3/4| ≥ {PROP1_EFFECT:g}); fewer draws: not testable", job="convex",
       figure=FIG,
       flips="20,000 draws with P̂ = 0.70")
def prop1_probability(d):
    st = _study(d)
    if st is None:
        return None
    cells = [c for c in st.cells if c["K"] >= 1]
    c0 = cells[0]
    same = all(c["n_sep"] == c0["n_sep"] for c in cells)        # every K >= 1 cell uses the same draws
    pval = float(binomtest(c0["n_sep"], c0["trials"], 0.75).pvalue)
    measured = (f"P̂ = {c0['p_hat']:.4f} ({c0['n_sep']}/{c0['trials']} draws), p-value {pval:.3g}; "
                f"95 % CI [{c0['ci'][0]:.4f}, {c0['ci'][1]:.4f}]")
    vals = {"p_hat": c0["p_hat"], "p_value": pval, "draws": float(c0["trials"])}
    if c0["trials"] < prop1_draws_needed():
        return Judgement(NOT_TESTABLE, measured, vals, f"{c0['trials']} draws give too little power; the test needs "
                         f"{prop1_draws_needed()}.")
    return Judgement(verdict(pval >= PROP1_LEVEL and same), measured, vals)


@claim("convex.prop1_ratio", section="§2 convex", source="[seed]",
       statement="On those draws the test-loss ratio (gradient flow / annealed GD) approaches 2 as α → 0",
       prediction="ratio → 2", tolerance=f"|ratio − 2| ≤ {RATIO_TOL:g} at the smallest α", job="convex", figure=FIG,
       flips="a ratio of 1.9 at the smallest α")
def prop1_ratio(d):
    st = _study(d)
    if st is None:
        return None
    cells = [c for c in st.cells if c["K"] >= 1]
    amin = min(c["alpha"] for c in cells)
    rs = [c["ratio_21"] for c in cells if c["alpha"] == amin]
    return Judgement(verdict(max(abs(r - 2) for r in rs) <= RATIO_TOL), f"ratio {min(rs):.6f} at α = {amin:g}",
                     {"ratio_min": min(rs), "alpha": amin})


@claim("convex.lemma2", section="§2 convex", source="[seed]",
       statement="Lemma 2's two bounds hold whenever its conditions hold",
       prediction="L_D(GF) ≥ ε(1−α) min_S λ/γ and L_D(AGD) ≤ ε max_{γ=γ₁} λ/γ + c^K Σ_Q λδ(0)², the bounds rebuilt "
                  "from each instance's construction (Proposition 1's 2-1 draws; the 3-D instance for K = 0 … 40)",
       tolerance=f"both hold on every cell to a relative {LEMMA2_RTOL:g}", job="convex",
       flips="a gradient-flow test loss at half Lemma 2's bound")
def lemma2(d):
    st = _study(d)
    if st is None:
        return None
    slack = []      # (bound side) relative slack, >= 0 when the bound holds
    for c in st.cells:
        if c["K"] < 1 or not c["n_21"]:
            continue
        a = c["alpha"]
        # 2-1 draws: S = diag(2/3, 1/3), Sigma = I/2, delta(0) = -beta* = -(100/sqrt(alpha)) (1, 1)
        b_slow, b_fast = lemma2_bounds_from_eigendata([0.5, 0.5], [2 / 3, 1 / 3], -100 / a**0.5 * np.ones(2),
                                                      eps=1.0, alpha=a, K=c["K"], n_small=1)
        slack += [c["test_slow_21"] / b_slow - 1, 1 - c["test_fast_21"] / b_fast]
    ks = st.k_sweep
    eps = st.config["eps"]
    for i, K in enumerate(ks["K"]):
        if not ks["conditions_hold"][i]:
            continue
        b_slow, b_fast = lemma2_bounds_from_eigendata(ks["lam"], ks["gam"], ks["delta0"], eps=eps,
                                                      alpha=float(ks["alpha"]), K=int(K), n_small=int(ks["n_small"]))
        slack += [ks["test_slow"][i] / b_slow - 1, 1 - ks["test_fast"][i] / b_fast]
    worst = float(min(slack))
    return Judgement(verdict(worst >= -LEMMA2_RTOL),
                     f"smallest relative slack {worst:.3g} over {len(slack)} bound checks",
                     {"min_slack": worst, "checks": float(len(slack))})


@claim("convex.figure1", section="§2 convex", source="[seed]",
       statement="Figure 1: the two end points lie on the same train-loss level set, with test losses ≈ 1.5ε "
                 "(small LR) and 0.75ε (large then small LR)",
       prediction="annealed end at 0.75ε; small-LR end between Lemma 2's bound 1.5(1−α)ε (α: the instance's "
                  "condition-2 value) and 1.5ε",
       tolerance=f"annealed end within {100 * FIGURE1_RTOL:.0f} % of 0.75ε; small-LR end in [1.5(1−α)ε, 1.5ε]",
       job="convex", figure=FIG,
       flips="a small-rate end point at 1.6ε (above 1.5ε)")
def figure1(d):
    st = _study(d)
    if st is None:
        return None
    f = st.figure
    eps = float(f["fig_eps"])
    fast, slow, a = float(f["fig_test_fast"]) / eps, float(f["fig_test_slow"]) / eps, float(f["fig_alpha"])
    ok = abs(fast - 0.75) <= FIGURE1_RTOL * 0.75 and 1.5 * (1 - a) * (1 - LEMMA2_RTOL) <= slow <= 1.5 * (1 + LEMMA2_RTOL)
    return Judgement(verdict(ok), f"annealed end point: test loss {fast:.4f} ε; small-LR end {slow:.4f} ε "
                                  f"(bound {1.5 * (1 - a):.3f} ε at α = {a:.3g})",
                     {"fast_over_eps": fast, "slow_over_eps": slow, "alpha": a},
                     "Nakkiran's Figure 1 is schematic: 1.5ε is the α → 0 limit; at β* = (1, 1) condition 2 holds "
                     f"only with α = {a:.2g}, so the small-LR end lies at {slow:.2f}ε, above Lemma 2's bound.")
