"""The gamma study in one figure (reads the file written by ``lrdecay gamma-study``).

(a) fraction of instances whose large-learning-rate label-noise SGD reaches ``w_mn`` (Wilson 95 % intervals)
against gamma, with the source's bound ``1 - exp(-0.1 gamma^2)``, the fraction satisfying the flattest-point
condition and the fraction whose quasistatic drift ends within tol of ``w_mn``; (b) the drift time
``tau = eta^2 k`` to converge, every converged path and the median; (c) the median distance to ``w_mn`` after
retraction onto M along the runs, one curve per gamma, with the tolerance.
"""
from __future__ import annotations

import numpy as np

from lrdecay.paper_figures._style import as_result, plt, save_figure
from lrdecay.theory.studies.gamma import GammaStudyResult, source_bound


def make_figure(result, out_stem):
    """Draw the figure from a :class:`GammaStudyResult` (or its ``gamma_study.npz``); writes
    ``<out_stem>.png`` and ``.pdf``."""
    res = as_result(result, GammaStudyResult)
    rows = res.summary()
    c = res.config
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6))

    # (a) fractions
    _draw_fractions(axes[0], res, rows)

    # (b) tau to converge (gammas evenly spaced, labelled with converged/total)
    _draw_tau(axes[1], res, rows)

    # (c) median distance along M
    _draw_distance(axes[2], res)

    fig.suptitle(r"Large-LR label-noise SGD on $f(w;x) = \|w\|^\gamma\, w^\top x$"
                 + f": d = {c['d']}, n = {c['n']}, σ = {c['sigma']:g}, "
                 + (f"η = {c['lr_factor']:g}/" + r"$\lambda_{\max}$" + " at landing" if c.get("eta") is None
                    else f"fixed η = {c['eta']:g}")
                 + f", tol = {c['tol']:g}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_stem)


def _draw_fractions(ax, res, rows):
    """Panel (a): the fraction of instances converged, with the bound, the flatness condition and the drift
    prediction."""
    c, g = res.config, res.gammas
    gg = np.linspace(0, max(g.max(), 1e-9) * 1.02, 300)
    ax.plot(gg, source_bound(gg), color="k", lw=1.5, label="bound 1 − exp(−0.1γ²)")
    frac = np.array([r["fraction"] for r in rows])
    lo = np.array([r["ci_low"] for r in rows])
    hi = np.array([r["ci_high"] for r in rows])
    dx = 0.012 * max(float(g.max() - g.min()), 1.0)     # side by side where the three series coincide
    ax.errorbar(g - dx, frac, yerr=np.vstack([np.maximum(frac - lo, 0), np.maximum(hi - frac, 0)]), marker="o", color="C0",
                capsize=3, lw=1.5,
                label=f"converged within {c['max_steps']:,} steps (95% Wilson)")
    ax.plot(g, [r["flat_fraction"] for r in rows], marker="s", ls="--", color="C2", ms=5,
            label="flattest-point condition holds")
    ax.plot(g + dx, [r["predicted_fraction"] for r in rows], marker="^", ls=":", color="C1", ms=5,
            label="drift end point within tol (unlimited steps)")
    bad = np.array([not r["respects_ci"] for r in rows])
    if bad.any():
        ax.scatter(g[bad] - dx, frac[bad], s=140, facecolors="none", edgecolors="C3", lw=1.5, zorder=5,
                   label="bound violated (CI upper end below)")
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel("γ", labelpad=1)
    ax.set_ylabel("fraction of instances")
    ax.set_title(f"(a) convergence to $w_{{mn}}$ ({c['n_instances']} instances per γ)", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)


def _draw_tau(ax, res, rows):
    """Panel (b): each converged path's drift time, and the median with quartiles, per gamma."""
    g = res.gammas
    rng = np.random.default_rng(0)
    x = np.arange(len(g))
    any_tau = False
    for i in range(len(g)):
        t = res.tau[i][res.converged[i]]
        if t.size:
            ax.scatter(x[i] + rng.uniform(-0.15, 0.15, t.size), t, s=8, alpha=0.35, color="C0", lw=0,
                       label=None if any_tau else "each converged path")
            any_tau = True
    med = np.array([r["median_tau"] for r in rows])
    ok = np.isfinite(med)
    q25 = np.array([r["tau_q25"] for r in rows])
    q75 = np.array([r["tau_q75"] for r in rows])
    if ok.any():
        ax.errorbar(x[ok], med[ok], yerr=np.vstack([np.maximum(med[ok] - q25[ok], 0), np.maximum(q75[ok] - med[ok], 0)]),
                    marker="o", color="C3", capsize=3, label="median, quartiles (converged paths)")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{gamma:g}\n{100 * r['fraction']:.3g}%" for gamma, r in zip(g, rows)], fontsize=8)
    if any_tau:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"γ  (below: % of {res.n_instances} instances converged)")
    ax.set_ylabel("τ = η² k at convergence")
    ax.set_title("(b) drift time to reach $w_{mn}$", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)


def _draw_distance(ax, res):
    """Panel (c): the median relative distance along M to w_mn against the step."""
    c, g = res.config, res.gammas
    steps = np.maximum(res.record_steps, 1)
    cmap = plt.get_cmap("viridis")
    for i, gamma in enumerate(g):
        ax.plot(steps, np.median(res.rec_rel_dist_M[i], axis=1), color=cmap(i / max(len(g) - 1, 1)), lw=1.3,
                label=f"γ = {gamma:g}")
    ax.axhline(c["tol"], color="k", ls="--", lw=1, label=f"tol = {c['tol']:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(bottom=max(1e-4, ax.get_ylim()[0]))
    ax.set_xlabel("step k", labelpad=1)
    ax.set_ylabel("median ‖retract(w) − $w_{mn}$‖ / ‖$w_{mn}$‖")
    ax.set_title("(c) distance along M (converged paths frozen)", fontsize=10)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14))
