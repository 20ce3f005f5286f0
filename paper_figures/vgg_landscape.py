"""VGG-11 loss landscapes in the plane of the checkpoints' first two principal components.

Reads ``landscape.npz`` (written by :func:`lrdecay.empirics.landscape.run_landscape`) of a run directory, or of
the landscape run of a profile's output directory; writes ``<dir>/figures/vgg_landscape.png`` and ``.pdf``.

Left and middle: filled contours of the train and the test loss, each with its own colour scale (linear
levels as in the authors' figure, or ``levels="log"``; from the panel's minimum to its 60th percentile, so
that the low region is resolved; higher values share the top colour), the main path (black, from its
landing when the PCA was fitted to the post-landing checkpoints), the decayed subpaths (coloured) with
their end points (stars), each panel's minimum (train: X, test: P). The train panel outlines the valley
of ``vgg.valley`` (the sublevel set at ``VALLEY_LEVEL`` × the median train loss at the post-landing path);
the test panel hatches where the test loss is above the best constant predictor's. The axes have equal scales
unless one direction spans over 4× the other; then the stretch is stated in the title. Right: every
checkpoint's true loss on the evaluation images next to the contour's (bilinear) value at its
projection — where they differ, the checkpoint lies off the plane and the contours misstate its loss.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lrdecay.empirics.analysis import VALLEY_LEVEL, load_run, run_constant_loss
from lrdecay.paper_figures._style import plt, save_figure
from lrdecay.theory.io import load_json, load_result


def landscape_file(path) -> Path:
    path = Path(path)
    if (path / "profile.json").exists():
        prof = load_json(path / "profile.json")
        if not prof.get("landscape_run"):
            raise FileNotFoundError(f"{path}: this profile computes no landscape")
        return path / prof["landscape_run"] / "landscape.npz"
    return path / "landscape.npz"


def make_figure(path, stem=None, levels: str = "linear") -> list[Path]:
    """Draw the landscape of ``path`` (a run or profile directory) with ``levels`` "linear" or "log"."""
    path = Path(path)
    f = landscape_file(path)
    arr, cfg = load_result(f)
    const = None
    run = f.parent
    if (run / "main" / "result.json").exists():
        r = load_run(run)
        if "test_per_class" in r["main"]["data"]:
            const = run_constant_loss(r)
    return draw(arr, cfg, stem or path / "figures" / "vgg_landscape", levels=levels, constant_loss=const)


LEVEL_QUANTILE = 0.6   # colour levels span the panel's minimum to this quantile of its grid values
LEVELS = ("linear", "log")


def _levels(Z, kind: str = "linear"):
    z = Z[np.isfinite(Z) & (Z > 0)]
    lo, hi = max(z.min(), 1e-8), np.quantile(z, LEVEL_QUANTILE)
    hi = max(hi, lo * 1.05)
    return np.geomspace(lo, hi, 20) if kind == "log" else np.linspace(lo, hi, 20)


def _shown_rows(arr: dict, cfg: dict) -> np.ndarray:
    """Rows drawn as trajectories: those the PCA was fitted to, with each subpath's branch point."""
    if "fit" not in arr:
        return np.ones(len(arr["path"]), bool)
    return np.asarray(arr["fit"], bool) | (np.asarray(arr["duplicate"], bool) & (arr["path"] > 0)
                                           & np.isin(arr["path"], np.unique(arr["path"][np.asarray(arr["fit"], bool)])))


