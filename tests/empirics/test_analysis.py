"""The measurements of empirics.analysis on hand-built result files, and the doctored inputs that flip them."""
from __future__ import annotations

import json

import numpy as np
import pytest

from empirics import analysis as A
from theory.io import save_json, save_result

SPE = 10


def write_run(d, seed, train_loss, train_acc, test_loss, epochs, decay_epochs=(), sub_final_test=None, end=None):
    """A run directory with a main path evaluated at ``epochs`` and one finished subpath per decay epoch."""
    end = end or epochs[-1]
    cfg = {"decay_epochs": list(decay_epochs), "label_noise": 0.0, "lr": 0.1, "decay_factor": 0.1}
    rows = [{"epoch": int(e), "step": int(e) * SPE, "train_loss": float(a), "train_acc": float(b),
             "test_loss": float(c), "test_acc": 0.3, "running_train_loss": float(a)}
            for e, a, b, c in zip(epochs, train_loss, train_acc, test_loss)]
    save_json(d / "main" / "result.json", {"metrics": rows, "final": rows[-1], "config": cfg, "seed": seed,
                                           "end_epoch": end, "steps_per_epoch": SPE, "meta": {}})
    for e, tl in zip(decay_epochs, sub_final_test or []):
        fin = {"epoch": end, "train_loss": 1e-3, "train_acc": 1.0, "test_loss": float(tl), "test_acc": 0.35}
        save_json(d / f"sub_e{e:06d}" / "result.json", {"metrics": [fin], "final": fin, "config": cfg, "seed": seed,
                                                        "end_epoch": end, "meta": {"decay_epoch": e}, "lr": 0.01})
    return d


EPOCHS = np.arange(10, 810, 10)


def plateau_run(d, seed=0, land=250, **kw):
    loss = np.where(EPOCHS < land, 0.4 * np.exp(-EPOCHS / 150), 0.002)
    loss = np.where(EPOCHS >= land, 0.002 * (1 + 0.5 * np.sin(EPOCHS)), loss)   # noise-floor scatter
    acc = np.where(EPOCHS < land, 0.5, 1.0)
    return write_run(d, seed, loss, acc, np.full(len(EPOCHS), 0.5), EPOCHS, **kw)


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


# --------------------------------------------------------------------------- vgg.late_decay
def test_late_decay_rho_and_interval(tmp_path):
    dec = (500, 600, 700, 750)
    base = np.array([0.50, 0.48, 0.46, 0.45])
    runs = [plateau_run(tmp_path / f"s{s}", seed=s, decay_epochs=dec, sub_final_test=list(base + 0.003 * s))
            for s in range(3)]
    r = A.measure_late_decay(runs)
    assert r["decay_epochs"] == list(dec) and r["end_epoch"] == 800
    np.testing.assert_allclose(r["test_loss_mean"], base + 0.003)
    np.testing.assert_allclose(r["test_loss_se"], 0.003 / np.sqrt(3))   # s.d. 0.003 over 3 seeds
    assert r["spearman_rho"] == -1 and r["rho_interval"][1] < 0 and r["rho_per_seed"] == [-1, -1, -1]
    assert r["control_test_loss_mean"] == pytest.approx(0.5)
    assert r["best_minus_control_test_loss"] == pytest.approx(0.453 - 0.5)
    # doctored: later decay made worse
    for s in range(3):
        plateau_run(tmp_path / f"s{s}", seed=s, decay_epochs=dec, sub_final_test=list(base[::-1] + 0.003 * s))
    r = A.measure_late_decay(runs)
    assert r["spearman_rho"] == 1 and r["rho_interval"][0] > 0


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


def test_unequal_budgets_are_refused(tmp_path):
    a = plateau_run(tmp_path / "a", decay_epochs=(500,), sub_final_test=[0.4])
    b = plateau_run(tmp_path / "b", decay_epochs=(500,), sub_final_test=[0.4], end=900)
    with pytest.raises(ValueError, match="end at different epochs"):
        A.final_table([a, b])


