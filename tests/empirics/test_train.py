"""Training: a step lowers the loss, exact resume after an interruption, subpaths continue the main path."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.empirics.helpers import Interrupt, _stop_at, tiny_arrays, tiny_cfg  # noqa: F401
from lrdecay.empirics import data as D
from lrdecay.empirics import train as T
from lrdecay.empirics.vgg import build_model, loss_fn

REPO = Path(__file__).resolve().parents[2]
REAL = D.default_data_dir()
has_real = pytest.mark.skipif(not (REAL / D.LAYOUT_DIR / "data_batch_1").is_file(), reason="real subset absent")


@pytest.fixture(scope="module")
def tiny():
    return D.to_tensors(tiny_arrays())


def _single_step_decreases(model, x, y, loss, lr):
    model.train()
    f = loss_fn(loss)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    before = f(model(D.normalize(x)), y)
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = f(model(D.normalize(x)), y)
    return before.item(), after.item()


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_one_step_lowers_the_loss_synthetic(tiny, loss):
    m = build_model("slim_vgg11", 0.25, dropout=0.0, seed=0)
    b, a = _single_step_decreases(m, tiny.x_train[:32], tiny.y_train[:32], loss, lr=0.05)
    assert a < b


@has_real
def test_one_step_lowers_the_loss_real_subset():
    arr = D.load_cifar10()
    x = torch.from_numpy(arr.x_train[:125])
    y = torch.from_numpy(arr.y_train[:125])
    m = build_model("slim_vgg11", 0.5, dropout=0.0, seed=0)
    b, a = _single_step_decreases(m, x, y, "ce", lr=0.05)
    assert a < b


def test_training_lowers_the_loss_over_epochs(tiny, tmp_path):
    # torch's initialisation: at width 0.125 the authors' (linear N(0, 0.01²)) starts at the output-zero saddle
    cfg = tiny_cfg(epochs=6, dropout=0.0, augment=False, lr=0.01, ckpt_every=100, decay_epochs=(), init="torch")
    r = T.run_main(tmp_path, cfg, tiny, progress=False)
    first, last = r["metrics"][0], r["metrics"][-1]
    assert last["train_loss"] < 0.9 * first["train_loss"]
    assert len(r["metrics"]) == 6 and r["steps"] == 6 * (60 // 16)


def _final_state(path_dir):
    ck = T.list_checkpoints(path_dir)
    return T.load_checkpoint(ck[-1][1])


def _strip_wall(rows):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]


def test_resume_reports_where_a_path_stands(tiny, tmp_path):
    """train.resume, shared by the sequential and the batched trainers: the start for an empty folder, the
    newest checkpoint after an interruption, the result once finished; another epoch or rate refused."""
    cfg = tiny_cfg()
    d, kw = tmp_path / "main", dict(lr=cfg.lr, end_epoch=cfg.epochs, check_fields=T.TrainConfig.MAIN_FIELDS,
                                    device="cpu")
    start = {"marker": 1}
    assert T.resume(d, cfg, start=start, **kw) == (None, start) and d.is_dir()
    with pytest.raises(Interrupt):
        T.run_main(tmp_path, cfg, tiny, progress=False, on_step=_stop_at(9))
    done, snap = T.resume(d, cfg, start=start, **kw)
    assert done is None and snap["step"] == 8
    with pytest.raises(ValueError, match=r"ckpt_000000008.pt was made with another configuration: lr of this path"):
        T.resume(d, cfg, start=None, **(kw | {"lr": 0.5}))
    res = T.run_main(tmp_path, cfg, tiny, progress=False)
    done, snap = T.resume(d, cfg, start=None, **kw)
    assert snap is None and done == json.loads((d / "result.json").read_text()) and done["steps"] == res["steps"]
    with pytest.raises(ValueError, match=rf"^epochs: .*result.json ends at epoch {cfg.epochs}, the configuration asks"):
        T.resume(d, cfg, start=None, **(kw | {"end_epoch": cfg.epochs + 1}))


def test_resume_is_exact(tiny, tmp_path):
    """Killed mid-epoch (after the step-8 checkpoint, at step 9) and restarted = uninterrupted, bit for bit."""
    cfg = tiny_cfg()
    ref = T.run_main(tmp_path / "ref", cfg, tiny, progress=False)
    with pytest.raises(Interrupt):
        T.run_main(tmp_path / "cut", cfg, tiny, progress=False, on_step=_stop_at(9))
    assert not (tmp_path / "cut" / "main" / "result.json").exists()
    assert T.list_checkpoints(tmp_path / "cut" / "main")[-1][0] == 8
    res = T.run_main(tmp_path / "cut", cfg, tiny, progress=False)
    a, b = _final_state(tmp_path / "ref" / "main"), _final_state(tmp_path / "cut" / "main")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for s, t in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(s["momentum_buffer"], t["momentum_buffer"])
    assert torch.equal(a["generator"], b["generator"])
    assert _strip_wall(ref["metrics"]) == _strip_wall(res["metrics"])
    # every checkpoint of both runs holds the same weights
    for (s1, p1), (s2, p2) in zip(T.list_checkpoints(tmp_path / "ref" / "main"),
                                  T.list_checkpoints(tmp_path / "cut" / "main")):
        assert s1 == s2
        m1, m2 = T.load_checkpoint(p1)["model"], T.load_checkpoint(p2)["model"]
        assert all(torch.equal(m1[k], m2[k]) for k in m1)
    assert not [p for p in (tmp_path / "cut" / "main").iterdir() if p.name.endswith(".tmp")]
    # subpaths resume exactly as well
    T.run_subpaths(tmp_path / "ref", cfg, tiny, progress=False)
    T.run_subpaths(tmp_path / "cut", cfg, tiny, progress=False)
    for e in cfg.decay_epochs:
        x, y = _final_state(T.subpath_dir(tmp_path / "ref", e)), _final_state(T.subpath_dir(tmp_path / "cut", e))
        assert all(torch.equal(x["model"][k], y["model"][k]) for k in x["model"])


def test_same_seed_same_numbers_other_seed_differs(tiny, tmp_path):
    cfg = tiny_cfg(epochs=2, decay_epochs=())
    r1 = T.run_main(tmp_path / "a", cfg, tiny, progress=False)
    r2 = T.run_main(tmp_path / "b", cfg, tiny, progress=False)
    r3 = T.run_main(tmp_path / "c", replace(cfg, seed=6), tiny, progress=False)
    assert _strip_wall(r1["metrics"]) == _strip_wall(r2["metrics"])
    assert _strip_wall(r1["metrics"]) != _strip_wall(r3["metrics"])


def test_subpath_without_decay_continues_the_main_path(tiny, tmp_path):
    """decay_factor 1: the branch carries weights, momentum and the random stream, so the subpath from
    epoch 2 must reproduce the main path's epochs 3-4 exactly."""
    cfg = tiny_cfg(decay_factor=1.0, decay_epochs=(2,))
    main = T.run_main(tmp_path, cfg, tiny, progress=False)
    (sub,) = T.run_subpaths(tmp_path, cfg, tiny, progress=False)
    a = _final_state(tmp_path / "main")
    b = _final_state(T.subpath_dir(tmp_path, 2))
    assert a["step"] == b["step"] == 12
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert _strip_wall(main["metrics"][2:]) == _strip_wall(sub["metrics"])


