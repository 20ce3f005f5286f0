"""Train and test loss of the nonlinear model on a 2-D slice, for several gamma (reads a
:class:`theory.studies.landscape.LandscapeStudy`).

With d = 2 and n = 1 the minima manifold M = {w : x^T alpha(w) = y} is a curve: the train loss has
a valley of minima (open level sets) while the test loss has an isolated minimum at
``alpha^{-1}(alpha*)`` (closed level sets). The min-norm point ``w_mn`` is marked on the valley, with
the path of label-noise SGD and the point where gradient flow lands. With n = 1 the flatness
condition fails, so label-noise SGD drifts to the *flattest* point of M (marked), not to ``w_mn``.
"""
from __future__ import annotations

import numpy as np

from paper_figures._style import as_result, plt, save_figure
from theory.studies.landscape import LandscapeStudy


def make_figure(study, out_stem):
    """``study``: a LandscapeStudy or its file."""
    st = as_result(study, LandscapeStudy)
    gammas, g1, lim = st.gammas, st.axis, st.config["limit"]
    eta = st.config["eta"]
    fig, axes = plt.subplots(2, len(gammas), figsize=(4.2 * len(gammas), 8), squeeze=False)
    for j, gamma in enumerate(gammas):
        key = st.key(gamma)
        flow, pts, flat = st.flow_paths[key], st.sgd_paths[key], st.flattest[key]
        for row, (Z, name) in enumerate(((st.train[j], "train loss"), (st.test[j], "test loss"))):
            ax = axes[row, j]
            levels = np.quantile(np.log10(Z + 1e-12), np.linspace(0.0, 0.95, 25))
            cs = ax.contourf(g1, g1, np.log10(Z + 1e-12), levels=np.unique(levels), cmap="viridis", extend="both")
            fig.colorbar(cs, ax=ax, fraction=0.046, label=f"log10 {name}")
            ax.plot(flow[:, 0], flow[:, 1], color="w", lw=1.5, label="gradient flow")
            ax.plot(pts[:, 0], pts[:, 1], ".-", color="orange", ms=3, lw=1, label=f"label-noise SGD (η={eta:g})")
            ax.plot(*st.w_mn[j], "r*", ms=13, label="w_mn (min-norm on M)")
            if len(flat):
                ax.plot(flat[:, 0], flat[:, 1], "D", color="magenta", mec="k", ms=7, ls="none",
                        label="flattest points of M (min tr Hess)")
            ax.plot(*st.w_star[j], "wX", ms=9, mec="k", label="test minimum α⁻¹(α*)")
            ax.set_title(f"γ = {gamma:g}: {name}")
            ax.set_aspect("equal")
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.grid(False)
            if j == 0 or (j == 1 and row == 0):
                ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("d = 2, n = 1: a valley of train-loss minima, an isolated test minimum. The flatness condition "
                 "fails for n = 1, so SGD drifts to the flattest point of M", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_stem)
