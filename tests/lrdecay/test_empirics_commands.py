"""``lrdecay empirics``: every stage through the command line on a tiny dataset, and whole profiles."""
from __future__ import annotations

import argparse
from dataclasses import replace
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lrdecay import empirics_commands as C
from lrdecay.empirics import data as D
from lrdecay.empirics import profiles as P

from tests.empirics.helpers import tiny_arrays  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TINY = ["--set", "width=0.125", "--set", "batch_size=20", "--set", "epochs=3", "--set", "ckpt_every=5",
        "--set", "decay_epochs=1,2", "--set", "train_size=none", "--set", "test_size=none", "--set", "eval_batch=50",
        "--set", "eval_every=1", "--set", "classes=none", "--set", "subpath_epochs=none",
        "--set", "landscape.grid=4", "--set", "landscape.train_size=40", "--set", "landscape.test_size=20",
        "--set", "landscape.points_per_batch=8", "--set", "landscape.eval_batch=50"]


def run(argv):
    parser = argparse.ArgumentParser(prog="lrdecay")
    sub = parser.add_subparsers(dest="command")
    C.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def datadir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cifar")
    a = tiny_arrays(100, 40)
    D.write_python_batches(d, a.x_train, a.y_train, a.x_test, a.y_test)
    return d


def test_stages_one_by_one(datadir, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--out", str(out), "--data", str(datadir), "--no-progress", "--threads", "1"]
    assert run(["empirics", "main", *common, *TINY]) == 0
    assert "main path: 3 epochs, 15 steps" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["width"] == 0.125 and cfg["landscape"]["grid"] == 4 and cfg["profile"] == "cpu"
    assert cfg["data"]["source"] == "pickle" and cfg["data"]["train_size"] == 100
    assert run(["empirics", "subpaths", *common]) == 0
    text = capsys.readouterr().out
    assert "decay at epoch     1" in text and "decay at epoch     2" in text
    assert run(["empirics", "landscape", *common]) == 0
    assert "explained variance" in capsys.readouterr().out
    assert run(["empirics", "curvature", *common, "--probes", "2", "--lanczos-steps", "3", "--eval-size", "20",
                "--main-every", "1"]) == 0
    curv = json.loads((out / "curvature.json").read_text())
    assert {r["path"] for r in curv["rows"]} == {"main", "decay@1", "decay@2"}          # main path and both ends
    assert sorted(r["epoch"] for r in curv["rows"] if r["path"] == "main") == [1, 2, 3]
    assert run(["empirics", "figures", "--out", str(out)]) == 0
    assert run(["empirics", "figures", "--out", str(out), "--levels", "log"]) == 0
    for name in ("vgg_landscape.png", "vgg_landscape.pdf", "vgg_decay.png", "vgg_decay.pdf",
                 "vgg_learning_curves.png", "vgg_curvature.png", "vgg_late_decay_map.png"):
        assert (out / "figures" / name).stat().st_size > 1000
    from lrdecay.empirics import analysis as A
    t = A.branch_table([out])
    assert t["decay_epochs"] == [1, 2] and len(t["test_loss_mean"]) == 2 and t["end_epochs"] == [3, 3]
    # a main-path setting cannot change once the path exists
    with pytest.raises(ValueError, match="fix the main path"):
        run(["empirics", "subpaths", *common, "--set", "lr=0.5"])
    # extra subpath at another epoch, with the main path reused
    assert run(["empirics", "subpaths", *common, "--decay-epochs", "1"]) == 0


def test_profile_command_runs_and_reuses(datadir, tmp_path, capsys):
    out = tmp_path / "prof"
    argv = ["empirics", "profile", "quick", "--out", str(out), "--data", str(datadir), "--no-progress", *TINY]
    assert run(argv) == 0
    text = capsys.readouterr().out
    assert "decay epoch" in text and "late-decay slope" in text and "constant predictor" in text
    assert run(argv) == 0  # second run: every stage reused
    t = json.loads((out / "timings.json").read_text())
    assert len(t) == 2 and t[1]["stages_s"]["sgd/seed_0/main"] == "reused" and t[1]["stages_s"]["landscape"] == "reused"
    assert t[1]["stages_s"]["sgd/seed_1/subpaths"] == "reused"
    assert run(["empirics", "profile", "--list"]) == 0
    assert "authors" in capsys.readouterr().out


def test_set_takes_the_words_a_flag_field_accepts():
    """augment is true, false or "flip": --set passes the word to the configuration, which checks it."""
    tr, _, _ = C.parse_overrides(["augment=flip", "batch_norm=no"])
    assert tr == {"augment": "flip", "batch_norm": False}
    assert P.resolve("quick", tr, None, None, None).train.validate().augment == "flip"
    with pytest.raises(ValueError, match="^batch_norm: expected true or false, got 'flip'$"):
        C.parse_overrides(["batch_norm=flip"])
    with pytest.raises(ValueError, match="^augment: expected true \\(crop \\+ flip\\), false or \"flip\""):
        P.resolve("quick", C.parse_overrides(["augment=sideways"])[0], None, None, None).train.validate()


def test_profile_workers_refused_before_any_work(datadir, tmp_path):
    with pytest.raises(ValueError, match="^--workers: expected an integer >= 1, got 0$"):
        run(["empirics", "profile", "quick", "--out", str(tmp_path / "w"), "--data", str(datadir), "--workers", "0"])
    assert not (tmp_path / "w").exists()


def test_run_profile_api(datadir, tmp_path):
    tr, la, cu = C.parse_overrides([a for a in TINY if a != "--set"])
    s = P.run_profile("quick", tmp_path, datadir, progress=False, train_overrides=tr, landscape_overrides=la,
                      curvature_overrides=cu)
    for k in ("regime", "late_decay", "valley", "test_minimum", "curvature"):
        assert k in s and "missing" not in s[k], k
    assert s["late_decay"]["decay_epochs"] == [1, 2] and np.all(np.isfinite(s["late_decay"]["test_loss_mean"]))
    assert json.loads((tmp_path / "summary.json").read_text())["late_decay"]["decay_epochs"] == [1, 2]


def test_parse_overrides_types_and_errors():
    tr, la, cu = C.parse_overrides(["width=0.5", "epochs=12", "decay_epochs=4, 8", "batch_norm=true",
                                    "train_size=none", "landscape.curved=1", "landscape.grid=9", "curvature.probes=3"])
    assert tr == {"width": 0.5, "epochs": 12, "decay_epochs": (4, 8), "batch_norm": True, "train_size": None}
    assert la == {"curved": True, "grid": 9} and cu == {"probes": 3}
    with pytest.raises(ValueError, match="unknown curvature setting 'probs'"):
        C.parse_overrides(["curvature.probs=3"])
    with pytest.raises(ValueError, match="unknown setting 'widht'"):
        C.parse_overrides(["widht=2"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        C.parse_overrides(["width"])
    with pytest.raises(ValueError, match="epochs: cannot read"):
        C.parse_overrides(["epochs=many"])
    with pytest.raises(ValueError, match="unknown landscape setting"):
        C.parse_overrides(["landscape.colour=red"])


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        run(["empirics", "main", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "none"), *TINY])
    with pytest.raises(FileNotFoundError, match="config.json"):
        run(["empirics", "subpaths", "--out", str(tmp_path / "r2"), "--data", str(tmp_path)])


def test_cli_import_is_light():
    code = "import sys, lrdecay.cli; lrdecay.cli.build_parser(); print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert r.stdout.strip() == "False", r.stderr


# --------------------------------------------------------------------------- the profiles themselves
def test_authors_profile_is_the_authors_setting():
    p = P.get_profile("authors")
    t, la = p.train, p.landscape
    assert (t.arch, t.width, t.batch_norm, t.dropout, t.loss) == ("slim_vgg11", 1.0, False, 0.5, "mse")
    assert (t.lr, t.momentum, t.weight_decay, t.batch_size) == (0.1, 0.9, 1e-4, 125)
    assert (t.epochs, t.ckpt_every, t.train_size, t.augment) == (3000, 400, 5000, True)
    assert (t.init, t.label_noise) == ("authors", 0.0)
    assert t.decay_epochs == tuple(range(2000, 3000, 100)) and t.decay_factor == 0.1
    assert la.curved
    t.validate(5000)  # every decay epoch falls on a checkpoint (40 steps per epoch)


@pytest.mark.parametrize("name,n_train", [("quick", 200), ("cpu", 500), ("cpu_label_noise", 500), ("authors", 5000),
                                          ("full", 50000)])
def test_profiles_validate(name, n_train):
    p = P.get_profile(name)
    p.train.validate(n_train)
    p.landscape.validate()
    p.curvature.validate()
    assert P.get_profile(name).train is not P.PROFILES[name].train  # fresh copies


def test_unknown_profile():
    with pytest.raises(ValueError, match="profile: expected one of"):
        P.get_profile("huge")


@pytest.mark.slow
def test_cpu_profile_main_path_lands_before_its_first_decay(tmp_path):
    """The cpu profile's design: on the real subset, seed 0's main path interpolates (≥ 99 % train accuracy)
    and sits at its loss plateau by the first decay epoch (a few minutes on 2 cores)."""
    from lrdecay.empirics import analysis as A
    from lrdecay.empirics import train as T
    real = D.default_data_dir()
    if not (real / D.LAYOUT_DIR / "data_batch_1").is_file():
        pytest.skip("real subset absent")
    p = P.get_profile("cpu")
    d1 = min(p.train.decay_epochs)
    cfg = replace(p.train, epochs=d1 + 1, decay_epochs=(d1,))
    data = T.load_data(cfg)
    T.run_main(tmp_path, cfg, data, progress=False)
    r = A.measure_regime([tmp_path])
    assert r["min_train_acc_at_first_decay"] >= A.REGIME_MIN_TRAIN_ACC
    assert r["max_loss_ratio"] <= A.REGIME_MAX_LOSS_RATIO
    assert r["landing_epochs"][0] <= d1 / 2          # landed well before: at most half-way to the decay


def test_seed_given_by_set_or_by_option(datadir, tmp_path, capsys):
    """--set seed=3 is the seed (it used to crash); --seed and --set seed must agree."""
    out = tmp_path / "run"
    common = ["--out", str(out), "--data", str(datadir), "--no-progress", "--threads", "1"]
    prof = ["--profile", "cpu_equal_budget"]
    assert run(["empirics", "main", *prof, *common, *TINY, "--set", "seed=3"]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 3
    with pytest.raises(ValueError, match=r"^--seed 2 and --set seed=3 disagree"):
        run(["empirics", "main", *prof, "--out", str(tmp_path / "other"), "--seed", "2", "--set", "seed=3"])
    assert not (tmp_path / "other").exists()
