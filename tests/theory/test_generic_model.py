"""The generic model (lrdecay.theory.models.generic: everything from f(theta, X) by torch.func) against independent oracles:
the hand-written main model, diagonal and two-layer networks (to rounding), central finite differences, the closed-form
end points of the drift (w_mn, the linprog l1 interpolator, the two-layer trace minimum, the depth-3 network's
l_{4/3} interpolator) and a plain per-path SGD loop."""
import numpy as np
import pytest

pytest.importorskip("torch")

from tests.conftest import fd_jacobian  # noqa: E402
from lrdecay.theory.models import nonlinear as m  # noqa: E402
from lrdecay.theory import quasistatic as q  # noqa: E402
from lrdecay.theory.engine import path_generators, simulate  # noqa: E402
from lrdecay.theory.models import generic_examples as ge  # noqa: E402
from lrdecay.theory.models.diagonal import DiagonalNetwork  # noqa: E402
from lrdecay.theory.models.generic import GenericModel, drift_flow  # noqa: E402
from lrdecay.theory.models.two_layer import TwoLayerLinear  # noqa: E402
from lrdecay.theory.problem import Problem  # noqa: E402

#: "to rounding": relative to the size of the compared quantity, a few hundred ulps of the sums involved
RTOL = 1e-10


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), 1e-300))


class _Main:
    """The main model's functions behind the interface the agreement test reads."""

    def __init__(self, problem):
        self.p = problem
        self.NAME = "nonlinear"

    def retract(self, W):
        return m.retract(W, self.p.X, self.p.y, self.p.gamma)

    def jacobian(self, W):
        return m.jacobian(W, self.p.X, self.p.gamma)

    def hessian_trace(self, W):
        return m.hessian_trace(W, self.p.X, self.p.y, self.p.gamma)

    def project_tangent(self, W, V):
        return m.project_tangent(W, V, self.p.X, self.p.gamma)

    def drift_velocity(self, W, a):
        return q.drift_velocity(self.p, W, a)

    def test_loss(self, W):
        return m.test_loss(W, self.p.alpha_star, self.p.gamma)

    def increment(self, W, dt, c, xi):
        return m.NonlinearModel.from_problem(self.p).increment(W, dt, c, xi)


def _pairs():
    """(hand-written, generic twin, a few starts) for the three models."""
    out = []
    for gamma in (1.0, 2.0):
        p = Problem.generate(d=7, n=3, gamma=gamma, sigma=1.0, seed=1)
        out.append((_Main(p), ge.from_problem(p), p.w0[None] * np.array([[1.0], [1.3]])))
    D = DiagonalNetwork.generate(d=6, n=3, sparsity=2, sigma=0.5, seed=1)
    out.append((D, ge.from_linear_readout(D), D.theta0 + 0.2 * np.random.default_rng(0).standard_normal((2, D.dim))))
    T = TwoLayerLinear.generate(d=5, n=2, hidden=3, sigma=0.5, seed=1)
    out.append((T, ge.from_linear_readout(T), T.theta0 + 0.2 * np.random.default_rng(1).standard_normal((2, T.dim))))
    return out


PAIRS = _pairs()
PAIR_IDS = ["nonlinear-gamma1", "nonlinear-gamma2", "diagonal", "two-layer"]


def agreement_table(hand, gen, W0) -> dict:
    """Largest relative differences, generic against hand-written, at retracted points of M."""
    W = hand.retract(W0)
    a, rng = 0.1, np.random.default_rng(5)
    V = rng.standard_normal(W.shape)
    xi = rng.standard_normal((len(W), gen.n))
    dW_h, L_h = hand.increment(W0, 0.01, 0.003, xi)
    dW_g, L_g = gen.increment(W0, 0.01, 0.003, xi)
    return {"jacobian": _rel(gen.jacobian(W), hand.jacobian(W)),
            "trace": _rel(gen.hessian_trace(W), hand.hessian_trace(W)),
            "tangent projection": _rel(gen.project_tangent(W, V), hand.project_tangent(W, V)),
            "drift": _rel(gen.drift_velocity(W, a), hand.drift_velocity(W, a)),
            "test loss": _rel(gen.test_loss(W), hand.test_loss(W)),
            "increment": max(_rel(dW_g, dW_h), _rel(L_g, L_h))}


