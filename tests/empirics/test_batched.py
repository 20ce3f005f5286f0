"""Batched subpaths against the sequential loop (the oracle): same randomness, same numbers to float rounding."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from lrdecay.empirics import batched as B
from lrdecay.empirics import data as D
from lrdecay.empirics import train as T

from tests.empirics.helpers import tiny_arrays, tiny_cfg  # noqa: E402

# float32 training: per-step gradients differ by rounding (grouped against plain convolutions); over a
# few dozen steps at these rates the paths stay within 1e-4 relative of each other.
RTOL, ATOL = 2e-4, 2e-6


@pytest.fixture(scope="module")
def tiny():
    return D.to_tensors(tiny_arrays())


def _last(path_dir):
    ck = T.list_checkpoints(path_dir)
    return ck[-1][0], T.load_checkpoint(ck[-1][1])


@pytest.mark.parametrize("label_noise", [0.0, 0.3])
def test_batched_subpaths_equal_sequential(tiny, tmp_path, label_noise):
    cfg = tiny_cfg(epochs=6, decay_epochs=(2, 4), ckpt_every=2, label_noise=label_noise, dropout=0.5)
    seq, bat = tmp_path / "seq", tmp_path / "bat"
    T.run_main(seq, cfg, tiny, progress=False)
    T.save_config(bat, cfg)
    T.run_main(bat, cfg, tiny, progress=False)
    rs = T.run_subpaths(seq, cfg, tiny, progress=False)
    rb = B.run_subpaths_batched(bat, cfg, tiny, progress=False)
    for a, b in zip(rs, rb):
        assert a["meta"] == b["meta"] and a["end_epoch"] == b["end_epoch"] == 6 and a["steps"] == b["steps"]
        assert [r["epoch"] for r in a["metrics"]] == [r["epoch"] for r in b["metrics"]]
        for ra, rb_ in zip(a["metrics"], b["metrics"]):
            for k in ("running_train_loss", "train_loss", "test_loss"):
                assert rb_[k] == pytest.approx(ra[k], rel=RTOL, abs=ATOL), k
            for k in ("train_acc", "test_acc"):   # a prediction may flip only on a near tie
                assert abs(rb_[k] - ra[k]) <= 1 / 60 + 1e-12
    for e in cfg.decay_epochs:
        sa, a = _last(T.subpath_dir(seq, e))
        sb, b = _last(T.subpath_dir(bat, e))
        assert sa == sb == 6 * (60 // 16)
        for k in a["model"]:
            torch.testing.assert_close(b["model"][k], a["model"][k], rtol=RTOL, atol=ATOL)
        for i in a["optimizer"]["state"]:
            torch.testing.assert_close(b["optimizer"]["state"][i]["momentum_buffer"],
                                       a["optimizer"]["state"][i]["momentum_buffer"], rtol=1e-3, atol=1e-5)
        assert torch.equal(a["generator"], b["generator"])   # the same random numbers were drawn
        # the same checkpoint steps, in the same format
        assert [s for s, _ in T.list_checkpoints(T.subpath_dir(seq, e))] == \
               [s for s, _ in T.list_checkpoints(T.subpath_dir(bat, e))]


def test_batched_resumes_and_sequential_continues_it(tiny, tmp_path):
    """Interrupted batched training resumes from each subpath's own checkpoint; a sequential run can finish
    a batched run's subpaths, and the result equals an uninterrupted batched run to rounding."""
    cfg = tiny_cfg(epochs=6, decay_epochs=(2, 4), ckpt_every=2)
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    for d in (ref, cut):
        T.run_main(d, cfg, tiny, progress=False)
    full = B.run_subpaths_batched(ref, cfg, tiny, progress=False)

    class Stop(Exception):
        pass

    def stop(r):
        if r == 5:
            raise Stop

    with pytest.raises(Stop):
        B.run_subpaths_batched(cut, cfg, tiny, progress=False, on_step=stop)
    assert not (T.subpath_dir(cut, 2) / "result.json").exists()
    again = T.run_subpaths(cut, cfg, tiny, progress=False)   # finished sequentially
    for a, b in zip(full, again):
        assert [r["epoch"] for r in a["metrics"]] == [r["epoch"] for r in b["metrics"]]
        for ra, rb in zip(a["metrics"], b["metrics"]):
            assert rb["test_loss"] == pytest.approx(ra["test_loss"], rel=RTOL, abs=ATOL)


def test_batched_refuses_batch_norm(tiny, tmp_path):
    cfg = tiny_cfg(arch="vgg11", batch_norm=True, epochs=2, decay_epochs=(1,), ckpt_every=3)
    T.run_main(tmp_path, cfg, tiny, progress=False)
    with pytest.raises(ValueError, match="batch-norm"):
        B.run_subpaths_batched(tmp_path, cfg, tiny, progress=False)
