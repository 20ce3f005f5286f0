"""Claims on convergence to w_mn against gamma (the ``gamma`` job)."""
from __future__ import annotations

from theory.studies.gamma import CONFIDENCE, GammaStudyResult

from .base import NOT_APPLICABLE, Judgement, claim, load, verdict

FIG = "gamma/figures/gamma_convergence.png"


def _rows(d):
    res = load(GammaStudyResult, d / "gamma_study.npz")
    return None if res is None else res.summary()


@claim("gamma.bound", section="§1 Phase II", source="[seed]",
       statement="Phase II converges to the minimum-norm solution with probability at least 1 − e^(−0.1γ²) "
                 "(constants not checked against the paper's text)",
       prediction="fraction converged ≥ 1 − e^(−0.1γ²) for every γ",
       tolerance=f"the Wilson {100 * CONFIDENCE:.0f} % interval of the fraction reaches the bound", job="gamma",
       figure=FIG)
def bound(d):
    rows = _rows(d)
    if rows is None:
        return None
    measured = "; ".join(f"γ={r['gamma']:g}: {r['n_converged']}/{r['n']} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] "
                         f"vs {r['bound']:.3f}" for r in rows)
    below = [r for r in rows if not r["respects_ci"]]
    note = ""
    if below:
        note = ("The data refute the stated bound at γ = " + ", ".join(f"{r['gamma']:g}" for r in below)
                + ": at fixed n the flatness condition fails more often as γ grows (fraction holding: "
                + ", ".join(f"{r['flat_fraction']:.2f}" for r in below)
                + "), and instances failing it never converge (claim gamma.flatness).")
    vals = {f"fraction_g{r['gamma']:g}": r["fraction"] for r in rows}
    vals.update({f"bound_g{r['gamma']:g}": r["bound"] for r in rows})
    return Judgement(verdict(all(r["respects_ci"] for r in rows)), measured, vals, note)


@claim("gamma.flatness", section="§1 model", source="[derived]",
       statement="w_mn is the attractor only where the flatness condition holds: instances that fail it do not "
                 "converge to w_mn",
       prediction="P(converged | condition fails) = 0", tolerance="no converged instance among those failing the condition",
       job="gamma", figure=FIG)
def flatness(d):
    rows = _rows(d)
    if rows is None:
        return None
    bad = [r for r in rows if r["gamma"] > 0 and r["n_flat"] < r["n"] and r["conv_given_not_flat"] > 0]
    n_fail = sum(r["n"] - r["n_flat"] for r in rows if r["gamma"] > 0)
    measured = (f"{n_fail} instances fail the condition; converged among them: "
                + (", ".join(f"γ={r['gamma']:g}: {r['conv_given_not_flat']:.2f}" for r in bad) or "none")
                + "; P(conv | holds): " + ", ".join(f"γ={r['gamma']:g}: {r['conv_given_flat']:.2f}"
                                                    for r in rows if r["gamma"] > 0 and r["n_flat"]))
    return Judgement(verdict(not bad) if n_fail else NOT_APPLICABLE, measured, {"n_fail": float(n_fail)})


@claim("gamma.zero", section="§1 Phase III", source="[derived]",
       statement="γ = 0: no drift along M, so SGD does not reach w_mn from a generic start",
       prediction="fraction converged = 0 at γ = 0", tolerance="0 instances", job="gamma", figure=FIG)
def zero(d):
    rows = _rows(d)
    z = [r for r in rows or [] if r["gamma"] == 0]
    if not z:
        return None
    return Judgement(verdict(z[0]["n_converged"] == 0), f"{z[0]['n_converged']}/{z[0]['n']}",
                     {"n_converged": float(z[0]["n_converged"])})
