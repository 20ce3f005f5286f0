"""Run-directory integrity: validation before writing, refused mismatched resumes, one writer at a time, no leftovers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lrdecay.empirics import data as D
from lrdecay.empirics import train as T

from tests.empirics.helpers import Interrupt, _stop_at, tiny_arrays, tiny_cfg  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny():
    return D.to_tensors(tiny_arrays())


def test_invalid_settings_write_nothing(tiny, tmp_path):
    with pytest.raises(ValueError, match=r"^decay_epochs: every decay epoch must lie in 1\.\.3"):
        T.save_config(tmp_path, tiny_cfg(decay_epochs=(9,)))
    with pytest.raises(ValueError, match="^lr: "):
        T.run_main(tmp_path, tiny_cfg(lr=-1.0), tiny, progress=False)
    with pytest.raises(ValueError, match="^decay_epochs: epoch 3 ends at step 9"):
        T.run_main(tmp_path, tiny_cfg(decay_epochs=(3,)), tiny, progress=False)
    assert not (tmp_path / "config.json").exists() and not (tmp_path / "main").exists()
    # a later valid run is not blocked by the rejected ones
    T.run_main(tmp_path, tiny_cfg(epochs=1, decay_epochs=()), tiny, progress=False)


def test_mismatched_resume_is_refused_naming_the_fields(tiny, tmp_path):
    cfg = tiny_cfg()
    with pytest.raises(Interrupt):
        T.run_main(tmp_path, cfg, tiny, progress=False, on_step=_stop_at(5))
    with pytest.raises(ValueError, match=r"lr \(stored 0\.1, requested 0\.05\), seed \(stored 5, requested 3\)"):
        T.run_main(tmp_path, replace(cfg, seed=3, lr=0.05), tiny, progress=False)
    # the checkpoints themselves store their configuration and refuse another one
    with pytest.raises(ValueError, match=r"ckpt_000000004.pt was made with another configuration: seed \(stored 5"):
        T.train_path(tmp_path / "main", replace(cfg, seed=3), tiny, lr=cfg.lr, end_epoch=cfg.epochs, progress=False)
    # checkpoints without config.json: refused
    (tmp_path / "config.json").rename(tmp_path / "config.bak")
    with pytest.raises(ValueError, match="holds checkpoints but no config.json"):
        T.run_main(tmp_path, cfg, tiny, progress=False)
    (tmp_path / "config.bak").rename(tmp_path / "config.json")
    # the right configuration resumes
    r = T.run_main(tmp_path, cfg, tiny, progress=False)
    assert r["seed"] == 5 and r["config"]["lr"] == 0.1
    # a finished result is refused for another configuration as well
    with pytest.raises(ValueError, match=r"width \(stored 0\.125, requested 0\.25\)"):
        T.train_path(tmp_path / "main", replace(cfg, width=0.25), tiny, lr=cfg.lr, end_epoch=cfg.epochs, progress=False)


def test_subpath_with_another_decay_factor_is_refused(tiny, tmp_path):
    cfg = tiny_cfg()
    T.run_main(tmp_path, cfg, tiny, progress=False)
    T.run_subpaths(tmp_path, cfg, tiny, progress=False)
    with pytest.raises(ValueError, match=r"decay_factor \(stored 0\.1, requested 0\.5\)"):
        T.run_subpaths(tmp_path, replace(cfg, decay_factor=0.5), tiny, progress=False)


def test_tmp_leftovers_are_cleaned_on_start(tiny, tmp_path):
    (tmp_path / "main").mkdir(parents=True)
    junk = [tmp_path / "main" / ".ckpt_000000004.pt.abc123.tmp", tmp_path / ".config.json.x.tmp"]
    for j in junk:
        j.write_bytes(b"half a file")
    keep = tmp_path / "notes.tmp"          # not an atomic-write leftover (no leading dot): kept
    keep.write_text("mine")
    T.run_main(tmp_path, tiny_cfg(epochs=1, decay_epochs=()), tiny, progress=False)
    assert not any(j.exists() for j in junk) and keep.exists()


_WRITER = """
import os, sys, time, torch
torch.set_num_threads(1)
sys.path.insert(0, {repo!r}); sys.path.insert(0, {tests!r})
from tests.empirics.helpers import tiny_arrays, tiny_cfg
from lrdecay.empirics import data as D, train as T
release = sys.argv[3] if len(sys.argv) > 3 else None

def hold(step):
    # keep the run (and its lock) alive until the test releases it, at most 120 s
    t0 = time.time()
    while release and not os.path.exists(release) and time.time() - t0 < 120:
        time.sleep(0.05)

try:
    T.run_main(sys.argv[1], tiny_cfg(epochs=3, ckpt_every=1, decay_epochs=(), seed=int(sys.argv[2])),
               D.to_tensors(tiny_arrays()), progress=False, on_step=hold)
except ValueError as e:
    print(e)
    sys.exit(2)
"""


def test_two_writers_on_one_run_directory_cannot_mix(tmp_path):
    """Two processes with different seeds start on one fresh directory: the second exits at once with a
    one-line error, the first finishes, and every file holds the first one's run."""
    script = tmp_path / "writer.py"
    script.write_text(_WRITER.format(repo=str(REPO), tests=str(REPO / "tests")))
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    release = tmp_path / "release"
    a = subprocess.Popen([sys.executable, str(script), str(out), "11", str(release)], env=env,
                         stdout=subprocess.PIPE, text=True)
    t0 = time.time()
    while not T.list_checkpoints(out / "main") and time.time() - t0 < 120:
        time.sleep(0.05)
    try:       # the first writer is held mid-run (lock taken, a checkpoint written) while the second starts
        b = subprocess.run([sys.executable, str(script), str(out), "12"], env=env, capture_output=True, text=True,
                           timeout=120)
    finally:
        release.touch()
    assert a.wait(timeout=300) == 0
    assert b.returncode == 2
    lines = b.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"out: {out} is in use by pid ") and "Traceback" not in b.stderr
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 11
    assert json.loads((out / "main" / "result.json").read_text())["seed"] == 11
    for _, p in T.list_checkpoints(out / "main"):
        assert torch.load(p, weights_only=True)["config"]["seed"] == 11
    # afterwards the other seed is refused by the stored configuration, not silently mixed in
    c = subprocess.run([sys.executable, str(script), str(out), "12"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert c.returncode == 2 and "seed (stored 11, requested 12)" in c.stdout
