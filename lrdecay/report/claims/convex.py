"""Claims on Nakkiran's (2020) convex example (the ``convex`` job)."""
from __future__ import annotations

from theory.studies.convex_mc import FIGURE1_RTOL, RATIO_TOL, ConvexStudy

from .base import Judgement, claim, load, verdict

FIG = "convex/figures/nakkiran_fig1.png"


def _study(d):
    return load(ConvexStudy, d / "convex.npz")


@claim("convex.prop1_probability", section="§2 convex", source="[seed]",
       statement="Proposition 1: with probability 3/4 over the 3 samples, annealed GD beats gradient flow by a factor 2",
       prediction="P = 3/4", tolerance="95 % Clopper–Pearson interval contains 0.75 (K ≥ 1)", job="convex", figure=FIG)
def prop1_probability(d):
    st = _study(d)
    if st is None:
        return None
    cells = [c for c in st.cells if c["K"] >= 1]
    inside = [c["ci"][0] <= 0.75 <= c["ci"][1] for c in cells]
    c0 = cells[0]
    return Judgement(verdict(all(inside)),
                     f"P̂ = {c0['p_hat']:.4f}, CI [{c0['ci'][0]:.4f}, {c0['ci'][1]:.4f}] ({c0['trials']} draws)",
                     {"p_hat": c0["p_hat"], "ci_low": c0["ci"][0], "ci_high": c0["ci"][1]})


@claim("convex.prop1_ratio", section="§2 convex", source="[seed]",
       statement="On those draws the test-loss ratio (gradient flow / annealed GD) approaches 2 as α → 0",
       prediction="ratio → 2", tolerance=f"|ratio − 2| ≤ {RATIO_TOL:g} at the smallest α", job="convex", figure=FIG)
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
       statement="Lemma 2's two bounds hold whenever its conditions hold", prediction="all bounds hold",
       tolerance="fraction = 1 on every cell", job="convex")
def lemma2(d):
    st = _study(d)
    if st is None:
        return None
    ok = [c["lemma_ok_21"] for c in st.cells if c["K"] >= 1]
    return Judgement(verdict(min(ok) == 1.0), f"fraction {min(ok):.4f} (min over {len(ok)} cells)",
                     {"min_fraction": min(ok)})


@claim("convex.figure1", section="§2 convex", source="[seed]",
       statement="Figure 1: the two end points lie on the same train-loss level set, with test losses ≈ 1.5ε "
                 "(small LR) and 0.75ε (large then small LR)",
       prediction="0.75ε vs 1.5ε", tolerance=f"annealed end point within {100 * FIGURE1_RTOL:.0f} % of 0.75ε",
       job="convex", figure=FIG)
def figure1(d):
    st = _study(d)
    if st is None:
        return None
    eps = float(st.figure["fig_eps"])
    v = float(st.figure["fig_test_fast"]) / eps
    return Judgement(verdict(abs(v - 0.75) <= FIGURE1_RTOL * 0.75), f"annealed end point: test loss {v:.4f} ε",
                     {"fast_over_eps": v, "slow_over_eps": float(st.figure["fig_test_slow"]) / eps})
