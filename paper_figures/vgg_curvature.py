"""VGG-11: curvature of the train loss along the trajectory — Hessian trace and top eigenvalue.

Reads ``curvature.json`` (written by :func:`lrdecay.empirics.curvature.run_curvature`) of a profile's run
directories (first variant) or of one run directory; writes ``<dir>/figures/vgg_curvature.png`` and
``.pdf``. Left and middle: the Hutchinson trace (± its standard error) and the Lanczos top eigenvalue at
main-path checkpoints, one line per seed, the landing epoch of each seed dotted, the fitted Phase II
window shaded (from the first landing plus the settling transient), the parameter norm dashed on the
trace panel's right axis. Right: both at each subpath's end (epoch = the common end) against its decay epoch,
seed means, the main path's end (no decay) at the right edge.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lrdecay.empirics.analysis import CURVATURE_SETTLE, landing_epoch, load_run
from lrdecay.paper_figures._style import plt, save_figure
from lrdecay.paper_figures.vgg_learning_curves import run_dirs_of
from lrdecay.theory.io import load_json


def make_figure(path, stem=None) -> list[Path]:
    path = Path(path)
    dirs = run_dirs_of(path)
    data = [(load_json(d / "curvature.json"), load_run(d)) for d in dirs]
    return draw(data, stem or path / "figures" / "vgg_curvature")


def draw(data, stem) -> list[Path]:
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    cols = plt.get_cmap("tab10")
    lands = []
    sub_tr, sub_top, sub_e, end_tr, end_top = [], [], None, [], []
    for i, (c, r) in enumerate(data):
        main = [x for x in c["rows"] if x["path"] == "main"]
        e = [x["epoch"] for x in main]
        land = landing_epoch(r["main"]["metrics"])
        lands.append(land)
        axes[0].errorbar(e, [x["trace"] for x in main], yerr=[x["trace_se"] for x in main], fmt="o-", ms=3,
                         capsize=2, color=cols(i), label=f"seed {r['seed']}")
        axes[1].plot(e, [x["top_eig"] for x in main], "o-", ms=3, color=cols(i), label=f"seed {r['seed']}")
        for ax in axes[:2]:
            if land is not None:
                ax.axvline(land, color=cols(i), ls=":", lw=1)
        if main and "param_norm" in main[0]:
            if i == 0:
                norm_ax = axes[0].twinx()
                norm_ax.grid(False)
                norm_ax.set_ylabel("parameter norm (dashed)")
            norm_ax.plot(e, [x["param_norm"] for x in main], "--", lw=0.9, color=cols(i))
        subs = sorted((x for x in c["rows"] if x["path"] != "main"), key=lambda x: x["decay_epoch"])
        if subs:
            sub_e = [x["decay_epoch"] for x in subs]
            sub_tr.append([x["trace"] for x in subs])
            sub_top.append([x["top_eig"] for x in subs])
            end_tr.append(main[-1]["trace"])
            end_top.append(main[-1]["top_eig"])
    ok = [x for x in lands if x is not None]
    end = max(int(r["main"]["end_epoch"]) for _, r in data)
    for ax, name in ((axes[0], "Hessian trace (Hutchinson ± s.e.)"), (axes[1], "top Hessian eigenvalue (Lanczos)")):
        if ok:
            start = min(ok) + CURVATURE_SETTLE * (end - min(ok))
            ax.axvspan(start, end, color="0.93", zorder=0,
                       label=f"Phase II fitted (after landing + {100 * CURVATURE_SETTLE:.0f} % settling)")
        ax.set_xlabel("epoch (main path, large lr)")
        ax.set_ylabel(name)
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    ax = axes[2]
    if sub_e is not None:
        T = data[0][1]["main"]["end_epoch"]
        ax.plot(sub_e, np.mean(sub_tr, 0), "o-", color="tab:red", label="trace at subpath end")
        ax.plot([T], [np.mean(end_tr)], "s", color="tab:red", mfc="white", label="trace, no decay")
        ax.set_ylabel("Hessian trace at the end")
        ax2 = ax.twinx()
        ax2.plot(sub_e, np.mean(sub_top, 0), "^--", color="tab:blue", label="top eigenvalue at subpath end")
        ax2.plot([T], [np.mean(end_top)], "s", color="tab:blue", mfc="white", label="top eigenvalue, no decay")
        ax2.set_ylabel("top eigenvalue at the end")
        ax2.grid(False)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=7)
        fixed = data[0][1]["config"].get("subpath_epochs")
        ends = (f"each subpath runs {fixed} epochs" if fixed else f"all subpaths end at epoch {T}")
        ax.set_xlabel(f"decay epoch ({ends}; mean of {len(sub_tr)} seeds)")
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no subpaths", ha="center", va="center", transform=ax.transAxes)
    cc = data[0][0]["config"]["curvature"]
    fig.suptitle(f"curvature of the train loss on {data[0][0]['config']['eval_size']} training images "
                 f"(no augmentation, dropout off): {cc['probes']} Rademacher probes, {cc['lanczos_steps']} Lanczos steps",
                 fontsize=9)
    return save_figure(fig, stem)


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(make_figure(sys.argv[1]))
