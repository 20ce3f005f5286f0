"""Errors of the quasistatic picture against the learning rate, with the fitted slopes (reads
:class:`lrdecay.theory.studies.discrete_eta.DiscreteEtaStudy`)."""
from __future__ import annotations

import numpy as np

from lrdecay.paper_figures._style import as_result, plt, save_figure
from lrdecay.theory.studies.discrete_eta import DiscreteEtaStudy


def make_figure(study, out_stem):
    st = as_result(study, DiscreteEtaStudy)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    e = st.etas
    ee = np.geomspace(e.min(), e.max(), 50)
    for which, err, c, label in (("drift", st.drift_err, colors[0], "vs η → 0 drift ODE"),
                                 ("drift_eta", st.drift_err_eta, colors[2], "vs finite-η drift ODE (R_η)")):
        f = st.fit(which)
        axes[0].loglog(e, np.abs(err), "o", color=c, label=f"{label}: p = {f['p']:.2f} [{f['p_low']:.2f}, {f['p_high']:.2f}]")
        axes[0].loglog(ee, f["c"] * ee ** f["p"], color=c, lw=1)
    axes[0].set(xlabel="η", ylabel="|mean gap in ‖w‖| / travel", title="drift along M")
    axes[0].legend(fontsize=7)
    f = st.fit("plateau")
    axes[1].loglog(e, np.abs(st.plateau_err_leading), "o", color=colors[0],
                   label=f"vs (ηa/4) tr H: p = {f['p']:.2f} [{f['p_low']:.2f}, {f['p_high']:.2f}]")
    axes[1].loglog(ee, f["c"] * ee ** f["p"], color=colors[0], lw=1)
    axes[1].loglog(e, st.plateau_err_pred, "k--", lw=1, label=f"linear OU: ⟨exact⟩/⟨leading⟩ − 1 (≈ η Σλ²/(2Σλ), "
                                                             f"coefficient {st.plateau_coef_pred:.2f})")
    axes[1].loglog(e, np.maximum(np.abs(st.plateau_err_exact), 1e-5), "s", color=colors[3], mfc="none",
                   label="vs exact OU plateau (ηa/4) Σ λ/(1 − ηλ/2)")
    axes[1].set(xlabel="η", ylabel="|measured / predicted − 1|", title="train-loss plateau")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_stem)