def draw(arr: dict, cfg: dict, stem, levels: str = "linear", constant_loss: float | None = None) -> list[Path]:
    from matplotlib import colors
    from matplotlib.lines import Line2D

    if levels not in LEVELS:
        raise ValueError(f"levels: expected one of {LEVELS}, got {levels!r}")
    a, b = arr["a"], arr["b"]
    A, B = np.meshgrid(a, b, indexing="ij")
    coords, path = arr["coords"], arr["path"]
    evr = arr["explained_variance_ratio"]
    span_a, span_b = np.ptp(a), np.ptp(b)
    ratio = span_b / span_a if span_a > 0 else 1.0
    equal = 0.25 <= ratio <= 4.0

    fig = plt.figure(figsize=(15, 5.2), constrained_layout=True)
    gs = fig.add_gridspec(1, 3, width_ratios=[1, 1, 0.8])
    axes = [fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[0, 1])]
    side = fig.add_subplot(gs[0, 2])
    order = np.lexsort((arr["step"], path))
    shown = _shown_rows(arr, cfg)
    post = "fit" in arr and cfg.get("fit_used") == "post_landing"
    handles: dict = {}
    for ax, split, cmap, mk in zip(axes, ("train", "test"), ("viridis", "magma"), ("X", "P")):
        Z = arr[f"{split}_loss"]
        lev = _levels(Z, levels)
        norm = colors.LogNorm(vmin=lev[0], vmax=lev[-1]) if levels == "log" else colors.Normalize(lev[0], lev[-1])
        cs = ax.contourf(A, B, np.clip(Z, lev[0], lev[-1]), levels=lev, norm=norm, cmap=cmap, extend="both")
        ax.contour(A, B, np.clip(Z, lev[0], lev[-1]), levels=lev[::3], colors="white", linewidths=0.4, alpha=0.5)
        cb = fig.colorbar(cs, ax=ax, shrink=0.9, pad=0.02, orientation="horizontal", location="bottom")
        cb.set_ticks(lev[::4])
        cb.set_ticklabels([f"{t:.3g}" for t in lev[::4]])
        cb.minorticks_off()
        cb.set_label(f"{split} loss ({levels} levels)")
        _draw_paths(ax, arr, cfg, shown, post)
        if split == "train" and post:
            after = np.flatnonzero((path == 0) & np.asarray(arr["fit"], bool))
            level = VALLEY_LEVEL * float(np.median(arr["proj_train_loss"][after]))
            ax.contour(A, B, Z, levels=[level], colors="cyan", linewidths=1.2)
            handles["valley"] = Line2D([], [], color="cyan", lw=1.2, label=f"valley (train loss ≤ {level:.3g})")
        if split == "test" and constant_loss is not None and (Z > constant_loss).any():
            ax.contourf(A, B, Z, levels=[constant_loss, np.inf], colors="none", hatches=["///"])
            ax.contour(A, B, Z, levels=[constant_loss], colors="0.2", linewidths=0.8, linestyles=":")
            handles["const"] = Line2D([], [], color="0.2", ls=":", label=f"test loss > constant predictor "
                                                                           f"({constant_loss:.3f}), hatched")
        k = np.argmin(Z)
        ax.plot(A.ravel()[k], B.ravel()[k], mk, color="white", mec="black", ms=10, label=f"{split} minimum")
        ax.set_title(f"{split} loss on {cfg[f'eval_{split}_size']} images", fontsize=10)
        ax.set_xlabel(f"PC1 ({100 * evr[0]:.1f}% of variance)")
        ax.set_ylabel(f"PC2 ({100 * evr[1]:.1f}% of variance)")
        ax.set_xlim(a[0], a[-1])
        ax.set_ylim(b[0], b[-1])
        if equal:
            ax.set_aspect("equal")
        ax.grid(False)
    for ax in axes:
        for h, name in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(name, h)
    fig.legend(list(handles.values()), [h.get_label() if k in ("valley", "const") else k for k, h in handles.items()],
               loc="outside lower center", ncol=min(len(handles), 6), fontsize=8)
    _draw_checkpoint_losses(side, arr, order)
    d = arr["distance"]
    surface = "curved sheet" if cfg["landscape"]["curved"] else "plane"
    stretch = "equal axis scales" if equal else f"axes not to scale: PC2 span / PC1 span = {ratio:.2g}"
    fig.suptitle(f"{cfg['train']['arch']} width {cfg['train']['width']}, seed {cfg.get('seed')}: {cfg['n_checkpoints']} "
                 f"checkpoints of {cfg['n_parameters']:,} parameters, {len(a)} × {len(b)} grid, {stretch}; "
                 f"distance off the {surface}: median {np.median(d):.3g}, max {d.max():.3g} "
                 f"(span in the plane {np.ptp(coords[:, :2], axis=0).max():.3g})", fontsize=9)
    return save_figure(fig, stem)



def _draw_paths(ax, arr: dict, cfg: dict, shown, post: bool) -> None:
    """The main path (from its initialisation, or from landing when the plane was fitted there) and each
    subpath, with its end marked, on one contour panel."""
    coords, path, decay_epochs = arr["coords"], arr["path"], cfg["decay_epochs"]
    sub_cmap = plt.get_cmap("autumn")
    n_sub = max(len(decay_epochs), 1)
    m = np.flatnonzero((path == 0) & shown)
    m = m[np.argsort(arr["step"][m])]
    ax.plot(coords[m, 0], coords[m, 1], "-", color="black", lw=1.5,
            label="main path (large lr" + (", from landing)" if post else ")"))
    ax.plot(coords[m, 0], coords[m, 1], ".", color="black", ms=3)
    if arr["step"][m[0]] == 0:
        ax.plot(coords[m[0], 0], coords[m[0], 1], "o", mfc="white", mec="black", ms=6, label="initialisation")
    for i, e in enumerate(decay_epochs, start=1):
        s = np.flatnonzero((path == i) & shown)
        if not len(s):
            continue
        s = s[np.argsort(arr["step"][s])]
        c = sub_cmap(0.1 + 0.75 * (i - 1) / max(n_sub - 1, 1))
        ax.plot(coords[s, 0], coords[s, 1], "-", color=c, lw=1.3, label=f"decay at epoch {e}")
        ax.plot(coords[s[-1], 0], coords[s[-1], 1], "*", color=c, mec="black", mew=0.5, ms=12)


def _draw_checkpoint_losses(side, arr: dict, order) -> None:
    """The side panel: the checkpoints' own losses beside the contours' values at their projections."""
    path = arr["path"]
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


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(make_figure(sys.argv[1]))
