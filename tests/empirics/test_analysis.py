"""The measurements of lrdecay.empirics.analysis on hand-built result files, and the doctored inputs that flip them."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lrdecay.empirics import analysis as A
from lrdecay.theory.io import save_json, save_result

SPE = 10


# ten balanced classes in training and test: the constant predictor's loss is ½(1 − 1/10) = 0.45
DATA = {"train_per_class": [50] * 10, "test_per_class": [100] * 10}
K_EVALS = A.LAST_K


def write_run(d, seed, train_loss, train_acc, test_loss, epochs, decay_epochs=(), sub_final_test=None, end=None,
              subpath_epochs=None):
    """A run directory with a main path evaluated at ``epochs`` and one finished subpath per decay epoch."""
    end = end or epochs[-1]
    cfg = {"decay_epochs": list(decay_epochs), "label_noise": 0.0, "lr": 0.1, "decay_factor": 0.1, "loss": "mse",
           "subpath_epochs": subpath_epochs}
    rows = [{"epoch": int(e), "step": int(e) * SPE, "train_loss": float(a), "train_acc": float(b),
             "test_loss": float(c), "test_acc": 0.3, "running_train_loss": float(a)}
            for e, a, b, c in zip(epochs, train_loss, train_acc, test_loss)]
    save_json(d / "main" / "result.json", {"metrics": rows, "final": rows[-1], "config": cfg, "seed": seed,
                                           "end_epoch": end, "steps_per_epoch": SPE, "meta": {}, "data": DATA})
    for e, tl in zip(decay_epochs, sub_final_test or []):
        stop = end if subpath_epochs is None else e + subpath_epochs
        tl = np.broadcast_to(np.asarray(tl, float), (K_EVALS,))        # the last K_EVALS evaluations
        ev = [{"epoch": int(stop - 5 * (K_EVALS - 1 - i)), "train_loss": 1e-3, "train_acc": 1.0,
               "test_loss": float(v), "test_acc": 0.35} for i, v in enumerate(tl)]
        save_json(d / f"sub_e{e:06d}" / "result.json", {"metrics": ev, "final": ev[-1], "config": cfg, "seed": seed,
                                                        "end_epoch": stop, "meta": {"decay_epoch": e}, "lr": 0.01,
                                                        "data": DATA})
    return d


EPOCHS = np.arange(10, 810, 10)


def _plateau_arrays(land):
    loss = np.where(EPOCHS < land, 0.4 * np.exp(-EPOCHS / 150), 0.002)
    loss = np.where(EPOCHS >= land, 0.002 * (1 + 0.5 * np.sin(EPOCHS)), loss)   # noise-floor scatter
    return loss, np.where(EPOCHS < land, 0.5, 1.0)


def plateau_run(d, seed=0, land=250, **kw):
    return write_run(d, seed, *_plateau_arrays(land), np.full(len(EPOCHS), 0.5), EPOCHS, **kw)


# --------------------------------------------------------------------------- vgg.regime
def test_regime_in_and_out(tmp_path):
    runs = [plateau_run(tmp_path / f"s{s}", seed=s, decay_epochs=(500,), sub_final_test=[0.4]) for s in range(3)]
    r = A.measure_regime(runs)
    assert r["in_regime"] and r["min_train_acc_at_first_decay"] == 1.0
    assert r["landing_epochs"] == [250, 250, 250] and r["per_seed"][0]["epochs_landed_before_first_decay"] == 250
    # window of 5 evaluations ending at 500 over the smallest window: both on the floor, ratio ≈ 1
    assert r["max_loss_ratio"] < A.REGIME_MAX_LOSS_RATIO
    # doctored: a seed that has not landed at the first decay epoch (still at 50 % accuracy, still descending)
    plateau_run(tmp_path / "s1", seed=1, land=600, decay_epochs=(500,), sub_final_test=[0.4])
    r = A.measure_regime(runs)
    assert not r["in_regime"] and r["min_train_acc_at_first_decay"] == 0.5 and r["max_loss_ratio"] > 2


# --------------------------------------------------------------------------- landing, constant predictor, gate
def test_landing_is_where_train_accuracy_stays_above_the_threshold():
    rows = lambda accs: [{"epoch": 10 * (i + 1), "train_acc": a} for i, a in enumerate(accs)]
    m = rows([0.5, 0.995, 0.84, 0.99, 1.0, 0.999])          # first crossing at 20, falls back, stays from 40
    assert A.first_crossing_epoch(m) == 20 and A.landing_epoch(m) == 40
    assert A.landing_epoch(rows([0.5, 1.0, 1.0, 0.9])) is None   # falls back at the end: never landed for good
    assert A.landing_epoch(rows([0.5, 0.6])) is None


@pytest.mark.parametrize("loss", ["mse", "mse_mean", "ce"])
def test_constant_predictor_loss_against_a_direct_average(loss):
    """The closed form against the loss averaged over an explicit test set, with the constant fitted by
    minimising the training loss numerically (an independent route: no formula for the optimum used)."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(1)
    K = 4
    ytr, yte = rng.integers(0, K, 300), rng.integers(0, K, 120)
    E = np.eye(K)

    def per_example(z, y):
        if loss == "ce":
            return -(z[y] - np.log(np.exp(z).sum()))
        sq = ((z[None] - E[y]) ** 2).sum(1)
        return 0.5 * sq if loss == "mse" else sq / K

    fit = minimize(lambda z: per_example(z, ytr).mean(), np.zeros(K), tol=1e-12).x
    direct = per_example(fit, yte).mean()
    got = A.constant_predictor_loss(loss, np.bincount(ytr, minlength=K), np.bincount(yte, minlength=K))
    assert got == pytest.approx(direct, rel=1e-6)
    with pytest.raises(ValueError, match="train_counts, test_counts"):
        A.constant_predictor_loss(loss, [1, 2], [1, 2, 3])


