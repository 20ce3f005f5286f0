"""Three-phase trajectories: train loss, test loss and ||w|| along label-noise SGD with decays at
several steps (reads a :class:`theory.studies.decay.DecaySweep`); the predicted Phase II plateau is drawn."""
from __future__ import annotations

import numpy as np

from paper_figures._style import as_result, plt, save_figure
from theory import model as m
from theory.quasistatic import plateau_prediction
from theory.studies.decay import DecaySweep


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
    axes[2].axhline(np.linalg.norm(prob.w_mn), color="k", ls="--", lw=1, label="||w_mn||")
    for ax, lab in zip(axes, ("train loss", "test loss", "||w||")):
        ax.set_xscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(lab)
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    axes[0].set_title("Phase I: fall to M · Phase II: plateau · Phase III: drop")
    axes[1].set_title("test loss freezes at the decay")
    axes[2].set_title(f"||w|| drifts to ||w_mn|| (γ = {prob.gamma:g})")
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_stem)
