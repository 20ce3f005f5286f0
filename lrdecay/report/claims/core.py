"""Claims on the model's geometry, the engine and Phase I (the ``core`` job's checks)."""
from __future__ import annotations

from lrdecay.theory.studies.checks import (ALPHA_TOL, MIN_NORM_TOL, PHASE1_EXPONENT_TOL, REDUCTION_TOL, SGD_EM_TOL,
                                   TRACE_TOL, Checks)

from .base import Judgement, claim, fmt, interval_word, load, verdict


def _checks(d):
    return load(Checks, d / "core_checks.npz")


@claim("model.alpha", section="§1 model", source="[seed]/[derived]",
       statement="α(w) = ‖w‖^γ w is a bijection with ‖α‖ = ‖w‖^(γ+1) and inverse w = ‖α‖^(−γ/(γ+1)) α",
       prediction="relative error 0", tolerance=f"≤ {ALPHA_TOL:g}", job="core",
       flips="a relative error of 1e-6 in the norm identity")
def alpha(d):
    c = _checks(d)
    if c is None:
        return None
    e = c["alpha_rel_error"]
    return Judgement(verdict(e <= ALPHA_TOL), fmt(e), {"alpha_rel_error": e})


@claim("model.trace_on_M", section="§1 model", source="[derived]",
       statement="On M the trace of the train-loss Hessian is h(r) = r^(2γ)‖X‖_F²/n + (γ²+2γ)‖y‖²/(n r²), a "
                 "function of r = ‖w‖ alone",
       prediction="finite-difference Hessian trace = h(‖w‖) at random points of M",
       tolerance=f"relative error ≤ {TRACE_TOL:g}", job="core",
       flips="a finite-difference trace off h(r) by 1e-3 relative")
def trace_on_M(d):
    c = _checks(d)
    if c is None:
        return None
    e = c["trace_rel_error"]
    return Judgement(verdict(e <= TRACE_TOL), f"max relative error {fmt(e)}", {"trace_rel_error": e})


@claim("model.min_norm", section="§1 model", source="[derived]",
       statement="w_mn = ‖α_mn‖^(−γ/(γ+1)) α_mn with α_mn = X⁺y is the minimum-norm point of M (Lagrange: w_mn is "
                 "normal to M) and its test loss is ½‖(I − X⁺X)α*‖²",
       prediction="‖P_T w_mn‖/‖w_mn‖ = 0; no retracted random point of M is shorter; test loss matches",
       tolerance=f"≤ {MIN_NORM_TOL:g}", job="core",
       flips="a retracted point of M shorter than w_mn (ratio 0.99)")
def min_norm(d):
    c = _checks(d)
    if c is None:
        return None
    worst = max(c["min_norm_tangent"], c["min_norm_test_rel_error"])
    measured = (f"‖P_T w_mn‖/‖w_mn‖ = {fmt(c['min_norm_tangent'])}, test-loss rel. error "
                f"{fmt(c['min_norm_test_rel_error'])}, shortest other point / ‖w_mn‖ = {fmt(c['min_norm_shortest_ratio'], 6)}")
    vals = {k: c[k] for k in ("min_norm_tangent", "min_norm_test_rel_error", "min_norm_shortest_ratio")}
    return Judgement(verdict(worst <= MIN_NORM_TOL and c["min_norm_shortest_ratio"] >= 1 - 1e-12), measured, vals)


@claim("model.flatness", section="§1 model", source="[derived]",
       statement="h increases along M (so its minimizer on M is w_mn) iff yᵀ(XXᵀ)⁻¹y ≥ (γ+2)‖y‖²/‖X‖_F²",
       prediction="condition ⇔ h'(r_mn) ≥ 0 on every random instance", tolerance="no disagreement", job="core",
       flips="one instance where the condition and h'(r_mn) ≥ 0 disagree")
def flatness(d):
    c = _checks(d)
    if c is None:
        return None
    n, N = c["flatness_disagreements"], c["flatness_instances"]
    return Judgement(verdict(n == 0), f"{n} disagreements in {N} instances",
                     {"disagreements": float(n), "instances": float(N)})


@claim("model.invariant_subspace", section="§1 model", source="[derived]",
       statement="GD and label-noise SGD stay in span{w₀, x₁…xₙ}: the n+1-dimensional simulation equals the full "
                 "one on the same noise",
       prediction="identical paths", tolerance=f"max |Δw| ≤ {REDUCTION_TOL:g}", job="core",
       flips="reduced and full runs 1e-3 apart")
def invariant_subspace(d):
    c = _checks(d)
    if c is None:
        return None
    e = c["reduction_max_diff"]
    return Judgement(verdict(e <= REDUCTION_TOL), f"max |Δw| = {fmt(e)} (d = {c['reduction_d']} vs {c['reduction_m']})",
                     {"max_diff": e})


@claim("sde.sgd_is_em", section="§1 dynamics", source="[derived]",
       statement="Full-batch label-noise SGD is Euler–Maruyama for dw = −∇L_n dt + √(ηa) (Jᵀ/√n) dB with dt = η "
                 "and a = σ²/n",
       prediction="the engine's SGD and its EM (dt = η, default a) both equal an independent per-path loop "
                  "w ← w − (η/n)Jᵀ(res − σξ) on the same random streams",
       tolerance=f"max |Δw| ≤ {SGD_EM_TOL:g} (500 steps of rounding, margin 100)", job="core",
       flips="the engine's EM 1e-3 away from the per-path loop (e.g. noise scale σ/n instead of σ²/n)")
def sgd_is_em(d):
    c = _checks(d)
    if c is None:
        return None
    e = c["sgd_em_max_diff"]
    return Judgement(verdict(e <= SGD_EM_TOL),
                     f"max |Δw| = {fmt(e)} (SGD vs loop {fmt(c['sgd_loop_max_diff'], 2)}, "
                     f"EM vs loop {fmt(c['em_loop_max_diff'], 2)})",
                     {"max_diff": e, "sgd_loop": c["sgd_loop_max_diff"], "em_loop": c["em_loop_max_diff"]})


@claim("phase1.scaling", section="§1 Phase I", source="[seed]",
       statement="Phase I: with a large η the iterate falls onto a neighbourhood of M in O(1/η) steps",
       prediction="k₁ ∝ η^(−p) with p = 1 (gradient flow reaches the level ε₀ at a time t₀: k₁ = t₀/η + O(1)), "
                  "fitted over η = 0.02 … 0.0025",
       tolerance=f"the 95 % interval of p contains 1 and |p − 1| ≤ {PHASE1_EXPONENT_TOL:g}", job="core",
       flips="a fitted exponent p = 1.5 [1.4, 1.6]")
def phase1_scaling(d):
    c = _checks(d)
    if c is None:
        return None
    p, (lo, hi) = c["phase1_exponent"], c["phase1_exponent_ci"]
    ek = ", ".join(f"{v:.3f}" for v in c["phase1_eta_k"])
    word = interval_word(lo, hi, (1 - PHASE1_EXPONENT_TOL, 1 + PHASE1_EXPONENT_TOL))
    measured = (f"p = {p:.3f} [{lo:.3f}, {hi:.3f}] ({word}; {c['phase1_points']} paths over η = "
                + ", ".join(f"{e:g}" for e in c["phase1_etas"]) + f"); η·k₁ = {ek} vs t₀ = {c['phase1_gf_time']:.3f}")
    return Judgement(verdict(lo <= 1 <= hi and abs(p - 1) <= PHASE1_EXPONENT_TOL), measured,
                     {"exponent": p, "ci_low": lo, "ci_high": hi, "gf_time": c["phase1_gf_time"]})
