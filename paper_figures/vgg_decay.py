"""VGG-11, equal budget: final test loss and accuracy against the decay epoch, mean ± s.e. over seeds.

Reads a profile's output directory (its first variant's run directories) or one run directory; writes
``<dir>/figures/vgg_decay.png`` and ``.pdf``. Every subpath ends at the same epoch; the dashed line and
band are the no-decay control (the main path at that epoch, mean ± s.e.); thin lines are single seeds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from empirics.analysis import measure_late_decay
from paper_figures._style import plt, save_figure
from paper_figures.vgg_learning_curves import run_dirs_of


def make(path, stem=None) -> list[Path]:
    path = Path(path)
    return make_figure(measure_late_decay(run_dirs_of(path)), stem or path / "figures" / "vgg_decay")


def make_figure(t: dict, stem) -> list[Path]:
    e = np.asarray(t["decay_epochs"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for ax, key, name in ((axes[0], "test_loss", "final test loss"), (axes[1], "test_acc", "final test accuracy")):
        per = np.asarray(t[f"{key}_per_seed"])
        for s, row in zip(t["seeds"], per):
            ax.plot(e, row, color="0.75", lw=0.8)
        m, se = np.asarray(t[f"{key}_mean"]), np.nan_to_num(np.asarray(t[f"{key}_se"]))
        ax.errorbar(e, m, yerr=se, fmt="o-", color="tab:red", capsize=3, label=f"decayed (mean ± s.e., {len(per)} seeds)")
        cm, cs = t[f"control_{key}_mean"], np.nan_to_num(t[f"control_{key}_se"])
        ax.axhline(cm, ls="--", color="black", lw=1, label=f"no decay (main path at epoch {t['end_epoch']})")
        ax.axhspan(cm - cs, cm + cs, color="0.85", zorder=0)
        ax.set_xlabel("decay epoch")
        ax.set_ylabel(name)
        ax.legend(fontsize=8)
    lo, hi = t["rho_interval"]
    axes[0].set_title(f"Spearman ρ = {t['spearman_rho']:.2f}, seed-bootstrap {100 * t['confidence']:.0f}% "
                      f"interval [{lo:.2f}, {hi:.2f}]", fontsize=9)
    fig.suptitle(f"every subpath ends at epoch {t['end_epoch']} (equal budget); seeds {t['seeds']}", fontsize=9)
    return save_figure(fig, stem)


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(make(sys.argv[1]))
