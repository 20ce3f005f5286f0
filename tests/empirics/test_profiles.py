"""Profiles: defined as differences, validated before anything runs, layers respected, whole runs and figures."""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from lrdecay.empirics import analysis as A
from lrdecay.empirics import data as D
from lrdecay.empirics import profiles as P

from tests.empirics.helpers import tiny_arrays  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TINY_TRAIN = dict(width=0.125, batch_size=20, epochs=4, ckpt_every=5, decay_epochs=(2, 3), train_size=None,
                  test_size=None, eval_every=1, eval_batch=50, init="torch", lr=0.02)
TINY_LAND = dict(grid=5, train_size=40, test_size=20, eval_batch=50)
TINY_CURV = dict(probes=2, lanczos_steps=3, eval_size=30, eval_batch=30, main_every=2)


@pytest.fixture(scope="module")
def datadir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cifar")
    a = tiny_arrays(100, 40)
    D.write_python_batches(d, a.x_train, a.y_train, a.x_test, a.y_test)
    return d


@pytest.fixture(scope="module")
def tiny_profile(datadir, tmp_path_factory):
    out = tmp_path_factory.mktemp("prof")
    s = P.run_profile("quick", out, datadir, progress=False, train_overrides=TINY_TRAIN,
                      landscape_overrides=TINY_LAND, curvature_overrides=TINY_CURV)
    return out, s


def test_every_result_file_of_a_profile_names_its_provenance(tiny_profile):
    """Every JSON result a profile writes (its settings, timings, summary, each path's result, each run's
    curvature) carries where it came from: package version, git commit, versions, machine, torch threads."""
    import json

    out, _ = tiny_profile
    files = [out / "profile.json", out / "summary.json"] + sorted(out.rglob("result.json")) \
        + sorted(out.rglob("curvature.json"))
    assert len(files) > 4
    for f in files:
        prov = json.loads(f.read_text())["provenance"]
        assert {"package_version", "git_commit", "python", "numpy", "torch", "machine", "threads"} <= set(prov), f
    assert "provenance" in json.loads((out / "timings.json").read_text())[-1]


def test_profiles_are_differences_of_the_authors():
    a, c = P.get_profile("authors"), P.get_profile("cpu")
    changed = {k for k, v in c.train.to_dict().items() if a.train.to_dict()[k] != v}
    assert changed == {"width", "init", "dropout", "batch_size", "train_size", "augment", "epochs", "ckpt_every", "lr",
                       "decay_epochs", "eval_every", "classes", "label_noise", "subpath_epochs"}
    assert (c.train.loss, c.train.lr, c.train.momentum, c.train.weight_decay) == ("mse", 0.05, 0.9, 1e-4)
    assert P.get_profile("cpu_equal_budget").train.lr == P.get_profile("cpu_long").train.lr == a.train.lr == 0.1
    assert len(c.seeds) >= 3
    eb, ln = P.get_profile("cpu_equal_budget"), P.get_profile("cpu_label_noise")
    assert ln.train == eb.train and dict(ln.variants) == {"sgd": (), "label_noise": (("label_noise", 0.1),)}
    assert eb.train.subpath_epochs is None and c.train.subpath_epochs == 100
    # the long run: the settings its design asks for (all 5,000 images of 10 classes, crop + flip, dropout 0.5,
    # width >= 0.375, batch 125, >= 32,000 steps, branches every 50 epochs, each >= 100 epochs)
    lg = P.get_profile("cpu_long").train
    assert (lg.train_size, lg.classes, lg.augment, lg.dropout, lg.batch_size) == (5000, None, True, 0.5, 125)
    assert lg.width >= 0.375 and lg.epochs * 5000 // lg.batch_size >= 32000 and lg.subpath_epochs >= 100
    assert set(np.diff(lg.decay_epochs)) == {50}


def test_cpu_profile_schedule_is_in_the_regime_design():
    """First decay well after the landing seen in the pilots (epoch 225, see docs/empirics.md) and the
    branches of fixed length; every branch point is a checkpoint."""
    t = P.get_profile("cpu").train
    assert min(t.decay_epochs) >= 2 * 225 and t.epochs >= max(t.decay_epochs)
    t.validate(500)


@pytest.mark.parametrize("kw,msg", [
    (dict(train_overrides={"widht": 1.0}), r"^train: unknown settings \['widht'\]"),
    (dict(landscape_overrides={"grid": 1}), r"^grid: expected an integer in 2\.\.501"),
    (dict(train_overrides={"decay_epochs": (900,)}), r"^decay_epochs: every decay epoch must lie in 1\.\.650"),
    (dict(curvature_overrides={"probes": 0}), r"^probes: expected an integer >= 1"),
    (dict(curvature_overrides={"probez": 3}), r"^curvature: unknown settings"),
    (dict(seeds=[0, 0]), r"^seeds: expected distinct integers"),
    (dict(device="cuda:3"), r"^device: 'cuda:3' requested but"),
    (dict(threads=0), r"^threads: expected an integer >= 1"),
])
def test_bad_input_is_one_line_error_before_any_work(tmp_path, kw, msg):
    import torch

    if kw.get("device") and torch.cuda.is_available():
        pytest.skip("a CUDA device exists here")
    with pytest.raises(ValueError, match=msg) as e:
        P.run_profile("cpu", tmp_path / "out", progress=False, **kw)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_decay_epoch_off_the_checkpoints_is_refused_before_writing(datadir, tmp_path):
    with pytest.raises(ValueError, match="^decay_epochs: epoch 3 ends at step 15, which is not a checkpoint"):
        P.run_profile("quick", tmp_path / "out", datadir, progress=False,
                      train_overrides=TINY_TRAIN | {"ckpt_every": 10})
    assert not (tmp_path / "out" / "profile.json").exists()
    with pytest.raises(ValueError, match="^profile: expected one of"):
        P.run_profile("huge", tmp_path / "out", datadir, progress=False)