def test_decayed_subpath_uses_the_decayed_rate(tiny, tmp_path):
    cfg = tiny_cfg(decay_epochs=(2,), decay_factor=0.1)
    T.run_main(tmp_path, cfg, tiny, progress=False)
    (sub,) = T.run_subpaths(tmp_path, cfg, tiny, progress=False)
    assert sub["lr"] == pytest.approx(0.01) and all(r["lr"] == pytest.approx(0.01) for r in sub["metrics"])
    assert sub["meta"] == {"decay_epoch": 2, "branch_step": 6}
    assert [r["epoch"] for r in sub["metrics"]] == [3, 4]
    rows = (T.subpath_dir(tmp_path, 2) / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",") == list(T.METRIC_COLUMNS) and len(rows) == 3


def test_parameter_errors_name_the_parameter(tiny, tmp_path):
    with pytest.raises(ValueError, match=r"decay_epochs: epoch 3 ends at step 9.*multiples of 2"):
        T.run_main(tmp_path, tiny_cfg(decay_epochs=(3,)), tiny, progress=False)
    with pytest.raises(ValueError, match=r"lr: expected a learning rate in \(0, 10\]"):
        tiny_cfg(lr=-1.0).validate()
    with pytest.raises(ValueError, match=r"decay_epochs: every decay epoch must lie in 1\.\.3"):
        tiny_cfg(decay_epochs=(8,)).validate(60)
    with pytest.raises(ValueError, match=r"batch_size: expected an integer in 1\.\.60"):
        tiny_cfg(batch_size=100, decay_epochs=()).validate(60)
    with pytest.raises(FileNotFoundError, match="run the main path first"):
        T.run_subpaths(tmp_path / "empty", tiny_cfg(), tiny, progress=False)


