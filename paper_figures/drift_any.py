"""A model given only as f(theta, X) (:class:`lrdecay.theory.studies.drift_any.DriftAnyResult`): retracted label-noise SGD
against the drift ODE, the late-decay sweep with the ODE's prediction beside it, and the long drift run's trace and
test loss."""
from __future__ import annotations

from lrdecay.paper_figures._drift_panels import decay_panel, drift_panel
from lrdecay.paper_figures._style import as_result, plt, save_figure
from lrdecay.theory.studies.drift_any import DriftAnyResult


def make_figure(result, out_stem):
    res = as_result(result, DriftAnyResult)
    st = res.study
    name = st.model.name
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    drift_panel(axes[0], st, colors[0], name)
    axes[0].set(xlabel="τ = η²k", ylabel="test loss", title=f"{name}: Phase II, SGD on M against the drift ODE")
    axes[0].legend(fontsize=7)
    decay_panel(axes[1], st, colors[0], name)
    axes[1].set(xlabel="drift time at the end, τ_i", ylabel="test loss", title="late decay: final test loss")
    axes[1].legend(fontsize=7)
    ax = axes[2]
    ax.plot(res.flow_tau, res.flow_trace, color=colors[0], label="tr H = ‖J‖²_F / n")
    ax.set(xlabel="τ", ylabel="Gauss–Newton trace", title=f"long drift run ({res.flow_status})")
    ax2 = ax.twinx()
    ax2.plot(res.flow_tau, res.flow_test, color=colors[3], label="test loss")
    if "test_ref" in res.reference:
        ax2.axhline(res.reference["test_ref"], color=colors[3], ls=":", label="l_4/3 interpolator")
    ax2.set_ylabel("test loss")
    ax.legend(fontsize=7, loc="upper right")
    ax2.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    return save_figure(fig, out_stem)
