"""Symbolic checks of the nonlinear model: sympy derivations (lrdecay.theory.symbolic) against lrdecay.theory.models.nonlinear.

Oracle: expressions derived by sympy from the model ``f(w; x) = ||w||^gamma w^T x`` and the loss
definitions only (see theory/symbolic.py). Numeric functions of lrdecay.theory.models.nonlinear are compared with the
lambdified derivations at random points; closed-form claims of docs/science.md are compared with the derived
expressions symbolically. Tolerances are stated per test (relative 1e-10 for the numeric comparisons,
exact zero for the symbolic identities).
"""
import numpy as np
import pytest
import sympy as sp
from scipy.linalg import solve_discrete_lyapunov

from lrdecay.theory.models import nonlinear as m
from lrdecay.theory.symbolic import nonlinear as S
from lrdecay.theory.problem import Problem

GAMMAS = [0.0, 0.5, 1.0, 2.0, 3.7]
RTOL = 1e-10


def close(actual, desired, rtol=RTOL):
    """Relative comparison; entries near zero are judged against the largest entry of ``desired``."""
    desired = np.asarray(desired, dtype=float)
    scale = max(1.0, float(np.max(np.abs(desired)))) if desired.size else 1.0
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale)


def data(seed, d=4, n=2):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X @ rng.standard_normal(d)
    return rng, X, y


def manifold_points(X, y, gamma, rng, k=3, scale=1.0):
    n, d = X.shape
    return S.points_on_manifold(X, y, gamma, scale * rng.standard_normal((k, d - n)))


# ---------------------------------------------------------------------------------------------
# the statements under test (docs/science.md / lrdecay.theory.models.nonlinear docstrings), typed here as claimed
# ---------------------------------------------------------------------------------------------
def theory_claims(n: int) -> dict:
    """The closed forms as docs/science.md states them, for ``n`` data points. Nothing above derives from
    these; tests compare the derivations with them.

    ``h``: ``r^(2 gamma) ||X||_F^2 / n + (gamma^2 + 2 gamma) ||y||^2 / (n r^2)``;
    ``noise_scale``: ``a = sigma^2 / n`` (full batch); ``plateau_constant``: 1/4 in
    ``E L_n ~ (eta a / 4) tr H``; ``sigma_constant``: 1/2 in ``Sigma ~ (eta a / 2) P_N``;
    ``plateau_term``: ``(eta a / 4) h / (1 - eta h / 2)`` per eigenvalue ``h`` of ``H``."""
    g = S.GAMMA
    h = sp.Symbol("h", positive=True)
    return {
        "h": S.R ** (2 * g) * S.FROB / n + (g**2 + 2 * g) * S.YSQ / (n * S.R**2),
        "noise_scale": S.SIGMA**2 / n,
        "plateau_constant": sp.Rational(1, 4),
        "sigma_constant": sp.Rational(1, 2),
        "plateau_term": (S.ETA * S.A_NOISE / 4) * h / (1 - S.ETA * h / 2),
        "plateau_term_symbol": h,
    }



# =============================================================================================
# symbolic identities (exact)
# =============================================================================================
def test_alpha_is_grad_x_f_and_dalpha_symmetric_and_chain_rule():
    D = S.derive(3, 1)
    s = D.sym
    # D alpha is symmetric (lrdecay.theory.models.nonlinear.dalpha_apply relies on it for the vector-Jacobian product)
    assert all(S._reduce_to_zero(e, s.S) == 0 for e in D.dalpha - D.dalpha.T)
    # grad_w f(w; x) = D alpha(w)^T x
    assert all(S._reduce_to_zero(e, s.S) == 0 for e in D.grad_f - D.dalpha.T * s.x)
    # control: D alpha is not the identity for gamma != 0, and is for gamma = 0
    assert any(S._reduce_to_zero(e, s.S) != 0 for e in D.dalpha - sp.eye(3))
    assert S.derive(3, 1, 0).dalpha == sp.eye(3)


@pytest.mark.parametrize("d,n", [(3, 2), (4, 3)])
def test_derived_h_matches_theory_claim_and_depends_on_r_alone(d, n):
    mt = S.derive_manifold_trace(d, n)
    claim = theory_claims(n)["h"]
    assert sp.simplify(mt.h - claim) == 0
    assert sp.simplify(mt.h_prime - sp.diff(claim, S.R)) == 0
    # a function of r, ||X||_F^2, ||y||^2 and gamma only: nothing of the point or of the data entries
    assert mt.h.free_symbols <= {S.R, S.FROB, S.YSQ, S.GAMMA}


