"""VGG-11 loss landscapes in the plane of the checkpoints' first two principal components.

Reads ``landscape.npz`` (written by :func:`empirics.landscape.run_landscape`) of a run directory, or of
the landscape run of a profile's output directory; writes ``<dir>/figures/vgg_landscape.png`` and ``.pdf``.

Left and middle: filled contours of the train and the test loss, each with its own logarithmic colour
scale (levels from the panel's minimum to its 60th percentile, so that the low region is resolved; higher
values share the top colour), the main path (black), the decayed
subpaths (coloured) with their end points (stars), the grid minimum (X). The axes have equal scales
unless one direction spans over 4× the other; then the stretch is stated in the title. Right: every
checkpoint's true loss on the evaluation images next to the contour's (bilinear) value at its
projection — where they differ, the checkpoint lies off the plane and the contours misstate its loss.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from paper_figures._style import plt, save_figure
from theory.io import load_json, load_result


def landscape_file(path) -> Path:
    path = Path(path)
    if (path / "profile.json").exists():
        prof = load_json(path / "profile.json")
        if not prof.get("landscape_run"):
            raise FileNotFoundError(f"{path}: this profile computes no landscape")
        return path / prof["landscape_run"] / "landscape.npz"
    return path / "landscape.npz"


def make(path, stem=None) -> list[Path]:
    path = Path(path)
    arr, cfg = load_result(landscape_file(path))
    return make_figure(arr, cfg, stem or path / "figures" / "vgg_landscape")


LEVEL_QUANTILE = 0.6   # colour levels span the panel's minimum to this quantile of its grid values


def _levels(Z):
    z = Z[np.isfinite(Z) & (Z > 0)]
    lo, hi = max(z.min(), 1e-8), np.quantile(z, LEVEL_QUANTILE)
    return np.geomspace(lo, max(hi, lo * 1.05), 20)


def make_figure(arr: dict, cfg: dict, stem) -> list[Path]:
    from matplotlib import colors

    a, b = arr["a"], arr["b"]
    A, B = np.meshgrid(a, b, indexing="ij")
    coords, path = arr["coords"], arr["path"]
    evr = arr["explained_variance_ratio"]
    labels, decay_epochs = cfg["labels"], cfg["decay_epochs"]
    sub_cmap = plt.get_cmap("autumn")
    n_sub = max(len(decay_epochs), 1)
    span_a, span_b = np.ptp(a), np.ptp(b)
    ratio = span_b / span_a if span_a > 0 else 1.0
    equal = 0.25 <= ratio <= 4.0

    fig = plt.figure(figsize=(15, 5.2), constrained_layout=True)
    gs = fig.add_gridspec(1, 3, width_ratios=[1, 1, 0.8])
    axes = [fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[0, 1])]
    side = fig.add_subplot(gs[0, 2])
    order = np.lexsort((arr["step"], path))
    for ax, split, cmap in zip(axes, ("train", "test"), ("viridis", "magma")):
        Z = arr[f"{split}_loss"]
        lev = _levels(Z)
        norm = colors.LogNorm(vmin=lev[0], vmax=lev[-1])
        cs = ax.contourf(A, B, np.clip(Z, lev[0], lev[-1]), levels=lev, norm=norm, cmap=cmap, extend="both")
        ax.contour(A, B, np.clip(Z, lev[0], lev[-1]), levels=lev[::3], colors="white", linewidths=0.4, alpha=0.5)
        cb = fig.colorbar(cs, ax=ax, shrink=0.9, pad=0.01)
        cb.set_ticks(lev[::4])
        cb.set_ticklabels([f"{t:.3g}" for t in lev[::4]])
        cb.minorticks_off()
        cb.set_label(f"{split} loss (log scale)")
        m = np.flatnonzero(path == 0)
        m = m[np.argsort(arr["step"][m])]
        ax.plot(coords[m, 0], coords[m, 1], "-", color="black", lw=1.5, label="main path (large lr)")
        ax.plot(coords[m, 0], coords[m, 1], ".", color="black", ms=3)
        ax.plot(coords[m[0], 0], coords[m[0], 1], "o", mfc="white", mec="black", ms=6, label="initialisation")
        for i, e in enumerate(decay_epochs, start=1):
            s = np.flatnonzero(path == i)
            s = s[np.argsort(arr["step"][s])]
            c = sub_cmap(0.1 + 0.75 * (i - 1) / max(n_sub - 1, 1))
            ax.plot(coords[s, 0], coords[s, 1], "-", color=c, lw=1.3, label=f"decay at epoch {e}")
            ax.plot(coords[s[-1], 0], coords[s[-1], 1], "*", color=c, mec="black", mew=0.5, ms=12)
        k = np.argmin(Z)
        ax.plot(A.ravel()[k], B.ravel()[k], "X", color="white", mec="black", ms=9, label=f"grid minimum ({split})")
        ax.set_title(f"{split} loss on {cfg[f'eval_{split}_size']} images", fontsize=10)
        ax.set_xlabel(f"PC1 ({100 * evr[0]:.1f}% of variance)")
        ax.set_ylabel(f"PC2 ({100 * evr[1]:.1f}% of variance)")
        ax.set_xlim(a[0], a[-1])
        ax.set_ylim(b[0], b[-1])
        if equal:
            ax.set_aspect("equal")
        ax.grid(False)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(len(names), 7), fontsize=8)
    # the checkpoints' own losses beside the contours' values at their projections
    idx = np.arange(len(order))
    for split, c in (("train", "tab:green"), ("test", "tab:purple")):
        if f"ckpt_{split}_loss" in arr:
            side.semilogy(idx, arr[f"ckpt_{split}_loss"][order], "-", color=c, lw=1.2, label=f"{split}: checkpoint")
        side.semilogy(idx, arr[f"proj_{split}_loss"][order], ":", color=c, lw=1.2, label=f"{split}: contour at projection")
    bounds = np.flatnonzero(np.diff(path[order])) + 0.5
    for x in bounds:
        side.axvline(x, color="0.8", lw=0.8)
    side.set_xlabel("checkpoint (main path by step, then each subpath)")
    side.set_ylabel("loss")
    side.set_title("true loss vs contour value", fontsize=10)
    side.legend(fontsize=7)
    d = arr["distance"]
    surface = "curved sheet" if cfg["landscape"]["curved"] else "plane"
    stretch = "equal axis scales" if equal else f"axes not to scale: PC2 span / PC1 span = {ratio:.2g}"
    fig.suptitle(f"{cfg['train']['arch']} width {cfg['train']['width']}, seed {cfg.get('seed')}: {cfg['n_checkpoints']} "
                 f"checkpoints of {cfg['n_parameters']:,} parameters, {len(a)} × {len(b)} grid, {stretch}; "
                 f"distance off the {surface}: median {np.median(d):.3g}, max {d.max():.3g} "
                 f"(span in the plane {np.ptp(coords[:, :2], axis=0).max():.3g})", fontsize=9)
    return save_figure(fig, stem)


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(make(sys.argv[1]))
