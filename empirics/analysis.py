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

from lrdecay.theory.io import load_json, load_result

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
# oscillates across the valley (the normal-space Ornstein–Uhlenbeck picture of docs/science.md §1), so single
# evaluations of its train loss scatter over a factor of several; the plateau is a level of that scatter.
REGIME_WINDOW = 5
# vgg.late_decay and vgg.curvature: two-sided confidence of the intervals.
CONFIDENCE = 0.95
# vgg.late_decay. A subpath's value is the mean of its last LAST_K evaluations (the authors average the
# last 100 of theirs): a single final evaluation of a path at a small rate still scatters by several
# times the differences being compared.
LAST_K = 10
# The generalization gate of every VGG claim: at the first analysed decay, the main path's test loss
# must lie below the best constant predictor's by at least this fraction of it ...
GATE_MIN_RELATIVE_MARGIN = 0.10
# ... and by more than this many standard errors (over the window of evaluations ending there).
GATE_MIN_SE = 3.0
# The size of benefit the power of the late-decay statistic is stated against: the authors' 8 % of the
# test loss between their earliest and latest branches.
AUTHORS_BENEFIT = 0.08
# vgg.valley, a sublevel-set criterion (as the toy model's landscape is judged): the valley is the
# connected part of {L_train <= VALLEY_LEVEL × the median train loss at the post-landing main path's
# projections} that holds the path. A factor 2 admits the SGD noise floor's scatter along the path (the
# regime's factor 2) and nothing like the climb off the valley (tens of times the floor).
VALLEY_LEVEL = 2.0
# ... it must hold at least this fraction of the post-landing projections (the path runs inside it) ...
VALLEY_MIN_CONTAINED = 0.9
# ... touch at least two sides of the window (it runs through the window along the path) ...
# ... and cover at most this fraction of the window (it is a valley, not a plain: the loss rises off it).
VALLEY_MAX_AREA = 0.5
# Reported beside it: the checkpoints' own train-loss ratio after landing, over windows of this many.
VALLEY_WINDOW = 5
# vgg.test_minimum. "Rises toward every edge": the lowest test loss on each edge of the window exceeds the
# grid's minimum by at least this fraction of the grid's spread (median − minimum), as for the toy model;
# a fraction of the minimum itself (the old rule) is tiny whenever the loss is large and flat.
TEST_MIN_EDGE_MARGIN = 0.05
# vgg.curvature. Phase II's trend is fitted after a settling transient: the first CURVATURE_SETTLE of the
# post-landing span is left out (right after landing the trace still falls with the last of Phase I).
CURVATURE_SETTLE = 0.2


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


def _window_at(metrics: list[dict], epoch: int, key: str, window: int) -> tuple[dict, list[float]]:
    """The last evaluated row at or before ``epoch`` and ``key`` over the ``window`` evaluations ending there."""
    row = _row_at(metrics, epoch)
    k = metrics.index(row)
    return row, [x[key] for x in metrics[max(0, k + 1 - window):k + 1]]


def landing_epoch(metrics: list[dict], min_acc: float = REGIME_MIN_TRAIN_ACC) -> int | None:
    """The first evaluated epoch from which the train accuracy *stays* at or above ``min_acc`` at every
    later evaluation (the path has landed for good), else ``None``.

    A first crossing followed by a fall back (an instability of the large rate early on) is not a
    landing: the landing is the start of the last unbroken run of evaluations at ``min_acc`` or above,
    provided that run reaches the path's last evaluation.
    """
    land = None
    for r in metrics:
        if r["train_acc"] >= min_acc:
            land = int(r["epoch"]) if land is None else land
        else:
            land = None
    return land


def first_crossing_epoch(metrics: list[dict], min_acc: float = REGIME_MIN_TRAIN_ACC) -> int | None:
    """First evaluated epoch whose train accuracy reaches ``min_acc`` (it may fall back later), else ``None``."""
    return next((int(r["epoch"]) for r in metrics if r["train_acc"] >= min_acc), None)


