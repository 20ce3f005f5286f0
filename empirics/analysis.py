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
  the log top eigenvalue along the main path in Phase II, with a seed-based interval.

:func:`measure_label_noise` compares a plain-SGD and a label-noise-SGD variant on the same settings;
:func:`measure_profile` runs all of them on a profile's output directory.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from theory.io import load_json, load_result

# ----------------------------------------------------------------------------- tolerances
# vgg.regime. "Interpolating": the paper's regime is a network that fits its training set. 99 % (the
# issue's threshold) leaves room for a handful of examples that SGD at the large rate keeps flipping.
REGIME_MIN_TRAIN_ACC = 0.99
# vgg.regime. "At a plateau": at the first decay epoch the train loss is within this factor of its
# minimum over the whole large-rate phase. A path still descending (Phase I) is many times above its
# final floor; a factor 2 admits the fluctuations of the SGD noise floor in Phase II, not a descent.
REGIME_MAX_LOSS_RATIO = 2.0
# ... both sides of that ratio are means over this many consecutive evaluations (the value at the decay
# epoch: the window ending there; the minimum: the smallest such window). At the large rate the iterate
# oscillates across the valley (the normal-space Ornstein–Uhlenbeck picture of THEORY.md §1), so single
# evaluations of its train loss scatter over a factor of several; the plateau is a level of that scatter.
REGIME_WINDOW = 5
# vgg.late_decay and vgg.curvature: two-sided confidence of the intervals.
CONFIDENCE = 0.95
# Seed-bootstrap resamples (the bootstrap's own Monte-Carlo error on a 95 % percentile is well below
# the discreteness of a Spearman ρ over a handful of decay epochs).
BOOTSTRAP_RESAMPLES = 4000
BOOTSTRAP_SEED = 0
# vgg.valley. "Stays in the valley": after landing every main-path checkpoint's train loss is within
# this factor of the smallest one. Leaving the valley would mean climbing back toward the loss at the
# initialisation (≈ 0.45 for the authors' loss, tens of times the floor); a factor 3 admits the SGD
# noise floor's fluctuation between checkpoints (the regime's factor 2 at one epoch, plus checkpoint-to-
# checkpoint scatter) and nothing like a climb.
VALLEY_MAX_LOSS_RATIO = 3.0
# ... computed, for the same reason as REGIME_WINDOW, on means over this many consecutive checkpoints.
VALLEY_WINDOW = 5
# vgg.valley. "Covers most of its span": after landing the main path spans at least half of the
# diameter of the whole main path (initialisation included) in the PC1–PC2 plane. Below one half the
# picture is a fall onto the valley followed by little motion along it.
VALLEY_MIN_SPAN_FRACTION = 0.5
# vgg.test_minimum. "Rises toward every edge": the lowest test loss on each of the grid's four edges
# exceeds the grid's minimum by at least this relative margin. The grid is evaluated exactly (no
# sampling noise), so the margin only has to exclude a flat floor that touches an edge; 5 % does.
TEST_MIN_EDGE_RISE = 0.05


# ----------------------------------------------------------------------------- reading runs
def _as_dirs(run_dirs) -> list[Path]:
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise ValueError("run_dirs: expected at least one run directory")
    return dirs


def load_run(run_dir) -> dict:
    """The main path's and the finished subpaths' ``result.json`` of one run directory."""
    run_dir = Path(run_dir)
    p = run_dir / "main" / "result.json"
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: the main path of {run_dir} has not finished")
    main = load_json(p)
    subs = [load_json(d / "result.json") for d in sorted(run_dir.glob("sub_e*")) if (d / "result.json").exists()]
    subs.sort(key=lambda r: r["meta"]["decay_epoch"])
    return {"dir": str(run_dir), "main": main, "subs": subs, "config": main["config"], "seed": main["seed"]}


def _row_at(metrics: list[dict], epoch: int) -> dict | None:
    """The last evaluated row at or before ``epoch``."""
    rows = [r for r in metrics if r["epoch"] <= epoch]
    return rows[-1] if rows else None


def landing_epoch(metrics: list[dict], min_acc: float = REGIME_MIN_TRAIN_ACC) -> int | None:
    """First evaluated epoch whose train accuracy reaches ``min_acc`` (the path has landed), else ``None``."""
    for r in metrics:
        if r["train_acc"] >= min_acc:
            return int(r["epoch"])
    return None


def rolling_mean(x, window: int) -> np.ndarray:
    """Means of ``window`` consecutive values (all of them when there are fewer)."""
    x = np.asarray(x, float)
    w = max(1, min(int(window), len(x)))
    return np.convolve(x, np.ones(w) / w, mode="valid")