def test_derived_h_does_not_depend_on_d():
    assert sp.simplify(S.derive_manifold_trace(3, 2).h - S.derive_manifold_trace(5, 2).h) == 0


@pytest.mark.parametrize("d,n", [(3, 2), (4, 2), (5, 3)])
def test_trace_on_manifold_equals_h_in_general_frame(d, n):
    """tr Hess L_n(w) with y := X alpha(w), minus h(||w||; ||X||_F^2, ||y||^2): identically 0."""
    assert S.manifold_trace_identity(d, n) == 0


def test_manifold_identity_check_detects_a_wrong_h():
    h = S.derive_manifold_trace(3, 2).h
    wrong = h + S.GAMMA * S.YSQ / S.R**2 / 100          # a 1% change of the (gamma^2 + 2 gamma) term
    assert S.manifold_trace_identity(3, 2, h_expr=wrong) != 0


def test_residual_terms_vanish_on_manifold():
    """tr Hess L_n = (1/n)(||J||_F^2 + sum res_i tr Hess f_i); the second sum is 0 on M."""
    assert S.residual_terms_vanish_on_M(4, 2)


def test_drift_is_radial_on_manifold_symbolic():
    """t . (grad tr Hess L_n - h'(r) w_hat) = 0 on M for the tangent vector t (d = 3, n = 2)."""
    assert S.drift_identity(3, 2) == 0


def test_drift_check_detects_a_wrong_h():
    h = S.derive_manifold_trace(3, 2).h
    assert S.drift_identity(3, 2, h_expr=h * sp.Rational(101, 100)) != 0


def test_lagrange_condition_holds_on_rowspace_symbolic():
    """The objective gradient lies in the span of the constraint gradients at w = X^T c (every gamma)."""
    assert S.lagrange_rowspace_identity(3, 2) == 0
    assert S.lagrange_rowspace_identity(3, 2, point="generic") != 0       # control


@pytest.mark.parametrize("d,n", [(3, 2), (4, 2)])
def test_hessian_on_manifold_is_gauss_newton(d, n):
    assert S.hessian_on_M_is_gauss_newton(d, n)


@pytest.mark.parametrize("d,n", [(3, 2), (4, 3)])
def test_label_noise_covariance_is_eta2_a_hessian_with_a_sigma2_over_n(d, n):
    a = S.derive_noise_scale(d, n)
    assert sp.simplify(a - theory_claims(n)["noise_scale"]) == 0


def test_lyapunov_solution_and_plateau_constant():
    L = S.derive_lyapunov(2)
    claims = theory_claims(2)
    # off-diagonal covariance vanishes for a diagonal H
    assert L.Sigma[0, 1] == 0
    # leading order: Sigma ~ (eta a / 2) P_N, E L_n ~ (eta a / 4) tr H
    assert L.sigma_constant == claims["sigma_constant"]
    assert S.plateau_constant() == claims["plateau_constant"]
    lead = L.loss_series.coeff(S.ETA, 1)
    assert sp.simplify(lead - claims["plateau_constant"] * S.A_NOISE * (L.hs[0] + L.hs[1])) == 0
    # exact stationary loss: sum_j (eta a / 4) h_j / (1 - eta h_j / 2)
    term = claims["plateau_term"].subs(claims["plateau_term_symbol"], L.h)
    assert sp.simplify(L.term - term) == 0
    # 3 eigenvalues: the derivation checks additivity itself; the constant is the same
    assert S.derive_lyapunov(3).constant == claims["plateau_constant"]