# ----------------------------------------------------------------------------- the constant predictor
def constant_predictor_loss(loss: str, train_counts, test_counts) -> float:
    r"""Test loss of the best constant predictor fitted to the training labels.

    With training class frequencies :math:`p_k` and test frequencies :math:`q_k`, the constant output
    minimising the training loss is :math:`z = p` for the squared losses and :math:`\log p` (softmax
    :math:`p`) for cross-entropy, so its test loss is

    * ``"mse"`` (:math:`\tfrac12\|z - e_y\|^2`): :math:`\tfrac12(1 - 2\sum_k p_k q_k + \sum_k p_k^2)`;
    * ``"mse_mean"`` (per-element mean over :math:`K` outputs): :math:`\tfrac2K` times that;
    * ``"ce"``: :math:`-\sum_k q_k \log p_k`.

    A network whose test loss is not clearly below this number has learnt nothing that transfers to
    the test images, whatever it does on its training set.
    """
    p = np.asarray(train_counts, float)
    q = np.asarray(test_counts, float)
    if p.shape != q.shape or p.ndim != 1 or len(p) < 2 or p.sum() <= 0 or q.sum() <= 0 or (p < 0).any() \
            or (q < 0).any():
        raise ValueError(f"train_counts, test_counts: expected two non-negative count vectors of one length >= 2, "
                         f"got {list(p)} and {list(q)}")
    p, q = p / p.sum(), q / q.sum()
    if loss in ("mse", "mse_mean"):
        v = 0.5 * (1.0 - 2.0 * float(p @ q) + float(p @ p))
        return v if loss == "mse" else 2.0 * v / len(p)
    if loss == "ce":
        return float(-(q[q > 0] * np.log(p[q > 0])).sum()) if (p[q > 0] > 0).all() else float("inf")
    raise ValueError(f"loss: expected one of ('mse', 'mse_mean', 'ce'), got {loss!r}")


def run_constant_loss(run: dict) -> float:
    """:func:`constant_predictor_loss` of a loaded run (its configuration's loss, its data's class counts)."""
    info = run["main"]["data"]
    if "test_per_class" not in info:
        raise ValueError(f"{run['dir']}: the run's data description has no test class counts (made by an older "
                         "version); rerun its main path to record them")
    return constant_predictor_loss(run["config"]["loss"], info["train_per_class"], info["test_per_class"])


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


