"""Quasistatic drift ODE against label-noise SGD: ||w|| and test loss against tau = eta^2 k."""
from __future__ import annotations

import numpy as np

from paper_figures._style import as_result, plt, save_figure
from theory.studies.drift import NORM_TOL, DriftStudy


_KIND_COLOR = {"main": "C0", "breakdown": "C3", "control": "C2"}


def make_figure(study, out_stem):
    """``study``: a DriftStudy or its directory."""
    study = as_result(study, DriftStudy)
    rows = study.rows
    main = study.main_rows()
    gammas = sorted({r["gamma"] for r in main})
    fig, axes = plt.subplots(2, len(gammas) + 1, figsize=(4 * (len(gammas) + 1), 6.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, g in enumerate(gammas):
        for i, r in enumerate([r for r in main if r["gamma"] == g]):
            cmp_ = study.comparisons[r["case"]]
            c = colors[i]
            for row, key, ode in ((0, "sgd_norm", "ode_norm"), (1, "sgd_test", "ode_test")):
                sgd = getattr(cmp_, key)
                mean, sd = sgd.mean(1), sgd.std(1)
                axes[row, j].fill_between(cmp_.tau, mean - sd, mean + sd, color=c, alpha=0.2)
                axes[row, j].plot(cmp_.tau, mean, color=c, label=f"SGD η={r['eta']:g} (mean ± sd)")
                axes[row, j].plot(cmp_.tau, getattr(cmp_, ode), color=c, ls="--", lw=1.5, label=f"drift ODE (η={r['eta']:g})")
        axes[0, j].axhline(np.linalg.norm(cmp_.problem.w_mn), color="k", ls=":", lw=1, label="||w_mn||")
        axes[1, j].axhline(cmp_.problem.min_norm_test_loss, color="k", ls=":", lw=1, label="min-norm test loss")
        axes[0, j].set_title(f"γ = {g:g}")
        axes[0, j].set_ylabel("||w||")
        axes[1, j].set_ylabel("test loss")
        axes[1, j].set_xlabel("τ = η² k")
        axes[0, j].legend(fontsize=7)
    # right column: agreement per case
    ax = axes[0, -1]
    labels = [r["case"] + {"breakdown": "*", "control": " (control)"}.get(r["kind"], "") for r in rows]
    y = np.arange(len(rows))
    ax.barh(y, [r["norm_rel_error"] for r in rows], color=[_KIND_COLOR[r["kind"]] for r in rows])
    ax.set_yticks(y, labels, fontsize=7)
    ax.axvline(NORM_TOL, color="k", ls="--", lw=1)
    ax.set_xlabel("max |mean ||w||_SGD − ||w||_ODE| / travel")
    ax.set_title("agreement (* = breakdown case)")
    ax.invert_yaxis()
    ax = axes[1, -1]
    ax.barh(y, [r["plateau_ratio"] for r in rows], color=[_KIND_COLOR[r["kind"]] for r in rows])
    ax.set_yticks(y, labels, fontsize=7)
    ax.axvline(1.0, color="k", ls="--", lw=1)
    ax.set_xlabel("train-loss plateau: measured / predicted")
    ax.invert_yaxis()
    fig.tight_layout()
    return save_figure(fig, out_stem)