def test_generalization_gate_passes_a_learning_run_and_fails_one_at_the_constant(tmp_path):
    runs = [plateau_run(tmp_path / f"s{s}", seed=s, decay_epochs=(500,), sub_final_test=[0.3]) for s in range(2)]
    for s, d in enumerate(runs):     # test loss 0.3 ± a little: a third below the constant predictor's 0.45
        write_run(d, s, *_plateau_arrays(250), 0.3 + 0.002 * np.sin(EPOCHS + s), EPOCHS, decay_epochs=(500,),
                  sub_final_test=[0.3])
    g = A.measure_generalization(runs)
    assert g["passes"] and g["constant_loss"] == [pytest.approx(0.45)] * 2
    assert g["min_relative_margin"] == pytest.approx(1 / 3, abs=0.01) and g["min_margin_in_se"] > A.GATE_MIN_SE
    # doctored: one seed's test loss at the constant predictor's (the network learnt nothing that transfers)
    write_run(runs[1], 1, *_plateau_arrays(250), np.full(len(EPOCHS), 0.449), EPOCHS, decay_epochs=(500,),
              sub_final_test=[0.3])
    g = A.measure_generalization(runs)
    assert not g["passes"] and "seed 1" in g["reason"] and "seed 0" not in g["reason"]


# --------------------------------------------------------------------------- vgg.late_decay
def test_paired_slope_against_independent_computations():
    """Per-seed least-squares slopes (numpy's polyfit) and the t-interval of their mean (scipy's one-sample t)."""
    from scipy import stats

    e = np.array([200, 250, 300, 350, 400])
    rng = np.random.default_rng(3)
    V = 0.40 - 2e-4 * (e - 200) + rng.normal(0, 0.004, (4, len(e)))
    st = A.paired_slope(e, V)
    slopes = np.array([100 * np.polyfit(e, v, 1)[0] for v in V])
    np.testing.assert_allclose(st["slopes"], slopes, rtol=1e-10)
    ci = stats.ttest_1samp(slopes, 0).confidence_interval(0.95)
    assert st["interval"] == pytest.approx([ci.low, ci.high], rel=1e-9) and st["basis"] == "seeds"
    assert st["interval"][1] < 0                                   # −0.02 per 100 epochs, well resolved
    np.testing.assert_allclose(st["pearson_r"], [stats.pearsonr(e, v)[0] for v in V], rtol=1e-10)
    # doctored: the same values in reverse order of the branches flip the sign and the interval
    flipped = A.paired_slope(e, V[:, ::-1])
    assert flipped["interval"][0] > 0
    # one seed: the slope's own t-interval over the branches (scipy's linregress standard error)
    one = A.paired_slope(e, V[:1])
    lr = stats.linregress(e, V[0])
    tq = stats.t.ppf(0.975, len(e) - 2)
    assert one["interval"] == pytest.approx([100 * (lr.slope - tq * lr.stderr), 100 * (lr.slope + tq * lr.stderr)])
    assert one["basis"].startswith("branches")


