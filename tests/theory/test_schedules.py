import numpy as np
import pytest

from lrdecay.theory.schedules import (Constant, Cosine, FunctionSchedule, MultiStep, StepDecay, WarmupStableDecay,
                              as_schedule)


def test_constant_and_step_decay():
    assert Constant(0.1)(5) == 0.1
    s = StepDecay(0.02, decay_step=3, factor=0.1)
    np.testing.assert_allclose(s(np.arange(5)), [0.02, 0.02, 0.02, 0.002, 0.002])
    assert s(2) == 0.02 and np.isclose(s(3), 0.002)


def test_multistep():
    s = MultiStep(1.0, milestones=[2, 5], factor=0.5)
    np.testing.assert_allclose(s(np.arange(7)), [1, 1, 0.5, 0.5, 0.5, 0.25, 0.25])


def test_cosine_endpoints_and_midpoint():
    s = Cosine(0.4, total_steps=10, eta_min=0.0)
    assert np.isclose(s(0), 0.4) and np.isclose(s(5), 0.2) and np.isclose(s(10), 0.0) and np.isclose(s(20), 0.0)


@pytest.mark.parametrize("make, expected", [
    (lambda: Constant(0.3), lambda k: np.full(k.shape, 0.3)),
    (lambda: StepDecay(0.2, decay_step=7, factor=0.25), lambda k: np.where(k < 7, 0.2, 0.05)),
    (lambda: MultiStep(0.8, milestones=[3, 9, 14], factor=0.5),
     lambda k: 0.8 * 0.5 ** ((k >= 3).astype(int) + (k >= 9) + (k >= 14))),
    (lambda: Cosine(0.5, total_steps=16, eta_min=0.05),
     lambda k: 0.05 + 0.45 * 0.5 * (1 + np.cos(np.pi * np.minimum(k, 16) / 16))),
    (lambda: WarmupStableDecay(1.0, warmup_steps=5, decay_start=12, decay_steps=6, final_factor=0.2, warmup_start=0.1),
     lambda k: np.select([k < 5, k < 12, k < 18], [0.1 + 0.9 * k / 5, np.ones(k.shape), 1 - 0.8 * (k - 12) / 6], 0.2)),
])
def test_every_schedule_follows_its_formula_at_every_step(make, expected):
    """Each schedule against its formula written out here, at every step of a window past its end."""
    k = np.arange(30)
    np.testing.assert_allclose(make()(k), expected(k), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose([make()(int(j)) for j in k], expected(k), rtol=1e-13, atol=1e-15)  # scalar calls


def test_decaying_schedules_decay():
    """A decaying schedule ends below where it starts and never rises after its peak."""
    k = np.arange(200)
    for s in (StepDecay(0.1, 50), MultiStep(0.1, [20, 80]), Cosine(0.1, 150),
              WarmupStableDecay(0.1, 10, 100, 50, final_factor=0.1)):
        v = s(k)
        peak = int(np.argmax(v))
        assert v[-1] < 0.5 * v.max() and np.all(np.diff(v[peak:]) <= 1e-15), s


def test_warmup_stable_decay_shape():
    s = WarmupStableDecay(1.0, warmup_steps=4, decay_start=10, decay_steps=5, final_factor=0.1)
    v = s(np.arange(20))
    np.testing.assert_allclose(v[:5], [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(v[4:11], 1.0)
    np.testing.assert_allclose(v[15:], 0.1)
    assert np.all(np.diff(v[10:16]) < 0)


def test_as_schedule():
    assert isinstance(as_schedule(0.3), Constant)
    s = StepDecay(0.1, 5)
    assert as_schedule(s) is s
    f = lambda k: 0.1  # noqa: E731
    assert isinstance(as_schedule(f), FunctionSchedule) and as_schedule(f).fn is f


@pytest.mark.parametrize("make, match", [
    (lambda: Constant(0.0), "eta must be a finite number > 0"),
    (lambda: Constant(float("inf")), "eta must be a finite number > 0"),
    (lambda: StepDecay(0.1, -1), "decay_step must be an integer >= 0"),
    (lambda: StepDecay(0.1, 5, factor=1.5), r"factor must be a number in \(0, 1\]"),
    (lambda: MultiStep(0.1, [5, 3]), "milestones must be strictly increasing"),
    (lambda: Cosine(0.1, 0), "total_steps must be an integer >= 1"),
    (lambda: Cosine(0.1, 10, eta_min=0.2), r"eta_min must be in \[0, eta\]"),
    (lambda: WarmupStableDecay(0.1, 10, 5, 5), "decay_start must be >= warmup_steps"),
])
def test_bad_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_negative_step_rejected():
    with pytest.raises(ValueError, match="step must be >= 0"):
        Constant(0.1)(-1)


# ---- cyclic schedules and the drift budget ---------------------------------------------------------
from lrdecay.theory.schedules import CosineWarmRestarts, OneCycle, Triangular, drift_budget  # noqa: E402


def _triangular_loop(eta, h, lo, T, start="low"):
    """A plain loop: up h steps, down h steps, linearly."""
    out, v, up = [], (lo if start == "low" else eta), start == "low"
    for k in range(T):
        out.append(v)
        v += (eta - lo) / h * (1 if up else -1)
        if (k + 1) % h == 0:
            up = not up
            v = eta if not up else lo
    return np.array(out)


@pytest.mark.parametrize("start", ["low", "high"])
def test_triangular_matches_a_plain_loop(start):
    np.testing.assert_allclose(Triangular(0.1, 5, 0.01, start)(np.arange(40)), _triangular_loop(0.1, 5, 0.01, 40, start),
                               rtol=1e-12, atol=1e-15)


def test_cosine_restarts_cycles_and_growth():
    s = CosineWarmRestarts(1.0, period=4, period_mult=2.0, eta_min=0.0)
    v = s(np.arange(12))
    starts = [0, 4, 12]                      # cycles of 4 and 8 steps
    expect = [0.5 * (1 + np.cos(np.pi * (k - 0) / 4)) if k < 4 else 0.5 * (1 + np.cos(np.pi * (k - 4) / 8))
              for k in range(12)]
    np.testing.assert_allclose(v, expect, rtol=1e-12)
    assert s(starts[1]) == 1.0 and s(starts[2]) == 1.0


def test_one_cycle_shape():
    s = OneCycle(0.1, 100, pct_start=0.3, div_factor=25, final_div_factor=1e4)
    v = s(np.arange(120))
    assert v[0] == pytest.approx(0.1 / 25) and v[29] == pytest.approx(0.1)          # peak at pct_start T - 1
    assert v[99] == pytest.approx(0.1 / 25 / 1e4) and np.all(v[99:] == v[99])
    assert np.all(np.diff(v[:30]) > 0) and np.all(np.diff(v[29:100]) < 0)


def test_cyclic_schedules_match_torch():
    torch = pytest.importorskip("torch")
    T = 300
    cases = [(OneCycle(0.1, T), lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.1, total_steps=T, anneal_strategy="cos", three_phase=False, cycle_momentum=False)),
        (CosineWarmRestarts(0.1, 30, 2, 0.01), lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            o, T_0=30, T_mult=2, eta_min=0.01)),
        (Triangular(0.1, 25, 0.01), lambda o: torch.optim.lr_scheduler.CyclicLR(
            o, base_lr=0.01, max_lr=0.1, step_size_up=25, mode="triangular", cycle_momentum=False))]
    for ours, make in cases:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        sch, lrs = make(opt), []
        for _ in range(T):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sch.step()
        np.testing.assert_allclose(ours(np.arange(T)), lrs, rtol=1e-12, atol=1e-15)


def test_drift_budget_is_the_sum_of_squares():
    s = StepDecay(0.02, 30, 0.1)
    assert drift_budget(s, 100) == pytest.approx(30 * 0.02**2 + 70 * 0.002**2, rel=1e-12)
    assert drift_budget(0.05, 7) == pytest.approx(7 * 0.05**2, rel=1e-12)


@pytest.mark.parametrize("make, match", [
    (lambda: Triangular(0.1, 0), "half_period must be an integer >= 1"),
    (lambda: Triangular(0.1, 5, 0.2), "eta_min must be in"),
    (lambda: Triangular(0.1, 5, start="mid"), "start must be one of"),
    (lambda: CosineWarmRestarts(0.1, 10, period_mult=0.5), "period_mult must be in"),
    (lambda: OneCycle(0.1, 100, pct_start=1.0), "pct_start must be in the open interval"),
    (lambda: OneCycle(0.1, 1), "total_steps must be an integer >= 2"),
])
def test_cyclic_bad_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ---- any callable as a schedule ----------------------------------------------------------------------
def _late_step(k):
    """A schedule written for one step (a Python ``if``, which fails on an array)."""
    return 0.01 if k < 5000 else 0.001


def test_a_scalar_function_is_evaluated_step_by_step():
    """The wrapped function gives, on an array of steps, what a loop of scalar calls gives."""
    s = as_schedule(_late_step)
    k = np.arange(4990, 5010)
    np.testing.assert_array_equal(s(k), [_late_step(int(j)) for j in k])
    assert s.vectorised is False and s(3) == 0.01 and s(5000) == 0.001


def test_a_vectorised_function_is_used_on_arrays():
    f = lambda k: 0.1 / (1 + np.asarray(k) / 100)  # noqa: E731
    s = as_schedule(f)
    k = np.arange(0, 1000, 7)
    np.testing.assert_allclose(s(k), [0.1 / (1 + j / 100) for j in k], rtol=1e-15)
    assert s.vectorised is True


def test_a_function_returning_one_number_for_an_array_is_broadcast_step_by_step():
    s = as_schedule(lambda k: 0.05)
    np.testing.assert_array_equal(s(np.arange(6)), np.full(6, 0.05))


def test_a_function_inconsistent_on_arrays_is_refused():
    def odd(k):
        return np.full(np.shape(k), 0.1) if np.ndim(k) else 0.2
    with pytest.raises(ValueError, match=r"gives other rates for an array of steps than step by step .* a schedule is"):
        as_schedule(odd)(np.arange(10))


def test_a_function_returning_no_number_is_refused():
    with pytest.raises(ValueError, match=r"returned 'fast' at step 0; a schedule is a callable"):
        as_schedule(lambda k: "fast")(np.arange(3))


@pytest.mark.parametrize("lr", ["0.1", None, [0.1, 0.2], True])
def test_what_is_not_a_schedule_is_refused(lr):
    with pytest.raises(ValueError, match=r"lr must be a number > 0 or a schedule, got .*; a schedule is a callable"):
        as_schedule(lr)


def test_a_function_is_described_by_its_name_and_source():
    d = as_schedule(_late_step).describe()
    assert d["kind"] == "function" and d["name"].endswith("_late_step")
    assert "0.01 if k < 5000 else 0.001" in d["source"] and "0x" not in str(d)


def test_a_function_without_readable_source_warns():
    ns = {}
    exec("f = lambda k: 0.1", ns)          # no file behind it: inspect cannot read the source
    with pytest.warns(UserWarning, match=r"schedule <lambda>: its source cannot be read, so result files store its name"):
        d = as_schedule(ns["f"]).describe()
    assert d == {"kind": "function", "name": "<lambda>", "source": None}


@pytest.mark.parametrize("fn, match", [
    (lambda k: np.where(k < 3, 0.1, -0.1), r"lr: schedule .*<lambda> gives a negative learning rate -0.1 at step 3"),
    (lambda k: np.where(k < 2, 0.1, np.nan), r"lr: schedule .*<lambda> gives a non-finite learning rate nan at step 2"),
    (lambda k: np.inf, r"non-finite learning rate inf at step 0"),
])
def test_checked_rates_refuses_negative_and_non_finite_rates(fn, match):
    from lrdecay.theory.schedules import checked_rates
    with pytest.raises(ValueError, match=match):
        checked_rates(as_schedule(fn), np.arange(10))


def test_checked_rates_accepts_zero_and_names_the_schedule_class():
    from lrdecay.theory.schedules import checked_rates
    np.testing.assert_array_equal(checked_rates(Cosine(0.1, 4), np.arange(4, 6)), [0.0, 0.0])   # zero is allowed
    class Broken(StepDecay):
        def _eta(self, s):
            return -super()._eta(s)
    with pytest.raises(ValueError, match=r"lr\[2\]: schedule .*Broken\(eta=0.1, decay_step=1, factor=0.5\) gives a "
                                         r"negative learning rate -0.1 at step 0"):
        checked_rates(Broken(0.1, 1, 0.5), np.arange(3), "lr[2]")


def test_drift_budget_of_a_scalar_function_is_the_direct_sum():
    assert drift_budget(_late_step, 7000) == pytest.approx(5000 * 0.01**2 + 2000 * 0.001**2, rel=1e-12)
    with pytest.raises(ValueError, match="negative learning rate"):
        drift_budget(lambda k: -0.1, 5)