def _mean_se(x) -> tuple[float, float]:
    x = np.asarray(x, float)
    if len(x) == 0:
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")


def _t_quantile(conf: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + conf / 2, dof))


def _spearman(x, y) -> float:
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.ptp(y) == 0 or np.ptp(x) == 0:
        return float("nan")
    return float(spearmanr(x, y)[0])


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
        m, cfg = r["main"]["metrics"], r["config"]
        d1 = int(min(cfg["decay_epochs"])) if cfg["decay_epochs"] else int(r["main"]["end_epoch"])
        row = _row_at(m, d1)
        k = m.index(row)
        losses = [x["train_loss"] for x in m]
        at = float(np.mean(losses[max(0, k + 1 - window):k + 1]))
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
                    "final_train_acc": float(m[-1]["train_acc"])})
    return {"per_seed": per, "seeds": [p["seed"] for p in per],
            "min_train_acc_at_first_decay": min(p["train_acc_at_first_decay"] for p in per),
            "max_loss_ratio": max(p["loss_ratio"] for p in per),
            "landing_epochs": [p["landing_epoch"] for p in per],
            "in_regime": all(p["train_acc_at_first_decay"] >= REGIME_MIN_TRAIN_ACC
                             and p["loss_ratio"] <= REGIME_MAX_LOSS_RATIO for p in per)}


# ----------------------------------------------------------------------------- vgg.late_decay
def final_table(run_dirs) -> dict:
    """Final test/train loss and accuracy per decay epoch and of the no-decay control, mean ± s.e. over seeds.

    Only decay epochs that every seed has finished are listed.
    """
    runs = [load_run(d) for d in _as_dirs(run_dirs)]
    common = sorted(set.intersection(*[{s["meta"]["decay_epoch"] for s in r["subs"]} for r in runs]))
    ends = {int(s["end_epoch"]) for r in runs for s in r["subs"]} | {int(r["main"]["end_epoch"]) for r in runs}
    if len(ends) > 1:
        raise ValueError(f"run_dirs: the paths end at different epochs {sorted(ends)}; the equal-budget "
                         "comparison needs one end epoch")
    out = {"decay_epochs": common, "seeds": [r["seed"] for r in runs], "end_epoch": ends.pop()}
    for key in ("test_loss", "test_acc", "train_loss", "train_acc"):
        vals = np.array([[next(s for s in r["subs"] if s["meta"]["decay_epoch"] == e)["final"][key] for e in common]
                         for r in runs], float).reshape(len(runs), len(common))
        out[f"{key}_per_seed"] = vals.tolist()
        ms = [_mean_se(vals[:, j]) for j in range(len(common))]
        out[f"{key}_mean"] = [m for m, _ in ms]
        out[f"{key}_se"] = [s for _, s in ms]
        ctrl = [float(r["main"]["final"][key]) for r in runs]
        out[f"control_{key}_per_seed"] = ctrl
        out[f"control_{key}_mean"], out[f"control_{key}_se"] = _mean_se(ctrl)
    return out


def measure_late_decay(run_dirs, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                       confidence: float = CONFIDENCE) -> dict:
    """Spearman's ρ between decay epoch and mean (over seeds) final test loss, with a seed-bootstrap interval.

    The bootstrap draws seeds with replacement, averages their final-test-loss curves and recomputes ρ;
    the interval is the central ``confidence`` percentile range. Also: ρ of every seed alone, and the
    best decayed subpath's mean final test loss minus the no-decay control's.
    """
    t = final_table(run_dirs)
    e = np.asarray(t["decay_epochs"], float)
    L = np.asarray(t["test_loss_per_seed"], float)
    rho = _spearman(e, L.mean(0)) if len(e) >= 2 else float("nan")
    rng = np.random.default_rng(seed)
    S = L.shape[0]
    boots = np.array([_spearman(e, L[rng.integers(0, S, S)].mean(0)) for _ in range(resamples)]) if len(e) >= 2 \
        else np.array([np.nan])
    ok = boots[np.isfinite(boots)]
    lo, hi = (np.quantile(ok, [0.5 - confidence / 2, 0.5 + confidence / 2]).tolist() if len(ok)
              else [float("nan"), float("nan")])
    mean = np.asarray(t["test_loss_mean"])
    return t | main_path_test_minimum(run_dirs) | {"spearman_rho": rho, "rho_interval": [float(lo), float(hi)],
                                                   "confidence": confidence,
                "bootstrap_resamples": resamples, "rho_per_seed": [_spearman(e, L[s]) for s in range(S)],
                "latest_minus_earliest_test_loss": float(mean[-1] - mean[0]) if len(mean) else float("nan"),
                "best_minus_control_test_loss": float(mean.min() - t["control_test_loss_mean"]) if len(mean)
                else float("nan")}


