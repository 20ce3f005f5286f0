"""Claims on the VGG-11 experiment (the ``empirics`` job: a profile's output directory).

Every measurement is :mod:`empirics.analysis`'s, recomputed from the run directories' result files (the
paths' ``result.json``, ``landscape.npz``, ``curvature.json``); the tolerances are its constants. The
claims about the phenomenon are judged only when ``vgg.regime`` holds: an underfitting network is not on
a manifold of minima, so its numbers say nothing about the paper's explanation.
"""
from __future__ import annotations

from pathlib import Path

from empirics import analysis as A
from theory.io import load_json

from .base import MISSING, NOT_APPLICABLE, Judgement, caption, claim, verdict

FIG_DECAY = caption(
    "empirics/figures/vgg_decay.png",
    "VGG-11, equal budget: the final test loss and accuracy of the subpaths against their decay epoch (every "
    "subpath ends at the same epoch), mean ± one standard error over the seeds, thin lines single seeds; the "
    "dashed line and band: the main path continued at the large rate to the same end (no decay). "
    "vgg.late_decay needs the curve to fall with the decay epoch.")
FIG_CURVES = caption(
    "empirics/figures/vgg_learning_curves.png",
    "Learning curves of the first seed: train and test loss (log) and accuracy against the epoch, the main path "
    "and every subpath; the landing epoch (first evaluation at ≥ 99 % train accuracy) and the decay epochs "
    "marked. vgg.regime needs the landing well before the first decay and the train loss flat there.")
FIG_LANDSCAPE = caption(
    "empirics/figures/vgg_landscape.png",
    "Train and test loss of the first seed in the plane of the checkpoints' first two principal components, "
    "each with its own log colour scale, the main path (black), the subpaths (coloured, stars at their ends) "
    "and the grid minimum (X); right: every checkpoint's true loss beside the contour's value at its "
    "projection (where they differ the checkpoint lies off the plane). vgg.valley needs the path to stay low "
    "in train loss while it moves; vgg.test_minimum an interior test minimum nearer the path's late end.")
FIG_CURVATURE = caption(
    "empirics/figures/vgg_curvature.png",
    "Curvature of the train loss along the main path (Hutchinson trace ± its standard error, Lanczos top "
    "eigenvalue), one line per seed, Phase II shaded from the landing; right: at each subpath's end. "
    "vgg.curvature needs the trace to fall in Phase II.")
FIG_MAP = caption(
    "empirics/figures/vgg_late_decay_map.png",
    "The late-decay map (after the authors' figure): the test loss of each subpath at every evaluated epoch "
    "after its decay, placed at (epochs at the large rate, epochs after); anti-diagonals are equal total "
    "budgets. Right: the same records against the total epoch, with the main path in black.")


def _measure(d: Path):
    """The profile's measurements, or ``None`` when the job has not run, or an error Judgement."""
    if (d / "error.json").exists():
        return Judgement(MISSING, load_json(d / "error.json")["error"])
    if not (d / "profile.json").exists():
        return None
    return A.measure_profile(d)


def _gate(d: Path, key: str):
    """``(measurements, None)`` when the profile is in the regime and ``key`` was measured, else
    ``(None, Judgement or None)``."""
    m = _measure(d)
    if m is None or isinstance(m, Judgement):
        return None, m
    reg = m.get("regime", {})
    if "missing" in reg:
        return None, Judgement(MISSING, reg["missing"])
    if not reg.get("in_regime"):
        return None, Judgement(NOT_APPLICABLE, f"not in regime (train accuracy at the first decay "
                                               f"{reg['min_train_acc_at_first_decay']:.3f}, loss ratio "
                                               f"{reg['max_loss_ratio']:.2f}; see vgg.regime)")
    sub = m.get(key)
    if sub is None or "missing" in sub:
        return None, (Judgement(MISSING, sub["missing"]) if sub else None)
    return m, None


@claim("vgg.regime", section="§4 VGG-11", source="[derived]",
       statement="The CPU profile is in the regime the paper is about: the main path interpolates its training "
                 "set and sits at a train-loss plateau well before the first decay",
       prediction="every seed: train accuracy at the first decay ≥ 99 % and its train loss (averaged over "
                  f"{A.REGIME_WINDOW} evaluations) within {A.REGIME_MAX_LOSS_RATIO:g}× its smallest such average",
       tolerance=f"accuracy ≥ {A.REGIME_MIN_TRAIN_ACC:g}; windowed loss ratio ≤ {A.REGIME_MAX_LOSS_RATIO:g} (a path "
                 "still descending is many times its floor; the window averages the iterate's oscillation)",
       job="empirics", figure=FIG_CURVES,
       flips="a main path that lands at epoch 600 (accuracy 0.5 at the first decay, still descending)")
