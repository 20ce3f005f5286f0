"""The verification report: every claim present, verdicts computed from the result files."""
import json
import shutil

import numpy as np
import pytest

from lrdecay.report.claims import evaluate
from lrdecay.report.claims.base import FAIL, MISSING, PASS
from lrdecay.report.runner import run_report
from theory.io import load_json, save_json
from theory.studies.checks import Checks
from theory.studies.cyclic import CyclicStudy
from theory.studies.decay import DecaySweep, ScheduleComparison
from theory.studies.diagonal import DiagonalStudy
from theory.studies.discrete_eta import DiscreteEtaStudy
from theory.studies.rate_law import RateLawResult
from theory.studies.two_layer import TwoLayerStudy

EXPECTED_IDS = {
    "model.alpha", "model.trace_on_M", "model.min_norm", "model.flatness", "model.invariant_subspace",
    "sde.sgd_is_em", "phase1.scaling", "model.landscape", "phase3.late_decay", "phase2.to_min_norm",
    "phase3.gamma0", "phase3.freeze", "phase3.schedules", "phase2.plateau", "phase2.drift", "phase2.breakdown",
    "vgg.late_decay", "vgg.landscape", "gamma.bound", "gamma.flatness", "gamma.zero", "symbolic.identities", "symbolic.numeric", "convex.prop1_probability", "convex.prop1_ratio", "convex.lemma2", "convex.figure1",
    "gamma.rate_law", "schedules.cyclic", "phase2.discrete_eta", "models.diagonal", "models.diagonal.late_decay",
    "models.two_layer", "models.two_layer.late_decay",
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    claims = run_report(out, size="smoke", progress=False, log=lambda *a: None)
    return out, claims


def test_every_claim_present_with_a_computed_verdict(smoke):
    out, claims = smoke
    ids = {c.id for c in claims}
    assert len(ids) == len(claims), "a claim is listed twice"
    assert EXPECTED_IDS <= ids
    for c in claims:
        assert c.verdict != MISSING, c.id
        assert c.measured, c.id
    page = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    for i in EXPECTED_IDS:
        assert i in page and i in md
    for c in claims:
        if c.figure:
            assert (out / c.figure).exists(), c.figure
    saved = load_json(out / "claims.json")
    assert {c["id"] for c in saved["claims"]} == ids


def test_rerun_reuses_cached_jobs(smoke):
    out, _ = smoke
    logs = []
    run_report(out, size="smoke", progress=False, log=logs.append, only=["convex", "landscape"])
    assert any("reusing" in line and "convex" in line for line in logs)


def test_broken_inputs_turn_verdicts_to_fail(smoke, tmp_path):
    out, claims = smoke
    before = {c.id: c.verdict for c in claims}
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    # 1. later decay made worse: reverse the final test losses of the gamma = 1 sweep
    p = broken / "demo" / "decay_sweep_gamma1.npz"
    sw = DecaySweep.load(p)
    rec = sw.sim.records["test_loss"]
    rec[-1] = sw.final_test[::-1].reshape(-1)
    sw.save(p)
    # 2. gamma = 0 made decay-dependent
    p0 = broken / "demo" / "decay_sweep_gamma0.npz"
    sw0 = DecaySweep.load(p0)
    ft0 = sw0.final_test * np.linspace(1.0, 1.5, len(sw0.decay_steps))[:, None]
    sw0.sim.records["test_loss"][-1] = ft0.reshape(-1)
    sw0.save(p0)
    # 3. the drift ODE misses SGD by 20 %, and the plateau by 30 %
    s = load_json(broken / "drift" / "drift_summary.json")
    s["rows"][0]["norm_rel_error"] = 0.2
    s["rows"][0]["plateau_ratio"] = 1.3
    save_json(broken / "drift" / "drift_summary.json", s)
    # 4. a core check off by more than its tolerance
    c = Checks.load(broken / "core" / "core_checks.npz")
    c.values["reduction_max_diff"] = 1e-3
    c.save(broken / "core" / "core_checks.npz")
    # 5. cosine made better than the late decays
    sc = ScheduleComparison.load(broken / "demo" / "schedules.npz")
    i = sc.names.index("cosine")
    sc.sim.records["test_loss"][-1, i * sc.paths:(i + 1) * sc.paths] = 0.0
    sc.save(broken / "demo" / "schedules.npz")
    after = {c.id: c.verdict for c in evaluate(broken)}
    assert before["phase3.schedules"] == PASS and after["phase3.schedules"] == FAIL
    assert before["phase3.late_decay"] == PASS and after["phase3.late_decay"] == FAIL
    assert before["phase3.gamma0"] == PASS and after["phase3.gamma0"] == FAIL
    assert before["phase2.drift"] == PASS and after["phase2.drift"] == FAIL
    assert before["phase2.plateau"] == PASS and after["phase2.plateau"] == FAIL
    assert before["model.invariant_subspace"] == PASS and after["model.invariant_subspace"] == FAIL


def test_missing_results_are_reported_not_run(tmp_path):
    claims = evaluate(tmp_path)
    assert all(c.verdict in (MISSING, "figure") or c.verdict == MISSING for c in claims)
    assert {c.id for c in claims} >= EXPECTED_IDS


def test_bad_size_rejected(tmp_path):
    with pytest.raises(ValueError, match="size must be one of"):
        run_report(tmp_path, size="huge")


def test_missing_dataset_marks_vgg_claims_not_run_and_retries(tmp_path, monkeypatch):
    monkeypatch.setenv("LRDECAY_CIFAR10", str(tmp_path / "nowhere"))
    claims = run_report(tmp_path, size="smoke", only=["empirics"], progress=False, log=lambda *a: None)
    vgg = [c for c in claims if c.id.startswith("vgg.")]
    assert vgg and all(c.verdict == MISSING and "CIFAR-10 not found" in c.measured for c in vgg)
    assert not (tmp_path / "empirics" / ".job.json").exists()   # not cached: a later run tries again


OPEN_IDS = ["gamma.rate_law", "schedules.cyclic", "models.diagonal", "models.diagonal.late_decay", "models.two_layer",
            "models.two_layer.late_decay"]


def test_open_question_claims_flip_on_doctored_inputs(smoke, tmp_path):
    """Each open-question claim passes on the smoke run and fails once its input is made wrong."""
    out, claims = smoke
    before = {c.id: c.verdict for c in claims}
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    # rate law: SGD twice as slow as the ODE in the first cell
    p = broken / "rate_law" / "rate_law.npz"
    r = RateLawResult.load(p)
    r.tau_sgd = np.where(r.cell == 0, 2 * r.tau_sgd, r.tau_sgd)
    r.save(p)
    # cyclic: the triangular schedule ends where the constant one does (far beyond its drift budget)
    p = broken / "cyclic" / "cyclic.npz"
    st = CyclicStudy.load(p)
    sc = st.comparison
    i, j = sc.names.index("triangular"), sc.names.index("constant")
    rec = sc.sim.records["dist_M"]
    rec[-1, i * sc.paths:(i + 1) * sc.paths] = rec[-1, j * sc.paths:(j + 1) * sc.paths] * 0.5
    st.save(p)
    # diagonal: the long ODE run "ends" at the landing point; the sparse rows' final test losses reversed
    p = broken / "diagonal" / "diagonal.npz"
    dg = DiagonalStudy.load(p)
    dg.sparse.long_theta = dg.sparse.theta_land.copy()
    ft = dg.sparse.sim.records["test_loss"]
    rows = ft[-1].reshape(len(dg.sparse.decay_steps), dg.sparse.paths)
    ft[-1] = rows[::-1].reshape(-1)
    dg.save(p)
    # two-layer: the kernel part of W_1 moved in the SGD end states; the final test losses reversed
    p = broken / "two_layer" / "two_layer.npz"
    tl = TwoLayerStudy.load(p)
    tl.study.sim.W_final[:, 0] += 1e-3
    ft = tl.study.sim.records["test_loss"]
    ft[-1] = ft[-1].reshape(len(tl.study.decay_steps), tl.study.paths)[::-1].reshape(-1)
    tl.save(p)
    after = {c.id: c.verdict for c in evaluate(broken)}
    for cid in OPEN_IDS:
        assert before[cid] == PASS, (cid, before[cid])
        assert after[cid] == FAIL, (cid, after[cid])


def test_discrete_eta_claim_on_planted_errors(smoke, tmp_path):
    """phase2.discrete_eta on planted errors: exactly first-order errors pass; errors that do not grow with eta
    (slope 0) or grow like eta^2 fail."""
    out, _ = smoke
    p = out / "discrete_eta" / "discrete_eta.npz"
    st = DiscreteEtaStudy.load(p)
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
