"""SGD against the drift ODE on a model of :mod:`lrdecay.theory.models`, and the late-decay curve, for the diagonal
(:class:`lrdecay.theory.studies.diagonal.DiagonalStudy`) and two-layer (:class:`lrdecay.theory.studies.two_layer.TwoLayerStudy`)
networks."""
from __future__ import annotations

import numpy as np

from lrdecay.paper_figures._style import as_result, plt, save_figure
from lrdecay.theory.stats import mean_sem
from lrdecay.theory.studies.diagonal import DiagonalStudy
from lrdecay.theory.studies.two_layer import TwoLayerStudy


def _drift_panel(ax, st, color, label):
    tau = st.eta**2 * st.sim.steps[st.phase2_mask]
    sgd = st.sgd_test_M
    ax.fill_between(tau, sgd.mean(1) - sgd.std(1), sgd.mean(1) + sgd.std(1), color=color, alpha=0.2)
    ax.plot(tau, sgd.mean(1), color=color, label=f"{label}: SGD on M (mean ± sd)")
    ax.plot(tau, st.ode_test_on_records, color=color, ls="--", label=f"{label}: drift ODE")


def _decay_panel(ax, st, color, label):
    m, s = mean_sem(st.final_test)
    ax.errorbar(st.tau_effective, m, yerr=s, marker="o", color=color, capsize=3, label=f"{label}: final test loss")
    ax.plot(st.tau_effective, st.predicted_final, color=color, ls="--", marker="x", label=f"{label}: ODE at τ")


def make_diagonal_figure(study, out_stem):
    st = as_result(study, DiagonalStudy)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    cases = list(st.cases.items())
    fig, axes = plt.subplots(1, 2 + len(cases), figsize=(5 * (2 + len(cases)), 4.2))
    for i, (t, c) in enumerate(cases):
        _drift_panel(axes[0], c, colors[i], t)
        _decay_panel(axes[1], c, colors[i], t)
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


def make_two_layer_figure(study, out_stem):
    res = as_result(study, TwoLayerStudy)
    st = res.study
    s = res.summary()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    _drift_panel(axes[0], st, colors[0], "two-layer")
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
    _decay_panel(axes[2], st, colors[0], "two-layer")
    axes[2].axhline(s["test_min_norm"], color="k", ls=":", label="min-norm")
    axes[2].set(xlabel="drift time at the end, τ_i", ylabel="test loss", title="late decay")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_stem)