def regime(d):
    m = _measure(d)
    if m is None or isinstance(m, Judgement):
        return m
    r = m["regime"]
    if "missing" in r:
        return Judgement(MISSING, r["missing"])
    land = ", ".join("—" if e is None else str(e) for e in r["landing_epochs"])
    first = r["per_seed"][0]["first_decay_epoch"]
    measured = (f"train accuracy at the first decay (epoch {first}) ≥ {r['min_train_acc_at_first_decay']:.3f} over "
                f"{len(r['seeds'])} seeds; windowed loss ratio ≤ {r['max_loss_ratio']:.2f}; landing epochs {land}")
    return Judgement(verdict(r["in_regime"]), measured,
                     {"min_train_acc": r["min_train_acc_at_first_decay"], "max_loss_ratio": r["max_loss_ratio"]})


@claim("vgg.late_decay", section="§4 VGG-11", source="[seed]",
       statement="VGG-11 on CIFAR-10, equal budget: subpaths decayed later end with a lower test loss",
       prediction="Spearman ρ(decay epoch, mean final test loss) < 0, every subpath ending at the same epoch",
       tolerance=f"ρ < 0 with the {100 * A.CONFIDENCE:.0f} % seed-bootstrap interval below 0 "
                 f"({A.BOOTSTRAP_RESAMPLES} resamples); judged only in the regime",
       job="empirics", figure=FIG_DECAY,
       flips="the subpaths' final test losses in reverse order of the decay epoch",
       caveat="A 500-image subset at width 0.375 on a CPU, 3 seeds; the authors' run (3,000 epochs, 5,000 images, "
              "full width) needs a GPU: benchmarks/gpu_authors.py.")
def late_decay(d):
    m, j = _gate(d, "late_decay")
    if m is None:
        return j
    t = m["late_decay"]
    rows = "; ".join(f"{e}: {mu:.4f} ± {se:.4f}" for e, mu, se in zip(t["decay_epochs"], t["test_loss_mean"],
                                                                        t["test_loss_se"]))
    lo, hi = t["rho_interval"]
    measured = (f"final test loss at epoch {t['end_epoch']} by decay epoch {rows}; no decay "
                f"{t['control_test_loss_mean']:.4f} ± {t['control_test_loss_se']:.4f}; ρ = {t['spearman_rho']:.2f} "
                f"[{lo:.2f}, {hi:.2f}], per seed " + ", ".join(f"{r:.2f}" for r in t["rho_per_seed"]))
    ok = t["spearman_rho"] < 0 and hi < 0
    note = ""
    if not ok:
        note = (f"Refuted on this profile: later decay does not end lower (ρ = {t['spearman_rho']:.2f}). Decaying at "
                f"all helps (the best decay ends {-t['best_minus_control_test_loss']:.4f} below no decay); decaying "
                f"later does not. The main path itself (seed mean) reaches its lowest test loss "
                f"{t['main_test_min']:.4f} at epoch {t['main_test_min_epoch']} and ends at {t['main_test_end']:.4f}: "
                "past that epoch more time at the large rate raises its test loss, and a later decay freezes the iterate "
                "where it is higher. This small network on 500 images is not the authors' setting (see the caveat).")
    vals = {f"decay_{e}": float(v) for e, v in zip(t["decay_epochs"], t["test_loss_mean"])}
    vals.update(spearman_rho=t["spearman_rho"], rho_low=lo, rho_high=hi, control=t["control_test_loss_mean"])
    return Judgement(verdict(ok), measured, vals, note)


@claim("vgg.valley", section="§4 VGG-11", source="[seed]",
       statement="After landing, the main path travels along a valley of low train loss (a manifold of minima)",
       prediction=f"the main path's checkpoints after landing stay within {A.VALLEY_MAX_LOSS_RATIO:g}× the lowest "
                  "windowed train loss among them, while covering most of the path's span in the PCA plane",
       tolerance=f"loss ratio ≤ {A.VALLEY_MAX_LOSS_RATIO:g} (leaving the valley means climbing tens of times the floor); "
                 f"span fraction ≥ {A.VALLEY_MIN_SPAN_FRACTION:g} (else a fall onto the valley with little motion "
                 "along it); judged only in the regime", job="empirics", figure=FIG_LANDSCAPE,
       flips="checkpoints after landing that stop moving in the plane")
def valley(d):
    m, j = _gate(d, "valley")
    if m is None:
        return j
    v = m["valley"]
    if not v.get("landed"):
        return Judgement(NOT_APPLICABLE, "the landscape's run never landed")
    ok = v["loss_ratio_after_landing"] <= A.VALLEY_MAX_LOSS_RATIO and v["span_fraction"] >= A.VALLEY_MIN_SPAN_FRACTION
    measured = (f"loss ratio after landing {v['loss_ratio_after_landing']:.2f} over {v['n_after_landing']} "
                f"checkpoints; span fraction {v['span_fraction']:.2f}")
    note = ""
    if v["loss_ratio_after_landing"] > A.VALLEY_MAX_LOSS_RATIO:
        note = (f"After landing the checkpoints' windowed train loss ranges from {v['min_train_loss_after_landing']:.2g} "
                f"to {v['max_train_loss_after_landing']:.2g}, a factor {v['loss_ratio_after_landing']:.2f}, above the "
                "stated margin. ")
        if v["min_train_acc_after_landing"] < A.REGIME_MIN_TRAIN_ACC:
            note += (f"The path leaves the valley for a while: its train accuracy drops to "
                     f"{v['min_train_acc_after_landing']:.3f} at epoch {v['min_train_acc_epoch']} (it landed at epoch "
                     f"{v['landing_epoch']}; an instability of the large rate) and recovers.")
        else:
            note += (f"The train accuracy stays at or above {v['min_train_acc_after_landing']:.3f}: the floor is low "
                     "and the large "
                     "rate's noise moves the loss by several times it.")
    return Judgement(verdict(ok), measured, {"loss_ratio": v["loss_ratio_after_landing"],
                                             "span_fraction": v["span_fraction"]}, note)


