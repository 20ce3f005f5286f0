"""Schedules at an equal budget: the rates, the final positions against the drift ODE at each drift budget
tau_S = sum eta_k^2, and the final test losses (reads :class:`lrdecay.theory.studies.cyclic.CyclicStudy`)."""
from __future__ import annotations

import numpy as np

from lrdecay.paper_figures._style import as_result, plt, save_figure
from lrdecay.theory.studies.cyclic import CyclicStudy, cyclic_schedules


def make_figure(study, out_stem):
    st = as_result(study, CyclicStudy)
    c = st.config
    T = int(c["total_steps"])
    scheds = cyclic_schedules(c["eta"], T, c["factor"], c["cycles"])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ks = np.arange(T)
    for i, nm in enumerate(st.names):
        axes[0].plot(ks, scheds[nm](ks), color=colors[i % 10], lw=1.2, label=nm)
    axes[0].set(xlabel="step", ylabel="η", title=f"equal budget of {T} steps")
    axes[0].legend(fontsize=7)
    ax = axes[1]
    ax.plot(st.ode_tau, st.ode_dist, "k-", lw=1.2, label="drift ODE: ‖w − w_mn‖/‖w_mn‖ at τ")
    rows = st.rows()
    for i, r in enumerate(rows):
        ax.scatter(r["tau_S"], r["position_dist"], color=colors[i % 10], zorder=3, label=f"{r['name']} (SGD at τ_S)")
    ax.set(yscale="log", xlabel="τ", ylabel="distance to w_mn on M", title="final position vs drift budget τ_S = Σ η²")
    ax.legend(fontsize=6)
    ax = axes[2]
    order = sorted(range(len(rows)), key=lambda i: rows[i]["final_test"])
    y = np.arange(len(rows))
    ax.barh(y, [rows[i]["final_test"] - st.comparison.min_norm_test_loss for i in order],
            xerr=[rows[i]["final_test_se"] for i in order], color=[colors[i % 10] for i in order])
    ax.scatter([rows[i]["predicted_test"] - st.comparison.min_norm_test_loss for i in order], y, color="k", marker="|",
               s=200, zorder=3, label="ODE at τ_S")
    ax.set_yticks(y, [rows[i]["name"] for i in order], fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="final test loss − min-norm test loss", title="final test loss (± 1 s.e.)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_stem)