def main_path_test_minimum(run_dirs) -> dict:
    """The main paths' seed-mean test loss after the earliest landing: its lowest value and epoch, and its
    value at the last evaluation common to every seed."""
    runs = [load_run(d)["main"]["metrics"] for d in run_dirs]
    land = min(landing_epoch(m) or 0 for m in runs)
    by_epoch = [{x["epoch"]: x["test_loss"] for x in m if x["epoch"] >= land} for m in runs]
    epochs = sorted(set.intersection(*map(set, by_epoch)))
    if not epochs:
        return {"main_test_min_epoch": None, "main_test_min": float("nan"), "main_test_end": float("nan")}
    mean = np.array([np.mean([b[e] for b in by_epoch]) for e in epochs])
    i = int(np.argmin(mean))
    return {"main_test_min_epoch": int(epochs[i]), "main_test_min": float(mean[i]), "main_test_end": float(mean[-1])}


# ----------------------------------------------------------------------------- landscape-based claims
def _landscape(run_dir):
    p = Path(run_dir) / "landscape.npz"
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: run the landscape stage first")
    return load_result(p)


def _main_points(arr, cfg, run_dir):
    """Main-path rows of the landscape (coords, losses) and the step at which the path landed."""
    r = load_run(run_dir)
    spe = int(r["main"]["steps_per_epoch"])
    land = landing_epoch(r["main"]["metrics"])
    m = np.flatnonzero(arr["path"] == 0)
    m = m[np.argsort(arr["step"][m])]
    return m, (None if land is None else land * spe), r


def _diameter(pts: np.ndarray) -> float:
    if len(pts) < 2:
        return 0.0
    d = pts[:, None, :] - pts[None, :, :]
    return float(np.sqrt((d ** 2).sum(-1)).max())


def measure_valley(run_dir, window: int = VALLEY_WINDOW) -> dict:
    """After landing: largest over smallest main-path checkpoint train loss (on the landscape's evaluation
    images; means over ``window`` consecutive checkpoints, see :data:`VALLEY_WINDOW`), and the diameter
    of the post-landing main path in the PC1–PC2 plane over the whole main path's (initialisation
    included)."""
    arr, cfg = _landscape(run_dir)
    m, land_step, run = _main_points(arr, cfg, run_dir)
    spe = int(run["main"]["steps_per_epoch"])
    xy = arr["coords"][m, :2]
    out = {"landing_step": land_step, "n_main_checkpoints": int(len(m)),
           "main_path_diameter": _diameter(xy)}
    if land_step is None or "ckpt_train_loss" not in arr:
        return out | {"landed": False, "loss_ratio_after_landing": float("nan"), "span_fraction": float("nan")}
    after = m[arr["step"][m] >= land_step]
    la = rolling_mean(arr["ckpt_train_loss"][after], window)
    low = min((x for x in run["main"]["metrics"] if x["epoch"] * spe >= land_step), key=lambda x: x["train_acc"])
    return out | {"landed": True, "n_after_landing": int(len(after)), "window": window,
                  "landing_epoch": land_step // spe, "min_train_acc_after_landing": float(low["train_acc"]),
                  "min_train_acc_epoch": int(low["epoch"]),
                  "min_train_loss_after_landing": float(la.min()), "max_train_loss_after_landing": float(la.max()),
                  "loss_ratio_after_landing": float(la.max() / la.min()) if la.min() > 0 else float("inf"),
                  "post_landing_diameter": _diameter(arr["coords"][after, :2]),
                  "span_fraction": _diameter(arr["coords"][after, :2]) / max(_diameter(xy), 1e-300)}


