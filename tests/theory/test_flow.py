import numpy as np
import pytest

from lrdecay.theory.models import nonlinear as m
from lrdecay.theory.flow import (batched_gradient_flow, gradient_flow, gradient_flow_batch, linear_flow_closed_form,
                         problem_gradient_flow, problem_gradient_flow_batch)
from lrdecay.theory.problem import Problem


def test_linear_closed_form_solves_the_ode():
    """Independent check of the oracle itself: d/dt w(t) = -grad L_n(w(t)) by finite differences."""
    p = Problem.generate(d=15, n=5, gamma=0.0, seed=2)
    t = np.array([0.0, 0.3, 1.7])
    w = linear_flow_closed_form(p.X, p.y, p.w0, t)
    np.testing.assert_allclose(w[0], p.w0, atol=1e-13)
    h = 1e-6
    dw = (linear_flow_closed_form(p.X, p.y, p.w0, t + h) - linear_flow_closed_form(p.X, p.y, p.w0, t - h + 2 * h * (t == 0))) / (2 * h - h * (t == 0))[:, None]
    np.testing.assert_allclose(dw[1:], -m.train_grad(w[1:], p.X, p.y, 0.0), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("reduce", [False, True])
def test_gamma_zero_flow_matches_closed_form(reduce):
    p = Problem.generate(d=30, n=6, gamma=0.0, seed=5)
    res = problem_gradient_flow(p, eps=1e-3, t_max=1e3, reduce=reduce)
    assert res.status == "reached_eps", res.message
    np.testing.assert_allclose(res.w_final, linear_flow_closed_form(p.X, p.y, p.w0, res.t_final), atol=1e-9)


def test_event_is_root_found_not_overshot():
    p = Problem.generate(d=20, n=5, gamma=1.0, seed=1)
    eps = 1e-3
    res = problem_gradient_flow(p, eps=eps, t_max=1e4, reduce=False)
    assert res.status == "reached_eps"
    assert abs(res.loss_final - eps) < 1e-9 * eps
    losses = m.train_loss(res.w, p.X, p.y, 1.0)
    assert np.all(losses[:-1] > eps)             # every stored point before the stop is above eps
    assert res.t[-1] == pytest.approx(res.t_final)


def test_reduced_flow_equals_full_flow_nonlinear():
    p = Problem.generate(d=60, n=6, gamma=2.0, seed=9)
    a = problem_gradient_flow(p, eps=1e-4, t_max=1e4, reduce=True)
    b = problem_gradient_flow(p, eps=1e-4, t_max=1e4, reduce=False)
    assert a.extra["reduced_dim"] == 7
    np.testing.assert_allclose(a.w_final, b.w_final, atol=1e-8)
    assert a.t_final == pytest.approx(b.t_final, rel=1e-7)


def test_time_limit_status():
    p = Problem.generate(d=20, n=5, gamma=1.0, seed=1)
    res = problem_gradient_flow(p, eps=1e-12, t_max=0.5)
    assert res.status == "time_limit" and res.t_final == pytest.approx(0.5)
    assert "time limit" in res.message and res.loss_final > 1e-12


def test_already_below_eps_stops_at_once():
    p = Problem.generate(d=20, n=5, gamma=1.0, seed=1)
    res = problem_gradient_flow(p, p.w_mn, eps=1e-6, t_max=1.0)
    assert res.status == "reached_eps" and res.t_final == 0.0


def test_divergence_is_reported_not_nan():
    res = gradient_flow(lambda w: -w, np.ones(3), loss=lambda w: float(w @ w), eps=None, t_max=100.0, blowup=1e3)
    assert res.status == "diverged" and "exceeded" in res.message
    assert np.all(np.isfinite(res.w_final)) and res.t_final == pytest.approx(np.log(1e3 / np.sqrt(3)), rel=1e-6)


def test_batch_stops_each_path_at_its_own_time():
    # L = |w|^2 / 2 (1-D): w(t) = w0 e^{-t}, loss = eps at t = log(|w0| / sqrt(2 eps))
    W0 = np.array([[1.0], [2.0], [5.0]])
    eps = 1e-3
    out = gradient_flow_batch(lambda w: w, W0, loss=lambda w: 0.5 * float(w @ w), eps=eps, t_max=100.0)
    expected = np.log(np.abs(W0[:, 0]) / np.sqrt(2 * eps))
    np.testing.assert_allclose([r.t_final for r in out], expected, rtol=1e-8)


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=0.0, t_max=1.0), "eps must be a finite number > 0"),
    (dict(eps=1e-3, t_max=-1.0), "t_max must be a finite number > 0"),
    (dict(eps=1e-3, t_max=1.0, rtol=0), "rtol must be a finite number > 0"),
])
def test_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gradient_flow(lambda w: w, np.ones(2), loss=lambda w: float(w @ w), **kwargs)
    with pytest.raises(ValueError, match="w0 must be a 1-D array"):
        gradient_flow(lambda w: w, np.ones((2, 2)), loss=lambda w: 0.0, eps=1.0, t_max=1.0)


