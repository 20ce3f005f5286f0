"""Final test loss against decay step, one curve per gamma, with the min-norm and gradient-flow
landing reference lines (reads :class:`lrdecay.theory.studies.decay.DecaySweep` results). Error bars: one standard
error of the mean over the paths of a row."""
from __future__ import annotations

import numpy as np

from lrdecay.paper_figures._style import as_result, plt, save_figure
from lrdecay.theory.stats import mean_sem
from lrdecay.theory.studies.decay import DecaySweep


def make_figure(sweeps, out_stem):
    """``sweeps``: DecaySweep results or their files, one curve each."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, sw in enumerate(as_result(s, DecaySweep) for s in sweeps):
        g = sw.problem.gamma
        c = colors[i % len(colors)]
        ds = sw.decay_steps
        mean, sem = mean_sem(sw.final_test)
        x = np.maximum(ds, 1)
        axes[0].errorbar(x, mean, yerr=sem if sw.paths_per_decay > 1 else None,
                         marker="o", color=c, label=f"γ = {g:g}: SGD, decay at step k (± 1 s.e.)", capsize=3)
        if i == 0:  # alpha_mn = X^+ y does not depend on gamma: one reference line
            axes[0].axhline(sw.min_norm_test_loss, color="k", ls="--", lw=1, label="min-norm solution")
        axes[0].axhline(sw.flow_landing_test_loss, color=c, ls=":", lw=1, label=f"γ = {g:g}: gradient-flow landing")
        # test loss along the runs: one path per decay step
        if i == 0:
            for j, k in enumerate(ds):
                axes[1].plot(np.maximum(sw.sim.steps, 1), sw.row_records("test_loss", j)[:, 0], lw=1,
                             label=f"decay at {k}")
            axes[1].axhline(sw.min_norm_test_loss, color="k", ls="--", lw=1, label="min-norm")
            axes[1].set_title(f"test loss along single paths (γ = {g:g})")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("decay step k (0 shown at 1)")
    axes[0].set_ylabel("final test loss")
    axes[0].set_title("later decay → closer to the min-norm solution")
    axes[0].legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.0, 0.93))
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("test loss")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_stem)
