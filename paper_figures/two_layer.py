"""The two-layer linear network (:class:`lrdecay.theory.studies.two_layer.TwoLayerStudy`): label-noise SGD against
the drift ODE, the Hessian trace drifting to X-balance, and the late-decay curve."""
from __future__ import annotations

from lrdecay.paper_figures._drift_panels import decay_panel, drift_panel
from lrdecay.paper_figures._style import as_result, plt, save_figure
from lrdecay.theory.studies.two_layer import TwoLayerStudy


def make_figure(study, out_stem):
    """Phase II, the drift of the Hessian trace to X-balance, and the late-decay curve."""
    res = as_result(study, TwoLayerStudy)
    st = res.study
    s = res.summary()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    drift_panel(axes[0], st, colors[0], "two-layer")
    axes[0].axhline(s["test_min_norm"], color="k", ls=":", label="min-norm interpolator")
    axes[0].set(xlabel="τ = η²k", ylabel="test loss", title="Phase II")
    axes[0].legend(fontsize=7)
    tau = st.eta**2 * st.sim.steps[st.phase2_mask]
    rows = st.rows("trace")[st.phase2_mask, -1, :]
    axes[1].plot(tau, rows.mean(1), color=colors[0], label="SGD: tr ∇²L_n")
    axes[1].plot(st.ode_tau, st.ode_trace, color=colors[0], ls="--", label="ODE: tr ∇²L_n")
    axes[1].axhline(s["trace_min"], color=colors[0], ls=":", label="closed-form minimum 2‖y‖‖X‖_F/n")
    w2 = st.rows("w2_norm2")[st.phase2_mask, -1, :]
    ax2 = axes[1].twinx()
    ax2.plot(tau, w2.mean(1), color=colors[3], label="SGD: ‖w₂‖²")
    ax2.axhline(s["w2_pred"], color=colors[3], ls=":", label="‖y‖/‖X‖_F")
    ax2.set_ylabel("‖w₂‖²")
    axes[1].set(xlabel="τ", ylabel="Hessian trace", yscale="log", title="drift to X-balance")
    axes[1].legend(fontsize=7, loc="upper right")
    ax2.legend(fontsize=7, loc="center right")
    decay_panel(axes[2], st, colors[0], "two-layer")
    axes[2].axhline(s["test_min_norm"], color="k", ls=":", label="min-norm")
    axes[2].set(xlabel="drift time at the end, τ_i", ylabel="test loss", title="late decay")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_stem)
