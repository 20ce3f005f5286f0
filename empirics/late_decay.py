"""The late-decay statistic of the VGG experiment (claim ``vgg.late_decay``): each decayed subpath's final value
per seed (:func:`branch_table`), its paired slope against the decay epoch with an interval and a power
(:func:`paired_slope`, :func:`slope_power`), and the main paths' test-loss minimum after landing.
Re-exported by :mod:`lrdecay.empirics.analysis`.
"""
from __future__ import annotations

import math

import numpy as np

from .run_records import (_as_dirs, _mean_se, _pearson, _slope, _t_quantile, analysed_decay_epochs, is_fixed_length,
                          landing_epoch, load_run, tail_mean)
from .tolerances import AUTHORS_BENEFIT, CONFIDENCE, LAST_K


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