def _pearson(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.ptp(y) == 0 or np.ptp(x) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


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


# ----------------------------------------------------------------------------- vgg.late_decay
def is_fixed_length(cfg: dict) -> bool:
    """Whether the run's subpaths have a fixed length (the authors' design) rather than a common end."""
    return cfg.get("subpath_epochs") is not None


def analysed_decay_epochs(cfg: dict, metrics: list[dict]) -> list[int]:
    """The decay epochs a run's late-decay statistic uses.

    Equal budget: all of them (the profile places them after landing). Fixed-length branches (the
    authors' design, branching at regular epochs whatever the path does): those at or after the landing
    epoch, since the paper's claim is about decays *after* the network has landed; none if it never did.
    """
    epochs = sorted(int(e) for e in cfg.get("decay_epochs") or ())
    if not is_fixed_length(cfg):
        return epochs
    land = landing_epoch(metrics)
    return [] if land is None else [e for e in epochs if e >= land]


def first_decay_epoch(run: dict) -> int:
    """The first analysed decay epoch of a loaded run (its main path's end when there is none)."""
    e = analysed_decay_epochs(run["config"], run["main"]["metrics"])
    return e[0] if e else int(run["main"]["end_epoch"])


def tail_mean(metrics: list[dict], key: str, k: int = LAST_K) -> tuple[float, float]:
    """Mean of ``key`` over a path's last ``k`` evaluations and its standard error over them."""
    v = np.asarray([r[key] for r in metrics[-k:]], float)
    return float(v.mean()), (float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan"))


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


def branch_table(run_dirs, k: int = LAST_K, all_branches: bool = False) -> dict:
    """Each analysed subpath's value — the mean of its last ``k`` evaluations (test and train loss and
    accuracy) — per seed, on the decay epochs every seed has, with the no-decay control: the main path's
    mean over its last ``k`` evaluations up to the subpaths' end (equal budget), or up to each branch's end
    (fixed length; ``nan`` where that lies beyond the main path). ``all_branches``: every subpath, landed or
    not (for showing a run outside the regime, never for a verdict)."""
    runs = [load_run(d) for d in _as_dirs(run_dirs)]
    fixed = {is_fixed_length(r["config"]) for r in runs}
    if len(fixed) > 1:
        raise ValueError("run_dirs: the runs mix fixed-length and equal-budget subpaths")
    fixed = fixed.pop()
    sets = [(set(int(e) for e in r["config"]["decay_epochs"]) if all_branches
             else set(analysed_decay_epochs(r["config"], r["main"]["metrics"])))
            & {int(s["meta"]["decay_epoch"]) for s in r["subs"]} for r in runs]
    common = sorted(set.intersection(*sets))
    out = {"design": "fixed_length" if fixed else "equal_budget", "decay_epochs": common, "last_k": k,
           "seeds": [r["seed"] for r in runs], "landing_epochs": [landing_epoch(r["main"]["metrics"]) for r in runs],
           "subpath_epochs": runs[0]["config"].get("subpath_epochs"),
           "end_epochs": [int(next(s for s in runs[0]["subs"] if s["meta"]["decay_epoch"] == e)["end_epoch"])
                          for e in common]}
    for key in ("test_loss", "test_acc", "train_loss", "train_acc"):
        vals = np.array([[tail_mean(next(s for s in r["subs"] if s["meta"]["decay_epoch"] == e)["metrics"], key, k)[0]
                          for e in common] for r in runs], float).reshape(len(runs), len(common))
        out[f"{key}_per_seed"] = vals.tolist()
        ms = [_mean_se(vals[:, j]) for j in range(len(common))]
        out[f"{key}_mean"], out[f"{key}_se"] = [a for a, _ in ms], [b for _, b in ms]
        ctrl = []
        for r in runs:
            m = r["main"]["metrics"]
            ends = out["end_epochs"] if fixed else [int(r["main"]["end_epoch"])]
            ctrl.append([tail_mean([x for x in m if x["epoch"] <= e], key, k)[0] if e <= int(r["main"]["end_epoch"])
                         else float("nan") for e in ends])
        out[f"control_{key}_per_seed"] = ctrl
    return out


def paired_slope(epochs, values, confidence: float = CONFIDENCE, per_epochs: int = 100) -> dict:
    """The late-decay statistic: per seed, the least-squares slope of a subpath's value against its decay
    epoch (per ``per_epochs`` epochs), and an interval for the mean slope.

    ``values`` is ``seeds × decay epochs``. Several seeds: the seeds' mean slope ± the Student-t quantile
    (``S − 1`` degrees of freedom) × its standard error — the slopes are independent across seeds, so the
    interval's coverage is right at any number of seeds (no bootstrap over 3 seeds, which has 10 distinct
    resamples). One seed: the slope's own t-interval over the branches (``B − 2`` degrees of freedom),
    which treats the branches as independent although they share one main path (``basis`` says so).
    Also each seed's Pearson r of value against epoch (the authors' statistic) and the relative change
    from the earliest to the latest decay of the seed-mean values.
    """
    e = np.asarray(epochs, float)
    V = np.atleast_2d(np.asarray(values, float))
    S, B = V.shape
    out = {"n_seeds": S, "n_branches": B, "per_epochs": per_epochs, "confidence": confidence}
    if B < 3:
        return out | {"slope": float("nan"), "interval": [float("nan"), float("nan")], "basis": "too few branches",
                      "slopes": [], "pearson_r": [], "pearson_r_mean_curve": float("nan"),
                      "relative_change": float("nan"), "slope_sd": float("nan")}
    fits = [_slope(e, v) for v in V]
    slopes = np.array([per_epochs * f[0] for f in fits])
    if S >= 2:
        m, se = _mean_se(slopes)
        dof, basis = S - 1, "seeds"
    else:
        m, se = float(slopes[0]), per_epochs * fits[0][1]
        dof, basis = B - 2, "branches of one run (not independent: they share its main path)"
    tq = _t_quantile(confidence, dof)
    mean_curve = V.mean(0)
    return out | {"slope": m, "slope_se": se, "dof": dof, "interval": [m - tq * se, m + tq * se], "basis": basis,
                  "slopes": slopes.tolist(), "slope_sd": float(se * math.sqrt(S)) if S >= 2 else float(se),
                  "pearson_r": [_pearson(e, v) for v in V], "pearson_r_mean_curve": _pearson(e, mean_curve),
                  "relative_change": float((mean_curve[-1] - mean_curve[0]) / mean_curve[0])}


def slope_power(effect_slope: float, slope_sd: float, n_seeds: int, confidence: float = CONFIDENCE) -> float:
    """Probability that the paired-slope interval excludes 0 on the side of a true mean slope ``effect_slope``,
    with per-seed slopes scattered by ``slope_sd`` over ``n_seeds`` seeds (noncentral t, ``S − 1`` degrees
    of freedom)."""
    from scipy.stats import nct

    if n_seeds < 2 or not (slope_sd > 0) or not math.isfinite(effect_slope):
        return float("nan")
    dof = n_seeds - 1
    nc = abs(effect_slope) / (slope_sd / math.sqrt(n_seeds))
    return float(nct.sf(_t_quantile(confidence, dof), dof, nc))


def measure_late_decay(run_dirs, k: int = LAST_K, confidence: float = CONFIDENCE, all_branches: bool = False) -> dict:
    """:func:`branch_table` and the late-decay statistic (:func:`paired_slope`) of the test loss and accuracy.

    The paper's claim — a later decay generalizes better — predicts a negative test-loss slope. Also: the
    power of the statistic at these seeds against a benefit of :data:`AUTHORS_BENEFIT` of the test loss
    between the earliest and the latest branch, with the per-seed slopes' observed scatter; the main
    paths' test-loss minimum after landing; and for equal budgets, the mean decayed subpath minus the
    no-decay control (the mean over all decays, not the best one, which would be biased by the choice).
    """
    t = branch_table(run_dirs, k, all_branches)
    e = t["decay_epochs"]
    st = paired_slope(e, t["test_loss_per_seed"], confidence)
    acc = paired_slope(e, t["test_acc_per_seed"], confidence)
    out = t | main_path_test_minimum(run_dirs) | {"test_loss_slope": st, "test_acc_slope": acc}
    if len(e) >= 3:
        span = (e[-1] - e[0]) / st["per_epochs"]
        effect = -AUTHORS_BENEFIT * float(np.mean(t["test_loss_mean"])) / span
        out["power"] = {"benefit": AUTHORS_BENEFIT, "effect_slope": effect,
                        "slope_sd": st["slope_sd"], "n_seeds": st["n_seeds"],
                        "power": slope_power(effect, st["slope_sd"], st["n_seeds"], confidence)}
    if t["design"] == "equal_budget" and e:
        ctrl = np.array([c[0] for c in t["control_test_loss_per_seed"]])
        diff = np.asarray(t["test_loss_per_seed"]).mean(1) - ctrl
        out["mean_decayed_minus_control"], out["mean_decayed_minus_control_se"] = _mean_se(diff)
    return out


def main_path_test_minimum(run_dirs) -> dict:
    """The main paths' seed-mean test loss after the earliest landing: its lowest value and epoch, and its
    value at the last evaluation common to every seed."""
    runs = [load_run(d)["main"]["metrics"] for d in _as_dirs(run_dirs)]
    land = min(landing_epoch(m) or 0 for m in runs)
    by_epoch = [{x["epoch"]: x["test_loss"] for x in m if x["epoch"] >= land} for m in runs]
    epochs = sorted(set.intersection(*map(set, by_epoch)))
    if not epochs:
        return {"main_test_min_epoch": None, "main_test_min": float("nan"), "main_test_end": float("nan")}
    mean = np.array([np.mean([b[e] for b in by_epoch]) for e in epochs])
    i = int(np.argmin(mean))
    return {"main_test_min_epoch": int(epochs[i]), "main_test_min": float(mean[i]), "main_test_end": float(mean[-1])}


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


def _sides_touched(mask: np.ndarray) -> int:
    return int(mask[0, :].any()) + int(mask[-1, :].any()) + int(mask[:, 0].any()) + int(mask[:, -1].any())


def _nearest_cells(a: np.ndarray, b: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i = np.clip(np.searchsorted(a, pts[:, 0]), 1, len(a) - 1)
    i -= (pts[:, 0] - a[i - 1]) < (a[i] - pts[:, 0])
    j = np.clip(np.searchsorted(b, pts[:, 1]), 1, len(b) - 1)
    j -= (pts[:, 1] - b[j - 1]) < (b[j] - pts[:, 1])
    return i, j


def _post_landing_main(arr, run_dir):
    """Main-path rows of the landscape after landing and all of them (by step), the landing step and the run."""
    m, land_step, run = _main_points(arr, None, run_dir)
    after = m[:0] if land_step is None else m[arr["step"][m] >= land_step]
    return after, m, land_step, run


def measure_valley(run_dir, window: int = VALLEY_WINDOW) -> dict:
    """The valley as a sublevel set of the train-loss grid (as the toy model's landscape is judged).

    The level is :data:`VALLEY_LEVEL` times the median grid train loss at the projections of the
    post-landing main-path checkpoints; the valley is the connected component (4-neighbours) of the
    sublevel set ``{L_train <= level}`` that holds most of those projections. Measured: the fraction of
    the projections in it, the sides of the window it touches, the fraction of the window it covers.
    Also (reported, not judged): the checkpoints' own train-loss ratio after landing (windowed over
    ``window`` checkpoints) and the lowest train accuracy after landing.
    """
    from scipy.ndimage import label

    arr, _ = _landscape(run_dir)
    after, _, land_step, run = _post_landing_main(arr, run_dir)
    out = {"landing_step": land_step, "level_factor": VALLEY_LEVEL}
    if land_step is None or len(after) == 0:
        return out | {"landed": False}
    spe = int(run["main"]["steps_per_epoch"])
    Z, a, b = arr["train_loss"], arr["a"], arr["b"]
    pts = arr["coords"][after, :2]
    proj = arr["proj_train_loss"][after]
    level = VALLEY_LEVEL * float(np.median(proj))
    lab, n = label(Z <= level)
    i, j = _nearest_cells(a, b, pts)
    cells = lab[i, j]
    comp = int(np.bincount(cells[cells > 0]).argmax()) if (cells > 0).any() else 0
    mask = lab == comp if comp else np.zeros_like(Z, bool)
    low = min((x for x in run["main"]["metrics"] if x["epoch"] * spe >= land_step), key=lambda x: x["train_acc"])
    ratio = float("nan")
    if "ckpt_train_loss" in arr:
        la = rolling_mean(arr["ckpt_train_loss"][after], window)
        ratio = float(la.max() / la.min()) if la.min() > 0 else float("inf")
    return out | {"landed": True, "landing_epoch": land_step // spe, "n_after_landing": int(len(after)),
                  "level": level, "contained_fraction": float((cells == comp).mean()) if comp else 0.0,
                  "sides_touched": _sides_touched(mask), "area_fraction": float(mask.mean()),
                  "n_components": int(n), "loss_ratio_after_landing": ratio, "window": window,
                  "min_train_acc_after_landing": float(low["train_acc"]), "min_train_acc_epoch": int(low["epoch"]),
                  "passes": bool(comp and (cells == comp).mean() >= VALLEY_MIN_CONTAINED
                                 and _sides_touched(mask) >= 2 and mask.mean() <= VALLEY_MAX_AREA)}


def measure_test_minimum(run_dir) -> dict:
    """Where the grid's test-loss minimum lies in the window: interior or not; the lowest edge's rise above
    it as a fraction of the grid's spread (median − minimum), as the toy model's landscape is judged; its
    distances to the main path's late end and landing point; the grid's train/test agreement (Pearson on
    log losses; Spearman, which logs do not change); the fraction of the window whose test loss is above
    the best constant predictor's."""
    from scipy.stats import pearsonr, spearmanr

    arr, _ = _landscape(run_dir)
    after, m, land_step, run = _post_landing_main(arr, run_dir)
    Z, Ztr, a, b = arr["test_loss"], arr["train_loss"], arr["a"], arr["b"]
    n1, n2 = Z.shape
    i, j = np.unravel_index(int(np.argmin(Z)), Z.shape)
    zmin, med = float(Z[i, j]), float(np.median(Z))
    edges = {"a_min": Z[0, :], "a_max": Z[-1, :], "b_min": Z[:, 0], "b_max": Z[:, -1]}
    margin = {k: float((v.min() - zmin) / (med - zmin)) if med > zmin else 0.0 for k, v in edges.items()}
    pt = np.array([a[i], b[j]])
    end = arr["coords"][m[-1], :2]
    const = run_constant_loss(run)
    pos = (Z > 0).all() and (Ztr > 0).all()
    out = {"grid": [int(n1), int(n2)], "test_min": zmin, "test_median": med, "test_min_index": [int(i), int(j)],
           "test_min_coords": pt.tolist(), "interior": bool(0 < i < n1 - 1 and 0 < j < n2 - 1),
           "edge_margin": margin, "min_edge_margin": min(margin.values()),
           "distance_to_late_end": float(np.linalg.norm(pt - end)), "constant_loss": const,
           "fraction_above_constant": float((Z > const).mean()),
           "pearson_log_train_test": float(pearsonr(np.log(Ztr.ravel()), np.log(Z.ravel()))[0]) if pos
           else float("nan"),
           "spearman_train_test": float(spearmanr(Ztr.ravel(), Z.ravel())[0])}
    k, l = np.unravel_index(int(np.argmin(Ztr)), Ztr.shape)
    out |= {"train_min": float(Ztr[k, l]), "train_min_coords": [float(a[k]), float(b[l])],
            "train_min_interior": bool(0 < k < n1 - 1 and 0 < l < n2 - 1)}
    if land_step is None or len(after) == 0:
        return out | {"distance_to_landing": float("nan"), "nearer_late_end": False, "landed": False}
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
