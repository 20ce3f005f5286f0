"""The verification report: every claim present, each with the verdict expected at smoke size, and every
claim flipped by a doctored input (the judge reads the files, so a wrong measurement changes the verdict)."""
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from lrdecay.report.claims import evaluate
from lrdecay.report.claims.base import (FAIL, MISSING, NOT_APPLICABLE, NOT_TESTABLE, PASS, REGISTRY,
                                        judge_one)
from lrdecay.report.runner import run_report
from lrdecay.theory.io import load_json, save_json
from lrdecay.theory.studies.checks import Checks
from lrdecay.theory.studies.convex_mc import ConvexStudy
from lrdecay.theory.studies.cyclic import CyclicStudy
from lrdecay.theory.studies.decay import DecaySweep, ScheduleComparison
from lrdecay.theory.studies.diagonal import DiagonalStudy
from lrdecay.theory.studies.discrete_eta import DiscreteEtaStudy
from lrdecay.theory.studies.drift_any import DriftAnyResult
from lrdecay.theory.studies.gamma import GammaStudyResult
from lrdecay.theory.studies.landscape import LandscapeStudy
from lrdecay.theory.studies.rate_law import RateLawResult
from lrdecay.theory.studies.two_layer import TwoLayerStudy

# the long CPU run's claims, judged from its committed files (the same at every size): its main path generalizes
# (test loss 0.28 against the constant predictor's 0.45) but never interpolates its 5,000 augmented images, so the
# regime fails and the claims about the phenomenon are n/a
LONG_RUN = Path(__file__).resolve().parents[2] / "measurements" / "vgg_cpu_long"
_LONG = ("regime", "generalization", "late_decay", "valley", "test_minimum", "curvature")
VGG_LONG_SMOKE = ({"vgg.long.regime": FAIL, "vgg.long.generalization": PASS}
                  | {f"vgg.long.{k}": NOT_APPLICABLE for k in _LONG[2:]}
                  if (LONG_RUN / "profile.json").exists() else {f"vgg.long.{k}": MISSING for k in _LONG})
