import numpy as np
import pytest

from lrdecay.theory.models import nonlinear as m
from lrdecay.theory.problem import Problem
from tests.conftest import fd_jacobian

GAMMAS = [0.0, 0.5, 1.0, 2.0, 3.7]


def _prob(gamma, seed=0, d=9, n=3):
    return Problem.generate(d=d, n=n, gamma=gamma, seed=seed)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_alpha_bijection_and_norm(gamma, rng):
    W = rng.standard_normal((5, 7)) * 1.3
    A = m.alpha(W, gamma)
    np.testing.assert_allclose(np.linalg.norm(A, axis=1), np.linalg.norm(W, axis=1) ** (gamma + 1), rtol=1e-12)
    np.testing.assert_allclose(m.alpha_inverse(A, gamma), W, rtol=1e-12)
    np.testing.assert_array_equal(m.alpha(np.zeros(4), gamma), np.zeros(4))


@pytest.mark.parametrize("gamma", GAMMAS)
def test_dalpha_matches_finite_differences(gamma, rng):
    w = rng.standard_normal(6)
    fd = fd_jacobian(lambda v: m.alpha(v, gamma), w)
    np.testing.assert_allclose(m.dalpha(w, gamma), fd, atol=1e-7)
    v = rng.standard_normal(6)
    np.testing.assert_allclose(m.dalpha_apply(w, v, gamma), m.dalpha(w, gamma) @ v, rtol=1e-12)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_gradient_and_hessian_match_finite_differences(gamma, rng):
    p = _prob(gamma)
    w = rng.standard_normal(p.d)
    loss = lambda v: m.train_loss(v, p.X, p.y, gamma)  # noqa: E731
    g = m.train_grad(w, p.X, p.y, gamma)
    np.testing.assert_allclose(g, fd_jacobian(loss, w)[0], rtol=1e-6, atol=1e-8)
    H = m.train_hessian(w, p.X, p.y, gamma)
    Hfd = fd_jacobian(lambda v: m.train_grad(v, p.X, p.y, gamma), w)
    np.testing.assert_allclose(H, Hfd, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.hessian_trace(w, p.X, p.y, gamma), np.trace(Hfd), rtol=1e-6)


def test_gradient_matches_autograd(rng):
    import torch
    p = _prob(1.5, d=11, n=4)
    w = rng.standard_normal((3, p.d))
    wt = torch.tensor(w, requires_grad=True)
    Xt, yt = torch.tensor(p.X), torch.tensor(p.y)
    a = wt.norm(dim=1, keepdim=True) ** 1.5 * wt
    loss = 0.5 * ((a @ Xt.T - yt) ** 2).mean(dim=1)
    loss.sum().backward()
    np.testing.assert_allclose(m.train_grad(w, p.X, p.y, 1.5), wt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(m.train_loss(w, p.X, p.y, 1.5), loss.detach().numpy(), rtol=1e-12)


def test_batched_functions_agree_with_single(rng):
    p = _prob(1.0)
    W = rng.standard_normal((4, p.d))
    for f in (lambda w: m.train_loss(w, p.X, p.y, 1.0), lambda w: m.train_grad(w, p.X, p.y, 1.0),
              lambda w: m.hessian_trace(w, p.X, p.y, 1.0), lambda w: m.train_hessian(w, p.X, p.y, 1.0),
              lambda w: m.project_tangent(w, p.alpha_star, p.X, 1.0)):
        np.testing.assert_allclose(f(W), np.stack([f(w) for w in W]), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_retraction_lands_on_manifold_and_fixes_it(gamma, rng):
    p = _prob(gamma)
    W = rng.standard_normal((5, p.d))
    R = m.retract(W, p.X, p.y, gamma)
    np.testing.assert_allclose(m.train_loss(R, p.X, p.y, gamma), 0, atol=1e-20)
    np.testing.assert_allclose(m.retract(R, p.X, p.y, gamma), R, rtol=1e-10)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_hessian_trace_on_manifold_is_h_of_r(gamma, rng):
    """On M the trace of the (finite-difference) Hessian equals h(||w||) (the closed form of docs/science.md, §1 model)."""
    p = _prob(gamma, d=8, n=3)
    for w in m.retract(rng.standard_normal((3, p.d)), p.X, p.y, gamma):
        Hfd = fd_jacobian(lambda v: m.train_grad(v, p.X, p.y, gamma), w)
        assert np.isclose(np.trace(Hfd), m.manifold_hessian_trace(np.linalg.norm(w), p.X, p.y, gamma), rtol=1e-6)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0])
