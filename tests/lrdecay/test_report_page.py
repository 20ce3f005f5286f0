"""The report page: one wording rule for intervals, figures that open at full size, the compute environment
in the provenance, and --verdicts-only naming result files that are not those of the run it credits."""
from __future__ import annotations

import hashlib
import json
import math

import pytest

from lrdecay.report.claims.base import NOT_ESTABLISHED, REFUTED, SUPPORTED, Claim, ClaimSpec, interval_word

NEG = (-math.inf, 0.0)


@pytest.mark.parametrize("lo, hi, region, word", [
    (-0.20, -0.10, NEG, SUPPORTED),             # entirely on the predicted side
    (0.20, 0.80, NEG, REFUTED),                 # entirely on the other side
    (-0.40, 1.00, NEG, NOT_ESTABLISHED),        # straddles 0 (the interval once worded "refuted")
    (-0.134, 0.007, NEG, NOT_ESTABLISHED),      # straddles 0 (the interval once worded "not established")
    (0.962, 1.009, (0.9, 1.1), SUPPORTED),      # a two-sided prediction
    (0.745, 2.647, (0.7, 1.3), NOT_ESTABLISHED),
    (1.4, 1.6, (0.9, 1.1), REFUTED),
    (0.62, 0.88, (0.798, 1.0), NOT_ESTABLISHED),
    (0.07, 0.29, (0.973, 1.0), REFUTED),
])
def test_one_rule_words_every_interval(lo, hi, region, word):
    assert interval_word(lo, hi, region) == word


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _job(out, name, files: dict):
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(data)
    (d / ".job.json").write_text(json.dumps({"config": {}, "seconds": 1.0,
                                             "files": {rel: [len(b), _sha(b)] for rel, b in files.items()}}))


def _computing_run(out, files: dict, size="smoke"):
    from lrdecay.report.runner import fingerprint

    inv = {job: {rel: _sha(b) for rel, b in fs.items()} for job, fs in files.items()}
    meta = {"date": "2026-01-02 03:04:05", "seconds": 12.0, "size": size, "jobs": [], "files": inv,
            "fingerprint": fingerprint(inv),
            "provenance": {"git_commit": "abc", "compute": {"cpu": {"model": "Test CPU", "flags": ["avx2"]},
                                                            "numpy_blas": "test-blas 1.0"}}}
    (out / "claims.json").write_text(json.dumps({"meta": meta, "claims": []}))
    return meta


def _judge(out, logs):
    from lrdecay.report.runner import run_report

    run_report(out, size="default", verdicts_only=True, progress=False, log=logs.append)
    return json.loads((out / "claims.json").read_text())["meta"], (out / "report.html").read_text(encoding="utf-8")


def test_verdicts_only_names_files_not_from_the_credited_run(tmp_path):
    files = {"convex": {"convex.npz": b"run A"}, "core": {"core_checks.npz": b"run A core"}}
    for job, fs in files.items():
        _job(tmp_path, job, fs)
    first = _computing_run(tmp_path, files)
    logs = []
    meta, page = _judge(tmp_path, logs)
    assert meta["unverified_files"] == [] and not any("[verdicts-only]" in ln for ln in logs)
    assert meta["size"] == "smoke" and meta["fingerprint"] == first["fingerprint"]    # the computing run's size
    assert "Size: <b>smoke</b>" in page and "not the report's" in page
    # another run's job directory (file and stamp) copied over one job: named, on the page and in the log
    _job(tmp_path, "convex", {"convex.npz": b"run B"})
    meta, page = _judge(tmp_path, logs := [])
    assert meta["unverified_files"] == ["convex/convex.npz (changed since that run)"]
    assert "convex/convex.npz (changed since that run)" in page and "Warning." in page
    assert any("convex/convex.npz" in ln for ln in logs)
    # a file gone, and a job that run never wrote
    (tmp_path / "core" / "core_checks.npz").unlink()
    _job(tmp_path, "landscape", {"landscape.npz": b"run C"})
    meta, _ = _judge(tmp_path, [])
    assert set(meta["unverified_files"]) == {"convex/convex.npz (changed since that run)",
                                             "core/core_checks.npz (missing)",
                                             "landscape/landscape.npz (not written by that run)"}


def test_verdicts_only_without_a_record_of_the_run_says_so(tmp_path):
    _job(tmp_path, "convex", {"convex.npz": b"x"})
    meta, page = _judge(tmp_path, [])
    assert len(meta["unverified_files"]) == 1 and "no record of the run" in meta["unverified_files"][0]
    assert "no record of the run" in page


def test_every_figure_opens_at_full_size(tmp_path):
    from lrdecay.report.render import write_pages

    fig = tmp_path / "demo" / "figures" / "demo_decay.png"
    fig.parent.mkdir(parents=True)
    fig.write_bytes(b"\x89PNG fake")
    c = Claim(ClaimSpec("phase3.late_decay", "§1 Phase III", "statement", "[seed]", "", "", "demo", lambda d: None,
                        figure="demo/figures/demo_decay.png"))
    md, page = write_pages(tmp_path, [c], {"size": "default", "seconds": 1.0})
    text = page.read_text(encoding="utf-8")
    assert "<a href='demo/figures/demo_decay.png' title='open at full size'><img alt='demo/figures/demo_decay.png'" \
        in text
    assert "[![demo/figures/demo_decay.png](demo/figures/demo_decay.png)](demo/figures/demo_decay.png)" \
        in md.read_text(encoding="utf-8")