# =============================================================================================
# lrdecay.theory.models.nonlinear against the lambdified derivations
# =============================================================================================
@pytest.mark.parametrize("gamma", GAMMAS)
def test_alpha_inverse_dalpha_against_derivation(gamma):
    rng = np.random.default_rng(1)
    for w in rng.standard_normal((3, 4)) * 1.3:
        close(m.alpha(w, gamma), S.numeric_alpha(w, gamma))
        close(m.alpha_inverse(w, gamma), S.numeric_alpha_inverse(w, gamma))
        close(S.numeric_alpha(S.numeric_alpha_inverse(w, gamma), gamma), w)      # derived inverse
        Da = S.numeric_dalpha(w, gamma)
        close(m.dalpha(w, gamma), Da)
        v = rng.standard_normal(4)
        close(m.dalpha_apply(w, v, gamma), Da @ v)
        close(m.dalpha_apply(w, v, gamma), v @ Da)                               # as a VJP
        x = rng.standard_normal(4)
        close(m.jacobian(w, x[None, :], gamma)[0], S.numeric_grad_f(w, x, gamma))
    W = rng.standard_normal((3, 4))
    V = rng.standard_normal((3, 4))
    close(m.dalpha_apply(W, V, gamma), np.stack([S.numeric_dalpha(w, gamma) @ v for w, v in zip(W, V)]))


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("d,n", [(4, 2), (5, 3)])
def test_loss_gradient_trace_against_derivation(gamma, d, n):
    rng, X, y = data(2, d, n)
    W = rng.standard_normal((3, d))
    for w in W:
        close(m.train_loss(w, X, y, gamma), S.numeric_train_loss(w, X, y, gamma))
        close(m.train_grad(w, X, y, gamma), S.numeric_train_grad(w, X, y, gamma))
        close(m.hessian_trace(w, X, y, gamma), S.numeric_hessian_trace(w, X, y, gamma))
        close(m.jacobian(w, X, gamma), S.numeric_jacobian(w, X, gamma))
    # batched calls too
    close(m.train_grad(W, X, y, gamma), np.stack([S.numeric_train_grad(w, X, y, gamma) for w in W]))
    close(m.hessian_trace(W, X, y, gamma), [S.numeric_hessian_trace(w, X, y, gamma) for w in W])


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("d,n", [(3, 2), (4, 2)])
def test_hessian_trace_grad_against_derivation(gamma, d, n):
    """lrdecay.theory.models.nonlinear.hessian_trace_grad (closed form) against the derived third derivatives, off M and on M."""
    rng, X, y = data(13, d, n)
    W = np.concatenate([rng.standard_normal((3, d)), manifold_points(X, y, gamma, rng, k=2)])
    for w in W:
        close(m.hessian_trace_grad(w, X, y, gamma), S.numeric_trace_gradient(w, X, y, gamma))
    close(m.hessian_trace_grad(W, X, y, gamma), np.stack([S.numeric_trace_gradient(w, X, y, gamma) for w in W]))


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("d,n", [(3, 2), (4, 2)])
def test_hessian_against_derivation(gamma, d, n):
    rng, X, y = data(3, d, n)
    for w in rng.standard_normal((3, d)):
        close(m.train_hessian(w, X, y, gamma), S.numeric_train_hessian(w, X, y, gamma))


@pytest.mark.parametrize("gamma", GAMMAS)
def test_against_derivation_with_gamma_substituted_first(gamma):
    """Same comparisons with gamma an exact number in the derivation (gamma = 0: linear regression)."""
    rng, X, y = data(4, 4, 2)
    for w in rng.standard_normal((2, 4)):
        close(m.alpha(w, gamma), S.numeric_alpha(w, gamma, exact=True))
        close(m.alpha_inverse(w, gamma), S.numeric_alpha_inverse(w, gamma, exact=True))
        close(m.dalpha(w, gamma), S.numeric_dalpha(w, gamma, exact=True))
        close(m.train_loss(w, X, y, gamma), S.numeric_train_loss(w, X, y, gamma, exact=True))
        close(m.train_grad(w, X, y, gamma), S.numeric_train_grad(w, X, y, gamma, exact=True))
        close(m.train_hessian(w, X, y, gamma), S.numeric_train_hessian(w, X, y, gamma, exact=True))
        close(m.hessian_trace(w, X, y, gamma), S.numeric_hessian_trace(w, X, y, gamma, exact=True))


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("d,n", [(4, 2), (5, 3)])
def test_manifold_trace_and_derivative_against_derivation(gamma, d, n):
    rng, X, y = data(5, d, n)
    r = np.linspace(0.3, 2.5, 9)
    close(m.manifold_hessian_trace(r, X, y, gamma), S.numeric_manifold_trace(r, X, y, gamma))
    close(m.manifold_hessian_trace_deriv(r, X, y, gamma), S.numeric_manifold_trace_deriv(r, X, y, gamma))
    # at points of M the (general, derived) trace equals the model's h(||w||)
    for w in manifold_points(X, y, gamma, rng):
        assert m.train_loss(w, X, y, gamma) < 1e-24
        close(m.manifold_hessian_trace(np.linalg.norm(w), X, y, gamma), S.numeric_hessian_trace(w, X, y, gamma))


