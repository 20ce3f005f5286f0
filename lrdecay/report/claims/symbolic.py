"""Claims on the sympy derivations (the ``symbolic`` job)."""
from __future__ import annotations

from lrdecay.theory.studies.checks import SYMBOLIC_TOL, Checks

from .base import Judgement, claim, load, verdict

IDENTITIES = ("trace_on_M_minus_h", "drift_minus_radial", "lagrange_det")


@claim("symbolic.identities", section="§1 model", source="[derived]",
       statement="Derived with sympy (not hand-typed): the Hessian trace on M equals h(‖w‖); the tangential drift "
                 "is h'(r)·P_T ŵ (radial); w_mn satisfies the Lagrange condition; the plateau constant is 1/4",
       prediction="each identity simplifies to 0 (constant: 1/4)", tolerance="exact", job="symbolic",
       flips="an identity that does not simplify to 0")
def identities(d):
    c = load(Checks, d / "symbolic_checks.npz")
    if c is None:
        return None
    idn = c["identities"]
    ok = all(idn[k] == "0" for k in IDENTITIES) and idn["plateau_constant"] == "1/4"
    return Judgement(verdict(ok), ", ".join(f"{k} = {v}" for k, v in idn.items()),
                     {k: float(idn[k] == "0") for k in IDENTITIES})


@claim("symbolic.numeric", section="§1 model", source="[derived]",
       statement="The numeric gradient, Hessian, Hessian trace and its gradient equal the sympy derivation at "
                 "random points, γ ∈ {0, 0.5, 1, 2, 3.7}",
       prediction="agreement", tolerance=f"relative error ≤ {SYMBOLIC_TOL:g}", job="symbolic",
       flips="a numeric gradient 1e-3 off the sympy one")
def numeric(d):
    c = load(Checks, d / "symbolic_checks.npz")
    if c is None:
        return None
    e = c["max_rel_error"]
    return Judgement(verdict(max(e.values()) <= SYMBOLIC_TOL), ", ".join(f"{k}: {v:.1e}" for k, v in e.items()),
                     dict(e))