def test_tiny_profile_layout_and_measurements(tiny_profile):
    out, s = tiny_profile
    assert sorted(p.name for p in (out / "sgd").iterdir()) == ["seed_0", "seed_1"]
    assert (out / "sgd" / "seed_0" / "landscape.npz").exists() and not (out / "sgd" / "seed_1" / "landscape.npz").exists()
    for d in ("seed_0", "seed_1"):
        assert (out / "sgd" / d / "curvature.json").exists()
    assert s["late_decay"]["seeds"] == [0, 1] and s["late_decay"]["design"] == "equal_budget"
    assert "per_seed" in s["generalization"]
    assert len(s["late_decay"]["test_loss_se"]) == 2 and np.all(np.isfinite(s["late_decay"]["test_loss_se"]))
    # main-path points at epochs 2 and 4 (main_every 2); the path never lands, so Phase II starts at the first
    # decay (2) plus the settling fifth of the span to the end (4): epoch 2.4, leaving the point at 4
    assert s["curvature"]["n_points"] == [1, 1]
    assert s["timings"]["stages_s"]["landscape"] > 0


def test_figures_from_saved_results(tiny_profile):
    from lrdecay.paper_figures import vgg_curvature, vgg_decay, vgg_landscape, vgg_late_decay_map, vgg_learning_curves

    out, _ = tiny_profile
    for mod in (vgg_learning_curves, vgg_decay, vgg_landscape, vgg_curvature, vgg_late_decay_map):
        png, pdf = mod.make_figure(out)
        assert png.suffix == ".png" and pdf.suffix == ".pdf"
        assert png.stat().st_size > 5000 and pdf.stat().st_size > 2000


def test_label_noise_variant_runs_side_by_side(datadir, tmp_path):
    s = P.run_profile("cpu_label_noise", tmp_path, datadir, progress=False,
                      train_overrides=TINY_TRAIN | {"decay_epochs": ()}, curvature_overrides=TINY_CURV)
    ln = s["label_noise"]
    assert ln["plain"]["label_noise"] == 0.0 and ln["label_noise"]["label_noise"] == 0.1
    assert np.isfinite(ln["test_loss_difference"]) and "trace_log_slope" in ln["label_noise"]
    assert "late_decay" not in s and "valley" not in s


def test_empirics_does_not_import_figures_or_parse_arguments():
    """The library layer: no paper_figures / lrdecay imports (also inside functions) and no argparse outside cli."""
    for f in (REPO / "empirics").glob("*.py"):
        if f.name == "cli.py":
            continue
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for n in names:
                if n.startswith("lrdecay.theory"):     # the generic helpers only: files and the sweep executors
                    assert n in ("lrdecay.theory.io", "lrdecay.theory.sweep"), (f.name, n)
                elif n.startswith("lrdecay.empirics"):
                    continue
                else:
                    assert not n.startswith(("lrdecay", "argparse")), (f.name, n)


def test_resume_after_interruption_reuses_finished_stages(datadir, tmp_path, monkeypatch):
    from lrdecay.empirics import curvature as C

    real = C.curvature_at
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(C, "curvature_at", flaky)
    kw = dict(progress=False, train_overrides=TINY_TRAIN, landscape_overrides=TINY_LAND, curvature_overrides=TINY_CURV,
              seeds=[0])
    with pytest.raises(KeyboardInterrupt):
        P.run_profile("quick", tmp_path, datadir, **kw)
    monkeypatch.setattr(C, "curvature_at", real)
    s = P.run_profile("quick", tmp_path, datadir, **kw)
    t = s["timings"]["stages_s"]
    assert t["sgd/seed_0/main"] == "reused" and t["sgd/seed_0/subpaths"] == "reused"
    assert len(s["curvature"]["per_seed"]) == 1
    # same result as an uninterrupted run
    ref = P.run_profile("quick", tmp_path / "ref", datadir, **kw)
    assert ref["late_decay"]["test_loss_mean"] == s["late_decay"]["test_loss_mean"]


def test_exported_results_measure_like_the_run(tiny_profile, tmp_path):
    """The exported files (no checkpoints) give the same measurements as the full run directory."""
    out, _ = tiny_profile
    files = P.export_results(out, tmp_path / "exp")
    assert files and not any(f.suffix == ".pt" for f in files)
    assert (tmp_path / "exp" / "sgd" / "seed_0" / "landscape.npz").exists()
    a, b = A.measure_profile(out), A.measure_profile(tmp_path / "exp")
    assert json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)
    with pytest.raises(ValueError, match="--to: .* is not empty"):
        P.export_results(out, tmp_path / "exp")
    with pytest.raises(ValueError, match="--out: .* is not a profile's output directory"):
        P.export_results(tmp_path, tmp_path / "other")
