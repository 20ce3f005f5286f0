"""Final test loss against decay step, one curve per gamma, with the min-norm and gradient-flow
landing reference lines (reads DecaySweep result files)."""
from __future__ import annotations

import numpy as np

from paper_figures._style import plt, save_figure
from theory.io import load_result


def make_figure(result_paths, out_stem):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, path in enumerate(result_paths):
        arr, cfg = load_result(path)
        g = cfg["problem"]["gamma"]
        c = colors[i % len(colors)]
        ds = arr["decay_steps"]
        ft = arr["final_test"]
        x = np.maximum(ds, 1)
        axes[0].errorbar(x, ft.mean(1), yerr=ft.std(1, ddof=1) / np.sqrt(ft.shape[1]) if ft.shape[1] > 1 else None,
                         marker="o", color=c, label=f"γ = {g:g}: SGD, decay at step k", capsize=3)
        if i == 0:  # alpha_mn = X^+ y does not depend on gamma: one reference line
            axes[0].axhline(cfg["min_norm_test_loss"], color="k", ls="--", lw=1, label="min-norm solution")
        axes[0].axhline(cfg["flow_landing_test_loss"], color=c, ls=":", lw=1, label=f"γ = {g:g}: gradient-flow landing")
        # test loss along the runs: one path per decay step
        steps = arr["steps"]
        rec = arr["rec_test_loss"]
        per = cfg["paths_per_decay"]
        if i == 0:
            for j, k in enumerate(ds):
                axes[1].plot(np.maximum(steps, 1), rec[:, j * per], lw=1, label=f"decay at {k}")
            axes[1].axhline(cfg["min_norm_test_loss"], color="k", ls="--", lw=1, label="min-norm")
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