def test_h_derivative_matches_finite_difference(gamma):
    p = _prob(gamma)
    r = np.linspace(0.5, 2.0, 7)
    hfd = (m.manifold_hessian_trace(r + 1e-6, p.X, p.y, gamma) - m.manifold_hessian_trace(r - 1e-6, p.X, p.y, gamma)) / 2e-6
    np.testing.assert_allclose(m.manifold_hessian_trace_deriv(r, p.X, p.y, gamma), hfd, rtol=1e-6)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_projections_split_normal_and_tangent_space(gamma, rng):
    p = _prob(gamma)
    w = rng.standard_normal(p.d)
    J = m.jacobian(w, p.X, gamma)
    v = rng.standard_normal(p.d)
    vt, vn = m.project_tangent(w, v, p.X, gamma), m.project_normal(w, v, p.X, gamma)
    np.testing.assert_allclose(vt + vn, v, rtol=1e-12)
    np.testing.assert_allclose(J @ vt, 0, atol=1e-10)          # tangent: no first-order change of predictions
    np.testing.assert_allclose(m.project_normal(w, J[0], p.X, gamma), J[0], rtol=1e-10)  # rows of J are normal
    np.testing.assert_allclose(m.project_normal(w, vn, p.X, gamma), vn, rtol=1e-10)      # idempotent


@pytest.mark.parametrize("gamma", GAMMAS)
def test_min_norm_solution_lagrange_condition_and_minimality(gamma, rng):
    p = _prob(gamma, d=10, n=4)
    w = p.w_mn
    assert m.train_loss(w, p.X, p.y, gamma) < 1e-25
    # Lagrange: grad ||w||^2 / 2 = w lies in the normal space, i.e. its tangent part vanishes
    np.testing.assert_allclose(m.project_tangent(w, w, p.X, gamma), 0, atol=1e-12)
    # and it is the minimum: any other point of M is longer
    others = m.retract(w + 0.5 * rng.standard_normal((50, p.d)), p.X, p.y, gamma)
    assert np.all(np.linalg.norm(others, axis=1) >= np.linalg.norm(w) - 1e-12)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 4.0, 8.0])
def test_flatness_condition_means_h_increasing_on_manifold(gamma):
    """Condition holds  <=>  h'(r) >= 0 at r_mn (hence for all r >= r_mn, every r on M)."""
    for seed in range(20):
        p = Problem.generate(d=20, n=6, gamma=gamma, seed=seed)
        holds, lhs, rhs = m.flatness_condition(p.X, p.y, gamma)
        r_mn = np.linalg.norm(p.w_mn)
        assert holds == (m.manifold_hessian_trace_deriv(r_mn, p.X, p.y, gamma) >= 0)
        if holds:
            r = np.linspace(r_mn, 3 * r_mn, 20)
            assert np.all(np.diff(m.manifold_hessian_trace(r, p.X, p.y, gamma)) > 0)


def test_gamma_zero_trace_constant_on_manifold(rng):
    p = _prob(0.0)
    W = m.retract(rng.standard_normal((6, p.d)) * 3, p.X, p.y, 0.0)
    tr = m.hessian_trace(W, p.X, p.y, 0.0)
    np.testing.assert_allclose(tr, np.sum(p.X**2) / p.n, rtol=1e-12)


def test_engine_increment_is_minus_dt_grad(rng):
    p = _prob(1.3)
    model = m.NonlinearModel.from_problem(p)
    W = rng.standard_normal((3, p.d))
    dW, loss = model.increment(W, 0.01, 0.0, None)
    np.testing.assert_allclose(dW, -0.01 * m.train_grad(W, p.X, p.y, 1.3), rtol=1e-12)
    np.testing.assert_allclose(loss, 0.5 * np.mean(m.residual(W, p.X, p.y, 1.3) ** 2, axis=1), rtol=1e-12)


def test_per_path_gamma_and_stacked_data_equal_one_problem_at_a_time(rng):
    """alpha, the losses, the gradient and the retraction with gamma and X per path equal the shared-X
    functions applied to each path's own problem."""
    probs = [Problem.generate(d=9, n=3, gamma=g, seed=s) for g, s in ((0.0, 1), (1.0, 2), (2.5, 3))]
    X = np.stack([q.X for q in probs])
    y = np.stack([q.y for q in probs])
    g = np.array([q.gamma for q in probs])
    W = rng.standard_normal((3, 9))
    for j, q in enumerate(probs):
        np.testing.assert_allclose(m.alpha(W, g)[j], m.alpha(W[j], q.gamma), rtol=1e-14)
        np.testing.assert_allclose(m.train_loss(W, X, y, g)[j], m.train_loss(W[j], q.X, q.y, q.gamma), rtol=1e-13)
        np.testing.assert_allclose(m.train_grad(W, X, y, g)[j], m.train_grad(W[j], q.X, q.y, q.gamma), rtol=1e-12)
        np.testing.assert_allclose(m.retract(W, X, y, g)[j], m.retract(W[j], q.X, q.y, q.gamma), rtol=1e-10)
        np.testing.assert_allclose(m.manifold_hessian_trace(np.linalg.norm(W, axis=1), X, y, g)[j],
                                   m.manifold_hessian_trace(np.linalg.norm(W[j]), q.X, q.y, q.gamma), rtol=1e-13)
    model = m.NonlinearModel.stack(probs)
    dW, loss = model.increment(W, 0.01, 0.0, None)
    for j, q in enumerate(probs):
        np.testing.assert_allclose(dW[j], -0.01 * m.train_grad(W[j], q.X, q.y, q.gamma), rtol=1e-12)
    sub = model.select(slice(1, 3))
    assert sub.X.shape == (2, 3, 9) and np.all(sub.gamma[:, 0] == g[1:])