# ---------------------------------------------------------------- many points at once ------------
def _starts(p, P, scale=0.3, seed=1):
    return p.w0 + scale * np.random.default_rng(seed).standard_normal((P, p.d))


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0])
def test_batched_flow_event_times_match_solve_ivp(gamma):
    """Each row against its own solve_ivp run (gradient_flow): event times within 1e-8 relative
    (measured: about 1e-12, and the same number of right-hand-side evaluations), final states to 1e-8."""
    p = Problem.generate(d=20, n=5, gamma=gamma, seed=3)
    W0 = _starts(p, 12)
    X, y, g = p.X, p.y, p.gamma
    ref = gradient_flow_batch(lambda w: m.train_grad(w, X, y, g), W0, eps=1e-6, t_max=1e4,
                              loss=lambda w: float(m.train_loss(w, X, y, g)))
    bat = gradient_flow_batch(lambda W: m.train_grad(W, X, y, g), W0, eps=1e-6, t_max=1e4, vectorized=True,
                              loss=lambda W: m.train_loss(W, X, y, g))
    assert [r.status for r in ref] == list(bat.status) == ["reached_eps"] * 12
    np.testing.assert_allclose(bat.t_final, [r.t_final for r in ref], rtol=1e-8)
    np.testing.assert_allclose(bat.W_final, [r.w_final for r in ref], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(bat.loss_final, 1e-6, rtol=1e-8)
    assert list(bat.nfev) == [r.nfev for r in ref]


def test_batched_flow_mixed_outcomes_per_row():
    """One batch holding a row already below eps, rows that reach eps, and a row that hits t_max; each
    gets solve_ivp's status and stop."""
    p = Problem.generate(d=20, n=5, gamma=1.0, seed=1)
    W0 = np.stack([p.w_mn, p.w0, 2.0 * p.w0, 0.05 * p.w0])
    a = [problem_gradient_flow(p, w, eps=1e-5, t_max=3.0, reduce=False) for w in W0]
    b = problem_gradient_flow_batch(p, W0, eps=1e-5, t_max=3.0, reduce=False)
    assert [r.status for r in a] == list(b.status)
    assert set(b.status) == {"reached_eps", "time_limit"} and b.status[0] == "reached_eps" and b.t_final[0] == 0
    np.testing.assert_allclose(b.t_final, [r.t_final for r in a], rtol=1e-8)
    np.testing.assert_allclose(b.W_final, [r.w_final for r in a], rtol=1e-8, atol=1e-10)
    assert b[1].status == a[1].status and b[1].t_final == pytest.approx(a[1].t_final, rel=1e-8)
    red = problem_gradient_flow_batch(p, W0, eps=1e-5, t_max=3.0, reduce=True)
    np.testing.assert_allclose(red.t_final, b.t_final, rtol=1e-6)


def test_batched_flow_closed_forms_and_blowup():
    """L = |w|^2 / 2: w(t) = w0 e^{-t}, t_eps = log(|w0| / sqrt(2 eps)); dw/dt = w blows up at
    t = log(blowup / |w0|)."""
    W0 = np.array([[1.0], [2.0], [5.0]])
    out = gradient_flow_batch(lambda W: W, W0, loss=lambda W: 0.5 * np.sum(W**2, 1), eps=1e-3, t_max=100.0,
                              vectorized=True)
    np.testing.assert_allclose(out.t_final, np.log(np.abs(W0[:, 0]) / np.sqrt(2e-3)), rtol=1e-8)
    up = batched_gradient_flow(lambda W: -W, np.ones((2, 3)) * [[1.0], [2.0]], loss=lambda W: np.sum(W**2, 1),
                               eps=None, t_max=100.0, blowup=1e3)
    assert list(up.status) == ["diverged", "diverged"]
    np.testing.assert_allclose(up.t_final, np.log(1e3 / (np.sqrt(3) * np.array([1.0, 2.0]))), rtol=1e-6)
    with pytest.raises(ValueError, match="method must be 'DOP853'"):
        batched_gradient_flow(lambda W: W, W0, loss=lambda W: W[:, 0], eps=1e-3, t_max=1.0, method="RK45")
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        batched_gradient_flow(lambda W: W, W0, loss=lambda W: W[:, 0], eps=0.0, t_max=1.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=0.0, t_max=1.0), "eps must be a finite number > 0"),
    (dict(eps=None, t_max=np.inf), "t_max must be a finite number > 0"),
    (dict(eps=1e-3, t_max=1.0, atol=-1e-9), "atol must be a finite number > 0"),
    (dict(eps=1e-3, t_max=1.0, blowup=0.0), "blowup must be a finite number > 0"),
])
def test_one_flow_and_many_check_their_arguments_alike(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gradient_flow(lambda w: w, np.ones(2), loss=lambda w: float(w @ w), **kwargs)
    with pytest.raises(ValueError, match=match):
        batched_gradient_flow(lambda W: W, np.ones((3, 2)), loss=lambda W: np.sum(W**2, 1), **kwargs)


def test_starting_points_are_checked_alike():
    loss1, lossb = (lambda w: float(w @ w)), (lambda W: np.sum(W**2, 1))
    for bad, match in [(np.ones((2, 2)), r"w0 must be a 1-D array of shape \(d,\), got shape \(2, 2\)"),
                       (np.array([1.0, np.nan]), "w0 must contain finite values only")]:
        with pytest.raises(ValueError, match=match):
            gradient_flow(lambda w: w, bad, loss=loss1, eps=None, t_max=1.0)
    for bad, match in [(np.ones(2), r"W0 must be a 2-D array of shape \(P, d\), got shape \(2,\)"),
                       (np.ones((0, 2)), r"W0 must have shape \(P, d\) with P >= 1, got \(0, 2\)"),
                       (np.array([[1.0, np.inf]]), "W0 must contain finite values only")]:
        with pytest.raises(ValueError, match=match):
            batched_gradient_flow(lambda W: W, bad, loss=lossb, eps=None, t_max=1.0)