def test_provenance_records_cpu_flags_and_blas_builds(tmp_path):
    import sys

    from lrdecay.report.render import write_pages
    from lrdecay.theory.io import SIMD_FLAGS, compute_environment, provenance

    c = compute_environment()
    assert c["cpu"]["model"] and set(c["cpu"]["flags"]) <= set(SIMD_FLAGS)
    assert c["numpy_blas"] != "" and provenance()["compute"]["cpu"] == c["cpu"]
    try:                                             # the flags as the kernel lists them, read independently
        text = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        text = ""
    if text:
        listed = set(next(ln for ln in text.splitlines() if ln.startswith(("flags", "Features"))).split(":")[1].split())
        assert c["cpu"]["flags"] == [f for f in SIMD_FLAGS if f in listed]
    _, page = write_pages(tmp_path, [], {"size": "default", "seconds": 1.0})
    text = page.read_text(encoding="utf-8")
    assert f"cpu: {c['cpu']['model']}" in text and "numpy BLAS: " in text
    if "torch" in sys.modules:                       # the page imports torch where it is installed
        assert "torch build: " in text and "CPU capability" in text


def test_rate_law_panel_tick_labels_do_not_overlap():
    # a short log range (half a decade) is where matplotlib labels the minor ticks and they collide
    import numpy as np

    from lrdecay.paper_figures._style import plt
    from lrdecay.paper_figures.rate_law import _readable_log_ticks

    for lo, hi in ((30.0, 80.0), (0.7, 3.0), (2.0, 5000.0)):
        fig, ax = plt.subplots(figsize=(5, 4.4))
        x = np.geomspace(lo, hi, 20)
        ax.scatter(x, 2 * x)
        ax.set(xscale="log", yscale="log")
        _readable_log_ticks(ax)
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        for axis in (ax.xaxis, ax.yaxis):
            boxes = [t.get_window_extent(r) for t in axis.get_ticklabels(which="both") if t.get_visible() and t.get_text()]
            assert len(boxes) >= 2, (lo, hi)
            for i, a in enumerate(boxes):
                for b in boxes[i + 1:]:
                    assert not a.overlaps(b), (lo, hi, [t.get_text() for t in axis.get_ticklabels(which="both")])
        plt.close(fig)


def test_a_cyclic_run_with_diverged_paths_fails_its_claim(tmp_path):
    # the same smoke-size study judged twice: as computed (pass), and with one path marked diverged (fail)
    from lrdecay.report.claims import REGISTRY
    from lrdecay.report.claims.base import FAIL, PASS, judge_one
    from lrdecay.theory.studies.cyclic import CyclicConfig, CyclicStudy, run_cyclic_study

    st = run_cyclic_study(CyclicConfig().smoke())
    st.save(tmp_path / "cyclic" / "cyclic.npz")
    spec = REGISTRY["schedules.cyclic"]
    assert judge_one(spec, tmp_path).verdict == PASS
    st = CyclicStudy.load(tmp_path / "cyclic" / "cyclic.npz")
    st.comparison.sim.status[0] = "diverged"
    st.save(tmp_path / "cyclic" / "cyclic.npz")
    c = judge_one(spec, tmp_path)
    assert c.verdict == FAIL and "1 of" in c.note and "diverged" in c.note


def test_a_claim_reads_its_fields_from_its_spec_and_judgement(tmp_path):
    from lrdecay.report.claims.base import MISSING, PASS, Judgement, judge_one

    spec = ClaimSpec("x.y", "§1 model", "stated", "[seed]", "declared", "tol", "demo",
                     lambda d: Judgement(PASS, "3.0", {"v": 3.0}, "a note", prediction="from the data"), figure="f.png")
    c = judge_one(spec, tmp_path)
    assert list(c.as_dict()) == list(Claim.FIELDS)
    assert c.as_dict() == {"id": "x.y", "section": "§1 model", "statement": "stated", "status": "[seed]",
                           "prediction": "from the data", "measured": "3.0", "tolerance": "tol", "verdict": PASS,
                           "figure": "f.png", "note": "a note", "values": {"v": 3.0}, "caveat": "", "flips": ""}
    missing = judge_one(ClaimSpec("x.z", "§1 model", "s", "[seed]", "p", "t", "demo", lambda d: None), tmp_path)
    assert (missing.verdict, missing.measured, missing.prediction, missing.values) == (MISSING, "", "p", {})

    def unreadable(d):
        raise FileNotFoundError("demo/x.npz")
    bad = judge_one(ClaimSpec("x.w", "§1 model", "s", "[seed]", "p", "t", "demo", unreadable), tmp_path)
    assert bad.verdict == MISSING and bad.measured == "unreadable result files: demo/x.npz"
