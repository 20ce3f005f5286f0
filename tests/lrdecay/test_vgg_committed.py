"""The default report's VGG claims judged on the committed files of the ``cpu`` profile's run
(``measurements/vgg_cpu``: a run that passes the generalization gate on every seed), and the late-decay
note's power against an independent simulation of the paired-slope t-test."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from lrdecay.report.claims.base import FAIL, PASS, REGISTRY, judge_one

RUN = Path(__file__).resolve().parents[2] / "measurements" / "vgg_cpu"
pytestmark = pytest.mark.skipif(not (RUN / "summary.json").exists(), reason="the committed cpu run is not here")


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    shutil.copytree(RUN, root / "empirics")
    return {k: judge_one(REGISTRY[k], root) for k in REGISTRY if k.startswith("vgg.") and not k.startswith("vgg.long")}


def test_committed_cpu_run_is_judged_with_its_verdicts(judged):
    got = {k: j.verdict for k, j in judged.items()}
    assert got == {"vgg.regime": PASS, "vgg.generalization": PASS, "vgg.late_decay": FAIL, "vgg.valley": FAIL,
                   "vgg.test_minimum": FAIL, "vgg.curvature": PASS}
    g = judged["vgg.generalization"].measured
    assert "13.2 % below" in g and "15.5 % below" in g and "22.2 % below" in g


def test_late_decay_note_power_matches_a_simulated_t_test(judged):
    """The note's power at the observed slope: the share of simulated 3-seed samples (per-seed slopes normal
    around the observed mean with the observed s.d.) whose one-sided 95 % t-interval lies below 0."""
    j = judged["vgg.late_decay"]
    m = re.search(r"power (\d\.\d\d) at (\d+) seeds; power 0\.8 would need (\d+) seeds", j.note)
    assert m, j.note
    slopes = np.array([float(x) for x in re.search(r"per seed ([-+0-9., ]+)\)", j.measured).group(1).split(",")])
    n, mu, sd = len(slopes), slopes.mean(), slopes.std(ddof=1)
    from scipy.stats import t as student

    def simulated(k, draws=40_000, rng=np.random.default_rng(1)):
        x = rng.normal(mu, sd, size=(draws, k))
        hi = x.mean(1) + student.ppf(0.975, k - 1) * x.std(1, ddof=1) / np.sqrt(k)
        return float(np.mean(hi < 0))

    assert int(m.group(2)) == n == 3
    assert abs(simulated(n) - float(m.group(1))) < 0.015            # 3 s.e. of 40,000 draws is ~0.0075
    need = int(m.group(3))
    assert simulated(need) >= 0.8 - 0.015 and simulated(need - 1) < 0.8 + 0.015
