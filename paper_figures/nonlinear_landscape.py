"""Train and test loss of the nonlinear model on 2-D slices (reads a
:class:`lrdecay.theory.studies.landscape.LandscapeStudy`).

Three columns: d = 2, n = 1 for each gamma — the train loss has a valley of minima M (open level sets),
the test loss an isolated minimum at ``alpha^{-1}(alpha*)`` (closed level sets); with n = 1 the flatness
condition fails, so label-noise SGD drifts to the *flattest* point of M, not to ``w_mn``. Last column:
d = 3, n = 2 (gamma = 1) where the condition holds, drawn on the plane that contains M: SGD drifts along
the valley to ``w_mn``. Colour: log10 of the loss with evenly spaced levels; SGD iterates coloured by time.
"""
from __future__ import annotations

import numpy as np

from lrdecay.paper_figures._style import as_result, plt, save_figure
from lrdecay.theory.studies.landscape import LandscapeStudy

DECADES = 5          # colour range: the top DECADES decades of each panel's values
STEP = 0.5           # contour spacing in log10 units


def _levels(Z):
    top = np.ceil(np.log10(Z.max()) / STEP) * STEP
    return np.arange(top - DECADES, top + STEP / 2, STEP)


def _panel(fig, ax, axis, Z, name, flow, sgd, w_mn, w_star, flat=None, labels=("w₁", "w₂")):
    from matplotlib import cm

    lv = _levels(Z)
    cs = ax.contourf(axis, axis, np.clip(np.log10(Z + 1e-300), lv[0], lv[-1]), levels=lv, cmap="viridis")
    fig.colorbar(cs, ax=ax, fraction=0.046, label=f"log₁₀ {name}")
    ax.plot(flow[:, 0], flow[:, 1], color="w", lw=1.5, label="gradient flow")
    t = np.linspace(0, 1, len(sgd))
    ax.plot(sgd[:, 0], sgd[:, 1], color="0.8", lw=0.5, zorder=2)
    ax.scatter(sgd[:, 0], sgd[:, 1], c=t, cmap=cm.plasma, s=6, zorder=3, label="label-noise SGD (early → late)")
    ax.plot(*w_mn, "r*", ms=14, mec="k", label="w_mn (min-norm point of M)", zorder=4)
    if flat is not None and len(flat):
        ax.plot(flat[:, 0], flat[:, 1], "D", color="magenta", mec="k", ms=7, ls="none",
                label="flattest point of M (min tr Hess)", zorder=4)
    ax.plot(*w_star, "wX", ms=10, mec="k", label="test minimum α⁻¹(α*)", zorder=4)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_aspect("equal")
    ax.grid(False)


def make_figure(study, out_stem):
    """``study``: a LandscapeStudy or its file."""
    st = as_result(study, LandscapeStudy)
    gammas, g1, lim = st.gammas, st.axis, st.config["limit"]
    eta = st.config["eta"]
    pl = st.plane
    ncol = len(gammas) + (1 if pl else 0)
    fig, axes = plt.subplots(2, ncol, figsize=(4.3 * ncol, 8.4), squeeze=False)
    for j, gamma in enumerate(gammas):
        key = st.key(gamma)
        for row, (Z, name) in enumerate(((st.train[j], "train loss"), (st.test[j], "test loss"))):
            ax = axes[row, j]
            _panel(fig, ax, g1, Z, name, st.flow_paths[key], st.sgd_paths[key], st.w_mn[j], st.w_star[j],
                   st.flattest[key])
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_title(f"d = 2, n = 1, γ = {gamma:g}: {name}" + ("\n(no drift at γ = 0)" if gamma == 0 else
                                                                    "\n(condition fails: SGD → flattest point)"),
                         fontsize=9)
    if pl:
        for row, (Z, name) in enumerate(((pl["train"], "train loss"), (pl["test"], "test loss"))):
            ax = axes[row, -1]
            _panel(fig, ax, pl["axis"], Z, name, pl["flow"], pl["sgd"], pl["w_mn"], pl["w_star"],
                   labels=("along w_mn", "along ker X"))
            c = pl["w_mn"]
            ax.set_xlim(c[0] - 1.6, c[0] + 1.6)
            ax.set_ylim(c[1] - 1.6, c[1] + 1.6)
            ax.set_title(f"d = 3, n = 2, γ = {float(pl['gamma']):g}: {name}\n(condition holds: SGD → w_mn; "
                         f"η = {float(pl['eta']):g})", fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Train loss: a valley of minima (M); test loss: an isolated minimum. Label-noise SGD (η = {eta:g}) "
                 "drifts along M to its flattest point — w_mn only where the flatness condition holds", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_stem)