def test_config_guard_refuses_a_different_main_path(tiny, tmp_path):
    cfg = tiny_cfg(epochs=2, decay_epochs=())
    T.save_config(tmp_path, cfg)
    T.run_main(tmp_path, cfg, tiny, progress=False)
    T.save_config(tmp_path, replace(cfg, decay_factor=0.5))  # not a main-path field: fine
    with pytest.raises(ValueError, match="lr"):
        T.save_config(tmp_path, replace(cfg, lr=0.05))


def test_corrupt_checkpoint_is_reported(tiny, tmp_path):
    cfg = tiny_cfg(epochs=2, decay_epochs=())
    with pytest.raises(Interrupt):
        T.run_main(tmp_path, cfg, tiny, progress=False, on_step=_stop_at(3))
    last = T.list_checkpoints(tmp_path / "main")[-1][1]
    last.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="(?s)unreadable.*delete it"):
        T.run_main(tmp_path, cfg, tiny, progress=False)


_KILL_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {repo!r})
from tests.empirics.helpers import tiny_arrays, tiny_cfg
from lrdecay.empirics import data as D, train as T
T.run_main(sys.argv[1], tiny_cfg(epochs=int(sys.argv[2]), ckpt_every=1, decay_epochs=()),
           D.to_tensors(tiny_arrays()), progress=False,
           on_step=lambda s: __import__('time').sleep(0.5 if s >= 7 else 0))  # a wide window for the kill