@pytest.mark.parametrize("hand, gen, W0", PAIRS, ids=PAIR_IDS)
def test_generic_equals_hand_written_to_rounding(hand, gen, W0):
    """Jacobian, trace (on M, where tr Hess L_n = ||J||_F^2 / n), tangent projection, drift velocity (on M the full
    trace's gradient and the Gauss–Newton trace's differ by a normal vector), test loss and the SGD increment."""
    table = agreement_table(hand, gen, W0)
    assert max(table.values()) <= RTOL, table


def test_derivatives_match_finite_differences():
    """A ReLU network (no closed form): J, grad L_n and grad tr H against central differences (h = 1e-6 at a point
    whose pre-activations are all at least 1e-3 from the kink, beyond the step's reach h ||x|| < 1e-5; truncation O(h^2), rounding O(1e-16 / h); 1e-6)."""
    M = ge.relu_teacher_student(d=3, hidden=4, n=5, n_test=10, seed=2)
    th = M.theta0
    pre = M.X @ th[:12].reshape(4, 3).T
    assert np.min(np.abs(pre)) > 1e-3
    np.testing.assert_allclose(M.jacobian(th), fd_jacobian(M.predict, th), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(M.train_grad(th), fd_jacobian(M.train_loss, th)[0], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(M.hessian_trace_grad(th), fd_jacobian(M.hessian_trace, th)[0], rtol=1e-6, atol=1e-8)
    eta = 0.3 / M.sharpness(th)
    np.testing.assert_allclose(M.discrete_regularizer(th, eta),
                               -(2 / eta) * np.sum(np.log(1 - eta * M.gauss_newton_eigs(th) / 2)), rtol=1e-12)


def test_hessian_on_M_is_gauss_newton_and_finite_eta_drift_matches():
    """On M the full Hessian (torch.func.hessian) is J^T J / n; the finite-eta drift (gradient of the log-determinant)
    equals lrdecay.theory.quasistatic.discrete_drift_velocity (central differences of the eigenvalue sum, 1e-6)."""
    p = Problem.generate(d=6, n=3, gamma=1.0, sigma=1.0, seed=4)
    g = ge.from_problem(p)
    w = m.retract(p.w0, p.X, p.y, p.gamma)
    J = g.jacobian(w)
    np.testing.assert_allclose(g.train_hessian(w), J.T @ J / g.n, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g.train_hessian(w), m.train_hessian(w, p.X, p.y, p.gamma), rtol=1e-10, atol=1e-12)
    eta = 0.5 / g.sharpness(w)
    a = p.sigma**2 / p.n
    np.testing.assert_allclose(g.drift_velocity(w, a, eta=eta), q.discrete_drift_velocity(p, w, a, eta), rtol=1e-6,
                               atol=1e-9)
    lead, exact = g.plateau(w, eta)
    ref = q.plateau_prediction(p, w, eta)
    assert (lead, exact) == pytest.approx((ref.leading, ref.exact), rel=1e-12)


def test_retraction_status():
    """Gauss–Newton reaches M (train loss at rounding) and is then the identity; a path that has not got there
    (no step allowed) is reported, not raised."""
    M = ge.relu_teacher_student(d=3, hidden=10, n=5, n_test=10, seed=0)
    R, ok = M.retract_status(M.theta0)
    assert ok and M.train_loss(R) < 1e-24
    R2, ok2 = M.retract_status(R)
    np.testing.assert_array_equal(R2, R)
    _, bad = M.retract_status(np.stack([R, M.theta0]), max_iter=0)
    assert list(bad) == [True, False]


def test_engine_sgd_equals_a_plain_per_path_loop():
    """simulate(generic main model, "sgd") = w <- w - (eta/n) J^T (r - sigma xi) with the hand-written Jacobian and
    the engine's per-path noise streams (path_generators); 40 steps of rounding, 1e-11."""
    p = Problem.generate(d=6, n=3, gamma=1.0, sigma=0.7, seed=2)
    g = ge.from_problem(p)
    W0 = p.w0 * np.array([[1.0], [0.8]])
    eta, steps = 0.02, 40
    sim = simulate(g, W0, steps=steps, lr=eta, method="sgd", sigma=p.sigma, seed=7, record_every=steps)
    noise = np.stack([gen.standard_normal((steps, p.n)) for gen in path_generators(7, range(2), 0)], axis=1)
    W = W0.copy()
    for k in range(steps):
        r = m.residual(W, p.X, p.y, p.gamma)
        W = W - eta / p.n * np.einsum("pnd,pn->pd", m.jacobian(W, p.X, p.gamma), r - p.sigma * noise[k])
    np.testing.assert_allclose(sim.W_final, W, rtol=1e-11, atol=1e-13)
    idx, xi = np.array([[0, 2], [1, 0]]), np.array([[0.3, -1.0], [0.5, 0.2]])
    dW = g.minibatch_increment(W0, np.array([[0.1], [0.2]]), idx, xi, p.sigma)
    for k in range(2):
        def loss(t, k=k):
            return 0.5 * np.mean((m.predict(t, p.X[idx[k]], p.gamma) - p.y[idx[k]] - p.sigma * xi[k]) ** 2)
        np.testing.assert_allclose(dW[k], -(0.1 * (k + 1)) * fd_jacobian(loss, W0[k])[0], rtol=1e-6, atol=1e-9)


def test_drift_end_points_match_closed_forms():
    """Long drift runs stop (speed below 1e-7 of the start's) at: w_mn (main model, flatness condition holds); the
    two-layer network's trace minimum 2 ||y|| ||X||_F / n with ||w_2||^2 = ||y|| / ||X||_F; the diagonal network's
    weighted-l1 interpolator (linprog). Tolerance 1e-5 (relative): the speed stop leaves O(1e-7) of the linear
    approach (times the ratio of the slowest to the fastest tangent rate), the integrator's tolerance is 1e-9."""
    p = Problem.generate(d=6, n=3, gamma=1.0, sigma=1.0, seed=0)
    assert m.flatness_condition(p.X, p.y, p.gamma)[0]
    g = ge.from_problem(p)
    fl = drift_flow(g, p.w0, 1e4, p.sigma**2 / p.n, n_eval=2, speed_rtol=1e-7)
    assert fl.status[0] == "stationary" and fl.off_manifold < 1e-12
    assert np.linalg.norm(fl.theta_end[0] - p.w_mn) <= 1e-5 * np.linalg.norm(p.w_mn)

    T = TwoLayerLinear.generate(d=5, n=2, hidden=2, sigma=1.0, seed=0)
    g = ge.from_linear_readout(T)
    fl = drift_flow(g, T.retract(T.theta0), 1e4, 0.5, n_eval=2, speed_rtol=1e-7)
    assert fl.status[0] == "stationary"
    assert fl.trace[-1, 0] == pytest.approx(T.trace_minimum(), rel=1e-5)
    assert np.sum(T.split(fl.theta_end[0])[1] ** 2) == pytest.approx(T.trace_min_w2_norm2(), rel=1e-5)

    D = DiagonalNetwork.generate(d=5, n=2, sparsity=1, sigma=1.0, seed=1)
    g = ge.from_linear_readout(D)
    th = D.flow_landing()
    fl = drift_flow(g, th, 1e4, 0.5, n_eval=2, speed_rtol=1e-7)
    ref = D.trace_minimizer()
    assert fl.status[0] == "stationary"
    assert np.linalg.norm(D.beta(fl.theta_end[0]) - ref) <= 1e-5 * np.linalg.norm(D.beta(th) - ref)


def test_depth3_diagonal_ends_at_the_l43_interpolator():
    """The new closed-form model, given only as f(theta, X) = X (u^3 - v^3): from a point of M in the positive orthant
    the drift ends at argmin sum c_j |beta_j|^{4/3} s.t. X beta = y (its dual, Newton), within 1e-3 of the start's
    distance at tau = 2000 (the vanishing coordinates approach 0 like 1/tau, their beta like 1/tau^3). The reference is
    itself checked: feasible, and no feasible perturbation along ker X lowers the objective."""
    g = ge.diagonal3(d=5, n=2, sparsity=1, seed=3)
    X, c = g.X, np.sum(g.X**2, axis=0)
    ref = ge.min_l43_interpolator(X, g.y)
    obj = lambda b: float(np.sum(c * np.abs(b) ** (4 / 3)))  # noqa: E731
    N = np.linalg.svd(X)[2][2:].T
    rng = np.random.default_rng(0)
    assert np.max(np.abs(X @ ref - g.y)) < 1e-10
    assert all(obj(ref + N @ (s * rng.standard_normal(N.shape[1]))) > obj(ref) for s in (1e-3, 1e-1, 1.0) for _ in range(20))
    th, ok = g.retract_status(g.theta0)
    assert ok and np.all(th > 0)
    fl = drift_flow(g, th, 1e5, g.sigma**2 / g.n, n_eval=2, speed_rtol=1e-7)
    assert fl.status[0] == "stationary"
    start = np.linalg.norm(ge.diagonal3_beta(g, th) - ref)
    assert np.linalg.norm(ge.diagonal3_beta(g, fl.theta_end[0]) - ref) <= 1e-3 * start


def test_persistence_and_bad_inputs(tmp_path):
    from lrdecay.theory import io

    M = ge.relu_teacher_student(d=3, hidden=4, n=5, n_test=10, seed=2)
    back = GenericModel.from_arrays(M.arrays("m__"), M.config(), "m__")
    np.testing.assert_array_equal(back.predict(M.theta0), M.predict(M.theta0))
    assert "GenericModel" in io._RECORDS
    with pytest.raises(ValueError, match="module-level"):
        GenericModel(lambda t, X: X @ t, np.eye(2), np.ones(2), np.ones(2)).config()
    with pytest.raises(ValueError, match=r"y must have shape \(n,\)"):
        GenericModel(ge.predict_diagonal, np.eye(2), np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="must return shape"):
        GenericModel(lambda t, X: t, np.eye(2), np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="tau_max"):
        drift_flow(M, M.theta0, -1.0, 0.1)


class _MainPlateau:
    """The hand-written main model behind the plateau test's interface: the engine's
    :class:`~lrdecay.theory.models.nonlinear.NonlinearModel` for SGD, :mod:`lrdecay.theory.quasistatic` for the
    prediction (``plateau_prediction``, ``normal_hessian_eigs``) and the closed-form retraction."""

    def __init__(self, problem):
        self.p, self.sigma, self.n, self.theta0 = problem, problem.sigma, problem.n, problem.w0
        self.engine = m.NonlinearModel.from_problem(problem)

    def retract(self, w):
        return m.retract(w, self.p.X, self.p.y, self.p.gamma)

    def gauss_newton_eigs(self, w):
        return q.normal_hessian_eigs(self.p, w)

    def plateau(self, w, eta):
        pr = q.plateau_prediction(self.p, w, eta)
        return pr.leading, pr.exact


def _plateau_models():
    D = DiagonalNetwork.generate(d=6, n=3, sparsity=2, sigma=1e-3, seed=1)
    T = TwoLayerLinear.generate(d=5, n=3, hidden=2, sigma=1e-3, seed=1)
    P = Problem.generate(d=8, n=4, gamma=1.0, sigma=1e-3, seed=1)
    return [("diagonal", D), ("two-layer", T), ("main model", _MainPlateau(P)),
            ("diagonal, generic", ge.from_linear_readout(D)), ("two-layer, generic", ge.from_linear_readout(T)),
            ("main model, generic", ge.from_problem(P))]


@pytest.mark.parametrize("name, M", _plateau_models(), ids=lambda v: v if isinstance(v, str) else "")
def test_normal_space_plateau_tells_the_finite_eta_factor(name, M):
    """Label-noise SGD from a point of M at eta lambda_max = 0.8: the time-averaged train loss (steps 300-1500, 48
    paths) equals (eta a / 4) sum lambda_j / (1 - eta lambda_j / 2) within 4 standard errors (over paths; sigma = 1e-3
    keeps the process linear and the drift negligible), while the wrong factor 1 / (1 - eta lambda_j) lies at least
    10 standard errors away (so the check can tell them apart)."""
    th = M.retract(M.theta0)
    lam = M.gauss_newton_eigs(th)
    eta = 0.8 / lam[-1]
    a = M.sigma**2 / M.n
    _, exact = M.plateau(th, eta)
    wrong = 0.25 * eta * a * float(np.sum(lam / (1 - eta * lam)))
    burn, steps, P = 300, 1500, 48
    sim = simulate(getattr(M, "engine", M), np.tile(th, (P, 1)), steps=steps, lr=eta, method="sgd", sigma=M.sigma,
                   seed=11, record_steps=np.arange(burn, steps + 1), observables=["train_loss"])
    per_path = sim.records["train_loss"].mean(0)
    mean, se = per_path.mean(), per_path.std(ddof=1) / np.sqrt(P)
    print(f"{name}: measured / predicted {mean / exact:.4f} ({(mean - exact) / se:+.2f} se), wrong / predicted "
          f"{wrong / exact:.3f} ({(wrong - exact) / se:.0f} se)")
    assert abs(mean - exact) <= 4 * se, (name, mean, exact, se)
    assert abs(wrong - exact) >= 10 * se, (name, wrong, exact, se)
