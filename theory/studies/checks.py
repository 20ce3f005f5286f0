"""Direct numerical checks of the model's geometry, of the engine and of the sympy derivations, for
the verification report.

Each entry is a measured number compared in the report with a tolerance; the oracles are independent
of the code checked (finite differences, closed forms, a second simulation in other coordinates,
lambdified sympy expressions).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lrdecay.theory import io


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
#: the engine's SGD and EM (dt = eta, default a) against a per-path loop with the Jacobian as a matrix: the
#: same arithmetic in another order; 500 steps of rounding at ~1e-15 each on |w| ~ 1, with a margin of 100
SGD_EM_TOL = 1e-10
#: Phase I exponent: the 95 % interval of the fitted p (k_1 ~ eta^-p) must contain 1 and p within this of 1
#: (the O(1) correction to k_1 = t_0 / eta moves p by O(eta_max / t_0) ~ 0.05 here)
PHASE1_EXPONENT_TOL = 0.1
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
    from lrdecay.theory.models import nonlinear as m
    from lrdecay.theory.engine import simulate
    from lrdecay.theory.problem import Problem
    from lrdecay.theory.quasistatic import plateau_prediction

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

    # the engine's full-batch label-noise SGD, and its Euler–Maruyama with dt = eta and the default
    # a = sigma^2 / n, against an independent per-path loop with the Jacobian as a matrix
    p = Problem.generate(d=50, n=10, gamma=1.0, sigma=0.3, seed=seed + 4)
    ref = naive_label_noise_sgd(p, np.tile(p.w0, (paths, 1)), eta=0.02, steps=500, seed=2)
    a = simulate(p, n_paths=paths, steps=500, lr=0.02, seed=2, record_steps=[0])
    b = simulate(p, n_paths=paths, steps=500, lr=0.02, method="em", dt=0.02, seed=2, record_steps=[0])
    out["sgd_loop_max_diff"] = float(np.abs(a.W_final - ref).max())
    out["em_loop_max_diff"] = float(np.abs(b.W_final - ref).max())
    out["sgd_em_max_diff"] = max(out["sgd_loop_max_diff"], out["em_loop_max_diff"])

    out.update(phase1_exponent(paths=max(paths, 16), seed=3))
    return Checks("core", out)


def naive_label_noise_sgd(problem, W0, *, eta: float, steps: int, seed: int) -> np.ndarray:
    """Full-batch label-noise SGD written out per path, ``w <- w - (eta/n) J(w)^T (X alpha(w) - y - sigma xi)``
    with the Jacobian ``J = X D alpha(w)`` formed as a matrix and ``xi`` from the engine's documented
    streams ``SeedSequence(seed, spawn_key=(p, 0))``: an oracle for the engine's fused update."""
    from lrdecay.theory.models import nonlinear as m
    from lrdecay.theory.engine import path_generators

    p = problem
    out = []
    for w, g in zip(np.asarray(W0, dtype=float), path_generators(seed, range(len(W0)), 0)):
        w = w.copy()
        for _ in range(steps):
            xi = g.standard_normal(p.n)
            J = m.jacobian(w, p.X, p.gamma)
            w = w - eta / p.n * J.T @ (m.residual(w, p.X, p.y, p.gamma) - p.sigma * xi)
        out.append(w)
    return np.array(out)


PHASE1_ETAS = (0.02, 0.01, 0.005, 0.0025)


def phase1_exponent(paths: int = 16, seed: int = 3, etas=PHASE1_ETAS) -> dict:
    r"""Phase I time scale: the number of steps ``k_1`` label-noise SGD needs to bring the train loss
    below a fixed level ``eps_0`` (3 x the quasistatic plateau at the largest eta, so that every run
    reaches it), at several eta. Gradient flow reaches ``eps_0`` at a time ``t_0``, so the prediction
    is ``k_1 = t_0 / eta + O(1)``: ``log k_1`` is linear in ``log eta`` with slope ``-1``. Fitted by least
    squares over all paths; the exponent ``p = -slope`` with its 95 % t-interval, and ``t_0`` from the
    root-found gradient flow for comparison with ``eta k_1``."""
    from scipy import stats as st

    from lrdecay.theory.models import nonlinear as m
    from lrdecay.theory.engine import simulate
    from lrdecay.theory.flow import problem_gradient_flow
    from lrdecay.theory.problem import Problem
    from lrdecay.theory.quasistatic import plateau_prediction

    p = Problem.generate(d=50, n=10, gamma=1.0, sigma=0.3, seed=0)
    landing = m.retract(p.w0, p.X, p.y, p.gamma)
    eps0 = 3 * plateau_prediction(p, landing, max(etas)).exact
    x, y, eta_k = [], [], []
    for eta in etas:
        sim = simulate(p, n_paths=paths, steps=int(20 / eta), lr=eta, seed=seed, record_steps=[0], reduce=True,
                       stop_loss=eps0)
        k1 = sim.stop_step[sim.status == "stopped"].astype(float)
        x += [np.log(eta)] * len(k1)
        y += list(np.log(k1))
        eta_k.append(float(eta * np.mean(k1)) if len(k1) else float("nan"))
    fit = st.linregress(x, y)
    half = st.t.ppf(0.975, len(x) - 2) * fit.stderr
    t0 = problem_gradient_flow(p, eps=eps0, t_max=1e4).t_final
    return dict(phase1_etas=list(etas), phase1_eta_k=eta_k, phase1_exponent=float(-fit.slope),
                phase1_exponent_ci=[float(-fit.slope - half), float(-fit.slope + half)],
                phase1_points=len(x), phase1_eps0=float(eps0), phase1_gf_time=float(t0))


def symbolic_checks(points: int = 5, seed: int = 0) -> Checks:
    """Exact sympy identities (each simplified to 0; the plateau constant) and the largest relative
    error of the numeric gradient, Hessian, Hessian trace and its gradient against lambdified sympy
    expressions at random points, gamma in {0, 0.5, 1, 2, 3.7}."""
    import sympy as sp

    from lrdecay.theory.models import nonlinear as m
    from lrdecay.theory.problem import Problem
    from lrdecay.theory.symbolic import nonlinear as s

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
