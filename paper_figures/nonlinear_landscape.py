"""Train and test loss of the nonlinear model on a 2-D slice, for several gamma.

With d = 2 and n = 1 the minima manifold M = {w : x^T alpha(w) = y} is a curve: the train loss has
a valley of minima (open level sets) while the test loss has an isolated minimum at
``alpha^{-1}(alpha*)`` (closed level sets). The min-norm point ``w_mn`` is marked on the valley, with
the path of label-noise SGD and the point where gradient flow lands. With n = 1 the flatness
condition ``y^T (X X^T)^{-1} y >= (gamma + 2) ||y||^2 / ||X||_F^2`` reads ``1 >= gamma + 2`` and fails,
so the Hessian trace is not increasing along M: label-noise SGD drifts to the *flattest* point of M
(marked), not to ``w_mn`` — the condition at work. For gamma = 0 there is no drift at all.
"""
from __future__ import annotations

import numpy as np

from paper_figures._style import plt, save_figure


def slice_problem(gamma: float):
    from theory.problem import Problem
    X = np.array([[1.0, 0.35]])
    a_star = np.array([0.9, 0.8])
    return Problem(X=X, y=X @ a_star, alpha_star=a_star, w0=np.array([-0.6, 1.7]), gamma=gamma, sigma=0.5, seed=None)


def make_figure(out_stem, gammas=(0.0, 1.0, 2.0), grid=241, sgd_steps=30000, eta=0.05, seed=0):
    from theory import model as m
    from theory.flow import problem_gradient_flow
    from theory.sde import simulate

    fig, axes = plt.subplots(2, len(gammas), figsize=(4.2 * len(gammas), 8))
    lim = 2.0
    g1 = np.linspace(-lim, lim, grid)
    W = np.stack(np.meshgrid(g1, g1), axis=-1).reshape(-1, 2)
    for j, gamma in enumerate(gammas):
        p = slice_problem(gamma)
        tr = m.train_loss(W, p.X, p.y, gamma).reshape(grid, grid)
        te = m.test_loss(W, p.alpha_star, gamma).reshape(grid, grid)
        flow = problem_gradient_flow(p, eps=1e-8, t_max=1e5, reduce=False)
        # iterates of one SGD path, collected by running the engine in 30 consecutive segments
        pts = [p.w0]
        w = p.w0[None, :]
        for c in range(30):
            r = simulate(p, w, steps=sgd_steps // 30, lr=eta, seed=seed, path_offset=c, record_steps=[0])
            w = r.W_final
            pts.append(w[0])
        pts = np.array(pts)
        w_star = m.alpha_inverse(p.alpha_star, gamma)
        # flattest point of M: minimise h(||w||) along the curve alpha = alpha_mn + s t (t orthogonal to x)
        t = np.array([-p.X[0, 1], p.X[0, 0]]) / np.linalg.norm(p.X[0])
        s_grid = np.linspace(-6, 6, 24001)
        curve = m.alpha_inverse(p.alpha_mn + s_grid[:, None] * t, gamma)
        h = m.manifold_hessian_trace(np.linalg.norm(curve, axis=1), p.X, p.y, gamma)
        is_min = np.r_[False, (h[1:-1] < h[:-2]) & (h[1:-1] < h[2:]), False]
        flat = curve[is_min] if gamma > 0 else np.zeros((0, 2))
        for row, (Z, name) in enumerate(((tr, "train loss"), (te, "test loss"))):
            ax = axes[row, j]
            levels = np.quantile(np.log10(Z + 1e-12), np.linspace(0.0, 0.95, 25))
            cs = ax.contourf(g1, g1, np.log10(Z + 1e-12), levels=np.unique(levels), cmap="viridis", extend="both")
            fig.colorbar(cs, ax=ax, fraction=0.046, label=f"log10 {name}")
            ax.plot(flow.w[:, 0], flow.w[:, 1], color="w", lw=1.5, label="gradient flow")
            ax.plot(pts[:, 0], pts[:, 1], ".-", color="orange", ms=3, lw=1, label=f"label-noise SGD (η={eta:g})")
            ax.plot(*p.w_mn, "r*", ms=13, label="w_mn (min-norm on M)")
            if len(flat):
                ax.plot(flat[:, 0], flat[:, 1], "D", color="magenta", mec="k", ms=7, ls="none",
                        label="flattest points of M (min tr Hess)")
            ax.plot(*w_star, "wX", ms=9, mec="k", label="test minimum α⁻¹(α*)")
            ax.set_title(f"γ = {gamma:g}: {name}")
            ax.set_aspect("equal")
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.grid(False)
            if j == 0:
                ax.legend(fontsize=7, loc="lower left")
            if j == 1 and row == 0:
                ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("d = 2, n = 1: a valley of train-loss minima, an isolated test minimum. The flatness condition "
                 "fails for n = 1, so SGD drifts to the flattest point of M", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_stem)


if __name__ == "__main__":  # pragma: no cover
    import sys
    make_figure(sys.argv[1] if len(sys.argv) > 1 else "results/figures/nonlinear_landscape")
