"""Claims on the VGG-11 experiment: the default report's profile (job ``empirics``, ids ``vgg.*``) and the
long CPU run whose small result files ship with the repository (job ``vgg_long``, ids ``vgg.long.*``).

Every measurement is :mod:`lrdecay.empirics.analysis`'s, recomputed from the run directories' result files (the
paths' ``result.json``, ``landscape.npz``, ``curvature.json``); the tolerances are its constants. Two
gates come before any claim about the phenomenon:

* ``regime`` — the main path interpolates its training set and sits at a train-loss plateau before the
  first analysed decay (an underfitting network is not on a manifold of minima);
* ``generalization`` — at that decay its test loss is clearly below the best constant predictor's
  (a network that has learnt nothing that transfers cannot show that a schedule generalizes better).

Where either fails, the claims read n/a with the reason.
"""
from __future__ import annotations

import math
from pathlib import Path

from lrdecay.empirics import analysis as A
from lrdecay.theory.io import load_json

from .base import (MISSING, NOT_APPLICABLE, NOT_ESTABLISHED, SUPPORTED, Judgement, caption, claim, interval_word,
                   verdict)

GATE = (f"judged only where vgg.regime and the generalization gate hold (test loss ≥ "
        f"{100 * A.GATE_MIN_RELATIVE_MARGIN:.0f} % and > {A.GATE_MIN_SE:g} s.e. below the constant predictor's on "
        "every seed)")


def _figures(job: str, what: str) -> dict:
    return {
        "decay": caption(
            f"{job}/figures/vgg_decay.png",
            f"VGG-11, {what}: each subpath's test loss and accuracy (mean of its last {A.LAST_K} evaluations) "
            "against its decay epoch, mean ± one standard error over the seeds, thin lines single seeds, with the "
            "least-squares line of the late-decay statistic; the dotted line is the best constant predictor's test "
            "loss. The paper predicts a falling test loss."),
        "curves": caption(
            f"{job}/figures/vgg_learning_curves.png",
            f"Learning curves of the first seed ({what}): train and test loss (log) and accuracy against the "
            "epoch, the main path and every subpath; the landing epoch (from which train accuracy stays ≥ 99 %), "
            "the decay epochs and the constant predictor's test loss (dotted) marked."),
        "landscape": caption(
            f"{job}/figures/vgg_landscape.png",
            f"Train and test loss ({what}, first seed) in the plane of the first two principal components of "
            "the post-landing checkpoints (main path and subpaths; no initialisation, no duplicated branch "
            "point), over their bounding box plus 15 %; the main path (black, from its landing), the subpaths "
            "(coloured, stars at their ends), each panel's own minimum (X); the train panel outlines the "
            "valley (the sublevel set of vgg.valley); the test panel hatches where the test loss is above the "
            "constant predictor's."),
        "curvature": caption(
            f"{job}/figures/vgg_curvature.png",
            f"Curvature along the main path ({what}): Hutchinson trace ± its standard error and the Lanczos top "
            "eigenvalue, one line per seed, the fitted Phase II window shaded (after the settling transient), "
            "and the parameter norm; right: at each subpath's end."),
        "map": caption(
            f"{job}/figures/vgg_late_decay_map.png",
            f"The late-decay map ({what}, after the authors' figure): the test loss of each subpath at every "
            "evaluated epoch after its decay, placed at (epochs at the large rate, epochs after). Right: the same "
            "records against the total epoch, the main path in black and the constant predictor dotted."),
    }


def _measure(d: Path):
    """The profile's measurements, or ``None`` when the job has not run, or an error Judgement."""
    if (d / "error.json").exists():
        return Judgement(MISSING, load_json(d / "error.json")["error"])
    if not (d / "profile.json").exists():
        return None
    return A.measure_profile(d)


def _gate(d: Path, key: str):
    """``(measurements, None)`` when the profile passes both gates and ``key`` was measured, else
    ``(None, Judgement or None)``."""
    m = _measure(d)
    if m is None or isinstance(m, Judgement):
        return None, m
    reg, gen = m.get("regime", {}), m.get("generalization", {})
    for part in (reg, gen):
        if "missing" in part:
            return None, Judgement(MISSING, part["missing"])
    if not reg.get("in_regime"):
        return None, Judgement(NOT_APPLICABLE, f"not in regime (train accuracy at the first decay "
                                               f"{reg['min_train_acc_at_first_decay']:.3f}, loss ratio "
                                               f"{reg['max_loss_ratio']:.2f}; see the regime claim)")
    if not gen.get("passes"):
        return None, Judgement(NOT_APPLICABLE, "the main path does not generalize on every seed, so no "
                                               "generalization claim can be judged on this run: " + gen["reason"])
    sub = m.get(key)
    if sub is None or "missing" in sub:
        return None, (Judgement(MISSING, sub["missing"]) if sub else None)
    return m, None


