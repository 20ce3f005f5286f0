"""A profile's stages on a process pool (``workers=2``) write the same files as the sequential run."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lrdecay.empirics import profiles as P

from tests.empirics.test_profiles import TINY_CURV, TINY_LAND, TINY_TRAIN, datadir  # noqa: F401 - the fixture


def _files(out):
    """Every path's metrics, every run's curvature rows and the landscape's arrays, by relative name."""
    got = {}
    for f in sorted(out.rglob("metrics.csv")):          # every column but the wall time
        rows = [line.split(",") for line in f.read_text().splitlines()]
        keep = [i for i, c in enumerate(rows[0]) if c != "wall_s"]
        got[str(f.relative_to(out))] = [[r[i] for i in keep] for r in rows]
    for f in sorted(out.rglob("curvature.json")):
        got[str(f.relative_to(out))] = json.loads(f.read_text())["rows"]
    for f in sorted(out.rglob("landscape.npz")):
        with np.load(f, allow_pickle=False) as z:
            got[str(f.relative_to(out))] = {k: z[k].tolist() for k in z.files if z[k].dtype.kind in "fiu"}
    return got


def test_parallel_stages_equal_the_sequential_run(datadir, tmp_path):
    kw = dict(progress=False, train_overrides=TINY_TRAIN, landscape_overrides=TINY_LAND,
              curvature_overrides=TINY_CURV, seeds=(0, 1), threads=1)
    P.run_profile("quick", tmp_path / "seq", datadir, workers=1, **kw)
    P.run_profile("quick", tmp_path / "par", datadir, workers=2, **kw)
    a, b = _files(tmp_path / "seq"), _files(tmp_path / "par")
    assert len(a) >= 2 * (1 + len(TINY_TRAIN["decay_epochs"])) + 2 + 1      # paths, curvature, the landscape
    assert a == b
    stages = json.loads((tmp_path / "par" / "timings.json").read_text())[-1]["stages_s"]
    assert {"sgd/seed_0/main", "sgd/seed_1/subpaths", "sgd/seed_0/curvature", "landscape"} <= set(stages)
    P.run_profile("quick", tmp_path / "par", datadir, workers=2, **kw)          # again: every path reused
    again = json.loads((tmp_path / "par" / "timings.json").read_text())[-1]["stages_s"]
    assert again["sgd/seed_0/main"] == again["sgd/seed_1/subpaths"] == again["landscape"] == "reused"
    assert _files(tmp_path / "par") == a


def test_workers_refused_before_any_work(datadir, tmp_path):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers: expected an integer >= 1"):
            P.run_profile("quick", tmp_path / "x", datadir, workers=bad, progress=False)
    with pytest.raises(ValueError, match="workers: .* does not combine"):
        P.run_profile("quick", tmp_path / "x", datadir, workers=2, executor="serial", progress=False)
    assert not (tmp_path / "x").exists()