@pytest.mark.parametrize("gamma", GAMMAS)
def test_trace_depends_on_norm_alone_on_manifold(gamma):
    """Two points of M with the same ||w|| have the same (derived) trace; a different norm does not."""
    rng, X, y = data(6, 5, 2)
    c = rng.standard_normal((2, 3))
    c[1] *= np.linalg.norm(c[0]) / np.linalg.norm(c[1])                   # same ||c||: same ||w||
    w1, w2 = S.points_on_manifold(X, y, gamma, c)
    assert np.linalg.norm(w1 - w2) > 0.1
    close(np.linalg.norm(w1), np.linalg.norm(w2))
    t1, t2 = S.numeric_hessian_trace(w1, X, y, gamma), S.numeric_hessian_trace(w2, X, y, gamma)
    close(t1, t2)
    (w3,) = S.points_on_manifold(X, y, gamma, 2.0 * c[:1])                # longer
    t3 = S.numeric_hessian_trace(w3, X, y, gamma)
    if gamma == 0:
        close(t3, t1)                                   # constant on M
    else:
        assert abs(t3 - t1) > 1e-3 * abs(t1)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_projections_against_derived_normal_space(gamma):
    rng, X, y = data(7, 4, 2)
    for w in rng.standard_normal((3, 4)):
        PN = S.numeric_normal_projector(w, X, gamma)
        v = rng.standard_normal(4)
        close(m.project_normal(w, v, X, gamma), PN @ v)
        close(m.project_tangent(w, v, X, gamma), v - PN @ v)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_drift_direction_on_manifold(gamma):
    """P_T grad tr Hess L_n = h'(r) P_T w_hat at points of M (d = 4: a 2-dimensional tangent space),
    and the radial form  w_hat . P_T grad tr = h'(r) ||P_T w_hat||^2."""
    rng, X, y = data(8, 4, 2)
    for w in manifold_points(X, y, gamma, rng, k=3, scale=1.5):
        r = np.linalg.norm(w)
        what = w / r
        gT = S.numeric_trace_gradient(w, X, y, gamma)
        lhs = m.project_tangent(w, gT, X, gamma)
        hp = S.numeric_manifold_trace_deriv(r, X, y, gamma)
        Pw = m.project_tangent(w, what, X, gamma)
        close(lhs, hp * Pw, rtol=1e-9)
        close(lhs, m.manifold_hessian_trace_deriv(r, X, y, gamma) * Pw, rtol=1e-9)
        close(what @ lhs, hp * (Pw @ Pw), rtol=1e-9)
        if gamma > 0:
            # the check is not vacuous: the tangential part is not zero, and the normal part of grad tr
            # is not parallel to the normal part of w_hat
            assert np.linalg.norm(lhs) > 1e-3 * np.linalg.norm(gT)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_min_norm_solution_satisfies_derived_lagrange_condition(gamma):
    rng, X, y = data(9, 4, 2)
    w = m.min_norm_solution(X, y, gamma)
    close(X @ S.numeric_alpha(w, gamma), y)                                 # on M

    def kkt_residual(w):
        g, C = S.numeric_lagrange(w, X, gamma)
        lam = np.linalg.lstsq(C, g, rcond=None)[0]
        return np.linalg.norm(g - C @ lam) / np.linalg.norm(g)

    assert kkt_residual(w) < 1e-10
    other = manifold_points(X, y, gamma, rng, k=1)[0]
    assert kkt_residual(other) > 1e-3                                     # control: another point of M


