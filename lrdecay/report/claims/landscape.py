"""The nonlinear model's loss landscape (the ``landscape`` job)."""
from __future__ import annotations

from lrdecay.theory.studies.landscape import EDGE_MARGIN, VALLEY_LEVEL, LandscapeStudy, landscape_metrics

from .base import Judgement, caption, claim, load, verdict

FIG = caption(
    "landscape/figures/nonlinear_landscape.png",
    "Train loss (top) and test loss (bottom) of the nonlinear model on 2-D slices, log colour scale with even "
    "levels. Three left columns: d = 2, n = 1 for γ = 0, 1, 2 — the train loss has a valley of minima (the "
    "manifold M, open level sets) and the test loss an isolated minimum at α⁻¹(α*) (closed level sets), as "
    "model.landscape needs; with n = 1 the flatness condition fails, so label-noise SGD (dots coloured by time) "
    "drifts to the flattest point of M (diamond), not to w_mn (star). Right column: d = 3, n = 2 with γ = 1, "
    "where the condition holds, on the plane that contains M: SGD drifts along the valley to w_mn.")


@claim("model.landscape", section="§1 model", source="[seed]",
       statement="The train loss has a manifold of minima (open level sets), the test loss an isolated minimum "
                 "(closed level sets)",
       prediction=f"on the d = 2, n = 1 slice: the train valley {{L_n ≤ {100 * VALLEY_LEVEL:g} % of its median}} crosses the window "
                  "(touches two sides, extent ≥ the window's side); the test loss is smallest inside the window at "
                  "α⁻¹(α*) and higher all along the window's edge",
       tolerance=f"valley: ≥ 2 sides and extent ≥ side; test minimum interior, within 1.5 grid spacings of α⁻¹(α*), "
                 f"edge ≥ minimum + {EDGE_MARGIN:g} (median − minimum)", job="landscape", figure=FIG,
       caveat="Measured on 2-D slices (d = 2, n = 1); the valley is M itself only in such low dimensions.",
       flips="a test loss that is a ramp (its minimum on the window's edge)")
def landscape(d):
    st = load(LandscapeStudy, d / "landscape.npz")
    if st is None:
        return None
    rows = landscape_metrics(st)
    ok = all(r["valley_sides"] >= 2 and r["valley_extent"] >= r["window"] and r["test_min_interior"]
             and r["test_min_offset"] <= 1.5 and r["edge_margin"] >= EDGE_MARGIN for r in rows)
    measured = "; ".join(f"γ={r['gamma']:g}: valley touches {r['valley_sides']} sides, extent {r['valley_extent']:.2f} "
                         f"(side {r['window']:.1f}); test min {r['test_min_offset']:.2f} spacings from α⁻¹(α*), edge "
                         f"margin {r['edge_margin']:.2f}" for r in rows)
    vals = {f"g{r['gamma']:g}_{k}": float(r[k]) for r in rows for k in ("valley_extent", "test_min_offset", "edge_margin")}
    return Judgement(verdict(ok), measured, vals)
