"""VGG-11 loss landscapes: filled contours of train and test loss in the plane of the first two principal
components of the checkpoints, with the main path and the decayed subpaths drawn on top.

Reads ``<run>/landscape.npz`` (written by :func:`empirics.landscape.run_landscape`); writes
``<run>/figures/vgg_landscape.png`` and ``.pdf``. Contour levels are logarithmic, shared by both panels,
and span the lowest 85% of the grid's values (higher values share the top colour).
Points far off the plane (see the caption line) have losses the contours do not show.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from paper_figures._style import plt, save_figure
from theory.io import load_result


def make(run_dir, stem=None) -> list[Path]:
    run_dir = Path(run_dir)
    arr, cfg = load_result(run_dir / "landscape.npz")
    return make_figure(arr, cfg, stem or run_dir / "figures" / "vgg_landscape")


def make_figure(arr: dict, cfg: dict, stem) -> list[Path]:
    from matplotlib import cm, colors

    a, b = arr["a"], arr["b"]
    A, B = np.meshgrid(a, b, indexing="ij")
    coords, path = arr["coords"], arr["path"]
    evr = arr["explained_variance_ratio"]
    labels, decay_epochs = cfg["labels"], cfg["decay_epochs"]
    loss_name = "MSE" if cfg["train"]["loss"] == "mse" else "cross-entropy"

    both = np.concatenate([arr["train_loss"].ravel(), arr["test_loss"].ravel()])
    both = both[np.isfinite(both) & (both > 0)]
    lo = max(both.min(), 1e-6)
    hi = np.quantile(both, 0.85)  # resolve the low-loss region; the highest 15% share the top colour
    levels = np.geomspace(lo, max(hi, lo * 1.01), 22)
    norm = colors.LogNorm(vmin=levels[0], vmax=levels[-1])
    sub_cmap = plt.get_cmap("autumn")
    n_sub = max(len(decay_epochs), 1)

    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2), constrained_layout=True, sharex=True, sharey=True)
    for ax, split in zip(axes, ("train", "test")):
        Z = np.clip(arr[f"{split}_loss"], levels[0], levels[-1])
        cs = ax.contourf(A, B, Z, levels=levels, norm=norm, cmap="viridis", extend="both")
        ax.contour(A, B, Z, levels=levels[::3], colors="white", linewidths=0.4, alpha=0.5)
        m = path == 0
        ax.plot(coords[m, 0], coords[m, 1], "-", color="black", lw=1.6, label="main path (large lr)")
        ax.plot(coords[m, 0], coords[m, 1], ".", color="black", ms=3)
        ax.plot(coords[m, 0][0], coords[m, 1][0], "o", mfc="white", mec="black", ms=6, label="initialisation")
        for i, e in enumerate(decay_epochs, start=1):
            s = path == i
            c = sub_cmap(0.15 + 0.7 * (i - 1) / max(n_sub - 1, 1))
            ax.plot(coords[s, 0], coords[s, 1], "-", color=c, lw=1.4, label=f"decay at epoch {e}")
            ax.plot(coords[s, 0][-1], coords[s, 1][-1], "*", color=c, mec="black", mew=0.5, ms=11)
        k = np.argmin(arr[f"{split}_loss"])
        ax.plot(A.ravel()[k], B.ravel()[k], "X", color="white", mec="black", ms=8, label="grid minimum")
        ax.set_title(f"{split} loss ({loss_name}) on {cfg[f'eval_{split}_size']} images")
        ax.set_xlabel(f"PC1 ({100 * evr[0]:.1f}% of variance)")
        ax.grid(False)
    axes[0].set_ylabel(f"PC2 ({100 * evr[1]:.1f}% of variance)")
    cb = fig.colorbar(cm.ScalarMappable(norm=norm, cmap="viridis"), ax=axes, shrink=0.95, pad=0.02)
    ticks = levels[::4]
    cb.set_ticks(ticks)
    cb.set_ticklabels([f"{t:.3g}" for t in ticks])
    cb.minorticks_off()
    cb.set_label(f"loss ({loss_name}), log scale")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(len(names), 5), fontsize=8)
    d = arr["distance"]
    span = np.ptp(coords[:, :2], axis=0).max()
    surface = "curved sheet" if cfg["landscape"]["curved"] else "plane"
    fig.suptitle(
        f"{cfg['train']['arch']} (width {cfg['train']['width']}): {cfg['n_checkpoints']} checkpoints of "
        f"{cfg['n_parameters']:,} parameters\ndistance of the checkpoints off the {surface}: median {np.median(d):.3g}, "
        f"max {d.max():.3g} (trajectory span in the plane {span:.3g})", fontsize=9)
    return save_figure(fig, stem)


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(make(sys.argv[1]))