# the verdict of every claim on the smoke-size report; claims whose regime the smoke size does not reach
# say so ("n/a", "not testable") instead of passing
EXPECTED_SMOKE = {
    "model.alpha": PASS, "model.trace_on_M": PASS, "model.min_norm": PASS, "model.flatness": PASS,
    "model.invariant_subspace": PASS, "sde.sgd_is_em": PASS, "phase1.scaling": PASS, "model.landscape": PASS,
    "phase2.plateau": PASS, "phase2.drift": PASS, "phase2.breakdown": PASS, "phase3.late_decay": PASS,
    "phase2.to_min_norm": NOT_APPLICABLE, "phase3.schedules": PASS, "phase3.gamma0": PASS, "phase3.freeze": PASS,
    "gamma.bound": NOT_TESTABLE, "gamma.flatness": NOT_APPLICABLE, "gamma.zero": PASS,
    "gamma.rate_law": PASS, "schedules.cyclic": PASS, "phase2.discrete_eta": PASS, "models.diagonal": PASS,
    "models.diagonal.late_decay": PASS, "models.two_layer": PASS, "models.two_layer.late_decay": PASS,
    "models.relu.drift": NOT_TESTABLE, "models.relu.late_decay": NOT_TESTABLE, "models.diagonal3.end_point": PASS,
    "convex.prop1_probability": NOT_TESTABLE, "convex.prop1_ratio": PASS, "convex.lemma2": PASS,
    "convex.figure1": PASS, "vgg.regime": FAIL, "vgg.generalization": FAIL, "vgg.late_decay": NOT_APPLICABLE,
    "vgg.valley": NOT_APPLICABLE, "vgg.test_minimum": NOT_APPLICABLE, "vgg.curvature": NOT_APPLICABLE,
    **VGG_LONG_SMOKE,
    "symbolic.identities": PASS, "symbolic.numeric": PASS,
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    claims = run_report(out, size="smoke", progress=False, log=lambda *a: None)
    return out, claims


def test_every_claim_has_its_expected_verdict(smoke):
    out, claims = smoke
    ids = [c.id for c in claims]
    assert len(set(ids)) == len(ids), "a claim is listed twice"
    assert set(ids) == set(EXPECTED_SMOKE) == set(REGISTRY)
    got = {c.id: c.verdict for c in claims}
    assert got == EXPECTED_SMOKE
    for c in claims:
        assert c.measured, c.id
        if c.figure and c.verdict != MISSING:
            assert (out / c.figure).exists(), c.figure
    page, md = (out / "report.html").read_text(), (out / "report.md").read_text()
    assert all(i in page and i in md for i in ids)
    saved = load_json(out / "claims.json")
    assert {c["id"] for c in saved["claims"]} == set(ids)


def test_rerun_reuses_cached_jobs(smoke):
    out, _ = smoke
    logs = []
    run_report(out, size="smoke", progress=False, log=logs.append, only=["convex", "landscape"])
    assert any("reusing" in line and "convex" in line for line in logs)


# --------------------------------------------------------------------------------------------------
# doctored inputs: one per claim, each must flip the claim's smoke verdict
# --------------------------------------------------------------------------------------------------

def _checks(d, name, **values):
    c = Checks.load(d / name)
    c.values.update(values)
    c.save(d / name)


def _checks_nested(d, name, key, sub, value):
    c = Checks.load(d / name)
    c.values[key][sub] = value
    c.save(d / name)


def _sweep(d, gamma, fn):
    p = d / f"decay_sweep_gamma{gamma:g}.npz"
    sw = DecaySweep.load(p)
    fn(sw)
    sw.save(p)


def _set_final_test(sw, ft):
    sw.sim.records["test_loss"][-1] = np.asarray(ft).reshape(-1)


def _freeze_completely(sw):
    """After each decay the test loss stays exactly where it was: no drop, ratio 0."""
    rec = sw.sim.records["test_loss"]
    for j, k in enumerate(sw.decay_steps[:-1]):
        cols = slice(j * sw.paths_per_decay, (j + 1) * sw.paths_per_decay)
        at = rec[np.searchsorted(sw.sim.steps, k), cols]
        rec[sw.sim.steps > k, cols] = at


def _drift(d, fn):
    s = load_json(d / "drift_summary.json")
    fn(s["rows"])
    save_json(d / "drift_summary.json", s)


def _schedules_cosine_best(d):
    sc = ScheduleComparison.load(d / "schedules.npz")
    i = sc.names.index("cosine")
    sc.sim.records["test_loss"][-1, i * sc.paths:(i + 1) * sc.paths] = 0.0
    sc.save(d / "schedules.npz")


def _gamma(d, fn):
    res = GammaStudyResult.load(d / "gamma_study.npz")
    res = fn(res)
    res.save(d / "gamma_study.npz")


def _gamma_many_instances_none_converge(res):
    """40 instances (the 4 tiled), none converging: testable at gamma = 2, and below the bound."""
    reps = 10
    tile = {f.name: getattr(res, f.name) for f in dataclasses.fields(res)}
    for name in ("X", "y", "alpha_star", "w0", "instance_seeds"):
        tile[name] = np.concatenate([tile[name]] * reps)
    for name in ("eta", "sharpness", "converged", "steps", "tau", "status", "init_rel_dist_M", "final_rel_dist_M",
                 "final_rel_dist", "final_train_loss", "final_test_loss", "final_norm", "final_near_M", "near_M_loss"):
        tile[name] = np.concatenate([tile[name]] * reps, axis=1)
    tile["rec_rel_dist_M"] = np.concatenate([tile["rec_rel_dist_M"]] * reps, axis=2)
    tile["converged"] = np.zeros_like(tile["converged"])
    tile["config"] = {**res.config, "n_instances": res.n_instances * reps}
    return GammaStudyResult(**tile)


def _gamma_relabel_8(res):
    """The gamma = 2 runs (all converged) relabelled gamma = 8, where the flatness condition fails on some
    instances: converged instances that fail the condition."""
    return dataclasses.replace(res, gammas=np.where(res.gammas == 2.0, 8.0, res.gammas))


def _gamma_zero_moves(res):
    g0 = int(np.flatnonzero(res.gammas == 0)[0])
    moved = res.final_rel_dist_M.copy()
    moved[g0] += 0.1
    return dataclasses.replace(res, final_rel_dist_M=moved)


def _convex(d, fn):
    st = ConvexStudy.load(d / "convex.npz")
    fn(st)
    st.save(d / "convex.npz")


def _convex_many_draws_far_from_3_4(st):
    for c in st.cells:
        c["trials"], c["n_sep"], c["p_hat"] = 20000, 14000, 0.7


def _convex_ratio(st):
    amin = min(c["alpha"] for c in st.cells)
    for c in st.cells:
        if c["alpha"] == amin:
            c["ratio_21"] = 1.9


def _convex_slow_below_bound(st):
    c = next(c for c in st.cells if c["K"] >= 1)
    c["test_slow_21"] = 0.5 * 1.5 * (1 - c["alpha"])


def _convex_fig_slow(st):
    st.figure["fig_test_slow"] = np.array(1.6 * float(st.figure["fig_eps"]))


def _landscape_ramp(d):
    st = LandscapeStudy.load(d / "landscape.npz")
    A, B = np.meshgrid(st.axis, st.axis)
    st.test[:] = (A - A.min())[None]          # a ramp: the minimum on the window's edge
    st.save(d / "landscape.npz")


def _vgg_runs(d):
    return [d / r for r in load_json(d / "profile.json")["run_dirs"][load_json(d / "profile.json")["variants"][0]]]


def _vgg_in_regime(d):
    """Every seed's main path interpolating from the first evaluation on, at a flat train loss."""
    for run in _vgg_runs(d):
        p = run / "main" / "result.json"
        r = load_json(p)
        for row in r["metrics"]:
            row["train_acc"], row["train_loss"] = 1.0, 0.01
        save_json(p, r)


def _vgg_test_losses(d, value):
    """Every main-path evaluation's test loss set to ``value``."""
    for run in _vgg_runs(d):
        p = run / "main" / "result.json"
        r = load_json(p)
        for row in r["metrics"]:
            row["test_loss"] = value
        save_json(p, r)


def _vgg_generalizing(d):
    """In the regime, with test losses of 0.2 on the main path: far below the constant predictor's."""
    _vgg_in_regime(d)
    _vgg_test_losses(d, 0.2)


def _vgg_later_worse(d):
    _vgg_generalizing(d)
    for run in _vgg_runs(d):
        for sub in run.glob("sub_e*/result.json"):
            r = load_json(sub)
            for row in r["metrics"]:
                row["test_loss"] = 0.1 + 1e-3 * r["meta"]["decay_epoch"]
            save_json(sub, r)


def _vgg_landscape(d, fn):
    from lrdecay.theory.io import load_result, save_result
    _vgg_generalizing(d)
    land = d / load_json(d / "profile.json")["landscape_run"] / "landscape.npz"
    arr, cfg = load_result(land)
    fn(arr)
    save_result(land, arr, cfg)


def _vgg_leaves_valley(arr):
    """A train-loss grid that climbs by decades along PC1, across the path: no valley holds it."""
    a = arr["a"][:, None] + 0 * arr["b"][None, :]
    arr["train_loss"] = 1e-3 * np.exp(20 * (a - a.min()) / np.ptp(a))
    from scipy.interpolate import RegularGridInterpolator
    arr["proj_train_loss"] = RegularGridInterpolator((arr["a"], arr["b"]), arr["train_loss"], bounds_error=False,
                                                     fill_value=None)(arr["coords"][:, :2])


def _vgg_tilted_test(arr):
    arr["test_loss"] = 0.5 - 0.01 * arr["a"][:, None] + 0 * arr["test_loss"]


def _vgg_rising_traces(d):
    _vgg_generalizing(d)
    for run in _vgg_runs(d):
        p = run / "curvature.json"
        c = load_json(p)
        for row in c["rows"]:
            row["trace"] = 1.0 + row["epoch"]
        save_json(p, c)


def _rate_law_slow(d):
    """SGD twice as slow as the ODE in the first cell."""
    p = d / "rate_law.npz"
    r = RateLawResult.load(p)
    r.tau_sgd = np.where(r.cell == 0, 2 * r.tau_sgd, r.tau_sgd)
    r.save(p)


def _cyclic_beyond_budget(d):
    """The triangular schedule ends at half the constant schedule's distance (far beyond its drift budget)."""
    p = d / "cyclic.npz"
    st = CyclicStudy.load(p)
    sc = st.comparison
    i, j = sc.names.index("triangular"), sc.names.index("constant")
    rec = sc.sim.records["dist_M"]
    rec[-1, i * sc.paths:(i + 1) * sc.paths] = rec[-1, j * sc.paths:(j + 1) * sc.paths] * 0.5
    st.save(p)


def _discrete_eta_flat(d):
    """Errors that do not grow with eta (exactly flat: slope 0 with a tight interval)."""
    p = d / "discrete_eta.npz"
    st = DiscreteEtaStudy.load(p)
    E, P = st.drift_err_paths.shape
    st.drift_err_paths = -0.05 * np.ones((E, P))
    st.train_paths = (st.plateau_leading * 1.2)[:, None] * np.ones((E, P))
    st.save(p)


def _diagonal(d, fn):
    p = d / "diagonal.npz"
    st = DiagonalStudy.load(p)
    fn(st)
    st.save(p)


def _diag_stays(st):
    st.sparse.long_theta = st.sparse.theta_land.copy()


def _diag_reverse(st):
    ft = st.sparse.sim.records["test_loss"]
    ft[-1] = ft[-1].reshape(len(st.sparse.decay_steps), st.sparse.paths)[::-1].reshape(-1)


def _two_layer(d, fn):
    p = d / "two_layer.npz"
    st = TwoLayerStudy.load(p)
    fn(st.study)
    st.save(p)


def _two_layer_kernel_moves(s):
    s.sim.W_final[:, 0] += 1e-3


def _two_layer_reverse(s):
    ft = s.sim.records["test_loss"]
    ft[-1] = ft[-1].reshape(len(s.decay_steps), s.paths)[::-1].reshape(-1)


def _drift_any(d, fn):
    p = d / "drift_any.npz"
    r = DriftAnyResult.load(p)
    fn(r)
    r.save(p)


def _ode_travels_further(r, factor=200.0):
    """The drift ODE's test loss moved ``factor`` times as far from its start as it does: SGD does not follow."""
    st = r.study
    st.ode_test = st.ode_test[0] + factor * (st.ode_test - st.ode_test[0])


def _drift_stays(r):
    r.flow_theta_end = r.study.theta_land.copy()


DOCTORS = {
    "models.relu.drift": lambda d: _drift_any(d, _ode_travels_further),
    "models.relu.late_decay": lambda d: _drift_any(d, _ode_travels_further),
    "models.diagonal3.end_point": lambda d: _drift_any(d, _drift_stays),
    "gamma.rate_law": _rate_law_slow,
    "schedules.cyclic": _cyclic_beyond_budget,
    "phase2.discrete_eta": _discrete_eta_flat,
    "models.diagonal": lambda d: _diagonal(d, _diag_stays),
    "models.diagonal.late_decay": lambda d: _diagonal(d, _diag_reverse),
    "models.two_layer": lambda d: _two_layer(d, _two_layer_kernel_moves),
    "models.two_layer.late_decay": lambda d: _two_layer(d, _two_layer_reverse),
    "model.alpha": lambda d: _checks(d, "core_checks.npz", alpha_rel_error=1e-6),
    "model.trace_on_M": lambda d: _checks(d, "core_checks.npz", trace_rel_error=1e-3),
    "model.min_norm": lambda d: _checks(d, "core_checks.npz", min_norm_shortest_ratio=0.99),
    "model.flatness": lambda d: _checks(d, "core_checks.npz", flatness_disagreements=1),
    "model.invariant_subspace": lambda d: _checks(d, "core_checks.npz", reduction_max_diff=1e-3),
    "sde.sgd_is_em": lambda d: _checks(d, "core_checks.npz", em_loop_max_diff=1e-3, sgd_em_max_diff=1e-3),
    "phase1.scaling": lambda d: _checks(d, "core_checks.npz", phase1_exponent=1.5, phase1_exponent_ci=[1.4, 1.6]),
    "model.landscape": _landscape_ramp,
    "phase2.plateau": lambda d: _drift(d, lambda rows: rows[0].update(plateau_ratio=1.3)),
    "phase2.drift": lambda d: _drift(d, lambda rows: rows[0].update(norm_rel_error=0.2)),
    "phase2.breakdown": lambda d: _drift(d, lambda rows: next(r for r in rows if r["kind"] == "breakdown")
                                         .update(norm_rel_error=0.001)),
    "phase3.late_decay": lambda d: _sweep(d, 1.0, lambda sw: _set_final_test(sw, sw.final_test[::-1])),
    "phase2.to_min_norm": lambda d: _sweep(d, 1.0, lambda sw: sw.ode_test.__setitem__(slice(None), sw.min_norm_test_loss)),
    "phase3.schedules": _schedules_cosine_best,
    "phase3.gamma0": lambda d: _sweep(d, 0.0, lambda sw: _set_final_test(
        sw, sw.final_test * np.linspace(1.0, 1.5, len(sw.decay_steps))[:, None])),
    "phase3.freeze": lambda d: _sweep(d, 1.0, _freeze_completely),
    "gamma.bound": lambda d: _gamma(d, _gamma_many_instances_none_converge),
    "gamma.flatness": lambda d: _gamma(d, _gamma_relabel_8),
    "gamma.zero": lambda d: _gamma(d, _gamma_zero_moves),
    "convex.prop1_probability": lambda d: _convex(d, _convex_many_draws_far_from_3_4),
    "convex.prop1_ratio": lambda d: _convex(d, _convex_ratio),
    "convex.lemma2": lambda d: _convex(d, _convex_slow_below_bound),
    "convex.figure1": lambda d: _convex(d, _convex_fig_slow),
    "vgg.regime": _vgg_in_regime,
    "vgg.generalization": _vgg_generalizing,
    "vgg.late_decay": _vgg_later_worse,
    "vgg.valley": lambda d: _vgg_landscape(d, _vgg_leaves_valley),
    "vgg.test_minimum": lambda d: _vgg_landscape(d, _vgg_tilted_test),
    "vgg.curvature": _vgg_rising_traces,
    "symbolic.identities": lambda d: _checks_nested(d, "symbolic_checks.npz", "identities", "lagrange_det", "x"),
    "symbolic.numeric": lambda d: _checks_nested(d, "symbolic_checks.npz", "max_rel_error", "train_grad", 1e-3),
}
if (LONG_RUN / "profile.json").exists():
    DOCTORS |= {"vgg.long.regime": _vgg_in_regime,
                "vgg.long.generalization": lambda d: _vgg_test_losses(d, 0.45),   # at the constant predictor
                "vgg.long.late_decay": _vgg_later_worse,
                "vgg.long.valley": lambda d: _vgg_landscape(d, _vgg_leaves_valley),
                "vgg.long.test_minimum": lambda d: _vgg_landscape(d, _vgg_tilted_test),
                "vgg.long.curvature": _vgg_rising_traces}
#: claims with no doctored input, and why
UNDOCTORABLE: dict = {k: "the long run's files are not in this checkout" for k, v in VGG_LONG_SMOKE.items()
                      if v == MISSING}


def test_every_claim_has_a_doctored_input_or_a_reason():
    assert set(DOCTORS) | set(UNDOCTORABLE) == set(REGISTRY)
    assert all(REGISTRY[c].flips for c in DOCTORS)          # and the page says what would flip it


@pytest.mark.parametrize("claim_id", sorted(DOCTORS))
def test_doctored_input_flips_the_verdict(smoke, tmp_path, claim_id):
    out, claims = smoke
    spec = REGISTRY[claim_id]
    before = next(c for c in claims if c.id == claim_id).verdict
    shutil.copytree(out / spec.job, tmp_path / spec.job)
    DOCTORS[claim_id](tmp_path / spec.job)
    after = judge_one(spec, tmp_path).verdict
    assert after != before, (claim_id, before, after)
    assert after == (PASS if before == FAIL else FAIL), (claim_id, after)


def test_generalization_gate_turns_vgg_claims_into_na(smoke, tmp_path):
    """In the regime but at the constant predictor's test loss: every claim about the phenomenon reads n/a and
    says why; the same files with a generalizing main path are judged."""
    out, _ = smoke
    shutil.copytree(out / "empirics", tmp_path / "empirics")
    _vgg_in_regime(tmp_path / "empirics")
    _vgg_test_losses(tmp_path / "empirics", 0.45)       # ten classes: the constant predictor's 0.45
    got = {c.id: c for c in evaluate(tmp_path)}
    assert got["vgg.regime"].verdict == PASS and got["vgg.generalization"].verdict == FAIL
    for k in ("late_decay", "valley", "test_minimum", "curvature"):
        assert got[f"vgg.{k}"].verdict == NOT_APPLICABLE and "does not generalize" in got[f"vgg.{k}"].measured
    _vgg_test_losses(tmp_path / "empirics", 0.2)
    got = {c.id: c for c in evaluate(tmp_path)}
    assert got["vgg.generalization"].verdict == PASS
    assert all(got[f"vgg.{k}"].verdict in (PASS, FAIL) for k in ("late_decay", "valley", "test_minimum", "curvature"))


def test_discrete_eta_claim_on_planted_errors(smoke, tmp_path):
    """phase2.discrete_eta on planted errors: exactly first-order errors pass; errors that do not grow with eta
    (slope 0) or grow like eta^2 fail."""
    out, _ = smoke
    st = DiscreteEtaStudy.load(out / "discrete_eta" / "discrete_eta.npz")
    E, P = st.drift_err_paths.shape
    verdicts = {}
    for label, power in (("first", 1.0), ("flat", 0.0), ("second", 2.0)):
        d = tmp_path / label
        (d / "discrete_eta").mkdir(parents=True)
        st.drift_err_paths = -0.8 * st.etas[:, None] ** power * np.ones((E, P))
        st.train_paths = (st.plateau_leading * (1 + 3.0 * st.etas ** power))[:, None] * np.ones((E, P))
        st.save(d / "discrete_eta" / "discrete_eta.npz")
        verdicts[label] = {c.id: c.verdict for c in evaluate(d)}["phase2.discrete_eta"]
    assert verdicts == {"first": PASS, "flat": FAIL, "second": FAIL}


def test_missing_results_are_reported_not_run(tmp_path):
    claims = evaluate(tmp_path)
    assert {c.verdict for c in claims} == {MISSING}
    assert {c.id for c in claims} == set(EXPECTED_SMOKE)


def test_bad_size_rejected(tmp_path):
    with pytest.raises(ValueError, match="size must be one of"):
        run_report(tmp_path, size="huge")


def test_missing_dataset_marks_vgg_claims_not_run_and_retries(tmp_path, monkeypatch):
    monkeypatch.setenv("LRDECAY_CIFAR10", str(tmp_path / "nowhere"))
    claims = run_report(tmp_path, size="smoke", only=["empirics"], progress=False, log=lambda *a: None)
    vgg = [c for c in claims if c.id.startswith("vgg.") and REGISTRY[c.id].job == "empirics"]
    assert vgg and all(c.verdict == MISSING and "CIFAR-10 not found" in c.measured for c in vgg)
    assert not (tmp_path / "empirics" / ".job.json").exists()   # not cached: a later run tries again


def test_damaged_cached_result_is_recomputed(smoke, tmp_path):
    out, _ = smoke
    shutil.copytree(out, tmp_path / "r")
    target = tmp_path / "r" / "convex" / "convex.npz"
    target.write_bytes(target.read_bytes()[:100])            # truncated: the stamp no longer matches
    logs = []
    run_report(tmp_path / "r", size="smoke", progress=False, log=logs.append, only=["convex"])
    assert any("[convex] running" in line for line in logs)
    assert ConvexStudy.load(target).config["trials"] == 300   # a complete file again
    logs.clear()
    (tmp_path / "r" / "convex" / "convex.npz").unlink()       # a missing file: recomputed too
    run_report(tmp_path / "r", size="smoke", progress=False, log=logs.append, only=["convex"])
    assert any("[convex] running" in line for line in logs)


def test_damaged_file_in_verdicts_only_mode_is_named_not_a_crash(smoke, tmp_path):
    out, _ = smoke
    shutil.copytree(out, tmp_path / "r")
    (tmp_path / "r" / "core" / "core_checks.npz").write_bytes(b"garbage")
    claims = run_report(tmp_path / "r", size="smoke", progress=False, log=lambda *a: None, verdicts_only=True)
    alpha = next(c for c in claims if c.id == "model.alpha")
    assert alpha.verdict == MISSING and "core_checks.npz" in alpha.measured


def test_second_report_on_one_directory_is_refused(tmp_path):
    from lrdecay.theory.io import DirectoryLockedError
    from tests.lock_helpers import held_by_another_process

    with held_by_another_process(tmp_path) as pid:
        with pytest.raises(DirectoryLockedError, match=f"is in use by pid {pid}"):
            run_report(tmp_path, size="smoke", verdicts_only=True, log=lambda *a: None)


def test_leftover_temporary_files_are_cleaned(tmp_path):
    (tmp_path / "demo").mkdir()
    left = tmp_path / "demo" / ".schedules.npz.abc123.tmp"
    left.write_bytes(b"partial")
    run_report(tmp_path, size="smoke", verdicts_only=True, log=lambda *a: None)
    assert not left.exists()


def test_verdicts_only_keeps_the_computing_runs_time_commit_and_jobs(smoke, tmp_path):
    from lrdecay.theory.io import load_json

    out, _ = smoke
    shutil.copytree(out, tmp_path / "r")
    first = load_json(tmp_path / "r" / "claims.json")["meta"]
    for _ in range(2):                                        # re-judging twice still names the first run
        run_report(tmp_path / "r", size="smoke", verdicts_only=True, log=lambda *a: None)
        meta = load_json(tmp_path / "r" / "claims.json")["meta"]
        assert meta["results_from"]["seconds"] == first["seconds"]
        assert meta["results_from"]["git_commit"] == first["provenance"]["git_commit"]
        assert [j["name"] for j in meta["jobs"]] == [j["name"] for j in first["jobs"]]
    assert "verdicts re-judged (--verdicts-only)" in (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
