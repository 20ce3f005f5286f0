r"""Measurements of the VGG experiment, read from result files, and the tolerances they are judged by.

Every function here reads saved results only (``main/result.json``, ``sub_e*/result.json``,
``curvature.json``, ``landscape.npz`` of one or several run directories, one per training seed) and
returns a dict of plain floats, ints, bools and lists. None of them draws, trains or judges: a report
compares the returned numbers with the constants below.

Claims and what measures them:

* ``vgg.regime`` — :func:`measure_regime`: train accuracy at the first decay epoch and the ratio of the
  train loss there to its minimum over the large-rate phase, per seed;
* ``vgg.late_decay`` — :func:`measure_late_decay`: final test loss and accuracy per decay epoch (mean ±
  s.e. over seeds), Spearman's ρ of the mean final test loss against the decay epoch, with a
  seed-bootstrap interval;
* ``vgg.valley`` — :func:`measure_valley`: after landing, the ratio of the main path's largest to smallest
  checkpoint train loss, and the fraction of the main path's extent in the PCA plane covered after landing;
* ``vgg.test_minimum`` — :func:`measure_test_minimum`: where the grid's test-loss minimum lies (interior?
  rising toward every edge? nearer the late end than the landing point?) and the train/test correlation;
* ``vgg.curvature`` — :func:`measure_curvature`: robust (Theil–Sen) slope of the log Hessian trace and of
* ``vgg.curvature`` — :func:`measure_curvature`: robust (Theil–Sen) slope of the log Hessian trace and of
  the log top eigenvalue along the main path in Phase II, with a seed-based interval.

:func:`measure_label_noise` compares a plain-SGD and a label-noise-SGD variant on the same settings;
:func:`measure_profile` runs all of them on a profile's output directory.

The pieces live in their own modules and are re-exported here, so every name is importable from this one:
:mod:`~lrdecay.empirics.tolerances` (the constants), :mod:`~lrdecay.empirics.run_records` (reading runs, landing
and decay epochs, the constant predictor, small statistics), :mod:`~lrdecay.empirics.late_decay` (the late-decay
statistic) and :mod:`~lrdecay.empirics.landscape_measures` (valley and test minimum).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lrdecay.theory.io import load_json

from .landscape_measures import (_landscape, _main_points, _nearest_cells, _post_landing_main, _sides_touched,
                                 measure_test_minimum, measure_valley)
from .late_decay import branch_table, main_path_test_minimum, measure_late_decay, paired_slope, slope_power
from .run_records import (_as_dirs, _mean_se, _pearson, _row_at, _slope, _spearman, _t_quantile, _window_at,
                          analysed_decay_epochs, constant_predictor_loss, first_crossing_epoch, first_decay_epoch,
                          is_fixed_length, landing_epoch, load_run, rolling_mean, run_constant_loss, tail_mean)
from .tolerances import (AUTHORS_BENEFIT, CONFIDENCE, CURVATURE_SETTLE, GATE_MIN_RELATIVE_MARGIN, GATE_MIN_SE,
                         LAST_K, REGIME_MAX_LOSS_RATIO, REGIME_MIN_TRAIN_ACC, REGIME_WINDOW, TEST_MIN_EDGE_MARGIN,
                         VALLEY_LEVEL, VALLEY_MAX_AREA, VALLEY_MIN_CONTAINED, VALLEY_WINDOW)


# ----------------------------------------------------------------------------- vgg.regime
def measure_regime(run_dirs, window: int = REGIME_WINDOW) -> dict:
    """Per seed: train accuracy and loss at the first decay epoch, the loss's minimum over the large-rate
    phase (the whole main path) and their ratio, the landing epoch, and how long the path then stays at
    the large rate before the first decay. The ratio's two sides are means over ``window`` consecutive
    evaluations (see :data:`REGIME_WINDOW`): the window ending at the first decay epoch over the smallest
    window of the main path.

    ``passes_*`` fields are not here: compare ``min_train_acc_at_first_decay`` with
    :data:`REGIME_MIN_TRAIN_ACC` and ``max_loss_ratio`` with :data:`REGIME_MAX_LOSS_RATIO`.
    """
    per = []
    for d in _as_dirs(run_dirs):
        r = load_run(d)
        m = r["main"]["metrics"]
        d1 = first_decay_epoch(r)
        row, at_window = _window_at(m, d1, "train_loss", window)
        losses = [x["train_loss"] for x in m]
        at = float(np.mean(at_window))
        lmin = float(rolling_mean(losses, window).min())
        land = landing_epoch(m)
        per.append({"seed": r["seed"], "first_decay_epoch": d1, "evaluated_epoch": int(row["epoch"]),
                    "train_acc_at_first_decay": float(row["train_acc"]),
                    "train_loss_at_first_decay": float(row["train_loss"]), "window": window,
                    "windowed_train_loss_at_first_decay": at, "min_windowed_train_loss": lmin,
                    "min_train_loss": float(min(losses)),
                    "loss_ratio": at / lmin if lmin > 0 else float("inf"),
                    "landing_epoch": land, "main_path_epochs": int(r["main"]["end_epoch"]),
                    "epochs_landed_before_first_decay": None if land is None else d1 - land,
                    "main_steps_after_landing": None if land is None
                    else (int(r["main"]["end_epoch"]) - land) * int(r["main"]["steps_per_epoch"]),
                    "final_train_acc": float(m[-1]["train_acc"])})
    return {"per_seed": per, "seeds": [p["seed"] for p in per],
            "min_train_acc_at_first_decay": min(p["train_acc_at_first_decay"] for p in per),
            "max_loss_ratio": max(p["loss_ratio"] for p in per),
            "landing_epochs": [p["landing_epoch"] for p in per],
            "in_regime": all(p["train_acc_at_first_decay"] >= REGIME_MIN_TRAIN_ACC
                             and p["loss_ratio"] <= REGIME_MAX_LOSS_RATIO for p in per)}


# ----------------------------------------------------------------------------- the generalization gate
def measure_generalization(run_dirs, window: int = REGIME_WINDOW) -> dict:
    """The generalization gate: per seed, the main path's test loss at the first analysed decay epoch (mean of
    the ``window`` evaluations ending there, with its standard error over them) against the best constant
    predictor's (:func:`run_constant_loss`).

    The gate passes when on every seed the test loss is below the constant predictor's by at least
    :data:`GATE_MIN_RELATIVE_MARGIN` of it *and* by more than :data:`GATE_MIN_SE` standard errors. A run
    that fails it has not learnt anything that transfers to the test set by the time it is decayed, so
    no generalization claim can be judged on it.
    """
    per = []
    for d in _as_dirs(run_dirs):
        r = load_run(d)
        m = r["main"]["metrics"]
        e1 = first_decay_epoch(r)
        row, at_window = _window_at(m, e1, "test_loss", window)
        mean, se = _mean_se(at_window)
        const = run_constant_loss(r)
        margin = const - mean
        per.append({"seed": r["seed"], "first_decay_epoch": e1, "test_loss": mean, "test_loss_se": se,
                    "test_acc": float(row["test_acc"]), "constant_loss": const, "margin": margin,
                    "relative_margin": margin / const, "margin_in_se": margin / se if se > 0 else float("inf"),
                    "passes": bool(margin >= GATE_MIN_RELATIVE_MARGIN * const and margin > GATE_MIN_SE * se)})
    failing = [p for p in per if not p["passes"]]
    reason = "; ".join(f"seed {p['seed']}: test loss {p['test_loss']:.4f} ± {p['test_loss_se']:.4f} at epoch "
                       f"{p['first_decay_epoch']} against the constant predictor's {p['constant_loss']:.4f} "
                       f"({100 * p['relative_margin']:.1f} % below, {p['margin_in_se']:.1f} s.e.)" for p in failing)
    return {"per_seed": per, "passes": not failing, "constant_loss": [p["constant_loss"] for p in per],
            "min_relative_margin": min(p["relative_margin"] for p in per),
            "min_margin_in_se": min(p["margin_in_se"] for p in per),
            "required_relative_margin": GATE_MIN_RELATIVE_MARGIN, "required_se": GATE_MIN_SE,
            "reason": reason}


# ----------------------------------------------------------------------------- vgg.curvature
def _trend(x, y, confidence: float) -> dict:
    """Robust trend of ``y`` against ``x``: the Theil–Sen slope (median of pairwise slopes) of :math:`\\log y`
    when every value is positive (else of :math:`y / |\\bar y|`), with its ``confidence`` interval
    (``scipy.stats.theilslopes``), and the OLS slope of the same for comparison."""
    from scipy.stats import theilslopes

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2:
        return {"slope": float("nan"), "lo": float("nan"), "hi": float("nan"), "ols": float("nan"), "log": True}
    log = bool(np.all(y > 0))
    z = np.log(y) if log else y / abs(np.mean(y))
    ts = theilslopes(z, x, alpha=confidence)
    return {"slope": float(ts[0]), "lo": float(ts[2]), "hi": float(ts[3]), "ols": _slope(x, z)[0], "log": log}


def measure_curvature(run_dirs, confidence: float = CONFIDENCE, per_epochs: int = 100,
                      settle: float = CURVATURE_SETTLE) -> dict:
    """Trend of the Hessian trace and top eigenvalue along the main path in Phase II, with the parameter norm.

    Phase II: the main-path curvature points from the landing epoch (:func:`landing_epoch`; the first
    decay epoch when the path never landed) plus ``settle`` of the span from there to the main path's
    end (the settling transient, :data:`CURVATURE_SETTLE`). The parameters' norm is trended beside the
    trace: without batch norm a rescaling between layers changes the trace, so a falling trace with a
    rising norm is not the same finding as one at constant norm. Per seed, the Theil–Sen slope of :math:`\\log` trace
    (and of :math:`\\log` top eigenvalue) against the epoch, times ``per_epochs``: ``*_log_slope``, the
    change of the logarithm per ``per_epochs`` epochs (:math:`e^{s} - 1` is the relative change). The
    median of pairwise slopes is used because large-rate instabilities (catapults) put single
    checkpoints at several times the floor's curvature, which would move a least-squares slope at will
    (the OLS slope is reported beside it). Interval: with several seeds, the seeds' mean ±
    t-quantile × s.e.; with one seed, Theil–Sen's own ``confidence`` interval. Also the Spearman ρ of
    each quantity against the epoch, the Phase-II points, and the subpath ends' values.
    """
    per = []
    for d in _as_dirs(run_dirs):
        p = Path(d) / "curvature.json"
        if not p.exists():
            raise FileNotFoundError(f"{p} not found: run the curvature stage first")
        c = load_json(p)
        r = load_run(d)
        land = landing_epoch(r["main"]["metrics"])
        begin = land if land is not None else first_decay_epoch(r)
        end = int(r["main"]["end_epoch"])
        start = begin + settle * (end - begin)
        rows = [x for x in c["rows"] if x["path"] == "main" and x["epoch"] >= start]
        subs = sorted((x for x in c["rows"] if x["path"] != "main"), key=lambda x: x["decay_epoch"])
        entry = {"seed": r["seed"], "landing_epoch": land, "phase2_start_epoch": float(start), "landed": land is not None,
                 "epochs": [x["epoch"] for x in rows], "trace": [x["trace"] for x in rows],
                 "param_norm": [x.get("param_norm", float("nan")) for x in rows],
                 "trace_se": [x["trace_se"] for x in rows], "top_eig": [x["top_eig"] for x in rows],
                 "sub_decay_epochs": [x["decay_epoch"] for x in subs], "sub_trace": [x["trace"] for x in subs],
                 "sub_top_eig": [x["top_eig"] for x in subs]}
        for q in ("trace", "top_eig", "param_norm"):
            y = np.asarray(entry[q], float)
            tr = _trend(entry["epochs"], y, confidence)
            entry[f"{q}_log_slope"] = per_epochs * tr["slope"]
            entry[f"{q}_log_slope_interval"] = [per_epochs * tr["lo"], per_epochs * tr["hi"]]
            entry[f"{q}_ols_log_slope"] = per_epochs * tr["ols"]
            entry[f"{q}_spearman"] = _spearman(entry["epochs"], y)
            entry[f"{q}_first"], entry[f"{q}_last"] = (float(y[0]), float(y[-1])) if len(y) else (np.nan, np.nan)
            entry[f"{q}_median"] = float(np.median(y)) if len(y) else float("nan")
        per.append(entry)
    out = {"per_seed": per, "per_epochs": per_epochs, "confidence": confidence, "settle": settle,
           "n_points": [len(e["epochs"]) for e in per]}
    for q in ("trace", "top_eig", "param_norm"):
        s = np.asarray([e[f"{q}_log_slope"] for e in per], float)
        if len(s) >= 2:
            m, se = _mean_se(s)
            tq = _t_quantile(confidence, len(s) - 1)
            out[f"{q}_log_slope_interval"] = [m - tq * se, m + tq * se]
            out[f"{q}_interval_basis"] = "seeds"
        else:
            m = float(s[0])
            out[f"{q}_log_slope_interval"] = per[0][f"{q}_log_slope_interval"]
            out[f"{q}_interval_basis"] = "theil-sen"
        out[f"{q}_log_slope"] = m
        out[f"{q}_relative_change"] = float(np.expm1(m))
    return out


# ----------------------------------------------------------------------------- label noise against plain SGD
def measure_label_noise(plain_dirs, noisy_dirs) -> dict:
    """The same main-path settings with and without label noise: final test loss and accuracy, the train
    loss floor (minimum over the main path), the landing epoch, and (when computed) the curvature trend."""
    def side(dirs):
        runs = [load_run(d) for d in _as_dirs(dirs)]
        res = {"seeds": [r["seed"] for r in runs], "label_noise": runs[0]["config"]["label_noise"]}
        for key in ("test_loss", "test_acc", "train_loss", "train_acc"):
            res[f"final_{key}_mean"], res[f"final_{key}_se"] = _mean_se([r["main"]["final"][key] for r in runs])
        res["min_train_loss_mean"], _ = _mean_se([min(x["train_loss"] for x in r["main"]["metrics"]) for r in runs])
        res["landing_epochs"] = [landing_epoch(r["main"]["metrics"]) for r in runs]
        if all((Path(d) / "curvature.json").exists() for d in _as_dirs(dirs)):
            c = measure_curvature(dirs)
            res["trace_log_slope"], res["trace_log_slope_interval"] = c["trace_log_slope"], c["trace_log_slope_interval"]
            res["final_trace_mean"], _ = _mean_se([e["trace_last"] for e in c["per_seed"]])
        return res

    a, b = side(plain_dirs), side(noisy_dirs)
    return {"plain": a, "label_noise": b,
            "test_loss_difference": b["final_test_loss_mean"] - a["final_test_loss_mean"]}


# ----------------------------------------------------------------------------- everything for a profile
def measure_profile(out_dir) -> dict:
    """All measurements of a profile's output directory (see :mod:`lrdecay.empirics.profiles` for its layout)."""
    out_dir = Path(out_dir)
    p = out_dir / "profile.json"
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: {out_dir} is not a profile's output directory")
    prof = load_json(p)
    variants = prof["variants"]
    first = variants[0]
    dirs = {v: [out_dir / d for d in prof["run_dirs"][v]] for v in variants}
    out = {"profile": prof["profile"], "variants": variants, "seeds": prof["seeds"]}

    def attempt(key, f, *args):
        try:
            out[key] = f(*args)
        except FileNotFoundError as exc:
            out[key] = {"missing": str(exc)}

    attempt("regime", measure_regime, dirs[first])
    attempt("generalization", measure_generalization, dirs[first])
    if prof["stages"].get("subpaths"):
        attempt("late_decay", measure_late_decay, dirs[first])
    land = out_dir / prof["landscape_run"] if prof.get("landscape_run") else None
    if land is not None and (land / "landscape.npz").exists():
        attempt("valley", measure_valley, land)
        attempt("test_minimum", measure_test_minimum, land)
    if prof["stages"].get("curvature"):
        attempt("curvature", measure_curvature, dirs[first])
    if len(variants) == 2:
        attempt("label_noise", measure_label_noise, dirs[variants[0]], dirs[variants[1]])
    return out