def _outside_regime(d: Path, j):
    """An n/a late-decay judgement, with the statistic over every branch appended as information (not judged)."""
    if j is None or j.verdict != NOT_APPLICABLE:
        return j
    try:
        prof = load_json(d / "profile.json")
        dirs = [d / r for r in prof["run_dirs"][prof["variants"][0]]]
        t = A.measure_late_decay(dirs, all_branches=True)
    except (FileNotFoundError, ValueError, KeyError):
        return j
    s = t["test_loss_slope"]
    if s["slope"] != s["slope"]:
        return j
    lo, hi = s["interval"]
    j.note = (f"Shown, not judged (outside the gate): over all {len(t['decay_epochs'])} branches "
              f"({t['decay_epochs'][0]}–{t['decay_epochs'][-1]}) the test-loss slope is {s['slope']:+.4f} per "
              f"{s['per_epochs']} epochs [{lo:+.4f}, {hi:+.4f}] ({s['basis']}), Pearson r "
              + ", ".join(f"{r:+.2f}" for r in s["pearson_r"])
              + f", earliest → latest {100 * s['relative_change']:+.1f} %.")
    return j


def _interval_verdict(lo: float, hi: float) -> tuple[str, str]:
    """The verdict and the report's one word (:func:`interval_word`) for an interval judged against a
    predicted negative sign."""
    word = interval_word(lo, hi, (-math.inf, 0.0))
    return verdict(word == SUPPORTED), word


