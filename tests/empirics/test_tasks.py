"""Subpaths as independent tasks on the sweep executors, fixed-length subpaths, and the class subset."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from lrdecay.empirics import data as D
from lrdecay.empirics import tasks as K
from lrdecay.empirics import train as T

from tests.empirics.helpers import tiny_arrays, tiny_cfg


@pytest.fixture(scope="module")
def datadir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cifar")
    a = tiny_arrays()
    D.write_python_batches(d, a.x_train, a.y_train, a.x_test, a.y_test)
    return d


@pytest.fixture(scope="module")
def main_run(datadir, tmp_path_factory):
    """A main path of 6 epochs with fixed-length subpaths of 2 epochs branching at 1, 2, 4 (one past the main
    path's end at 6)."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run")
    cfg = tiny_cfg(epochs=6, decay_epochs=(1, 2, 4, 5), ckpt_every=1, subpath_epochs=2)
    data = T.load_data(cfg, datadir, "cpu")
    T.run_main(out, cfg, data, progress=False)
    return out, cfg, data


def test_fixed_length_subpaths_end_at_their_branch_plus_the_length(main_run, tmp_path):
    out, cfg, data = main_run
    run = tmp_path / "serial"
    shutil.copytree(out, run)
    res = T.run_subpaths(run, cfg, data, progress=False)
    spe = len(data.y_train) // cfg.batch_size
    assert [r["end_epoch"] for r in res] == [3, 4, 6, 7]                 # e + 2, the last past the main path
    assert [r["steps"] for r in res] == [(e + 2) * spe for e in (1, 2, 4, 5)]
    assert [r["metrics"][0]["epoch"] for r in res] == [2, 3, 5, 6]       # evaluated from the epoch after the branch


@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_executor_subpaths_equal_the_sequential_ones(main_run, datadir, tmp_path, executor):
    out, cfg, data = main_run
    seq, par = tmp_path / "seq", tmp_path / "par"
    shutil.copytree(out, seq)
    shutil.copytree(out, par)
    ref = T.run_subpaths(seq, cfg, data, progress=False)
    got = K.run_subpaths_on(par, cfg, data, executor=executor, max_workers=2, data_dir=datadir, source="pickle",
                            threads=1, progress=False)
    for a, b in zip(ref, got):
        assert a["meta"] == b["meta"] and a["end_epoch"] == b["end_epoch"] and a["steps"] == b["steps"]
        assert a["metrics"] == [dict(r, wall_s=a["metrics"][i]["wall_s"]) for i, r in enumerate(b["metrics"])]
    for e in cfg.decay_epochs:
        ca, cb = T.list_checkpoints(T.subpath_dir(seq, e)), T.list_checkpoints(T.subpath_dir(par, e))
        assert [s for s, _ in ca] == [s for s, _ in cb]
        A, B = T.load_checkpoint(ca[-1][1]), T.load_checkpoint(cb[-1][1])
        for k in A["model"]:
            assert torch.equal(A["model"][k], B["model"][k]), k          # bit-identical
        assert torch.equal(A["generator"], B["generator"])
    # a second call reuses every finished subpath
    again = K.run_subpaths_on(par, cfg, data, executor="serial", data_dir=datadir, source="pickle", progress=False)
    assert [r["steps"] for r in again] == [r["steps"] for r in got]


def test_executor_refuses_before_any_task(main_run, datadir, tmp_path):
    out, cfg, data = main_run
    with pytest.raises(ValueError, match="threads"):
        K.run_subpaths_on(out, cfg, data, threads=0, data_dir=datadir)
    with pytest.raises(ValueError, match="executor"):
        K.run_subpaths_on(out, cfg, data, executor="gpu-farm", data_dir=datadir)
    empty = tmp_path / "empty"
    T.save_config(empty, cfg)
    with pytest.raises(FileNotFoundError, match="run the main path first"):
        K.run_subpaths_on(empty, cfg, data, executor="serial", data_dir=datadir)


def test_subpath_epochs_validation():
    with pytest.raises(ValueError, match="subpath_epochs: expected an integer >= 1 or none"):
        tiny_cfg(subpath_epochs=0).validate()
    # with fixed-length subpaths a branch may sit at the main path's last epoch; with an equal budget it may not
    tiny_cfg(epochs=4, decay_epochs=(4,), subpath_epochs=2).validate()
    with pytest.raises(ValueError, match=r"decay_epochs: every decay epoch must lie in 1\.\.3"):
        tiny_cfg(epochs=4, decay_epochs=(4,)).validate()


def test_class_subset_keeps_the_first_k_classes_and_sizes_the_network():
    arr = tiny_arrays(200, 100)
    data = D.to_tensors(arr, classes=3, train_size=30)
    assert set(data.y_train.tolist()) == {0, 1, 2} and set(data.y_test.tolist()) == {0, 1, 2}
    assert data.info["train_per_class"] == [10, 10, 10] and data.info["test_per_class"] == [10, 10, 10]
    assert data.classes == D.CLASSES[:3]
    cfg = tiny_cfg(classes=3)
    model = T.make_model(cfg)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    with pytest.raises(ValueError, match=r"classes: expected an integer in 2\.\.10"):
        tiny_cfg(classes=11).validate()
    with pytest.raises(ValueError, match=r"classes: expected an integer in 2\.\.10"):
        D.to_tensors(arr, classes=1)
    # all ten classes: the same subset as without the option (existing runs keep their data)
    a, b = D.to_tensors(arr, train_size=50, seed=3), D.to_tensors(arr, train_size=50, seed=3, classes=10)
    assert torch.equal(a.y_train, b.y_train) and torch.equal(a.x_test, b.x_test)
    assert a.info["train_per_class"] == b.info["train_per_class"]


def test_authors_draw_against_their_code():
    """The authors' data_subset (utils/load.py, rand=True, a seed) written out here as they wrote it."""
    arr = tiny_arrays(200, 50)
    targets, classes, ndata, seed = list(arr.y_train), [0, 1, 2, 3, 4], 7, 11
    want = []
    for c in classes:
        ind = list(np.where([t == c for t in targets])[0])
        rng = np.random.default_rng(seed)
        sub = rng.choice(len(ind), size=ndata, replace=False)
        want += [ind[j] for j in sub]
    data = D.to_tensors(arr, train_per_class=ndata, seed=seed, classes=5, draw="authors")
    assert torch.equal(data.y_train, torch.as_tensor(arr.y_train[want]))
    assert torch.equal(data.x_train, torch.as_tensor(arr.x_train[want]))
    with pytest.raises(ValueError, match="train_per_class"):
        D.to_tensors(arr, train_size=20, draw="authors")
    with pytest.raises(ValueError, match="draw: the authors' draw takes train_per_class"):
        tiny_cfg(draw="authors").validate()


def test_test_with_train_evaluates_on_the_training_images_of_the_classes():
    arr = tiny_arrays(200, 50)
    data = D.to_tensors(arr, train_size=30, classes=4, test_on="train")
    keep = arr.y_train < 4
    assert torch.equal(data.x_test, torch.as_tensor(arr.x_train[keep]))
    assert data.info["test_on"] == "train" and sum(data.info["test_per_class"]) == int(keep.sum())
