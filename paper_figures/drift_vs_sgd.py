"""The quasistatic drift ODE against label-noise SGD: ‖w‖ and the test loss against τ = η²k for each γ and
η of the main cases (reads a :class:`lrdecay.theory.studies.drift.DriftStudy`); per case, the largest gap and the
plateau ratio with the tolerances of the report's claims."""
from __future__ import annotations

import numpy as np

from lrdecay.paper_figures._style import as_result, plt, save_figure
from lrdecay.theory.studies.drift import NORM_TOL, PLATEAU_TOL, DriftStudy


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
                axes[row, j].plot(cmp_.tau, mean, color=c, label=f"SGD, η = {r['eta']:g} (mean ± 1 sd of paths)")
                axes[row, j].plot(cmp_.tau, getattr(cmp_, ode), color=c, ls="--", lw=1.5,
                                  label=f"drift ODE (plateau at η = {r['eta']:g})" if row else "drift ODE")
        axes[0, j].axhline(np.linalg.norm(cmp_.problem.w_mn), color="k", ls=":", lw=1, label="‖w_mn‖")
        axes[1, j].axhline(cmp_.problem.min_norm_test_loss, color="k", ls=":", lw=1, label="min-norm test loss")
        axes[0, j].set_title(f"γ = {g:g}")
        axes[0, j].set_ylabel("‖w‖")
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
    ax.text(NORM_TOL, 1.01, f" tolerance {100 * NORM_TOL:.0f} %", transform=ax.get_xaxis_transform(), fontsize=7)
    ax.set_xlabel("largest gap in mean ‖w‖ (SGD vs ODE) / distance travelled")
    ax.set_title("agreement per case (* breakdown)", fontsize=10)
    ax.invert_yaxis()
    ax = axes[1, -1]
    ax.barh(y, [r["plateau_ratio"] for r in rows], color=[_KIND_COLOR[r["kind"]] for r in rows])
    ax.set_yticks(y, labels, fontsize=7)
    ax.axvline(1.0, color="k", ls="--", lw=1)
    ax.axvspan(1 - PLATEAU_TOL, 1 + PLATEAU_TOL, color="0.85", zorder=0)
    ax.text(1 + PLATEAU_TOL, 1.01, f" ±{100 * PLATEAU_TOL:.0f} %", transform=ax.get_xaxis_transform(), fontsize=7)
    ax.set_xlabel("train-loss plateau: measured / predicted")
    ax.invert_yaxis()
    fig.tight_layout()
    return save_figure(fig, out_stem)