@pytest.mark.parametrize("gamma", GAMMAS)
def test_engine_increment_against_derived_label_noise_step(gamma):
    rng, X, y = data(10, 4, 2)
    p = Problem(X=X, y=y, alpha_star=np.zeros(4), w0=np.ones(4), gamma=gamma, sigma=0.3)
    model = m.NonlinearModel.from_problem(p)
    W = rng.standard_normal((3, 4))
    eta, sigma = 0.07, 0.3
    # deterministic part: -dt grad L_n, and the residuals
    dW, loss = model.increment(W, eta, 0.0, None)
    close(dW, np.stack([-eta * S.numeric_train_grad(w, X, y, gamma) for w in W]))
    res = np.stack([S._call("preds", w, X, None, gamma).ravel() - y for w in W])
    close(loss, 0.5 * np.mean(res**2, axis=1))
    # per-path dt
    dts = np.array([0.01, 0.02, 0.05])
    dW, _ = model.increment(W, dts[:, None], 0.0, None)                  # per-path column (P, 1)
    close(dW, np.stack([-dt * S.numeric_train_grad(w, X, y, gamma) for w, dt in zip(W, dts)]))
    # one full step of label-noise SGD: dt = eta, noise_coef = sqrt(eta * a * dt), a derived
    a = float(S.derive_noise_scale(3, 2).subs(S.SIGMA, sigma))
    xi = rng.standard_normal((3, 2))
    dW, _ = model.increment(W, eta, np.sqrt(eta * a * eta), xi)
    close(dW, np.stack([S.numeric_label_noise_step(w, X, y, z, gamma, eta, sigma) for w, z in zip(W, xi)]))


@pytest.mark.parametrize("gamma", [0.0, 1.0, 3.7])
def test_minibatch_increment_against_derived_step(gamma):
    """A minibatch step is the label-noise step of the sub-data-set (its loss is (1/2b) sum over B)."""
    rng, X, y = data(11, 4, 3)
    p = Problem(X=X, y=y, alpha_star=np.zeros(4), w0=np.ones(4), gamma=gamma, sigma=0.3)
    model = m.NonlinearModel.from_problem(p)
    W = rng.standard_normal((3, 4))
    idx = np.array([[0, 2], [2, 1], [1, 0]])
    xi = rng.standard_normal((3, 2))
    eta = np.array([0.05, 0.1, 0.02])
    dW = model.minibatch_increment(W, eta, idx, xi, 0.3)
    want = [S.numeric_label_noise_step(w, X[i], y[i], z, gamma, e, 0.3) for w, i, z, e in zip(W, idx, xi, eta)]
    close(dW, np.stack(want))


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0])
def test_plateau_loss_exact_against_lyapunov_in_normal_space(gamma):
    """For a non-diagonal H = J^T J / n at a point of M, the stationary loss of the linearised
    recursion (scipy's discrete Lyapunov solver in the normal space) equals plateau_loss_exact."""
    rng, X, y = data(12, 5, 3)
    w = manifold_points(X, y, gamma, rng, k=1)[0]
    J = S.numeric_jacobian(w, X, gamma)
    n = X.shape[0]
    H = J.T @ J / n
    close(H, S.numeric_train_hessian(w, X, y, gamma), rtol=1e-9)          # Gauss-Newton on M
    Q = np.linalg.svd(J.T, full_matrices=False)[0]                         # normal basis (d, n)
    HN = Q.T @ H @ Q
    eigs = np.linalg.eigvalsh(H)
    for eta in 2 / eigs.max() * np.array([0.01, 0.5, 0.95]):
        a = 0.3**2 / n
        Sig = solve_discrete_lyapunov(np.eye(n) - eta * HN, eta**2 * a * HN)
        close(S.plateau_loss_exact(eigs, eta, a), 0.5 * np.trace(HN @ Sig), rtol=1e-9)
    # leading order
    eta = 1e-6
    close(S.plateau_loss_exact(eigs, eta, a) / (eta * a * np.trace(H)), float(S.plateau_constant()), rtol=1e-5)
    with pytest.raises(ValueError):
        S.plateau_loss_exact(eigs, 2.01 / eigs.max(), a)


def test_plateau_of_nonlinear_label_noise_sgd():
    """Full-batch label-noise SGD on the model itself, started on M: the time- and path-averaged
    train loss agrees with plateau_loss_exact(eig H) within 1% (Monte Carlo error about 0.1%; the
    nonlinear and drift corrections are smaller still at these settings), and better than the
    leading-order (eta a / 4) tr H, which is about 11% low here (eta lambda_max = 0.23)."""
    p = Problem.generate(d=4, n=2, gamma=1.0, sigma=0.1, seed=3)
    model = m.NonlinearModel.from_problem(p)
    rng = np.random.default_rng(0)
    w_star = S.points_on_manifold(p.X, p.y, p.gamma, [[0.4, -0.3]])[0]
    eta, a = 0.05, p.sigma**2 / p.n
    P, steps, burn = 2000, 1200, 200
    W = np.tile(w_star, (P, 1))
    acc, cnt = 0.0, 0
    for k in range(steps):
        dW, loss = model.increment(W, eta, np.sqrt(eta * a * eta), rng.standard_normal((P, p.n)))
        if k >= burn:
            acc += np.mean(loss)
            cnt += 1
        W += dW
    J = S.numeric_jacobian(w_star, p.X, p.gamma)
    eigs = np.linalg.eigvalsh(J.T @ J / p.n)
    pred = S.plateau_loss_exact(eigs, eta, a)
    lead = float(S.plateau_constant()) * eta * a * eigs.sum()
    assert abs(acc / cnt / pred - 1) < 0.01
    assert abs(acc / cnt / pred - 1) < abs(acc / cnt / lead - 1)