def test_slope_power_against_a_simulation():
    rng = np.random.default_rng(0)
    S, effect, sd = 4, -0.02, 0.015
    from scipy import stats
    draws = rng.normal(effect, sd, (20000, S))
    m, se = draws.mean(1), draws.std(1, ddof=1) / np.sqrt(S)
    hit = (m + stats.t.ppf(0.975, S - 1) * se < 0).mean()
    assert A.slope_power(effect, sd, S) == pytest.approx(hit, abs=0.01)


def test_late_decay_fixed_length_branches_after_landing(tmp_path):
    """Branches before landing are left out; each branch's value is the mean of its last LAST_K evaluations."""
    dec = (100, 300, 400, 500, 600)
    base = {100: 0.2, 300: 0.40, 400: 0.39, 500: 0.38, 600: 0.37}
    runs = []
    for s in range(3):
        tails = [base[e] + 0.002 * s + 0.01 * np.r_[1, -1] .repeat(K_EVALS // 2) for e in dec]
        runs.append(plateau_run(tmp_path / f"s{s}", seed=s, decay_epochs=dec, sub_final_test=tails, subpath_epochs=100))
    r = A.measure_late_decay(runs)
    assert r["design"] == "fixed_length" and r["decay_epochs"] == [300, 400, 500, 600]   # landing at 250
    np.testing.assert_allclose(r["test_loss_mean"], [0.402, 0.392, 0.382, 0.372])
    assert r["test_loss_slope"]["slope"] == pytest.approx(-0.01) and r["test_loss_slope"]["interval"][1] < 0
    assert r["test_loss_slope"]["relative_change"] == pytest.approx(0.372 / 0.402 - 1)
    assert r["end_epochs"] == [400, 500, 600, 700]
    # control: the main path's mean over its last K evaluations up to each branch's end (nan past its end)
    assert r["control_test_loss_per_seed"][0][:3] == pytest.approx([0.5, 0.5, 0.5])


def test_equal_budget_mixed_with_fixed_length_is_refused(tmp_path):
    a = plateau_run(tmp_path / "a", decay_epochs=(500,), sub_final_test=[0.4])
    b = plateau_run(tmp_path / "b", decay_epochs=(500,), sub_final_test=[0.4], subpath_epochs=100)
    with pytest.raises(ValueError, match="mix fixed-length and equal-budget"):
        A.branch_table([a, b])


def test_main_path_test_minimum_is_taken_after_landing_over_the_seed_mean(tmp_path):
    """A test loss that is lowest before landing (ignored), dips at epoch 600 after it, and ends higher."""
    test = lambda s: np.where(EPOCHS < 250, 0.3, 0.5 - 0.1 * np.exp(-((EPOCHS - 600) / 40.0) ** 2)) + 0.01 * s
    runs = []
    for s in range(3):
        runs.append(plateau_run(tmp_path / f"s{s}", seed=s))
        loss = np.where(EPOCHS < 250, 0.4 * np.exp(-EPOCHS / 150), 0.002)
        write_run(runs[-1], s, loss, np.where(EPOCHS < 250, 0.5, 1.0), test(s), EPOCHS)
    r = A.main_path_test_minimum(runs)
    assert r["main_test_min_epoch"] == 600
    assert r["main_test_min"] == pytest.approx(0.4 + 0.01)          # 0.5 − 0.1 plus the mean seed offset
    assert r["main_test_end"] == pytest.approx(0.5 + 0.01, abs=1e-6)


# --------------------------------------------------------------------------- landscape claims
def write_landscape(d, coords, steps, ckpt_loss, test_grid, train_grid, a, b):
    from scipy.interpolate import RegularGridInterpolator

    proj = RegularGridInterpolator((a, b), train_grid)(coords[:, :2])
    save_result(d / "landscape.npz", {"coords": coords, "path": np.zeros(len(coords), int), "step": steps,
                                      "ckpt_train_loss": ckpt_loss, "test_loss": test_grid, "train_loss": train_grid,
                                      "proj_train_loss": proj, "a": a, "b": b}, {"labels": ["main"], "decay_epochs": []})


def valley_setup(tmp_path, steep=False):
    """A main path landing at (0, 0) at epoch 250 and moving along PC1 to (6, 0), in a window around it,
    with a train-loss valley along PC1 (or, doctored, a train loss that climbs steeply along the path)."""
    d = plateau_run(tmp_path / "v")
    ep = np.arange(250, 801, 25)
    coords = np.stack([(ep - 250) / 550 * 6, 0.1 * np.sin(ep)], 1)
    a, b = np.linspace(-1, 7, 33), np.linspace(-2, 2, 33)
    A_, B_ = np.meshgrid(a, b, indexing="ij")
    test = 0.3 + 0.01 * ((A_ - 5) ** 2 + 4 * B_ ** 2)                     # isolated minimum at (5, 0)
    train = 0.002 + 0.05 * B_ ** 2                                           # a valley along PC1
    if steep:
        train = 0.002 * np.exp(A_) + 0.05 * B_ ** 2
    write_landscape(d, coords, ep * SPE, np.full(len(ep), 0.002), test, train, a, b)
    return d


def test_valley_sublevel_set_and_its_flip(tmp_path):
    v = A.measure_valley(valley_setup(tmp_path))
    assert v["landed"] and v["contained_fraction"] == 1.0 and v["sides_touched"] == 2
    # the sublevel set {0.002 + 0.05 b² ≤ 2 × median over the path}: one band along PC1 (here 3 of 33 rows)
    arr, _ = A._landscape(tmp_path / "v")
    level = 2 * np.median(arr["proj_train_loss"])        # the grid's (bilinear) values at the path's projections
    rows = (0.002 + 0.05 * np.linspace(-2, 2, 33) ** 2 <= level).mean()
    assert v["level"] == pytest.approx(level) and v["area_fraction"] == pytest.approx(rows) and v["passes"]
    v = A.measure_valley(valley_setup(tmp_path, steep=True))                # doctored: climbing along the path
    assert not v["passes"] and v["contained_fraction"] < A.VALLEY_MIN_CONTAINED


def test_test_minimum_and_its_flip(tmp_path):
    d = valley_setup(tmp_path)
    t = A.measure_test_minimum(d)
    assert t["interior"] and t["min_edge_margin"] > A.TEST_MIN_EDGE_MARGIN and t["nearer_late_end"]
    assert t["test_min_coords"] == pytest.approx([5.0, 0.0], abs=0.2)
    assert t["constant_loss"] == pytest.approx(0.45)
    Z = 0.3 + 0.01 * ((np.meshgrid(np.linspace(-1, 7, 33), np.linspace(-2, 2, 33), indexing="ij")[0] - 5) ** 2
                      + 4 * np.meshgrid(np.linspace(-1, 7, 33), np.linspace(-2, 2, 33), indexing="ij")[1] ** 2)
    assert t["fraction_above_constant"] == pytest.approx((Z > 0.45).mean())
    # doctored: the test loss falls toward the a_max edge (minimum on the boundary, margin 0 there)
    arr, cfg = A._landscape(d)
    A_, B_ = np.meshgrid(arr["a"], arr["b"], indexing="ij")
    write_landscape(d, arr["coords"], arr["step"], arr["ckpt_train_loss"], 0.5 - 0.01 * A_ + 0.01 * B_ ** 2,
                    arr["train_loss"], arr["a"], arr["b"])
    t = A.measure_test_minimum(d)
    assert not t["interior"] and t["edge_margin"]["a_max"] == pytest.approx(0.0)


# --------------------------------------------------------------------------- vgg.curvature
def write_curvature(d, epochs, trace, top):
    rows = [{"path": "main", "epoch": int(e), "step": int(e) * SPE, "trace": float(t), "trace_se": 0.1,
             "top_eig": float(l)} for e, t, l in zip(epochs, trace, top)]
    save_json(d / "curvature.json", {"config": {"curvature": {}}, "rows": rows})


def test_curvature_trend_and_its_flip(tmp_path):
    ep = np.arange(100, 801, 100)
    runs = []
    for s in range(3):
        d = plateau_run(tmp_path / f"c{s}", seed=s)
        tr = 100 * np.exp(-0.002 * ep) * (1 + 0.01 * s)
        tr[6] *= 8                                        # a catapult at epoch 700: one checkpoint far above the floor
        write_curvature(d, ep, tr, 10 * np.exp(-0.001 * ep))
        runs.append(d)
    c = A.measure_curvature(runs, settle=0.0)
    assert c["per_seed"][0]["epochs"] == [300, 400, 500, 600, 700, 800]      # Phase II: from landing (250)
    # Theil–Sen on log trace ignores the outlier: −0.002 per epoch → −0.2 per 100 epochs, exactly
    assert c["per_seed"][0]["trace_log_slope"] == pytest.approx(-0.2)
    assert c["trace_log_slope"] == pytest.approx(-0.2) and c["trace_relative_change"] == pytest.approx(np.expm1(-0.2))
    assert c["per_seed"][0]["trace_ols_log_slope"] > -0.2                     # least squares is pulled by it
    lo, hi = c["trace_log_slope_interval"]
    assert hi < 0 and c["trace_interval_basis"] == "seeds" and c["top_eig_log_slope_interval"][1] < 0
    for s, d in enumerate(runs):                                               # doctored: rising curvature
        write_curvature(d, ep, 50 * np.exp(0.001 * ep) + s, 10 + 0.002 * ep)
    c = A.measure_curvature(runs)
    assert c["trace_log_slope_interval"][0] > 0
    # the settling transient: the first fifth of the span from landing (250) to the end (800) is left out
    assert c["per_seed"][0]["phase2_start_epoch"] == pytest.approx(250 + 0.2 * 550)
    assert c["per_seed"][0]["epochs"] == [400, 500, 600, 700, 800]
    one = A.measure_curvature(runs[:1])                                        # one seed: Theil–Sen's interval
    assert one["trace_interval_basis"] == "theil-sen" and one["trace_log_slope_interval"][0] > 0


def test_measure_profile_reports_missing_stages(tmp_path):
    d = plateau_run(tmp_path / "sgd" / "seed_0", decay_epochs=(500,), sub_final_test=[0.4])
    save_json(tmp_path / "profile.json", {"profile": "x", "variants": ["sgd"], "seeds": [0],
                                          "run_dirs": {"sgd": ["sgd/seed_0"]}, "landscape_run": "sgd/seed_0",
                                          "stages": {"subpaths": True, "curvature": True, "landscape": True}})
    s = A.measure_profile(tmp_path)
    assert s["regime"]["in_regime"] and s["late_decay"]["decay_epochs"] == [500]
    assert not s["generalization"]["passes"]          # a test loss of 0.5 is above the constant predictor's 0.45
    assert "missing" in s["curvature"] and "valley" not in s
    json.dumps(s)   # plain JSON
    assert d.exists()