def measure_test_minimum(run_dir) -> dict:
    """Where the grid's test-loss minimum lies: its index and coordinates, whether it is interior, each edge's
    relative rise above it, its distances to the main path's late end and to its landing point; the
    Pearson and Spearman correlations of the train and test grids; the same for the train minimum."""
    from scipy.stats import pearsonr, spearmanr

    arr, cfg = _landscape(run_dir)
    m, land_step, _ = _main_points(arr, cfg, run_dir)
    Z, Ztr, a, b = arr["test_loss"], arr["train_loss"], arr["a"], arr["b"]
    n1, n2 = Z.shape
    i, j = np.unravel_index(int(np.argmin(Z)), Z.shape)
    zmin = float(Z[i, j])
    edges = {"a_min": Z[0, :], "a_max": Z[-1, :], "b_min": Z[:, 0], "b_max": Z[:, -1]}
    rise = {k: float(v.min() / zmin - 1) for k, v in edges.items()}
    pt = np.array([a[i], b[j]])
    end = arr["coords"][m[-1], :2]
    out = {"grid": [int(n1), int(n2)], "test_min": zmin, "test_min_index": [int(i), int(j)],
           "test_min_coords": pt.tolist(), "interior": bool(0 < i < n1 - 1 and 0 < j < n2 - 1),
           "edge_rise": rise, "min_edge_rise": min(rise.values()),
           "distance_to_late_end": float(np.linalg.norm(pt - end)),
           "pearson_train_test": float(pearsonr(Ztr.ravel(), Z.ravel())[0]),
           "spearman_train_test": float(spearmanr(Ztr.ravel(), Z.ravel())[0])}
    k, l = np.unravel_index(int(np.argmin(Ztr)), Ztr.shape)
    out |= {"train_min": float(Ztr[k, l]), "train_min_coords": [float(a[k]), float(b[l])],
            "train_min_interior": bool(0 < k < n1 - 1 and 0 < l < n2 - 1)}
    if land_step is None:
        return out | {"distance_to_landing": float("nan"), "nearer_late_end": False, "landed": False}
    after = m[arr["step"][m] >= land_step]
    land = arr["coords"][after[0], :2]
    dl = float(np.linalg.norm(pt - land))
    return out | {"landed": True, "landing_coords": land.tolist(), "late_end_coords": end.tolist(),
                  "distance_to_landing": dl, "nearer_late_end": bool(out["distance_to_late_end"] < dl)}


# ----------------------------------------------------------------------------- vgg.curvature
def _slope(x, y) -> tuple[float, float]:
    """OLS slope of ``y`` on ``x`` and its standard error."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2:
        return float("nan"), float("nan")
    X = np.stack([np.ones_like(x), x], 1)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    if len(x) < 3:
        return float(coef[1]), float("nan")
    resid = y - X @ coef
    s2 = resid @ resid / (len(x) - 2)
    cov = s2 * np.linalg.inv(X.T @ X)
    return float(coef[1]), float(math.sqrt(cov[1, 1]))


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


def measure_curvature(run_dirs, confidence: float = CONFIDENCE, per_epochs: int = 100) -> dict:
    """Trend of the Hessian trace and top eigenvalue along the main path in Phase II.

    Phase II: the main-path curvature points at or after the landing epoch (:func:`landing_epoch`; the
    first decay epoch when the path never landed). Per seed, the Theil–Sen slope of :math:`\\log` trace
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
        cfg = r["config"]
        start = land if land is not None else (min(cfg["decay_epochs"]) if cfg["decay_epochs"] else 0)
        rows = [x for x in c["rows"] if x["path"] == "main" and x["epoch"] >= start]
        subs = sorted((x for x in c["rows"] if x["path"] != "main"), key=lambda x: x["decay_epoch"])
        entry = {"seed": r["seed"], "phase2_start_epoch": int(start), "landed": land is not None,
                 "epochs": [x["epoch"] for x in rows], "trace": [x["trace"] for x in rows],
                 "trace_se": [x["trace_se"] for x in rows], "top_eig": [x["top_eig"] for x in rows],
                 "sub_decay_epochs": [x["decay_epoch"] for x in subs], "sub_trace": [x["trace"] for x in subs],
                 "sub_top_eig": [x["top_eig"] for x in subs]}
        for q in ("trace", "top_eig"):
            y = np.asarray(entry[q], float)
            tr = _trend(entry["epochs"], y, confidence)
            entry[f"{q}_log_slope"] = per_epochs * tr["slope"]
            entry[f"{q}_log_slope_interval"] = [per_epochs * tr["lo"], per_epochs * tr["hi"]]
            entry[f"{q}_ols_log_slope"] = per_epochs * tr["ols"]
            entry[f"{q}_spearman"] = _spearman(entry["epochs"], y)
            entry[f"{q}_first"], entry[f"{q}_last"] = (float(y[0]), float(y[-1])) if len(y) else (np.nan, np.nan)
            entry[f"{q}_median"] = float(np.median(y)) if len(y) else float("nan")
        per.append(entry)
    out = {"per_seed": per, "per_epochs": per_epochs, "confidence": confidence,
           "n_points": [len(e["epochs"]) for e in per]}
    for q in ("trace", "top_eig"):
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
    """All measurements of a profile's output directory (see :mod:`empirics.profiles` for its layout)."""
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
