"""The models of lrdecay.theory.models against independent oracles: central finite differences, sympy
derivations from the definitions, a brute-force l1 programme, numerical gradient flow, a plain SGD loop."""
import itertools

import numpy as np
import pytest
import sympy as sp
from scipy.optimize import minimize

from tests.conftest import fd_jacobian
from lrdecay.theory.engine import path_generators, simulate
from lrdecay.theory.flow import gradient_flow
from lrdecay.theory.models.base import drift_ode
from lrdecay.theory.models.diagonal import DiagonalNetwork, hypentropy_minimizer, min_l1_interpolator
from lrdecay.theory.models.two_layer import TwoLayerLinear


def _models():
    return [DiagonalNetwork.generate(d=6, n=3, sparsity=2, sigma=0.5, seed=1),
            DiagonalNetwork.generate(d=5, n=2, sparsity=2, sigma=0.5, normalize_columns=False, seed=2),
            TwoLayerLinear.generate(d=5, n=2, hidden=3, sigma=0.5, seed=1)]


MODELS = _models()
IDS = ["diagonal", "diagonal-unnormalised", "two-layer"]


@pytest.mark.parametrize("M", MODELS, ids=IDS)
def test_derivatives_match_finite_differences(M, rng):
    """Gradient, Hessian, its trace and the trace's gradient against central differences (h = 1e-6:
    truncation O(h^2), rounding O(1e-16 / h) ~ 1e-10 per entry; tolerance 1e-6 relative)."""
    th = rng.standard_normal(M.dim)
    np.testing.assert_allclose(M.train_grad(th), fd_jacobian(M.train_loss, th)[0], rtol=1e-6, atol=1e-8)
    Hfd = fd_jacobian(M.train_grad, th)
    np.testing.assert_allclose(M.train_hessian(th), Hfd, rtol=1e-6, atol=1e-7)
    assert M.hessian_trace(th) == pytest.approx(np.trace(Hfd), rel=1e-6)
    np.testing.assert_allclose(M.hessian_trace_grad(th), fd_jacobian(M.hessian_trace, th)[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(M.jacobian(th), fd_jacobian(M.residual, th), rtol=1e-6, atol=1e-8)
    t, g = rng.standard_normal(M.dim), rng.standard_normal(M.d)
    np.testing.assert_allclose(M.jvp(th, t), fd_jacobian(M.beta, th) @ t, rtol=1e-6, atol=1e-8)
    assert M.jvp(th, t) @ g == pytest.approx(t @ M.vjp(th, g), rel=1e-12)


@pytest.mark.parametrize("M", MODELS, ids=IDS)
def test_batched_calls_agree_with_single(M, rng):
    Th = rng.standard_normal((4, M.dim))
    for f in (M.train_loss, M.train_grad, M.hessian_trace, M.hessian_trace_grad, M.jacobian, M.train_hessian,
              M.test_loss, lambda T: M.project_tangent(T, np.ones(M.dim))):
        np.testing.assert_allclose(f(Th), np.stack([f(t) for t in Th]), rtol=1e-12, atol=1e-14)


def _sympy_model(M):
    """beta(theta) written from the definition with sympy; returns (theta symbols, beta list)."""
    if isinstance(M, DiagonalNetwork):
        u, v = sp.symbols(f"u0:{M.d}", real=True), sp.symbols(f"v0:{M.d}", real=True)
        return list(u) + list(v), [u[j] ** 2 - v[j] ** 2 for j in range(M.d)]
    h, d = M.h, M.d
    W = sp.Matrix(h, d, lambda k, j: sp.Symbol(f"W{k}_{j}", real=True))
    w2 = sp.Matrix(sp.symbols(f"a0:{h}", real=True))
    return [W[k, j] for k in range(h) for j in range(d)] + list(w2), list(W.T * w2)


@pytest.mark.parametrize("M", MODELS, ids=IDS)
def test_losses_trace_and_drift_match_sympy(M, rng):
    """The loss, gradient, Hessian trace and its gradient derived by sympy from beta(theta) alone."""
    th_s, beta_s = _sympy_model(M)
    X, y = sp.Matrix(M.X), sp.Matrix(M.y)
    res = X * sp.Matrix(beta_s) - y
    loss = (res.T * res)[0, 0] / (2 * M.n)
    grad = [sp.diff(loss, t) for t in th_s]
    trace = sp.Add(*[sp.diff(grad[k], th_s[k]) for k in range(len(th_s))])
    tgrad = [sp.diff(trace, t) for t in th_s]
    fl = sp.lambdify(th_s, [loss, sp.Matrix(grad), trace, sp.Matrix(tgrad)], "numpy")
    for _ in range(2):
        th = rng.standard_normal(M.dim)
        L, G, T, TG = fl(*th)
        assert M.train_loss(th) == pytest.approx(float(L), rel=1e-12)
        np.testing.assert_allclose(M.train_grad(th), np.ravel(G), rtol=1e-10, atol=1e-12)
        assert M.hessian_trace(th) == pytest.approx(float(T), rel=1e-10)
        np.testing.assert_allclose(M.hessian_trace_grad(th), np.ravel(TG), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("M", MODELS, ids=IDS)
def test_sgd_step_is_the_noisy_label_gradient_step(M, rng):
    """increment(dt = eta, c = eta sigma / sqrt n) = -eta grad of (1/2n) sum (f_i - y_i - sigma xi_i)^2 (finite
    differences), and the engine's SGD equals a plain loop over the same noise streams."""
    th, xi, eta = rng.standard_normal(M.dim), rng.standard_normal(M.n), 0.01
    noisy = lambda t: 0.5 * np.mean((M.beta(t) @ M.X.T - M.y - M.sigma * xi) ** 2)  # noqa: E731
    dW, loss = M.increment(th[None], eta, eta * M.sigma / np.sqrt(M.n), xi[None])
    np.testing.assert_allclose(dW[0], -eta * fd_jacobian(noisy, th)[0], rtol=1e-6, atol=1e-9)
    assert loss[0] == pytest.approx(M.train_loss(th), rel=1e-14)
    W0 = M.theta0 + 0.1 * rng.standard_normal((2, M.dim))
    sim = simulate(M, W0, steps=30, lr=eta, method="sgd", sigma=M.sigma, seed=3, record_every=30)
    W = W0.copy()
    gens = path_generators(3, range(2), 0)
    noise = np.stack([g.standard_normal((30, M.n)) for g in gens], axis=1)
    for k in range(30):
        J = M.jacobian(W)
        r = M.residual(W)
        W = W - eta / M.n * np.einsum("pnD,pn->pD", J, r - M.sigma * noise[k])
    np.testing.assert_allclose(sim.W_final, W, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("M", MODELS, ids=IDS)
def test_minibatch_increment_is_the_batch_gradient(M, rng):
    W = rng.standard_normal((2, M.dim))
    idx = np.array([[0, 1], [1, 0]])[:, :min(2, M.n)]
    xi = rng.standard_normal(idx.shape)
    dW = M.minibatch_increment(W, np.array([[0.1], [0.2]]), idx, xi, M.sigma)
    for p in range(2):
        loss = lambda t: 0.5 * np.mean((M.beta(t) @ M.X[idx[p]].T - M.y[idx[p]] - M.sigma * xi[p]) ** 2)  # noqa: E731
        np.testing.assert_allclose(dW[p], -(0.1 * (p + 1)) * fd_jacobian(loss, W[p])[0], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("M", MODELS, ids=IDS)
def test_retraction_and_tangent_projection(M, rng):
    Th = M.theta0 + 0.3 * rng.standard_normal((5, M.dim))
    R = M.retract(Th)
    assert np.max(M.train_loss(R)) < 1e-24
    np.testing.assert_allclose(M.retract(R), R, rtol=1e-12, atol=1e-14)
    v = M.drift_velocity(R, 0.1)
    np.testing.assert_allclose(np.einsum("pnD,pD->pn", M.jacobian(R), v), 0, atol=1e-10)   # tangent to M
    assert np.all(np.einsum("pD,pD->p", v, M.hessian_trace_grad(R)) <= 1e-14)              # trace decreases


@pytest.mark.parametrize("M", MODELS, ids=IDS)
def test_plateau_and_persistence(M, rng, tmp_path):
    th = M.retract(M.theta0)
    lam = np.linalg.eigvalsh(M.train_hessian(th))                     # full Hessian on M = J^T J / n
    lead, exact = M.plateau(th, 0.01)
    a = M.sigma**2 / M.n
    assert lead == pytest.approx(0.25 * 0.01 * a * lam.sum(), rel=1e-9)
    assert exact > lead
    from lrdecay.theory import io
    back = type(M).from_arrays(M.arrays("m__"), M.config(), "m__")
    np.testing.assert_array_equal(back.X, M.X)
    assert back.dim == M.dim and back.sigma == M.sigma and isinstance(M, type(back))
    assert type(M).__name__ in io._RECORDS


# ---- the diagonal network's references ------------------------------------------------------------

def _l1_brute_force(X, y, w):
    """min sum w_j |beta_j| s.t. X beta = y: an optimum is a basic solution (support of size n)."""
    n, d = X.shape
    best, arg = np.inf, None
    for S in itertools.combinations(range(d), n):
        A = X[:, S]
        if abs(np.linalg.det(A)) < 1e-12:
            continue
        b = np.zeros(d)
        b[list(S)] = np.linalg.solve(A, y)
        val = float(w @ np.abs(b))
        if val < best:
            best, arg = val, b
    return arg


@pytest.mark.parametrize("weighted", [False, True])
def test_min_l1_matches_vertex_enumeration(weighted, rng):
    X = rng.standard_normal((3, 7))
    y = rng.standard_normal(3)
    w = rng.uniform(0.5, 2, 7) if weighted else np.ones(7)
    np.testing.assert_allclose(min_l1_interpolator(X, y, w if weighted else None), _l1_brute_force(X, y, w),
                               atol=1e-9)


def test_trace_minimiser_is_weighted_l1_and_the_drift_ends_there(rng):
    M = DiagonalNetwork.generate(d=6, n=3, sparsity=2, sigma=1.0, normalize_columns=False, seed=4)
    b = M.trace_minimizer()
    th = M.theta_of_beta(b)
    assert M.train_loss(th) < 1e-24
    assert M.hessian_trace(th) == pytest.approx(4 / M.n * M.col_norms2 @ np.abs(b), rel=1e-12)
    others = M.retract(M.theta0 + rng.standard_normal((50, M.dim)))
    assert np.all(M.hessian_trace(others) >= M.hessian_trace(th) - 1e-12)
    ode = drift_ode(M, M.flow_landing(), 400.0, M.sigma**2 / M.n, n_eval=3)
    np.testing.assert_allclose(ode.beta[-1], b, atol=1e-6)


def test_flow_landing_matches_numerical_gradient_flow(rng):
    M = DiagonalNetwork.generate(d=6, n=3, sparsity=2, seed=5)
    th0 = np.abs(rng.standard_normal(M.dim)) + 0.2            # u0 != v0
    gf = gradient_flow(M.train_grad, th0, loss=lambda t: float(M.train_loss(t)), eps=1e-18, t_max=1e4,
                       rtol=1e-11, atol=1e-13)
    assert gf.success
    # stopped at L_n = 1e-18, i.e. about 1e-9 from M
    np.testing.assert_allclose(M.flow_landing(th0), gf.w_final, rtol=1e-7, atol=1e-8)


def test_hypentropy_limits_and_optimality(rng):
    """alpha -> 0: the min-l1 interpolator (the gap shrinks steadily: about 0.1 at alpha = 1e-3, 1e-6 at 1e-20);
    alpha -> inf: min-l2; any alpha: the gradient of the objective, arcsinh(beta / (2 alpha^2)), lies in the row
    space of X (Lagrange condition)."""
    X = rng.standard_normal((3, 8))
    y = X @ np.array([1.0, -0.7, 0, 0, 0, 0, 0, 0])
    l1 = min_l1_interpolator(X, y)
    gaps = [np.max(np.abs(hypentropy_minimizer(X, y, a) - l1)) for a in (1e-3, 1e-6, 1e-10, 1e-20)]
    assert all(g1 > g2 for g1, g2 in zip(gaps, gaps[1:])) and gaps[-1] < 1e-5
    np.testing.assert_allclose(hypentropy_minimizer(X, y, 30.0), np.linalg.pinv(X) @ y, atol=1e-4)
    b = hypentropy_minimizer(X, y, 0.5)
    grad = np.arcsinh(b / (2 * 0.25))
    P = np.linalg.pinv(X) @ X
    np.testing.assert_allclose(grad - P @ grad, 0, atol=1e-9)
    np.testing.assert_allclose(X @ b, y, atol=1e-10)


# ---- the two-layer network's references -----------------------------------------------------------

def test_two_layer_balancedness_conserved_and_small_init_reaches_min_norm():
    M = TwoLayerLinear.generate(d=6, n=3, hidden=3, init_scale=1e-3, seed=2)
    gf = gradient_flow(M.train_grad, M.theta0, loss=lambda t: float(M.train_loss(t)), eps=1e-22, t_max=1e5,
                       rtol=1e-11, atol=1e-15)
    assert gf.success
    B0, B1 = M.balancedness(M.theta0), M.balancedness(gf.w_final)
    np.testing.assert_allclose(B1, B0, atol=1e-10)
    # K = W_1 (I - X^+ X) is unchanged, and the end point is beta_mn + K^T w_2 (near M): within O(init_scale)
    # of the minimum-norm interpolator
    K = M.kernel_part(M.theta0)
    np.testing.assert_allclose(M.kernel_part(gf.w_final), K, atol=1e-13)
    bmn = M.min_norm()
    end = M.beta(gf.w_final)
    np.testing.assert_allclose(end, bmn + K.T @ M.split(gf.w_final)[1], atol=1e-9)
    assert np.linalg.norm(end - bmn) <= np.linalg.norm(K, 2) * np.linalg.norm(M.split(gf.w_final)[1]) + 1e-9
    assert np.linalg.norm(end - bmn) < 1e-3 * np.linalg.norm(bmn)


def test_two_layer_trace_minimum_matches_numerical_minimisation(rng):
    """min over M of tr Hess L_n by SLSQP from several starts against 2 ||y|| ||X||_F / n."""
    M = TwoLayerLinear.generate(d=4, n=2, hidden=2, seed=3)
    cons = {"type": "eq", "fun": M.residual, "jac": M.jacobian}
    best = min(minimize(M.hessian_trace, M.retract(M.theta0 + rng.standard_normal(M.dim)), jac=M.hessian_trace_grad,
                        constraints=[cons], method="SLSQP", options=dict(ftol=1e-12, maxiter=500)).fun
               for _ in range(4))
    assert best == pytest.approx(M.trace_minimum(), rel=1e-6)
    pts = M.retract(M.theta0 + rng.standard_normal((30, M.dim)))
    assert np.all(M.hessian_trace(pts) >= M.trace_minimum() * (1 - 1e-12))


def test_two_layer_kernel_part_invariant_under_sgd_and_drift_ends_x_balanced():
    M = TwoLayerLinear.generate(d=8, n=3, hidden=3, sigma=1.0, seed=6)
    th = M.retract(M.theta0)
    sim = simulate(M, np.tile(th, (3, 1)), steps=500, lr=0.02, sigma=1.0, seed=0, record_every=500)
    np.testing.assert_allclose(M.kernel_part(sim.W_final), np.broadcast_to(M.kernel_part(th), (3, M.h, M.d)),
                               atol=1e-12)
    ode = drift_ode(M, th, 200.0, M.sigma**2 / M.n, n_eval=2)
    end = ode.theta[-1]
    assert M.hessian_trace(end) == pytest.approx(M.trace_minimum(), rel=1e-6)
    assert M.split(end)[1] @ M.split(end)[1] == pytest.approx(M.trace_min_w2_norm2(), rel=1e-6)
    assert M.x_balance(end) == pytest.approx(1.0, rel=1e-3)
    np.testing.assert_allclose(M.beta(end), M.min_norm() + M.kernel_part(th).T @ M.split(end)[1], atol=1e-9)


@pytest.mark.parametrize("call, match", [
    (lambda: DiagonalNetwork.generate(d=5, n=5), "n must be an integer in"),
    (lambda: DiagonalNetwork.generate(init_scale=0), "init_scale must be a finite number > 0"),
    (lambda: DiagonalNetwork.generate(target="x"), "target must be one of"),
    (lambda: TwoLayerLinear.generate(hidden=0), "hidden must be an integer >= 1"),
    (lambda: DiagonalNetwork(np.ones((2, 3)), np.ones(2), np.ones(3), np.ones(5)), "theta0 must have shape"),
    (lambda: min_l1_interpolator(np.ones((1, 2)), np.ones(1), weights=[1, -1]), "weights must be 2 positive"),
])
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
