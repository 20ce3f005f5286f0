"""Panels shared by the figures of models with a drift ODE (:mod:`lrdecay.theory.models`): SGD against the drift
ODE, and the late-decay curve."""
from __future__ import annotations

from lrdecay.theory.stats import mean_sem


def drift_panel(ax, st, color, label):
    """Retracted SGD on M (mean and spread) against the drift ODE's test loss over the Phase II drift time."""
    tau = st.eta**2 * st.sim.steps[st.phase2_mask]
    sgd = st.sgd_test_M
    ax.fill_between(tau, sgd.mean(1) - sgd.std(1), sgd.mean(1) + sgd.std(1), color=color, alpha=0.2)
    ax.plot(tau, sgd.mean(1), color=color, label=f"{label}: SGD on M (mean ± sd)")
    ax.plot(tau, st.ode_test_on_records, color=color, ls="--", label=f"{label}: drift ODE")


def decay_panel(ax, st, color, label):
    """The late-decay sweep: final test loss (mean and standard error) against the decay time, the ODE's
    prediction beside it."""
    m, s = mean_sem(st.final_test)
    ax.errorbar(st.tau_effective, m, yerr=s, marker="o", color=color, capsize=3, label=f"{label}: final test loss")
    ax.plot(st.tau_effective, st.predicted_final, color=color, ls="--", marker="x", label=f"{label}: ODE at τ")
