"""The Phase II rate law: SGD drift times against the drift ODE's, the law's regressor, and the per-cell ratios
(reads :class:`lrdecay.theory.studies.rate_law.RateLawResult`)."""
from __future__ import annotations

import numpy as np

from lrdecay.paper_figures._style import as_result, plt, save_figure
from lrdecay.theory.studies.rate_law import RateLawResult


def _readable_log_ticks(ax):
    """Labels on a log-log panel that do not collide: major ticks at 1, 2, 5 x 10^k on an axis spanning less than
    two decades (powers of ten on a longer one), written as plain numbers, and no labels on the minor ticks
    (matplotlib labels them on a short log axis, where they overlap)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.autoscale_view()
    for axis in (ax.xaxis, ax.yaxis):
        lo, hi = axis.get_view_interval()
        span = np.log10(hi / lo) if lo > 0 and hi > lo else 0.0
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if span < 2 else (1.0,), numticks=12))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def make_figure(res, out_stem):
    res = as_result(res, RateLawResult)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    gammas = sorted(set(res.gamma.tolist()))
    marks = {n: mk for n, mk in zip(sorted(set(res.n.tolist())), "os^Dv")}
    ok = res.usable
    ax = axes[0]
    for gi, g in enumerate(gammas):
        for n, mk in marks.items():
            sel = ok & (res.gamma == g) & (res.n == n)
            for cens, fill in ((False, colors[gi % 10]), (True, "none")):
                s = sel & (res.censored == cens)
                if s.any():
                    ax.scatter(res.tau_ode[s], res.tau_sgd[s], marker=mk, facecolors=fill, edgecolors=colors[gi % 10],
                               s=22, label=f"γ={g:g}, n={n}" if not cens else None)
    lim = np.array([np.nanmin(res.tau_ode[ok]) * 0.8, np.nanmax(res.tau_sgd[ok]) * 1.2])
    lo, hi = res.ratio_range
    ax.plot(lim, lim, "k-", lw=1, label="τ_SGD = τ_ODE")
    ax.fill_between(lim, lo * lim, hi * lim, color="k", alpha=0.08, label=f"claim band [{lo:.2f}, {hi:.2f}]")
    ax.set(xscale="log", yscale="log", xlabel="τ_ODE (η → 0 drift ODE from the landing point)",
           ylabel="τ_SGD = η²k (open: censored)", title="drift time to w_mn, per instance")
    ax.legend(fontsize=6, ncol=2)
    ax = axes[1]
    x = res.law_x
    for src, t, c in (("ODE", res.tau_ode, colors[0]), ("SGD", res.tau_sgd, colors[3])):
        s = ok & (x > 0)
        ax.scatter(x[s], t[s], s=10, color=c, alpha=0.6, label=f"τ_{src}")
        f = res.fits.get(f"law_{src.lower()}")
        if f:
            xx = np.geomspace(x[s].min(), x[s].max(), 50)
            ax.plot(xx, np.exp(f["coef"][0]) * xx ** f["coef"][1], color=c,
                    label=f"{src} fit: p = {f['coef'][1]:.2f} [{f['ci_low'][1]:.2f}, {f['ci_high'][1]:.2f}]")
    xx = np.geomspace(np.nanmin(x[ok & (x > 0)]), np.nanmax(x[ok]), 20)
    ax.plot(xx, xx, "k:", lw=1, label="linearised: τ = ln(d₀/tol)/κ")
    ax.set(xscale="log", yscale="log", xlabel="ln(d₀/tol) / κ", ylabel="τ", title="the law τ ≈ C (ln(d₀/tol)/κ)^p")
    _readable_log_ticks(ax)
    ax.legend(fontsize=7)
    ax = axes[2]
    rows = res.cell_rows()
    labels = [f"γ={r['gamma']:g} ‖w₀‖={r['w0_norm']:g} n={r['n']}" for r in rows]
    y = np.arange(len(rows))
    ax.scatter([r["km_ratio"] for r in rows], y, color=colors[0], label="vs η → 0 ODE")
    ax.scatter([r["km_ratio_eta"] for r in rows], y, color=colors[2], marker="x", label="vs finite-η ODE (R_η)")
    for yi, r in zip(y, rows):
        if r["eta_stall"]:
            ax.annotate(f"finite-η ODE stalls: {r['eta_stall']} ({r['eta_stall_censored']} SGD censored)",
                        (max(r["km_ratio"], 1.0), yi), fontsize=6, xytext=(4, -2), textcoords="offset points")
    ax.axvspan(lo, hi, color="k", alpha=0.08)
    ax.axvline(1, color="k", lw=1)
    ax.set_yticks(y, labels, fontsize=6)
    ax.invert_yaxis()
    ax.set(xlabel="Kaplan–Meier median of τ_SGD / τ_ODE", title="per cell")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_stem)
