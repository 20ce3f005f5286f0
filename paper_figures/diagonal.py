"""The diagonal linear network (:class:`lrdecay.theory.studies.diagonal.DiagonalStudy`): label-noise SGD against the
drift ODE, the late-decay curve, and the coordinates reached beside the min-l1 interpolator."""
from __future__ import annotations

import numpy as np

from lrdecay.paper_figures._drift_panels import decay_panel, drift_panel
from lrdecay.paper_figures._style import as_result, plt, save_figure
from lrdecay.theory.studies.diagonal import DiagonalStudy


def make_figure(study, out_stem):
    """Drift to the l1 interpolator and the late-decay curve for each target, and each target's coordinates."""
    st = as_result(study, DiagonalStudy)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    cases = list(st.cases.items())
    fig, axes = plt.subplots(1, 2 + len(cases), figsize=(5 * (2 + len(cases)), 4.2))
    for i, (t, c) in enumerate(cases):
        drift_panel(axes[0], c, colors[i], t)
        decay_panel(axes[1], c, colors[i], t)
        r = st.references(c)
        ax = axes[2 + i]
        j = np.arange(c.model.d)
        ax.stem(j, r["beta_star"], linefmt="k-", markerfmt="ko", basefmt=" ", label="β*")
        ax.plot(j, r["landing"], "s", color=colors[1], mfc="none", label="landing (gradient flow)")
        ax.plot(j, c.model.beta(c.model.retract(c.sim.W_final[-c.paths:])).mean(0), "^", color=colors[i],
                label="SGD at T (retracted, mean)")
        ax.plot(j, r["trace_min"], "x", color=colors[3], label="min-ℓ1 (linprog)")
        ax.set(xlabel="coordinate j", ylabel="β_j", title=f"{t} target")
        ax.legend(fontsize=7)
    axes[0].set(xlabel="τ = η²k", ylabel="test loss", yscale="log", title="Phase II: drift to the ℓ1 interpolator")
    axes[1].set(xlabel="drift time at the end, τ_i", ylabel="test loss", yscale="log",
                title="late decay: final test loss vs decay time")
    for ax in axes[:2]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_stem)
