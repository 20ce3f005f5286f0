"""Direct numerical checks of the model's geometry, of the engine and of the sympy derivations, for
the verification report.

Each entry is a measured number compared in the report with a tolerance; the oracles are independent
of the code checked (finite differences, closed forms, a second simulation in other coordinates,
lambdified sympy expressions).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from theory import io


# Tolerances of the report's claims on these checks (fixed in advance; see each claim's text):
#: relative error of alpha's norm identity and inverse (a few ulps of double precision)
ALPHA_TOL = 1e-12
#: central finite differences of the gradient with h = 1e-6: truncation O(h^2) ~ 1e-12 relative, rounding
#: O(eps/h) ~ 1e-10 relative per entry, summed over d entries
TRACE_TOL = 1e-5
#: Lagrange condition, min-norm test loss (closed forms, rounding only)
MIN_NORM_TOL = 1e-10
#: reduced (n + 1 coordinates) against full (d = 2000) simulation, 300 steps: accumulated rounding
REDUCTION_TOL = 1e-9
#: full-batch label-noise SGD against Euler–Maruyama with dt = eta: the same arithmetic up to rounding
SGD_EM_TOL = 1e-12
#: Phase I time scale: ratio of eta * k_1 at eta and eta / 2
PHASE1_RATIO_RANGE = (0.67, 1.5)
#: numeric derivatives against lambdified sympy expressions (rounding of both)
SYMBOLIC_TOL = 1e-9


@dataclass
class Checks(io.Result):
    """Named measurements (a JSON dict of numbers, lists and strings)."""

    KIND = "Checks"

    name: str
    values: dict = field(default_factory=dict)

    def __getitem__(self, key):
        return self.values[key]


def _fd_hessian_trace(f_grad, w, h=1e-6):
    tr = 0.0
    for i in range(w.size):
        e = np.zeros_like(w)
        e[i] = h
        tr += (f_grad(w + e)[i] - f_grad(w - e)[i]) / (2 * h)
    return tr


def core_checks(paths: int = 8, seed: int = 0) -> Checks:
    """Geometry (alpha, Hessian trace on M, min-norm point, flatness condition), the exact reduction,
    SGD = EM, and the Phase I time scale."""
    from theory import model as m
    from theory.engine import simulate
    from theory.problem import Problem
    from theory.quasistatic import plateau_prediction

    rng = np.random.default_rng(seed)
    out: dict = {}
    gammas = [0.0, 0.5, 1.0, 2.0, 3.5]

    # alpha: norm identity and inverse
    err = 0.0
    for g in gammas:
        W = rng.standard_normal((20, 7)) * rng.uniform(0.2, 3.0, (20, 1))
        A = m.alpha(W, g)
        r = np.linalg.norm(W, axis=1)
        err = max(err, np.max(np.abs(np.linalg.norm(A, axis=1) - r ** (g + 1)) / r ** (g + 1)),
                  np.max(np.abs(m.alpha_inverse(A, g) - W) / np.linalg.norm(W, axis=1, keepdims=True)))
    out["alpha_rel_error"] = float(err)

    # Hessian trace on M against h(r), by finite differences of the gradient
    err = 0.0
    for g in gammas:
        p = Problem.generate(d=10, n=4, gamma=g, seed=seed + 1)
        for w in m.retract(rng.standard_normal((3, p.d)), p.X, p.y, g):
            tr = _fd_hessian_trace(lambda v: m.train_grad(v, p.X, p.y, g), w)
            h = m.manifold_hessian_trace(np.linalg.norm(w), p.X, p.y, g)
            err = max(err, abs(tr - h) / h)
    out["trace_rel_error"] = float(err)

    # min-norm point: Lagrange condition, minimality, test loss closed form
    tang, terr, shortest = 0.0, 0.0, np.inf
    for g in gammas:
        p = Problem.generate(d=30, n=8, gamma=g, seed=seed + 2)
        w = p.w_mn
        tang = max(tang, np.linalg.norm(m.project_tangent(w, w, p.X, g)) / np.linalg.norm(w))
        others = m.retract(w + 0.05 * rng.standard_normal((200, p.d)), p.X, p.y, g)
        shortest = min(shortest, np.linalg.norm(others, axis=1).min() / np.linalg.norm(w))
        proj = np.eye(p.d) - np.linalg.pinv(p.X) @ p.X
        closed = 0.5 * np.sum((proj @ p.alpha_star) ** 2)
        terr = max(terr, abs(float(m.test_loss(w, p.alpha_star, g)) - closed) / closed)
    out.update(min_norm_tangent=float(tang), min_norm_test_rel_error=float(terr), min_norm_shortest_ratio=float(shortest))

    # flatness condition <=> h'(r_mn) >= 0
    dis, count = 0, 0
    for g in [0.5, 1.0, 2.0, 4.0, 8.0]:
        for s in range(40):
            p = Problem.generate(d=20, n=6, gamma=g, seed=1000 + s)
            holds, _, _ = m.flatness_condition(p.X, p.y, g)
            dis += int(holds != (m.manifold_hessian_trace_deriv(np.linalg.norm(p.w_mn), p.X, p.y, g) >= 0))
            count += 1
    out.update(flatness_disagreements=dis, flatness_instances=count)

    # invariant subspace: full d against n + 1 coordinates on the same noise
    p = Problem.generate(d=2000, n=10, gamma=1.0, sigma=0.3, seed=seed + 3)
    full = simulate(p, n_paths=paths, steps=300, lr=0.02, seed=1, record_steps=[0])
    red = simulate(p, n_paths=paths, steps=300, lr=0.02, seed=1, record_steps=[0], reduce=True)
    out.update(reduction_max_diff=float(np.abs(full.W_final - red.W_final).max()), reduction_d=p.d, reduction_m=p.n + 1)

    # full-batch label-noise SGD equals Euler–Maruyama with dt = eta
    p = Problem.generate(d=50, n=10, gamma=1.0, sigma=0.3, seed=seed + 4)
    a = simulate(p, n_paths=paths, steps=500, lr=0.02, seed=2, record_steps=[0])
    b = simulate(p, n_paths=paths, steps=500, lr=0.02, method="em", dt=0.02, a=p.sigma**2 / p.n, seed=2, record_steps=[0])
    out["sgd_em_max_diff"] = float(np.abs(a.W_final - b.W_final).max())

    # Phase I takes O(1/eta) steps: eta * k1 at eta and eta/2
    p = Problem.generate(d=50, n=10, gamma=1.0, sigma=0.3, seed=seed)
    landing = m.retract(p.w0, p.X, p.y, p.gamma)
    etas, ek = [0.02, 0.01], []
    for eta in etas:
        plateau = plateau_prediction(p, landing, eta).exact
        sim = simulate(p, n_paths=paths, steps=int(100 / eta), lr=eta, seed=3, record_every=1, reduce=True,
                       stop_fn=lambda obs, k, pl=plateau: obs["train_loss"] <= 3 * pl)
        k1 = np.where(sim.status == "stopped", sim.stop_step, np.nan)
        ek.append(float(eta * np.nanmedian(k1)))
    out.update(phase1_etas=etas, phase1_eta_k=ek, phase1_eta_k_ratio=float(ek[0] / ek[1]))
    return Checks("core", out)


def symbolic_checks(points: int = 5, seed: int = 0) -> Checks:
    """Exact sympy identities (each simplified to 0; the plateau constant) and the largest relative
    error of the numeric gradient, Hessian, Hessian trace and its gradient against lambdified sympy
    expressions at random points, gamma in {0, 0.5, 1, 2, 3.7}."""
    import sympy as sp

    from theory import model as m
    from theory.problem import Problem
    from theory.symbolic import nonlinear as s

    ident = {"trace_on_M_minus_h": str(sp.simplify(s.manifold_trace_identity(3, 2))),
             "drift_minus_radial": str(sp.simplify(s.drift_identity(3, 2))),
             "lagrange_det": str(sp.simplify(s.lagrange_rowspace_identity(3, 2))),
             "plateau_constant": str(s.plateau_constant())}
    rng = np.random.default_rng(seed)
    pairs = {"train_grad": (m.train_grad, s.numeric_train_grad), "train_hessian": (m.train_hessian, s.numeric_train_hessian),
             "hessian_trace": (m.hessian_trace, s.numeric_hessian_trace),
             "hessian_trace_grad": (m.hessian_trace_grad, s.numeric_trace_gradient)}
    errs = {k: 0.0 for k in pairs}
    for g in (0.0, 0.5, 1.0, 2.0, 3.7):
        p = Problem.generate(d=4, n=2, gamma=g, seed=1)
        for w in rng.standard_normal((points, 4)):
            for k, (num, sym) in pairs.items():
                a, b = np.asarray(num(w, p.X, p.y, g)), np.asarray(sym(w, p.X, p.y, g))
                errs[k] = max(errs[k], float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)))
    return Checks("symbolic", {"identities": ident, "max_rel_error": errs})