@claim("vgg.test_minimum", section="§4 VGG-11", source="[seed]",
       statement="In the PCA plane the test loss has an isolated minimum, nearer the main path's late end than its "
                 "landing point",
       prediction="the grid's test-loss minimum is interior, the test loss rises toward every edge, and the minimum "
                  "is nearer the late end of the main path than the landing point (the train/test correlation is "
                  "reported)",
       tolerance=f"interior; every edge ≥ {A.TEST_MIN_EDGE_RISE:g} above the minimum (relative); nearer the late end; "
                 "judged only in the regime", job="empirics", figure=FIG_LANDSCAPE,
       flips="a test-loss grid tilted toward one edge (the minimum on the edge)")
def test_minimum(d):
    m, j = _gate(d, "test_minimum")
    if m is None:
        return j
    t = m["test_minimum"]
    ok = t["interior"] and t["min_edge_rise"] >= A.TEST_MIN_EDGE_RISE and t.get("nearer_late_end", False)
    measured = (f"minimum {'interior' if t['interior'] else 'on the edge'}, lowest edge {100 * t['min_edge_rise']:.1f} % "
                f"above it; distance to the late end {t['distance_to_late_end']:.2f}, to the landing point "
                f"{t.get('distance_to_landing', float('nan')):.2f}; train/test correlation Pearson "
                f"{t['pearson_train_test']:.3f}, Spearman {t['spearman_train_test']:.3f}")
    note = ""
    if not ok:
        why = []
        if not t["interior"]:
            why.append("the grid's test-loss minimum lies on its edge")
        if t["min_edge_rise"] < A.TEST_MIN_EDGE_RISE:
            edge, rise = min(t["edge_rise"].items(), key=lambda kv: kv[1])
            why.append(f"toward edge {edge} the test loss rises by only {100 * rise:.1f} % (the margin is "
                       f"{100 * A.TEST_MIN_EDGE_RISE:g} %), so within the plotted range the minimum is not isolated: "
                       "the low test loss runs out of the plane that way")
        if not t.get("nearer_late_end", False):
            why.append("the minimum is nearer the landing point than the late end")
        note = "Refuted on this run: " + "; ".join(why) + "."
    return Judgement(verdict(ok), measured, {"min_edge_rise": t["min_edge_rise"],
                                             "distance_to_late_end": t["distance_to_late_end"],
                                             "distance_to_landing": t.get("distance_to_landing", float("nan")),
                                             "pearson": t["pearson_train_test"], "spearman": t["spearman_train_test"]},
                     note)


@claim("vgg.curvature", section="§4 VGG-11", source="[derived]",
       statement="Along the manifold the noise of SGD drives the iterate to flatter points: the Hessian trace of the "
                 "train loss falls in Phase II",
       prediction="the slope of log tr ∇²L (Hutchinson, Rademacher probes) against the epoch in Phase II is negative; "
                  "the top eigenvalue (Lanczos) is reported beside it",
       tolerance=f"the {100 * A.CONFIDENCE:.0f} % interval of the slope (Theil–Sen per seed, t over seeds) lies below 0; "
                 "judged only in the regime", job="empirics", figure=FIG_CURVATURE,
       flips="traces that rise along the main path")
def curvature(d):
    m, j = _gate(d, "curvature")
    if m is None:
        return j
    c = m["curvature"]
    lo, hi = c["trace_log_slope_interval"]
    elo, ehi = c["top_eig_log_slope_interval"]
    measured = (f"log-trace slope {c['trace_log_slope']:.3f} per {c['per_epochs']} epochs [{lo:.3f}, {hi:.3f}]; "
                f"top eigenvalue {c['top_eig_log_slope']:.3f} [{elo:.3f}, {ehi:.3f}] ({c['trace_interval_basis']})")
    note = ""
    if hi >= 0:
        slopes = [e["trace_log_slope"] for e in c["per_seed"]]
        falling = sum(x < 0 for x in slopes)
        note = (f"Not established at {100 * A.CONFIDENCE:.0f} %: per-seed slopes "
                + ", ".join(f"{x:+.3f}" for x in slopes)
                + f" ({falling} of {len(slopes)} negative); with {len(slopes)} seeds the t interval is wide and reaches "
                  f"{hi:+.3f}. More seeds, or a longer Phase II, would be needed to settle the sign.")
    return Judgement(verdict(hi < 0), measured, {"trace_slope": c["trace_log_slope"], "trace_low": lo,
                                                 "trace_high": hi, "top_eig_slope": c["top_eig_log_slope"]}, note)