# --------------------------------------------------------------------------- landscape claims
def write_landscape(d, coords, steps, ckpt_loss, test_grid, train_grid, a, b):
    save_result(d / "landscape.npz", {"coords": coords, "path": np.zeros(len(coords), int), "step": steps,
                                      "ckpt_train_loss": ckpt_loss, "test_loss": test_grid, "train_loss": train_grid,
                                      "a": a, "b": b}, {"labels": ["main"], "decay_epochs": []})


def valley_setup(tmp_path, along=True):
    d = plateau_run(tmp_path / "v")
    ep = np.arange(0, 801, 25)
    steps = ep * SPE
    # Phase I from (−3, 0) to the landing point (0, 0); then along PC1 to (6, 0) (or nearly still)
    x = np.where(ep < 250, -3 + 3 * ep / 250, (ep - 250) / 550 * (6 if along else 0.3))
    coords = np.stack([x, 0.1 * np.sin(ep)], 1)
    loss = np.where(ep < 250, 0.4, 0.002 * (1 + 0.4 * np.cos(ep)))
    a, b = np.linspace(-4, 7, 31), np.linspace(-2, 2, 31)
    A_, B_ = np.meshgrid(a, b, indexing="ij")
    test = 0.4 + 0.01 * ((A_ - 5) ** 2 + 4 * B_ ** 2)                      # isolated minimum at (5, 0)
    train = 0.002 + 0.05 * B_ ** 2 + 0.1 * np.maximum(0, -A_)               # a valley along PC1
    write_landscape(d, coords, steps, loss, test, train, a, b)
    return d


def test_valley_and_its_flip(tmp_path):
    v = A.measure_valley(valley_setup(tmp_path))
    assert v["landed"] and v["loss_ratio_after_landing"] < A.VALLEY_MAX_LOSS_RATIO
    assert v["min_train_acc_after_landing"] == 1.0 and v["min_train_acc_epoch"] >= v["landing_epoch"]
    assert v["span_fraction"] == pytest.approx(6 / 9, abs=0.02) and v["span_fraction"] > A.VALLEY_MIN_SPAN_FRACTION
    v = A.measure_valley(valley_setup(tmp_path, along=False))   # doctored: the path stops on landing
    assert v["span_fraction"] < A.VALLEY_MIN_SPAN_FRACTION


def test_test_minimum_and_its_flip(tmp_path):
    d = valley_setup(tmp_path)
    t = A.measure_test_minimum(d)
    assert t["interior"] and t["min_edge_rise"] > A.TEST_MIN_EDGE_RISE and t["nearer_late_end"]
    assert t["test_min_coords"] == pytest.approx([5.0, 0.0], abs=0.2)
    assert -1 <= t["pearson_train_test"] <= 1
    # doctored: the test loss falls toward the a_max edge (minimum on the boundary)
    arr, cfg = A._landscape(d)
    A_, B_ = np.meshgrid(arr["a"], arr["b"], indexing="ij")
    write_landscape(d, arr["coords"], arr["step"], arr["ckpt_train_loss"], 0.5 - 0.01 * A_ + 0.01 * B_ ** 2,
                    arr["train_loss"], arr["a"], arr["b"])
    t = A.measure_test_minimum(d)
    assert not t["interior"] and t["edge_rise"]["a_max"] == pytest.approx(0.0)


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
    c = A.measure_curvature(runs)
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
    one = A.measure_curvature(runs[:1])                                        # one seed: Theil–Sen's interval
    assert one["trace_interval_basis"] == "theil-sen" and one["trace_log_slope_interval"][0] > 0


def test_measure_profile_reports_missing_stages(tmp_path):
    d = plateau_run(tmp_path / "sgd" / "seed_0", decay_epochs=(500,), sub_final_test=[0.4])
    save_json(tmp_path / "profile.json", {"profile": "x", "variants": ["sgd"], "seeds": [0],
                                          "run_dirs": {"sgd": ["sgd/seed_0"]}, "landscape_run": "sgd/seed_0",
                                          "stages": {"subpaths": True, "curvature": True, "landscape": True}})
    s = A.measure_profile(tmp_path)
    assert s["regime"]["in_regime"] and s["late_decay"]["decay_epochs"] == [500]
    assert "missing" in s["curvature"] and "valley" not in s
    json.dumps(s)   # plain JSON
    assert d.exists()
