"""Three-phase trajectories: train loss, test loss and ‖w‖ along label-noise SGD with decays at several
steps (reads a :class:`lrdecay.theory.studies.decay.DecaySweep`). The phases of the latest-decay path are shaded:
Phase I until the train loss enters the band of the predicted plateau (:func:`lrdecay.theory.phases.phase_boundaries`),
Phase II until the decay, Phase III after it (the drift slows by (η'/η)²)."""
from __future__ import annotations

import numpy as np

from lrdecay.paper_figures._style import as_result, plt, save_figure
from lrdecay.theory.models import nonlinear as m
from lrdecay.theory.phases import phase_boundaries
from lrdecay.theory.quasistatic import plateau_prediction
from lrdecay.theory.studies.decay import DecaySweep


def make_figure(sweep, out_stem):
    """``sweep``: a DecaySweep result or its file."""
    sw = as_result(sweep, DecaySweep)
    prob = sw.problem
    steps = np.maximum(sw.sim.steps, 1)
    ds = sw.decay_steps
    eta = sw.config["eta"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, k in enumerate(ds):
        c = colors[j % len(colors)]
        for key, ax in zip(("train_loss", "test_loss", "norm"), axes):
            ax.plot(steps, sw.row_records(key, j)[:, 0], color=c, lw=1, label=f"decay at {k}")
            if k > 0:
                ax.axvline(k, color=c, ls=":", lw=0.8)
    landing = m.retract(prob.w0, prob.X, prob.y, prob.gamma)
    pl_land = plateau_prediction(prob, landing, eta).exact
    pl_mn = plateau_prediction(prob, prob.w_mn, eta).exact
    axes[0].axhspan(min(pl_land, pl_mn), max(pl_land, pl_mn), color="gray", alpha=0.25,
                    label="predicted Phase II plateau\n(landing point … w_mn)")
    axes[1].axhline(prob.min_norm_test_loss, color="k", ls="--", lw=1, label="min-norm test loss")
    axes[2].axhline(np.linalg.norm(prob.w_mn), color="k", ls="--", lw=1, label="‖w_mn‖")
    # the phases of the latest-decay path (last row)
    last = len(ds) - 1
    k1 = int(phase_boundaries(sw.sim, min(pl_land, pl_mn), ds[last])["phase1_end"][last * sw.paths_per_decay])
    spans = [(1, max(k1, 1), "#fde2e2", "I"), (max(k1, 1), max(int(ds[last]), 1), "#e2f0fd", "II"),
             (max(int(ds[last]), 1), int(steps[-1]), "#e5f5e0", "III")]
    for ax, lab in zip(axes, ("train loss", "test loss", "‖w‖")):
        for a, b, col, name in spans:
            if b > a:
                ax.axvspan(a, b, color=col, zorder=0)
                ax.text(np.sqrt(a * b), 0.97, f"Phase {name}", transform=ax.get_xaxis_transform(), ha="center",
                        va="top", fontsize=8, color="0.3")
        ax.set_xscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(lab)
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    f = sw.config["factor"]
    axes[0].set_title("train loss: fall to M, plateau, drop after the decay", fontsize=10)
    axes[1].set_title(f"test loss: after a decay to η' = {f:g}η the drift slows by (η'/η)² = {f * f:g}", fontsize=10)
    axes[2].set_title(f"‖w‖ drifts to ‖w_mn‖ at the large rate (γ = {prob.gamma:g})", fontsize=10)
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_stem)
