"""VGG-11: final test loss and accuracy against the epoch of the learning-rate decay, and the learning curves.

Reads ``<run>/main/result.json`` and ``<run>/sub_e*/result.json`` (written by :mod:`empirics.train`);
writes ``<run>/figures/vgg_decay.png`` and ``.pdf``. Left: test loss at the end of each subpath's budget
against its decay epoch, the main path's final value dashed. Middle: the same for accuracy. Right: test
loss per epoch of the main path and every subpath.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from paper_figures._style import plt, save_figure
from theory.io import load_json


def make(run_dir, stem=None) -> list[Path]:
    run_dir = Path(run_dir)
    main = load_json(run_dir / "main" / "result.json")
    subs = sorted((load_json(d / "result.json") for d in run_dir.glob("sub_e*") if (d / "result.json").exists()),
                  key=lambda r: r["meta"]["decay_epoch"])
    return make_figure(main, subs, stem or run_dir / "figures" / "vgg_decay")


def make_figure(main: dict, subs: list[dict], stem) -> list[Path]:
    cfg = main["config"]
    e = np.array([r["meta"]["decay_epoch"] for r in subs])
    budget = subs[0]["end_epoch"] - subs[0]["meta"]["decay_epoch"] if subs else 0
    cmap = plt.get_cmap("autumn")
    col = [cmap(0.15 + 0.7 * i / max(len(subs) - 1, 1)) for i in range(len(subs))]
    loss_name = "MSE" if cfg["loss"] == "mse" else "cross-entropy"

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.9), constrained_layout=True)
    for ax, key, name in ((axes[0], "test_loss", f"final test loss ({loss_name})"),
                          (axes[1], "test_acc", "final test accuracy")):
        y = np.array([r["final"][key] for r in subs])
        ax.plot(e, y, "-", color="0.4", lw=1)
        ax.scatter(e, y, c=col, edgecolors="black", linewidths=0.5, s=45, zorder=3)
        ax.axhline(main["final"][key], ls="--", color="black", lw=1,
                   label=f"main path at epoch {main['end_epoch']} (lr {cfg['lr']:g})")
        ax.set_xlabel("decay epoch")
        ax.set_ylabel(name)
        ax.set_title(f"{name.split(' (')[0]}, {budget} epochs after the decay to lr {cfg['lr'] * cfg['decay_factor']:g}",
                     fontsize=9)
        ax.legend(fontsize=8)
    ax = axes[2]
    m = main["metrics"]
    ax.plot([r["epoch"] for r in m], [r["test_loss"] for r in m], color="black", lw=1.2, label="main path")
    ax.plot([r["epoch"] for r in m], [r["train_loss"] for r in m], color="black", lw=0.8, ls=":",
            label="main path, train")
    for r, c in zip(subs, col):
        mm = r["metrics"]
        ax.plot([r["meta"]["decay_epoch"]] + [x["epoch"] for x in mm],
                [_at(m, r["meta"]["decay_epoch"])] + [x["test_loss"] for x in mm], color=c, lw=1.4,
                label=f"decay at {r['meta']['decay_epoch']}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"test loss ({loss_name})")
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    ax.set_title("learning curves")
    fig.suptitle(f"{cfg['arch']} (width {cfg['width']}), {cfg['train_size'] or 'all'} training images, "
                 f"batch {cfg['batch_size']}, seed {cfg['seed']}", fontsize=9)
    return save_figure(fig, stem)


def _at(metrics: list[dict], epoch: int) -> float:
    """Main-path test loss at ``epoch`` (the nearest evaluated epoch at or before it)."""
    rows = [r for r in metrics if r["epoch"] <= epoch]
    return rows[-1]["test_loss"] if rows else np.nan


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(make(sys.argv[1]))