"""


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    """A real process killed by SIGKILL mid-run resumes from its last (atomically written) checkpoint."""
    script = tmp_path / "run.py"
    script.write_text(_KILL_SCRIPT.format(repo=str(REPO), tests=str(REPO / "tests")))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, str(script), str(tmp_path / "ref"), "3"], check=True, env=env)
    p = subprocess.Popen([sys.executable, str(script), str(tmp_path / "cut"), "3"], env=env)
    main = tmp_path / "cut" / "main"
    t0 = time.time()
    while len(T.list_checkpoints(main)) < 8 and time.time() - t0 < 120:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    assert not (main / "result.json").exists()
    assert 7 <= T.list_checkpoints(main)[-1][0] < 9  # killed in the third epoch (steps 7-9)
    subprocess.run([sys.executable, str(script), str(tmp_path / "cut"), "3"], check=True, env=env)
    a = json.loads((tmp_path / "ref" / "main" / "result.json").read_text())
    b = json.loads((main / "result.json").read_text())
    assert _strip_wall(a["metrics"]) == _strip_wall(b["metrics"])
    x, y = _final_state(tmp_path / "ref" / "main"), _final_state(main)
    assert all(torch.equal(x["model"][k], y["model"][k]) for k in x["model"])


def test_tensorboard_option(tiny, tmp_path):
    cfg = tiny_cfg(epochs=1, decay_epochs=(), ckpt_every=3)
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="pip install tensorboard"):
            T.run_main(tmp_path, cfg, tiny, progress=False, tensorboard=True)
    else:
        T.run_main(tmp_path, cfg, tiny, progress=False, tensorboard=True)
        assert any((tmp_path / "main" / "tb").iterdir())


def test_label_noise_targets_are_fresh_gaussian_noise(tiny):
    """Every step draws σξ afresh: over 6 steps × 16 × 10 draws the noise has mean 0 and standard deviation σ."""
    cfg = tiny_cfg(label_noise=0.5, dropout=0.0, augment=False)
    model = T.make_model(cfg)
    st = T.state_from(None, dir=".", label="x", lr=0.1, end_epoch=2, meta={}, cfg=cfg, device="cpu")
    noise = []
    for _ in range(6):
        b = T.draw_step(st, cfg, tiny, model)
        noise.append(b.targets - torch.nn.functional.one_hot(b.y, 10).float())
        if T.record_step(st, 0.0, 3):      # advance the position only (no evaluation)
            st.pos, st.epoch = 0, st.epoch + 1
    z = torch.stack(noise)
    n = z.numel()
    assert abs(z.mean().item()) < 4 * 0.5 / n ** 0.5            # 4 standard errors
    assert z.std().item() == pytest.approx(0.5, rel=4 / (2 * n) ** 0.5)
    assert not torch.equal(noise[0], noise[1])                 # fresh every step
    with pytest.raises(ValueError, match="label_noise: Gaussian label noise needs a squared loss"):
        tiny_cfg(label_noise=0.1, loss="ce").validate()
    with pytest.raises(ValueError, match=r"label_noise: expected a noise scale in \[0, 10\]"):
        tiny_cfg(label_noise=-0.1).validate()


def test_label_noise_run_is_seeded_and_differs_from_plain_sgd(tiny, tmp_path):
    cfg = tiny_cfg(epochs=2, decay_epochs=(), label_noise=0.3)
    a = T.run_main(tmp_path / "a", cfg, tiny, progress=False)
    b = T.run_main(tmp_path / "b", cfg, tiny, progress=False)
    c = T.run_main(tmp_path / "c", replace(cfg, label_noise=0.0), tiny, progress=False)
    assert _strip_wall(a["metrics"]) == _strip_wall(b["metrics"])
    assert a["metrics"][-1]["running_train_loss"] != c["metrics"][-1]["running_train_loss"]


def test_equal_budget_every_subpath_ends_with_the_main_path(tiny, tmp_path):
    cfg = tiny_cfg(epochs=6, decay_epochs=(2, 4))
    main = T.run_main(tmp_path, cfg, tiny, progress=False)
    subs = T.run_subpaths(tmp_path, cfg, tiny, progress=False)
    assert main["end_epoch"] == 6 and [s["end_epoch"] for s in subs] == [6, 6]
    assert [s["steps"] for s in subs] == [main["steps"]] * 2
    assert [len(s["metrics"]) for s in subs] == [4, 2]          # later decay: fewer decayed epochs
    with pytest.raises(ValueError, match=r"decay_epochs: every decay epoch must lie in 1\.\.5"):
        replace(cfg, decay_epochs=(6,)).validate()
    with pytest.raises(ValueError, match="each epoch at most once"):
        replace(cfg, decay_epochs=(2, 2)).validate()


def test_absent_device_is_a_one_line_error():
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"^device: 'cuda:3' requested but no CUDA device is available here"):
            T.select_device("cuda:3")
    with pytest.raises(ValueError, match="^device: expected auto, cpu, cuda or cuda:N, got 'tpu'"):
        T.select_device("tpu")
    assert T.select_device("cpu").type == "cpu"
