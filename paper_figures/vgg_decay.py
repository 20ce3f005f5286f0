"""VGG-11: each subpath's test loss and accuracy against its decay epoch, mean ± s.e. over seeds.

Reads a profile's output directory (its first variant's run directories) or one run directory; writes
``<dir>/figures/vgg_decay.png`` and ``.pdf``. A subpath's value is the mean of its last
``lrdecay.empirics.analysis.LAST_K`` evaluations; thin lines are single seeds; the red line is the late-decay
statistic's least-squares fit of the seed means; the dotted line is the best constant predictor's test
loss. Equal budget: the dashed line is the no-decay control (the main path at the common end). A run that
never landed has no analysed branch; then every branch is drawn, and the title says so.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lrdecay.empirics.analysis import load_run, measure_late_decay, run_constant_loss
from lrdecay.paper_figures._style import plt, save_figure
from lrdecay.paper_figures.vgg_learning_curves import run_dirs_of


def make_figure(path, stem=None) -> list[Path]:
    path = Path(path)
    dirs = run_dirs_of(path)
    t = measure_late_decay(dirs)
    if not t["decay_epochs"]:        # no branch after landing: every branch, drawn as "not analysed"
        t = measure_late_decay(dirs, all_branches=True) | {"not_analysed": True}
    t |= {"constant_loss": run_constant_loss(load_run(dirs[0]))}
    return draw(t, stem or path / "figures" / "vgg_decay")


def draw(t: dict, stem) -> list[Path]:
    e = np.asarray(t["decay_epochs"], float)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for ax, key, name in ((axes[0], "test_loss", "test loss"), (axes[1], "test_acc", "test accuracy")):
        per = np.asarray(t[f"{key}_per_seed"], float)
        for row in per:
            ax.plot(e, row, color="0.75", lw=0.8)
        if len(e):
            m, se = np.asarray(t[f"{key}_mean"]), np.nan_to_num(np.asarray(t[f"{key}_se"], float))
            ax.errorbar(e, m, yerr=se, fmt="o", color="tab:red", capsize=3,
                        label=f"subpaths (mean of last {t['last_k']} evaluations; {len(per)} seed(s))")
            s = t[f"{key}_slope"]
            if s["slope"] == s["slope"]:
                fit = m.mean() + s["slope"] / s["per_epochs"] * (e - e.mean())
                lo, hi = s["interval"]
                ax.plot(e, fit, "-", color="tab:red", lw=1,
                        label=f"slope {s['slope']:+.4f} / {s['per_epochs']} ep. [{lo:+.4f}, {hi:+.4f}]")
        if t["design"] == "equal_budget":
            c = [x[0] for x in t[f"control_{key}_per_seed"]]
            ax.axhline(np.mean(c), ls="--", color="black", lw=1, label="no decay (main path, same end)")
        if key == "test_loss" and "constant_loss" in t:
            ax.axhline(t["constant_loss"], ls=":", color="0.3", lw=1.2, label="constant predictor")
        ax.set_xlabel("decay epoch")
        ax.set_ylabel(name)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    design = (f"fixed-length subpaths of {t['subpath_epochs']} epochs (the authors' design)"
              if t["design"] == "fixed_length" else "every subpath ends at the main path's end (equal budget)")
    note = "; every branch shown, none analysed (the main path never landed)" if t.get("not_analysed") else ""
    fig.suptitle(f"{design}; seeds {t['seeds']}{note}", fontsize=9)
    return save_figure(fig, stem)


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(make_figure(sys.argv[1]))
