"""Quasistatic drift ODE against label-noise SGD: ||w|| and test loss against tau = eta^2 k."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from paper_figures._style import plt, save_figure
from theory.io import load_json, load_result


def make_figure(result_dir, out_stem):
    result_dir = Path(result_dir)
    rows = load_json(result_dir / "drift_summary.json")["rows"]
    main = [r for r in rows if r["kind"] == "main"]
    gammas = sorted({r["gamma"] for r in main})
    fig, axes = plt.subplots(2, len(gammas) + 1, figsize=(4 * (len(gammas) + 1), 6.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, g in enumerate(gammas):
        for i, r in enumerate([r for r in main if r["gamma"] == g]):
            arr, cfg = load_result(result_dir / f"drift_{r['case']}.npz")
            c = colors[i]
            for row, key, ode in ((0, "sgd_norm", "ode_norm"), (1, "sgd_test", "ode_test")):
                mean, sd = arr[key].mean(1), arr[key].std(1)
                axes[row, j].fill_between(arr["tau"], mean - sd, mean + sd, color=c, alpha=0.2)
                axes[row, j].plot(arr["tau"], mean, color=c, label=f"SGD η={r['eta']:g} (mean ± sd)")
                axes[row, j].plot(arr["tau"], arr[ode], color=c, ls="--", lw=1.5, label=f"drift ODE (η={r['eta']:g})")
        axes[0, j].axhline(cfg["min_norm_norm"], color="k", ls=":", lw=1, label="||w_mn||")
        axes[1, j].axhline(cfg["min_norm_test_loss"], color="k", ls=":", lw=1, label="min-norm test loss")
        axes[0, j].set_title(f"γ = {g:g}")
        axes[0, j].set_ylabel("||w||")
        axes[1, j].set_ylabel("test loss")
        axes[1, j].set_xlabel("τ = η² k")
        axes[0, j].legend(fontsize=7)
    # right column: agreement per case
    ax = axes[0, -1]
    labels = [r["case"] + ("*" if r["kind"] == "breakdown" else "") for r in rows]
    y = np.arange(len(rows))
    ax.barh(y, [r["norm_rel_error"] for r in rows], color=[colors[0] if r["kind"] == "main" else colors[3] for r in rows])
    ax.set_yticks(y, labels, fontsize=7)
    ax.axvline(load_json(result_dir / "drift_summary.json")["config"]["norm_tol"], color="k", ls="--", lw=1)
    ax.set_xlabel("max |mean ||w||_SGD − ||w||_ODE| / travel")
    ax.set_title("agreement (* = breakdown case)")
    ax.invert_yaxis()
    ax = axes[1, -1]
    ax.barh(y, [r["plateau_ratio"] for r in rows], color=[colors[0] if r["kind"] == "main" else colors[3] for r in rows])
    ax.set_yticks(y, labels, fontsize=7)
    ax.axvline(1.0, color="k", ls="--", lw=1)
    ax.set_xlabel("train-loss plateau: measured / predicted")
    ax.invert_yaxis()
    fig.tight_layout()
    return save_figure(fig, out_stem)
