"""VGG-11: learning curves — train and test loss and accuracy against the epoch, main path and every subpath.

Reads one run directory (``main/result.json``, ``sub_e*/result.json``; see :mod:`lrdecay.empirics.train`) or a
profile's output directory (then its first run directory, with the other seeds' main paths drawn thin);
writes ``<dir>/figures/vgg_learning_curves.png`` and ``.pdf``. Losses on a log scale; the landing epoch
(from which train accuracy stays ≥ 99 %), the decay epochs and the best constant predictor's test loss
are marked.
"""
from __future__ import annotations

from pathlib import Path

from lrdecay.empirics.analysis import REGIME_MIN_TRAIN_ACC, landing_epoch, load_run, run_constant_loss
from lrdecay.paper_figures._style import plt, save_figure
from lrdecay.theory.io import load_json


def run_dirs_of(path) -> list[Path]:
    """A profile directory's run directories of its first variant, or ``[path]`` for a run directory."""
    path = Path(path)
    if (path / "profile.json").exists():
        prof = load_json(path / "profile.json")
        return [path / d for d in prof["run_dirs"][prof["variants"][0]]]
    return [path]


def make_figure(path, stem=None) -> list[Path]:
    path = Path(path)
    runs = [load_run(d) for d in run_dirs_of(path)]
    return draw(runs, stem or path / "figures" / "vgg_learning_curves")


def draw(runs: list[dict], stem) -> list[Path]:
    first = runs[0]
    cfg = first["config"]
    subs = first["subs"]
    cmap = plt.get_cmap("autumn")
    col = [cmap(0.1 + 0.75 * i / max(len(subs) - 1, 1)) for i in range(len(subs))]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True, sharex=True)
    panels = [("train_loss", "train loss", True), ("test_loss", "test loss", True),
              ("train_acc", "train accuracy", False), ("test_acc", "test accuracy", False)]
    land = landing_epoch(first["main"]["metrics"])
    for ax, (key, name, logy) in zip(axes.ravel(), panels):
        for r in runs[1:]:
            m = r["main"]["metrics"]
            ax.plot([x["epoch"] for x in m], [x[key] for x in m], color="0.6", lw=0.7)
        m = first["main"]["metrics"]
        ax.plot([x["epoch"] for x in m], [x[key] for x in m], color="black", lw=1.3,
                label=f"main path (lr {cfg['lr']:g}), seed {first['seed']}")
        for r, c in zip(subs, col):
            mm = r["metrics"]
            ax.plot([x["epoch"] for x in mm], [x[key] for x in mm], color=c, lw=1.2,
                    label=f"decay at {r['meta']['decay_epoch']} (lr {r['lr']:g})")
        for e in cfg["decay_epochs"]:
            ax.axvline(e, color="0.85", lw=0.8, zorder=0)
        if land is not None:
            ax.axvline(land, color="tab:blue", ls=":", lw=1)
        if key == "train_acc":
            ax.axhline(REGIME_MIN_TRAIN_ACC, color="tab:blue", ls=":", lw=0.8)
        if key == "test_loss" and "test_per_class" in first["main"]["data"]:
            ax.axhline(run_constant_loss(first), color="0.3", ls=":", lw=1.2, label="constant predictor")
            ax.legend(fontsize=7, loc="lower left")
        if logy:
            ax.set_yscale("log")
        ax.set_ylabel(name)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    others = f"; other seeds' main paths in grey ({', '.join(str(r['seed']) for r in runs[1:])})" if len(runs) > 1 else ""
    land_txt = f"landed (train acc stays ≥ {REGIME_MIN_TRAIN_ACC:.0%}) at epoch {land}" if land is not None else "never landed"
    fig.suptitle(f"{cfg['arch']} width {cfg['width']}, {cfg['train_size'] or 'all'} training images, batch "
                 f"{cfg['batch_size']}, dropout {cfg['dropout']}, loss {cfg['loss']}, label noise {cfg['label_noise']}"
                 f"\nseed {first['seed']}: {land_txt} (dotted); decay epochs in grey{others}", fontsize=9)
    return save_figure(fig, stem)


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(make_figure(sys.argv[1]))
