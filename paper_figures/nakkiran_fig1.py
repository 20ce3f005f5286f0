"""Figure 1 of Nakkiran (2020): the same train loss, different test losses.

(a) gradient flow (small learning rate) from 0 until the train loss reaches eps;
(b) K gradient-descent steps with the large step eta = 1/gamma_1, then gradient flow to the same eps;
(c) the test-loss landscape with both end points, on the same train-loss ellipse.

Drawn from the ``fig_*`` arrays of a :class:`lrdecay.theory.studies.convex_mc.ConvexStudy` (see
:func:`lrdecay.theory.studies.convex_mc.figure1_data`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from lrdecay.paper_figures._style import as_result

_KEYS = ("fig_S", "fig_Sigma", "fig_beta_star", "fig_eps", "fig_K", "fig_eta", "fig_slow_path", "fig_gd_path",
         "fig_fast_flow_path", "fig_beta_slow", "fig_beta_fast", "fig_test_slow", "fig_test_fast")


def _load(result_path_or_data) -> dict:
    from lrdecay.theory.studies.convex_mc import ConvexStudy

    if isinstance(result_path_or_data, Mapping):
        data = dict(result_path_or_data)
    else:
        data = as_result(result_path_or_data, ConvexStudy).figure
    missing = [k for k in _KEYS if k not in data]
    if missing:
        raise ValueError(f"result_path_or_data: missing Figure 1 arrays {missing}; "
                         "expected the output of lrdecay.theory.studies.convex_mc.figure1_data or of 'lrdecay convex'")
    return {k: np.asarray(v) for k, v in data.items()}


def _quad(B1, B2, M, c):
    r1, r2 = B1 - c[0], B2 - c[1]
    return M[0, 0] * r1 ** 2 + 2 * M[0, 1] * r1 * r2 + M[1, 1] * r2 ** 2


def make_figure(result_path_or_data, out_stem) -> list[Path]:
    """Draw Figure 1 from a saved result file (or a dict of the ``fig_*`` arrays); writes
    ``<out_stem>.png`` and ``<out_stem>.pdf`` and returns both paths."""
    from lrdecay.paper_figures._style import plt, save_figure

    d = _load(result_path_or_data)
    S, Sig, bs = d["fig_S"], d["fig_Sigma"], d["fig_beta_star"]
    eps, K, eta = float(d["fig_eps"]), int(d["fig_K"]), float(d["fig_eta"])
    slow, gd, flow2 = d["fig_slow_path"], d["fig_gd_path"], d["fig_fast_flow_path"]
    b_slow, b_fast = d["fig_beta_slow"], d["fig_beta_fast"]
    L_slow, L_fast = float(d["fig_test_slow"]), float(d["fig_test_fast"])

    pts = np.vstack([slow, gd, flow2, [bs]])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = 0.12 * (hi - lo).max()
    x = np.linspace(lo[0] - pad, hi[0] + pad, 300)
    y = np.linspace(lo[1] - pad, hi[1] + pad, 300)
    B1, B2 = np.meshgrid(x, y)
    Ltr = _quad(B1, B2, S, bs)
    levels_tr = eps * np.array([2, 4, 8, 16, 32, 64, 128])
    levels_tr = levels_tr[levels_tr < Ltr.max()]

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.0), constrained_layout=True)
    c_slow, c_fast, c_eps = "tab:blue", "tab:orange", "tab:red"

    for ax, title in zip(axes[:2], ["(a) small learning rate", "(b) large, then small learning rate"]):
        ax.contour(B1, B2, Ltr, levels=levels_tr, colors="0.6", linewidths=0.7)
        ax.contour(B1, B2, Ltr, levels=[eps], colors=c_eps, linewidths=1.8)
        ax.set_title(title)

    ax = axes[0]
    ax.plot(slow[:, 0], slow[:, 1], color=c_slow, lw=2, label="gradient flow")
    ax.plot(*b_slow, "o", color=c_slow, ms=8, mec="k", label=f"end: test loss {L_slow / eps:.2f} ε")

    _draw_annealed(axes[1], gd, flow2, b_fast, K=K, eta=eta, L_fast=L_fast, eps=eps, color=c_fast)

    for ax in axes[:2]:
        ax.plot(*bs, "*", color="k", ms=11, label="β*")
        ax.plot([], [], color=c_eps, lw=1.8, label=f"train loss = ε = {eps:g}")
        ax.plot([], [], color="0.6", lw=0.7, label="train loss = 2ε, 4ε, 8ε, …")
        ax.set_xlim(x[0], x[-1])
        ax.set_ylim(y[0], y[-1])

    # (c): zoom on the train-loss ellipse; test-loss landscape with both end points
    _draw_zoom(fig, axes[2], S, Sig, bs, b_slow, b_fast, L_slow=L_slow, L_fast=L_fast, eps=eps,
               extent=(x[-1] - x[0], y[-1] - y[0]), colors=(c_slow, c_fast, c_eps))

    for ax in axes:
        ax.set_xlabel("β₁")
        ax.set_ylabel("β₂")
        ax.set_aspect("equal")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=7.5, frameon=False)
    alpha = float(d["fig_alpha"]) if "fig_alpha" in d else None
    note = (f"\n(a) ends at {L_slow / eps:.2f}ε, not 1.5ε: 1.5ε is the α → 0 limit, and here Lemma 2's condition "
            f"holds with α = {alpha:.2g} (bound 1.5(1−α)ε = {1.5 * (1 - alpha):.2f}ε)" if alpha is not None else "")
    fig.suptitle("Nakkiran (2020), Figure 1 — train loss (2/3)(β₁−β₁*)² + (1/3)(β₂−β₂*)², "
                 "test loss ½(β₁−β₁*)² + ½(β₂−β₂*)²; both runs stop at train loss ε" + note, fontsize=10)
    return save_figure(fig, out_stem)


def _draw_annealed(ax, gd, flow2, b_fast, *, K, eta, L_fast, eps, color) -> None:
    """Panel (b): the K large GD steps (coinciding iterates share one label), then gradient flow to eps."""
    ax.plot(gd[:, 0], gd[:, 1], "--", color=color, lw=1.0, alpha=0.8, marker="o", ms=4,
            label=f"{K} GD steps, η = 1/γ₁ = {eta:.3g}")
    # iterates that coincide (the top coordinate oscillates) share one label
    groups: dict = {}
    for i, p in enumerate(gd):
        groups.setdefault((round(float(p[0]), 9), round(float(p[1]), 9)), []).append(i)
    for (px, py), idx in groups.items():
        ax.annotate("k = " + ", ".join(map(str, idx)), (px, py), textcoords="offset points",
                    xytext=(0, -13), ha="center", fontsize=7, color=color)
    ax.plot(flow2[:, 0], flow2[:, 1], color=color, lw=2.6, label="then gradient flow")
    ax.plot(*b_fast, "s", color=color, ms=8, mec="k", label=f"end: test loss {L_fast / eps:.2f} ε")


def _draw_zoom(fig, ax, S, Sig, bs, b_slow, b_fast, *, L_slow, L_fast, eps, extent, colors) -> None:
    """Panel (c): the test-loss landscape around the train-loss ellipse, with both end points, in the
    shape (``extent``: width, height) of panels (a) and (b)."""
    c_slow, c_fast, c_eps = colors
    gmin = float(np.linalg.eigvalsh(S)[0])
    hy = 1.35 * np.sqrt(eps / gmin) if gmin > 0 else 1.0  # a bit more than the ellipse's long semi-axis
    hx = hy * extent[0] / extent[1]  # same shape as panels (a) and (b)
    xz = np.linspace(bs[0] - hx, bs[0] + hx, 300)
    yz = np.linspace(bs[1] - hy, bs[1] + hy, 300)
    Z1, Z2 = np.meshgrid(xz, yz)
    Tz = _quad(Z1, Z2, Sig, bs)
    cf = ax.contourf(Z1, Z2, Tz, levels=30, cmap="Purples")
    ax.contour(Z1, Z2, Tz, levels=sorted([L_fast, L_slow]), colors="k", linewidths=1.0, linestyles=":")
    ax.contour(Z1, Z2, _quad(Z1, Z2, S, bs), levels=[eps], colors=c_eps, linewidths=1.8)
    ax.plot(*b_slow, "o", color=c_slow, ms=9, mec="k", label=f"(a) end: test loss {L_slow / eps:.2f} ε")
    ax.plot(*b_fast, "s", color=c_fast, ms=9, mec="k", label=f"(b) end: test loss {L_fast / eps:.2f} ε")
    ax.plot(*bs, "*", color="k", ms=11, label="β*")
    ax.plot([], [], color=c_eps, lw=1.8, label="train loss = ε")
    ax.plot([], [], color="k", lw=1.0, ls=":", label="test-loss level of each end point")
    ax.set_xlim(xz[0], xz[-1])
    ax.set_ylim(yz[0], yz[-1])
    fig.colorbar(cf, ax=ax, shrink=0.55, label="test loss $L_\\mathcal{D}(\\beta)$")
    ax.set_title("(c) test-loss landscape (zoom)")
