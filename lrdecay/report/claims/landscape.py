"""The nonlinear model's loss landscape (the ``landscape`` job)."""
from __future__ import annotations

from theory.studies.landscape import LandscapeStudy

from .base import FIGURE, Judgement, claim, load

FIG = "landscape/figures/nonlinear_landscape.png"


@claim("model.landscape", section="§1 model", source="[seed]",
       statement="The train loss has a manifold of minima (open level sets), the test loss an isolated minimum "
                 "(closed level sets)",
       prediction="figure", tolerance="—", job="landscape", figure=FIG)
def landscape(d):
    st = load(LandscapeStudy, d / "landscape.npz")
    if st is None or not (d.parent / FIG).exists():
        return None
    gammas = ", ".join(f"{g:g}" for g in st.gammas)
    return Judgement(FIGURE, f"see figure (d = 2, n = 1 slice for γ = {gammas})")
