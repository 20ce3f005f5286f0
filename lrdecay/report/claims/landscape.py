"""The nonlinear model's loss landscape (the ``landscape`` job)."""
from __future__ import annotations

from theory.studies.landscape import EDGE_MARGIN, VALLEY_LEVEL, LandscapeStudy, landscape_metrics

from .base import Judgement, claim, load, verdict

FIG = "landscape/figures/nonlinear_landscape.png"


@claim("model.landscape", section="§1 model", source="[seed]",
       statement="The train loss has a manifold of minima (open level sets), the test loss an isolated minimum "
                 "(closed level sets)",
       prediction=f"on the d = 2, n = 1 slice: the train valley {{L_n ≤ {100 * VALLEY_LEVEL:g} % of its median}} crosses the window "
                  "(touches two sides, extent ≥ the window's side); the test loss is smallest inside the window at "
                  "α⁻¹(α*) and higher all along the window's edge",
       tolerance=f"valley: ≥ 2 sides and extent ≥ side; test minimum interior, within 1.5 grid spacings of α⁻¹(α*), "
                 f"edge ≥ minimum + {EDGE_MARGIN:g} (median − minimum)", job="landscape", figure=FIG)
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
