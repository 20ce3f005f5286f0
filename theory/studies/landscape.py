"""Train and test loss of the nonlinear model on a 2-D slice, for several gamma (the data of the
landscape figure).

With d = 2 and n = 1 the minima manifold M = {w : x^T alpha(w) = y} is a curve: the train loss has a
valley of minima (open level sets) while the test loss has an isolated minimum at
``alpha^{-1}(alpha*)`` (closed level sets). Computed per gamma: both losses on a grid, the gradient-flow
path from ``w0``, one label-noise SGD path, ``w_mn``, the test minimum and the flattest points of M.
With n = 1 the flatness condition ``y^T (X X^T)^{-1} y >= (gamma + 2) ||y||^2 / ||X||_F^2`` reads
``1 >= gamma + 2`` and fails, so the Hessian trace is not increasing along M: label-noise SGD drifts to
the *flattest* point of M, not to ``w_mn``. For gamma = 0 there is no drift at all.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from lrdecay.theory import io
from lrdecay.theory.models import nonlinear as m
from lrdecay.theory.engine import simulate
from lrdecay.theory.flow import problem_gradient_flow
from lrdecay.theory.problem import Problem
from lrdecay.theory.validation import integer, numbers, positive

LIMIT = 2.0   # the slice is [-LIMIT, LIMIT]^2


def slice_problem(gamma: float) -> Problem:
    """The d = 2, n = 1 instance of the slice."""
    X = np.array([[1.0, 0.35]])
    a_star = np.array([0.9, 0.8])
    return Problem(X=X, y=X @ a_star, alpha_star=a_star, w0=np.array([-0.6, 1.7]), gamma=gamma, sigma=0.5, seed=None)


def flattest_points(problem: Problem, n_grid: int = 24001) -> np.ndarray:
    """Local minima of ``h(||w||)`` along M (gamma > 0): M is the curve ``alpha = alpha_mn + s t``,
    ``t`` orthogonal to ``x``, searched on ``s`` in [-6, 6]."""
    if problem.gamma == 0:
        return np.zeros((0, 2))
    x = problem.X[0]
    t = np.array([-x[1], x[0]]) / np.linalg.norm(x)
    s_grid = np.linspace(-6, 6, n_grid)
    curve = m.alpha_inverse(problem.alpha_mn + s_grid[:, None] * t, problem.gamma)
    h = m.manifold_hessian_trace(np.linalg.norm(curve, axis=1), problem.X, problem.y, problem.gamma)
    is_min = np.r_[False, (h[1:-1] < h[:-2]) & (h[1:-1] < h[2:]), False]
    return curve[is_min]


@dataclass
class LandscapeStudy(io.Result):
    """Per gamma ``g`` (index ``j``): ``train[j]``, ``test[j]`` on the grid ``axis x axis`` (rows: second
    coordinate), and in the dicts keyed ``"g<gamma>"``: the gradient-flow path, the SGD iterates, the
    flattest points of M; ``w_mn[j]``, ``w_star[j]``."""

    KIND = "LandscapeStudy"

    gammas: np.ndarray
    axis: np.ndarray
    train: np.ndarray
    test: np.ndarray
    w_mn: np.ndarray
    w_star: np.ndarray
    flow_paths: dict
    sgd_paths: dict
    flattest: dict
    config: dict = field(default_factory=dict)
    plane: dict = field(default_factory=dict)   # the d = 3, n = 2 case on the plane holding M (see plane_study)

    @staticmethod
    def key(gamma) -> str:
        return f"g{float(gamma):g}"


def plane_problem(gamma: float = 1.0) -> Problem:
    """A d = 3, n = 2 instance where the flatness condition holds (y along the small singular direction of X):
    label-noise SGD drifts along M to ``w_mn``."""
    X = np.array([[1.0, 0.0, 0.2], [0.0, 0.3, 0.0]])
    a_star = np.array([0.3, 1.5, 0.5])
    return Problem(X=X, y=X @ a_star, alpha_star=a_star, w0=np.array([-0.9, 1.2, 0.9]), gamma=gamma, sigma=0.5,
                   seed=None)


def plane_study(grid: int, sgd_steps: int, eta: float = 0.1, seed: int = 0, gamma: float = 1.0) -> dict:
    r"""The d = 3, n = 2 case drawn on the plane ``P = span{w_mn, k}``, ``k`` spanning ``ker X``: ``alpha`` maps P
    to itself and ``M = alpha^{-1}(alpha_mn + span k)`` lies in P, so the valley is exactly on the plane. Losses
    on a grid of P, and the gradient-flow and SGD paths projected onto P (SGD's normal fluctuations leave P)."""
    p = plane_problem(gamma)
    e1 = p.w_mn / np.linalg.norm(p.w_mn)
    k = np.linalg.svd(p.X)[2][-1]
    e2 = k - (k @ e1) * e1
    e2 /= np.linalg.norm(e2)
    B = np.stack([e1, e2])                                     # (2, 3): plane coordinates
    lim = 2.5
    ax = np.linspace(-lim, lim, grid)
    A, C = np.meshgrid(ax, ax)
    W = A.reshape(-1, 1) * e1 + C.reshape(-1, 1) * e2
    flow = problem_gradient_flow(p, eps=1e-8, t_max=1e5, reduce=False).w
    sim = simulate(p, steps=sgd_steps, lr=eta, seed=seed, record_every=max(1, sgd_steps // 300),
                   observables=[("w0", lambda W: W[:, 0]), ("w1", lambda W: W[:, 1]), ("w2", lambda W: W[:, 2]),
                                ("dist_mn", lambda W: np.linalg.norm(W - p.w_mn, axis=1))])
    sgd = np.stack([sim.records[f"w{i}"][:, 0] for i in range(3)], axis=1)
    return {"axis": ax, "train": m.train_loss(W, p.X, p.y, gamma).reshape(grid, grid),
            "test": m.test_loss(W, p.alpha_star, gamma).reshape(grid, grid), "basis": B,
            "flow": flow @ B.T, "sgd": sgd @ B.T, "sgd_steps": sim.steps.astype(float),
            "sgd_dist_mn": sim.records["dist_mn"][:, 0], "w_mn": p.w_mn @ B.T,
            "w_star": m.alpha_inverse(p.alpha_star, gamma) @ B.T, "w0": p.w0 @ B.T,
            "gamma": np.array(gamma), "eta": np.array(eta),
            "flatness": np.array(m.flatness_condition(p.X, p.y, gamma)[0])}


@dataclass(frozen=True)
class LandscapeConfig:
    """The landscape study: a ``grid`` x ``grid`` slice for each gamma in ``gammas``, one label-noise SGD path of
    ``sgd_steps`` steps at ``eta`` from ``seed``, and the 3-D plane study with ``plane_steps`` steps (default: twice
    ``sgd_steps``)."""

    gammas: tuple = (0.0, 1.0, 2.0)
    grid: int = 241
    sgd_steps: int = 30000
    eta: float = 0.05
    seed: int = 0
    plane_steps: int | None = None

    def validate(self) -> "LandscapeConfig":
        numbers("gammas", self.gammas, 0.0)
        integer("grid", self.grid, 3)
        integer("sgd_steps", self.sgd_steps, 30)
        positive("eta", self.eta)
        integer("seed", self.seed, 0)
        if self.plane_steps is not None:
            integer("plane_steps", self.plane_steps, 30)
        return self


def run_landscape_study(config: LandscapeConfig | None = None, **keywords) -> LandscapeStudy:
    """Losses on the slice, gradient flow and one label-noise SGD path (``sgd_steps`` steps at ``eta``,
    its iterate kept every ``sgd_steps // 30`` steps) for each gamma.

    ``config`` (default :class:`LandscapeConfig`) with any of its fields replaced by ``keywords``, so that
    ``run_landscape_study(grid=41, sgd_steps=3000)`` still reads as before."""
    c = replace(config or LandscapeConfig(), **keywords).validate()
    gammas, grid, sgd_steps, eta, seed = numbers("gammas", c.gammas, 0.0), c.grid, c.sgd_steps, c.eta, c.seed
    g1 = np.linspace(-LIMIT, LIMIT, grid)
    W = np.stack(np.meshgrid(g1, g1), axis=-1).reshape(-1, 2)
    train, test, w_mn, w_star, flows, sgds, flats = [], [], [], [], {}, {}, {}
    for gamma in gammas:
        p = slice_problem(float(gamma))
        key = LandscapeStudy.key(gamma)
        train.append(m.train_loss(W, p.X, p.y, gamma).reshape(grid, grid))
        test.append(m.test_loss(W, p.alpha_star, gamma).reshape(grid, grid))
        flows[key] = problem_gradient_flow(p, eps=1e-8, t_max=1e5, reduce=False).w
        sim = simulate(p, steps=sgd_steps, lr=eta, seed=seed, record_every=max(1, sgd_steps // 300),
                       observables=[("w0", lambda W: W[:, 0]), ("w1", lambda W: W[:, 1])])
        sgds[key] = np.stack([sim.records["w0"][:, 0], sim.records["w1"][:, 0]], axis=1)
        w_mn.append(p.w_mn)
        w_star.append(m.alpha_inverse(p.alpha_star, gamma))
        flats[key] = flattest_points(p)
    plane_steps = 2 * sgd_steps if c.plane_steps is None else c.plane_steps
    plane = plane_study(grid, plane_steps, seed=seed)
    return LandscapeStudy(gammas, g1, np.array(train), np.array(test), np.array(w_mn), np.array(w_star),
                          flows, sgds, flats, dict(grid=grid, sgd_steps=sgd_steps, eta=eta, seed=seed, limit=LIMIT,
                                                   plane_steps=plane_steps), plane)


#: train valley: the sublevel set {L_n <= VALLEY_LEVEL x median(L_n)} must touch at least two sides of the window
VALLEY_LEVEL = 1e-2
#: test minimum: every edge point's test loss exceeds the minimum by this fraction of (median - minimum)
EDGE_MARGIN = 0.05


def _sides_touched(mask: np.ndarray) -> int:
    return int(mask[0, :].any()) + int(mask[-1, :].any()) + int(mask[:, 0].any()) + int(mask[:, -1].any())


def landscape_metrics(st: LandscapeStudy) -> list[dict]:
    """Per gamma, what the landscape claim measures on the grid: the sides of the window that the train
    valley ``{L_n <= VALLEY_LEVEL median}`` touches and its extent; where the test loss is smallest (its
    distance to ``alpha^{-1}(alpha*)`` in grid spacings) and how far above the minimum the window's edge stays,
    as a fraction of (median - minimum)."""
    h = float(st.axis[1] - st.axis[0])
    A, B = np.meshgrid(st.axis, st.axis)          # rows: second coordinate (as the grid was built)
    out = []
    for j, g in enumerate(st.gammas):
        T, E = st.train[j], st.test[j]
        valley = T <= VALLEY_LEVEL * np.median(T)
        pts = np.stack([A[valley], B[valley]], axis=1)
        extent = float(np.max(np.linalg.norm(pts[:, None] - pts[None], axis=-1))) if len(pts) > 1 else 0.0
        i, k = np.unravel_index(np.argmin(E), E.shape)
        arg = np.array([A[i, k], B[i, k]])
        edge = np.concatenate([E[0, :], E[-1, :], E[:, 0], E[:, -1]])
        lo, med = float(E.min()), float(np.median(E))
        out.append(dict(gamma=float(g), valley_sides=_sides_touched(valley), valley_extent=extent,
                        window=float(st.axis[-1] - st.axis[0]),
                        test_min_offset=float(np.linalg.norm(arg - st.w_star[j]) / h),
                        test_min_interior=bool(0 < i < E.shape[0] - 1 and 0 < k < E.shape[1] - 1),
                        edge_margin=float((edge.min() - lo) / (med - lo))))
    return out