# =============================================================================================
# lrdecay.theory.quasistatic against the derivations
# =============================================================================================
def _qs():
    from lrdecay.theory import quasistatic
    return quasistatic


@pytest.mark.parametrize("d,n,b", [(3, 2, None), (3, 2, 1), (4, 3, None)])
def test_quasistatic_noise_scale_against_derived(d, n, b):
    qs = _qs()
    a = S.derive_noise_scale(d, n, b)
    p = Problem.generate(d=d, n=n, gamma=1.0, sigma=0.37, seed=1)
    close(qs.noise_scale(p, batch_size=b), float(a.subs(S.SIGMA, 0.37)))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 3.7])
def test_quasistatic_plateau_prediction_against_derived(gamma):
    qs = _qs()
    rng, X, y = data(14, 5, 3)
    p = Problem(X=X, y=y, alpha_star=np.zeros(5), w0=np.ones(5), gamma=gamma, sigma=0.3)
    a = float(S.derive_noise_scale(4, 3).subs(S.SIGMA, p.sigma))            # sigma^2 / 3, derived
    for w in manifold_points(X, y, gamma, rng, k=2):
        J = S.numeric_jacobian(w, X, gamma)
        eigs_full = np.linalg.eigvalsh(J.T @ J / p.n)                    # includes the d - n zeros
        eigs_N = np.linalg.eigvalsh(J @ J.T / p.n)
        close(np.sort(qs.normal_hessian_eigs(p, w)), eigs_N)
        for eta in 2 / eigs_N.max() * np.array([0.01, 0.5, 0.95]):
            pr = qs.plateau_prediction(p, w, eta)
            assert pr.stable
            close(pr.a, a)
            close(pr.exact, S.plateau_loss_exact(eigs_full, eta, a))
            close(pr.leading, float(S.plateau_constant()) * eta * a * S.numeric_hessian_trace(w, X, y, gamma))
            close(np.sort(pr.normal_variances), np.sort(S.stationary_variance(eigs_N, eta, a)))
        assert not qs.plateau_prediction(p, w, 2.05 / eigs_N.max()).stable


@pytest.mark.parametrize("gamma", GAMMAS)
def test_quasistatic_drift_velocity_against_derived(gamma):
    """drift_velocity = -(a/4) P_T grad tr Hess L_n with the derived gradient and projector (on and
    off M); on M radial_velocity = w_hat . drift_velocity."""
    qs = _qs()
    rng, X, y = data(15, 4, 2)
    p = Problem(X=X, y=y, alpha_star=np.zeros(4), w0=np.ones(4), gamma=gamma, sigma=0.3)
    a = 0.045
    on_M = manifold_points(X, y, gamma, rng, k=3, scale=1.5)
    for w in np.concatenate([on_M, rng.standard_normal((2, 4))]):
        PN = S.numeric_normal_projector(w, X, gamma)
        want = -0.25 * a * (np.eye(4) - PN) @ S.numeric_trace_gradient(w, X, y, gamma)
        close(qs.drift_velocity(p, w, a), want, rtol=1e-9)
    for w in on_M:
        r = np.linalg.norm(w)
        PT = np.eye(4) - S.numeric_normal_projector(w, X, gamma)
        v = -0.25 * a * PT @ S.numeric_trace_gradient(w, X, y, gamma)
        close(qs.radial_velocity(p, w, a), (w / r) @ v, rtol=1e-9)
        close(qs.radial_velocity(p, w, a),
              -0.25 * a * S.numeric_manifold_trace_deriv(r, X, y, gamma) * np.sum((PT @ (w / r)) ** 2), rtol=1e-9)
