"""VGG-11: the late-decay map — test loss over (epochs at the large rate before the decay) × (epochs after it).

After the authors' ``notebooks/figs0423/03/landscape_test_loss_traj_exp03.png``: each column is one
subpath, placed at its decay epoch, coloured by its test loss at every evaluated epoch after the decay
(seed mean over the seeds that evaluated that epoch). Anti-diagonals (dashed) are equal total budgets
(decay epoch + epochs after = constant); the top edge of the triangle is the common end. Right: the same
records against the total epoch, with the main path (no decay) in black: along a vertical line every
curve has had the same number of epochs.

Reads the subpaths' ``result.json`` of a profile's run directories (first variant) or of one run
directory; writes ``<dir>/figures/vgg_late_decay_map.png`` and ``.pdf``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lrdecay.empirics.analysis import load_run, run_constant_loss
from lrdecay.paper_figures._style import plt, save_figure
from lrdecay.paper_figures.vgg_learning_curves import run_dirs_of


def make_figure(path, stem=None) -> list[Path]:
    path = Path(path)
    return draw([load_run(d) for d in run_dirs_of(path)], stem or path / "figures" / "vgg_late_decay_map")


def decay_map(runs: list[dict]) -> dict:
    """Seed-mean test loss of every subpath at every epoch after its decay: ``{decay_epoch: (after, loss)}``."""
    out = {}
    for e in sorted({s["meta"]["decay_epoch"] for r in runs for s in r["subs"]}):
        rec: dict[int, list[float]] = {}
        for r in runs:
            for s in r["subs"]:
                if s["meta"]["decay_epoch"] == e:
                    for row in s["metrics"]:
                        rec.setdefault(int(row["epoch"]) - e, []).append(float(row["test_loss"]))
        after = np.array(sorted(rec))
        out[e] = (after, np.array([np.mean(rec[a]) for a in after]))
    return out


def draw(runs: list[dict], stem) -> list[Path]:
    from matplotlib import colors

    mp = decay_map(runs)
    es = np.array(sorted(mp))
    T = int(runs[0]["main"]["end_epoch"])
    fixed = runs[0]["config"].get("subpath_epochs")
    last = max([T] + [int(s["end_epoch"]) for r in runs for s in r["subs"]])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
    ax = axes[0]
    allv = np.concatenate([v for _, v in mp.values()]) if mp else np.array([1.0])
    norm = colors.Normalize(vmin=np.quantile(allv, 0.02), vmax=np.quantile(allv, 0.98))
    edges = np.concatenate([[es[0] - (es[1] - es[0]) / 2 if len(es) > 1 else es[0] - 25],
                            (es[1:] + es[:-1]) / 2, [es[-1] + (es[-1] - es[-2]) / 2 if len(es) > 1 else es[0] + 25]])
    mesh = None
    for i, e in enumerate(es):
        after, loss = mp[e]
        yed = np.concatenate([[0], (after[1:] + after[:-1]) / 2, [after[-1]]]) if len(after) > 1 else np.array([0, after[0]])
        half = 0.4 * (edges[i + 1] - edges[i])           # columns 80 % of their spacing: gaps show the subpaths
        mesh = ax.pcolormesh([e - half, e + half], yed, loss[:, None], norm=norm, cmap="viridis", shading="flat")
    span = (fixed if fixed else T - es.min()) if len(es) else T
    for tot in np.linspace(es.min(), last, 5) if len(es) else []:
        ax.plot([edges[0], edges[-1]], [tot - edges[0], tot - edges[-1]], "--", color="white", lw=0.8, alpha=0.8)
    if not fixed:
        ax.plot([edges[0], edges[-1]], [T - edges[0], T - edges[-1]], "-", color="white", lw=1.2,
                label=f"end of every subpath (epoch {T})")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, span * 1.02)
    ax.set_xlabel("epochs at the large rate before the decay (decay epoch)")
    ax.set_ylabel("epochs after the decay")
    if not fixed:
        ax.legend(fontsize=7, loc="lower left")
    ax.grid(False)
    if mesh is not None:
        fig.colorbar(mesh, ax=ax, label=f"test loss (mean of {len(runs)} seeds)")
    ax.set_title("dashed: equal total epochs", fontsize=9)
    ax = axes[1]
    cmap = plt.get_cmap("autumn")
    for i, e in enumerate(es):
        after, loss = mp[e]
        ax.plot(e + after, loss, color=cmap(0.1 + 0.75 * i / max(len(es) - 1, 1)), lw=1.3, label=f"decay at {e}")
    m = [r["main"]["metrics"] for r in runs]
    ep = sorted(set.intersection(*[{x["epoch"] for x in mm} for mm in m]))
    ml = [np.mean([next(x["test_loss"] for x in mm if x["epoch"] == k) for mm in m]) for k in ep]
    ax.plot(ep, ml, color="black", lw=1.2, label="main path (no decay)")
    const = []
    if "test_per_class" in runs[0]["main"]["data"]:
        const = [run_constant_loss(runs[0])]
        ax.axhline(const[0], color="0.3", ls=":", lw=1.2, label="constant predictor")
    ax.set_xlim(es.min() - 0.05 * span if len(es) else 0, last)
    shown = np.concatenate([allv, [v for k, v in zip(ep, ml) if k >= (es.min() if len(es) else 0)], const])
    lo, hi = np.min(shown), np.max(shown)
    ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo) if hi > lo else lo * 1.05)
    ax.set_xlabel("total epoch")
    ax.set_ylabel("test loss (seed mean)")
    ax.legend(fontsize=7)
    cfg = runs[0]["config"]
    design = f"fixed-length subpaths of {fixed} epochs" if fixed else "equal budget"
    fig.suptitle(f"late-decay map: lr {cfg['lr']:g} → {cfg['lr'] * cfg['decay_factor']:g}, {design}, seeds "
                 f"{[r['seed'] for r in runs]}", fontsize=9)
    return save_figure(fig, stem)


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(make_figure(sys.argv[1]))