def register(prefix: str, job: str, section: str, what: str, caveat: str) -> None:
    """Declare the six VGG claims under ``prefix`` (``vgg`` or ``vgg.long``), read from ``job``'s directory."""
    fig = _figures(job, what)

    @claim(f"{prefix}.regime", section=section, source="[derived]",
           statement=f"The {what} is in the regime the paper is about: the main path interpolates its training set "
                     "and sits at a train-loss plateau before the first analysed decay",
           prediction="every seed: train accuracy at the first analysed decay ≥ 99 % and its train loss (averaged "
                      f"over {A.REGIME_WINDOW} evaluations) within {A.REGIME_MAX_LOSS_RATIO:g}× its smallest such "
                      "average",
           tolerance=f"accuracy ≥ {A.REGIME_MIN_TRAIN_ACC:g}; windowed loss ratio ≤ {A.REGIME_MAX_LOSS_RATIO:g} (a "
                     "path still descending is many times its floor; the window averages the iterate's oscillation)",
           job=job, figure=fig["curves"],
           flips="every evaluation of the main path at train accuracy 1 and a flat train loss")
    def regime(d):
        m = _measure(d)
        if m is None or isinstance(m, Judgement):
            return m
        r = m["regime"]
        if "missing" in r:
            return Judgement(MISSING, r["missing"])
        land = ", ".join("—" if p["landing_epoch"] is None else
                         f"{p['landing_epoch']} ({p['main_steps_after_landing']:,} main-path steps after it)"
                         for p in r["per_seed"])
        first = r["per_seed"][0]["first_decay_epoch"]
        measured = (f"train accuracy at the first analysed decay (epoch {first}) ≥ "
                    f"{r['min_train_acc_at_first_decay']:.3f} over {len(r['seeds'])} seed(s); windowed loss ratio ≤ "
                    f"{r['max_loss_ratio']:.2f}; landing epochs (train accuracy stays ≥ 99 %) {land}")
        never = [p for p in r["per_seed"] if p["landing_epoch"] is None]
        note = ""
        if never:
            note = ("Never landed: " + "; ".join(
                f"seed {p['seed']}'s main path ends at train accuracy {p['final_train_acc']:.3f} after "
                f"{p['main_path_epochs']} epochs" for p in never)
                + ", so no branch is after a landing and the first analysed decay is the main path's end. The "
                  "network does not interpolate its training set on this run (the pilots in docs/empirics.md show "
                  "the same for every run with crop + flip at this width).")
        return Judgement(verdict(r["in_regime"]), measured,
                         {"min_train_acc": r["min_train_acc_at_first_decay"], "max_loss_ratio": r["max_loss_ratio"]},
                         note)

    @claim(f"{prefix}.generalization", section=section, source="[derived]",
           statement=f"The {what} generalizes: at the first analysed decay the main path's test loss is clearly below "
                     "the best constant predictor's (the training class frequencies predicted for every image)",
           prediction="every seed: test loss (mean of the evaluations ending there) below the constant predictor's "
                      f"by ≥ {100 * A.GATE_MIN_RELATIVE_MARGIN:.0f} % of it and by > {A.GATE_MIN_SE:g} standard "
                      "errors",
           tolerance=f"margin ≥ {A.GATE_MIN_RELATIVE_MARGIN:g} × constant and > {A.GATE_MIN_SE:g} s.e. (over the "
                     f"{A.REGIME_WINDOW} evaluations); the gate of every claim below",
           job=job, figure=fig["map"],
           flips="main-path test losses moved across the gate: to 0.2 (far below the constant predictor) where it "
                 "fails, to the constant predictor's where it passes")
    def generalization(d):
        m = _measure(d)
        if m is None or isinstance(m, Judgement):
            return m
        g = m["generalization"]
        if "missing" in g:
            return Judgement(MISSING, g["missing"])
        rows = "; ".join(f"seed {p['seed']}: {p['test_loss']:.4f} ± {p['test_loss_se']:.4f} (accuracy "
                         f"{p['test_acc']:.3f}) against {p['constant_loss']:.4f}, {100 * p['relative_margin']:.1f} % "
                         f"below" for p in g["per_seed"])
        note = "" if g["passes"] else ("Not every seed's main path has learnt enough that transfers to the test "
                                       "images by the first analysed decay, so the claims below are n/a on this "
                                       "run: " + g["reason"] + ".")
        return Judgement(verdict(g["passes"]), f"test loss at epoch {g['per_seed'][0]['first_decay_epoch']}: {rows}",
                         {"min_relative_margin": g["min_relative_margin"], "min_margin_in_se": g["min_margin_in_se"]},
                         note)

    @claim(f"{prefix}.late_decay", section=section, source="[seed]",
           statement=f"VGG-11 on CIFAR-10 ({what}): subpaths decayed later reach a lower test loss",
           prediction=f"the late-decay statistic — per seed, the least-squares slope of each subpath's test loss (mean "
                      f"of its last {A.LAST_K} evaluations) against its decay epoch — is negative",
           tolerance=f"the {100 * A.CONFIDENCE:.0f} % interval of the slope lies below 0 (t over seeds; with one "
                     f"seed, over branches); above 0: refuted; across 0: not established; {GATE}",
           job=job, figure=fig["decay"], caveat=caveat,
           flips="subpath test losses that rise with the decay epoch")
    def late_decay(d):
        m, j = _gate(d, "late_decay")
        if m is None:
            return _outside_regime(d, j)
        t = m["late_decay"]
        s = t["test_loss_slope"]
        lo, hi = s["interval"]
        rows = "; ".join(f"{e}: {mu:.4f} ± {se:.4f}" if se == se else f"{e}: {mu:.4f}"
                         for e, mu, se in zip(t["decay_epochs"], t["test_loss_mean"], t["test_loss_se"]))
        const = m["generalization"]["constant_loss"][0]
        pw = t.get("power", {})
        measured = (f"{t['design'].replace('_', ' ')} subpaths; test loss by decay epoch {rows} (constant predictor "
                    f"{const:.4f}); slope {s['slope']:+.4f} per {s['per_epochs']} epochs [{lo:+.4f}, {hi:+.4f}] "
                    f"({s['basis']}; per seed " + ", ".join(f"{x:+.4f}" for x in s["slopes"]) + f"); Pearson r "
                    + ", ".join(f"{r:+.2f}" for r in s["pearson_r"])
                    + f"; earliest → latest {100 * s['relative_change']:+.1f} %")
        if pw.get("power") == pw.get("power"):
            measured += (f"; power against the authors' {100 * pw['benefit']:.0f} % benefit "
                         f"{pw['power']:.2f} at {pw['n_seeds']} seeds")
        v, word = _interval_verdict(lo, hi)
        note = ""
        if word != SUPPORTED:
            note = (f"{word.capitalize()} on this run: the test loss changes by {100 * s['relative_change']:+.1f} % "
                    f"from the earliest to the latest decay (the authors saw about −{100 * A.AUTHORS_BENEFIT:.0f} %). "
                    f"The main path itself reaches its lowest seed-mean test loss after landing, "
                    f"{t['main_test_min']:.4f}, at epoch {t['main_test_min_epoch']} and is at {t['main_test_end']:.4f} "
                    "at its end: a decay freezes the iterate near where the main path is, so the subpaths follow the "
                    "main path's own test loss.")
            if word == NOT_ESTABLISHED and s["n_seeds"] >= 2 and s["basis"] == "seeds":
                p_obs = A.slope_power(s["slope"], s["slope_sd"], s["n_seeds"])
                need = next((n for n in range(s["n_seeds"], 51) if A.slope_power(s["slope"], s["slope_sd"], n) >= 0.8),
                            None)
                note += (f" At the observed slope and scatter the test has power {p_obs:.2f} at {s['n_seeds']} seeds"
                         + (f"; power 0.8 would need {need} seeds, fixed before the run." if need else "."))
        vals = {f"decay_{e}": float(x) for e, x in zip(t["decay_epochs"], t["test_loss_mean"])}
        vals.update(slope=s["slope"], slope_low=lo, slope_high=hi, relative_change=s["relative_change"])
        return Judgement(v, measured, vals, note)

    @claim(f"{prefix}.valley", section=section, source="[seed]",
           statement="After landing, the main path travels along a valley of low train loss (a manifold of minima)",
           prediction=f"in the PCA window the sublevel set {{train loss ≤ {A.VALLEY_LEVEL:g}× the median at the "
                      "post-landing path} has a connected part that holds the path, runs through the window and "
                      "covers a minority of it",
           tolerance=f"holds ≥ {A.VALLEY_MIN_CONTAINED:g} of the post-landing checkpoints' projections; touches ≥ 2 "
                     f"sides; covers ≤ {A.VALLEY_MAX_AREA:g} of the window; {GATE}",
           job=job, figure=fig["landscape"], flips="a train-loss grid rising steeply along the path")
    def valley(d):
        m, j = _gate(d, "valley")
        if m is None:
            return j
        v = m["valley"]
        if not v.get("landed"):
            return Judgement(NOT_APPLICABLE, "the landscape's run never landed")
        measured = (f"the valley holds {100 * v['contained_fraction']:.0f} % of {v['n_after_landing']} post-landing "
                    f"checkpoints, touches {v['sides_touched']} sides, covers {100 * v['area_fraction']:.0f} % of the "
                    f"window (level {v['level']:.3g}); checkpoints' own train-loss ratio after landing "
                    f"{v['loss_ratio_after_landing']:.2f}, lowest train accuracy {v['min_train_acc_after_landing']:.3f}")
        note = ""
        if not v["passes"]:
            why = []
            if v["contained_fraction"] < A.VALLEY_MIN_CONTAINED:
                why.append("the path leaves the low-loss set for part of its course")
                if v["loss_ratio_after_landing"] > A.VALLEY_LEVEL:
                    why.append(f"the path's own train loss varies by a factor {v['loss_ratio_after_landing']:.1f} "
                               f"after landing (the noise keeps it oscillating), more than the level's "
                               f"{A.VALLEY_LEVEL:g}× the median admits")
            if v["sides_touched"] < 2:
                why.append("the low-loss set is an island inside the window, not a valley through it")
            if v["area_fraction"] > A.VALLEY_MAX_AREA:
                why.append("the low-loss set covers most of the window: the loss does not rise off the path in "
                           "this plane")
            note = "Refuted on this run: " + "; ".join(why) + "."
        return Judgement(verdict(v["passes"]), measured, {"contained": v["contained_fraction"],
                                                          "sides": v["sides_touched"], "area": v["area_fraction"]},
                         note)

    @claim(f"{prefix}.test_minimum", section=section, source="[seed]",
           statement="In the PCA plane the test loss has an isolated minimum, nearer the main path's late end than "
                     "its landing point",
           prediction="the window's test-loss minimum is interior, every edge rises above it, and it is nearer the "
                      "late end of the main path than the landing point (the grid's train/test agreement and the "
                      "fraction above the constant predictor are reported)",
           tolerance=f"interior; every edge ≥ {A.TEST_MIN_EDGE_MARGIN:g} of the grid's spread (median − minimum) "
                     f"above the minimum; nearer the late end; {GATE}",
           job=job, figure=fig["landscape"], flips="a test-loss grid tilted toward one edge (the minimum on the edge)")
    def test_minimum(d):
        m, j = _gate(d, "test_minimum")
        if m is None:
            return j
        t = m["test_minimum"]
        ok = t["interior"] and t["min_edge_margin"] >= A.TEST_MIN_EDGE_MARGIN and t.get("nearer_late_end", False)
        measured = (f"minimum {t['test_min']:.4f} {'interior' if t['interior'] else 'on the edge'}, lowest edge "
                    f"{t['min_edge_margin']:.2f} of the spread above it; distance to the late end "
                    f"{t['distance_to_late_end']:.2f}, to the landing point {t.get('distance_to_landing', float('nan')):.2f}; "
                    f"train/test Pearson (log) {t['pearson_log_train_test']:.3f}, Spearman "
                    f"{t['spearman_train_test']:.3f}; {100 * t['fraction_above_constant']:.0f} % of the window above "
                    f"the constant predictor ({t['constant_loss']:.4f})")
        note = ""
        if not ok:
            why = []
            if not t["interior"]:
                why.append("the window's test-loss minimum lies on its edge")
            if t["min_edge_margin"] < A.TEST_MIN_EDGE_MARGIN:
                edge, mg = min(t["edge_margin"].items(), key=lambda kv: kv[1])
                why.append(f"toward edge {edge} the test loss rises by only {mg:.2f} of the grid's spread: the low "
                           "test loss runs out of the window that way")
            if not t.get("nearer_late_end", False):
                why.append("the minimum is nearer the landing point than the late end")
            note = "Refuted on this run: " + "; ".join(why) + "."
        return Judgement(verdict(ok), measured, {"min_edge_margin": t["min_edge_margin"],
                                                 "distance_to_late_end": t["distance_to_late_end"],
                                                 "distance_to_landing": t.get("distance_to_landing", float("nan")),
                                                 "spearman": t["spearman_train_test"]}, note)

    @claim(f"{prefix}.curvature", section=section, source="[derived]",
           statement="Along the manifold the noise of SGD drives the iterate to flatter points: the Hessian trace of "
                     "the train loss falls in Phase II",
           prediction="the slope of log tr ∇²L (Hutchinson, Rademacher probes) against the epoch in Phase II, after "
                      "its settling transient, is negative; the top eigenvalue and the parameter norm are reported",
           tolerance=f"the {100 * A.CONFIDENCE:.0f} % interval of the slope (Theil–Sen per seed, t over seeds) lies "
                     f"below 0; the first {100 * A.CURVATURE_SETTLE:.0f} % of the post-landing span left out; {GATE}",
           job=job, figure=fig["curvature"], flips="traces that rise along the main path")
    def curvature(d):
        m, j = _gate(d, "curvature")
        if m is None:
            return j
        c = m["curvature"]
        lo, hi = c["trace_log_slope_interval"]
        elo, ehi = c["top_eig_log_slope_interval"]
        measured = (f"log-trace slope {c['trace_log_slope']:+.3f} per {c['per_epochs']} epochs [{lo:+.3f}, {hi:+.3f}]; "
                    f"top eigenvalue {c['top_eig_log_slope']:+.3f} [{elo:+.3f}, {ehi:+.3f}]; log parameter norm "
                    f"{c['param_norm_log_slope']:+.4f} ({c['trace_interval_basis']}; Phase II from epoch "
                    + ", ".join(f"{e['phase2_start_epoch']:.0f}" for e in c["per_seed"]) + ")")
        v, word = _interval_verdict(lo, hi)
        note = ""
        if word != SUPPORTED:
            slopes = [e["trace_log_slope"] for e in c["per_seed"]]
            note = (f"{word.capitalize()} at {100 * A.CONFIDENCE:.0f} %: per-seed slopes "
                    + ", ".join(f"{x:+.3f}" for x in slopes)
                    + f" ({sum(x < 0 for x in slopes)} of {len(slopes)} negative).")
        return Judgement(v, measured, {"trace_slope": c["trace_log_slope"], "trace_low": lo, "trace_high": hi,
                                       "top_eig_slope": c["top_eig_log_slope"],
                                       "param_norm_slope": c["param_norm_log_slope"]}, note)


register("vgg", "empirics", "§4 VGG-11", "default CPU profile",
         "A small network on part of the 5,000-image subset, on a CPU; the authors' run (3,000 epochs, full width) "
         "needs a GPU: benchmarks/gpu_authors.py.")
register("vgg.long", "vgg_long", "§4 VGG-11 long run", "long CPU run",
         "One seed of slim VGG-11 at width 0.375 on the 5,000-image subset, 800 epochs on 2 CPU cores; its files "
         "ship with the repository (measurements/vgg_cpu_long) and 'lrdecay empirics profile cpu_long' reruns it.")
