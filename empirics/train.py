r"""The training experiment: a main path at a large constant learning rate, and decayed subpaths.

Main path: SGD with momentum and weight decay (torch's ``SGD``:
:math:`b \leftarrow \mu b + \nabla L_B(\theta) + \lambda\theta`, :math:`\theta \leftarrow \theta - \eta b`)
at the constant rate :math:`\eta` for ``epochs`` epochs; its full state is saved every ``ckpt_every``
steps. Subpath ``e``: the same run continued from the main-path checkpoint at the end of epoch ``e``
(weights, momentum buffers and the random stream) with :math:`\eta' = \text{decay\_factor}\cdot\eta`
up to the end of epoch ``epochs`` — the run whose learning rate steps down at epoch ``e``.

**Equal budget.** Every subpath ends at the same total epoch ``epochs``, so a later decay means fewer
epochs at the small rate, not more training; the main path itself (no decay) is the control.

**Label-noise SGD** (``label_noise = σ > 0``, squared losses only): every step replaces the one-hot
targets of its batch by :math:`e_{y_b} + \sigma\xi_b`, :math:`\xi_b \sim \mathcal N(0, I_K)` drawn
afresh (the mechanism of docs/science.md §1).

The loop below is the whole experiment, top to bottom: the data are uint8 tensors on the device; each
epoch draws a permutation, each step a batch, its random crops and flips, its dropout masks and its
label noise — in that order, all from one ``torch.Generator`` owned by the path (:func:`draw_step`; the
batched trainer in :mod:`lrdecay.empirics.batched` draws through the same function). A checkpoint stores the
model, the optimizer, that generator's state, the epoch's permutation, the position in it, the metrics
so far and the configuration, and is written atomically; a run killed at any point restarts from its
last checkpoint and, on the CPU, reproduces the uninterrupted run bit for bit. A checkpoint or result
made with another configuration is refused (the differing fields are named).

Layout of a run directory ``out/``::

    .lock                         held by the process writing here (lrdecay.theory.io.DirectoryLock)
    config.json                   the configuration and data description (written after validation)
    main/ckpt_<step>.pt           main-path checkpoints (step 0 = initialisation)
    main/metrics.csv              one row per evaluated epoch
    main/result.json              written when the path is complete (final metrics, config, seed)
    sub_e<epoch>/...              the same for the subpath decayed at that epoch

The pieces live in their own modules and are re-exported here: the configuration in
:mod:`~lrdecay.empirics.train_config`, a path's state and data stream in :mod:`~lrdecay.empirics.path_state`,
checkpoints, resuming and ``config.json`` in :mod:`~lrdecay.empirics.run_directory`; the path loop is below.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from lrdecay.theory.io import DirectoryLock, save_json
from lrdecay.theory.io import provenance as io_provenance

from . import data as D
# the pieces, re-exported so that every name stays importable from here
from .path_state import (METRIC_COLUMNS, PathState, StepBatch, ckpt_due, close_epoch, draw_step, evaluate,
                         path_generator, record_step, state_from, write_metrics_csv)
from .run_directory import (CKPT_RE, _refuse_orphans, ckpt_path, list_checkpoints, load_checkpoint, load_config,
                            resume, save_checkpoint, save_config, subpath_dir)
from .train_config import NUM_CLASSES, Runtime, TrainConfig, _norm, check_stored, config_diff
from .vgg import build_model, target_loss


# ----------------------------------------------------------------------------- helpers
def select_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``; an absent device is a ``ValueError``."""
    if not isinstance(name, str):
        raise ValueError(f"device: expected auto, cpu, cuda or cuda:N, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device: expected auto, cpu, cuda or cuda:N, got {name!r}") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ValueError(f"device: expected auto, cpu, cuda or cuda:N, got {name!r}")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n == 0:
        raise ValueError(f"device: {name!r} requested but no CUDA device is available here; use cpu or auto")
    if dev.index is not None and dev.index >= n:
        raise ValueError(f"device: {name!r} requested but only {n} CUDA device(s) exist (cuda:0..cuda:{n - 1})")
    return dev


def load_data(cfg: TrainConfig, data_dir=None, device="cpu", source: str = "auto", download: bool = False):
    """CIFAR-10 tensors on ``device``, class-balanced subsets chosen by ``cfg.data_seed``."""
    arrays = D.load_cifar10(data_dir, source=source, download=download)
    return D.to_tensors(arrays, device, cfg.train_size, cfg.train_per_class, cfg.test_size, seed=cfg.data_seed,
                        classes=cfg.classes, draw=cfg.draw, test_on=cfg.test_on)


def make_model(cfg: TrainConfig, device="cpu", seed: int | None = None, channels_last: bool = True):
    """The configured network (initialised from ``seed``, default ``cfg.seed``) on ``device``."""
    model = build_model(cfg.arch, cfg.width, cfg.batch_norm, cfg.dropout, num_classes=cfg.num_classes,
                        seed=cfg.seed if seed is None else seed, init=cfg.init)
    return model.to(device, memory_format=torch.channels_last) if channels_last else model.to(device)


def make_optimizer(cfg: TrainConfig, params, lr: float) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


class _TensorBoard:
    def __init__(self, logdir: Path | None, tag: str):
        self.w = None
        self.tag = tag
        if logdir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ValueError("tensorboard: logging requested but the 'tensorboard' package is not installed "
                                 "(pip install tensorboard, or drop --tensorboard)") from exc
            self.w = SummaryWriter(str(logdir))

    def log(self, row: dict) -> None:
        if self.w is not None:
            for k in ("running_train_loss", "train_loss", "train_acc", "test_loss", "test_acc", "lr"):
                self.w.add_scalar(f"{self.tag}/{k}", row[k], row["epoch"])

    def close(self) -> None:
        if self.w is not None:
            self.w.close()


def write_result(st: PathState, cfg: TrainConfig, data: D.CifarTensors, steps_per_epoch: int,
                 runtime: Runtime = Runtime()) -> dict:
    result = {"label": st.label, "meta": st.meta, "lr": st.lr, "end_epoch": st.end_epoch, "steps": st.step,
              "steps_per_epoch": steps_per_epoch, "final": st.metrics[-1] if st.metrics else None,
              "metrics": st.metrics, "config": cfg.to_dict(), "seed": cfg.seed, "data": data.info,
              "provenance": provenance() | {"runtime": {"compile": runtime.compile, "bf16": runtime.bf16}}}
    save_json(st.dir / "result.json", result)
    return result


def provenance() -> dict:
    """``lrdecay.theory.io.provenance`` (package version, git commit, versions, machine, time) with torch's version and
    thread count."""
    return io_provenance() | {"torch": torch.__version__, "threads": torch.get_num_threads(),
                              "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}


# ----------------------------------------------------------------------------- the sequential loop
def train_path(path_dir, cfg: TrainConfig, data: D.CifarTensors, *, lr: float, end_epoch: int,
               start: dict | None = None, progress: bool = True, tensorboard: bool = False,
               on_step=None, label: str = "main", meta: dict | None = None,
               check_fields=TrainConfig.MAIN_FIELDS, runtime: Runtime = Runtime()) -> dict:
    """Train one path in ``path_dir`` up to the end of epoch ``end_epoch``, resuming if it can.

    ``start`` is the state to begin from when ``path_dir`` holds no checkpoint (``None``: a fresh model
    seeded by ``cfg.seed``). ``on_step(step)`` is called after every optimizer step (tests use it to
    interrupt a run). ``meta`` is stored in every checkpoint and in the result. A stored checkpoint or
    result whose configuration differs from ``cfg`` on ``check_fields`` (or whose rate differs from
    ``lr``) is refused. Returns the path's result (also saved as ``result.json``).
    """
    from tqdm.auto import tqdm

    path_dir = Path(path_dir)
    dev = data.device
    done, state = resume(path_dir, cfg, lr=lr, end_epoch=end_epoch, start=start, check_fields=check_fields,
                         device=dev)
    if done is not None:
        return done
    spe = cfg.steps_per_epoch(len(data.y_train))   # the last partial batch is dropped

    model = make_model(cfg, dev)
    opt = make_optimizer(cfg, model.parameters(), lr)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
    for g in opt.param_groups:                     # a subpath starts from the main path's optimizer
        g["lr"] = lr
    st = state_from(state, dir=path_dir, label=label, lr=lr, end_epoch=end_epoch, meta=meta, cfg=cfg, device=dev)
    st.run_sum = torch.tensor(st.run_sum, dtype=torch.float64, device=dev)
    model.train()
    step_model = torch.compile(model) if runtime.compile else model

    def save():
        save_checkpoint(ckpt_path(path_dir, st.step), st.snapshot(model.state_dict(), opt.state_dict(), cfg))

    if state is None:
        save()                                     # the initialisation is a trajectory point
    tb = _TensorBoard(path_dir / "tb" if tensorboard else None, label)
    bar = tqdm(total=end_epoch, initial=st.epoch, desc=label, unit="ep", disable=not progress, leave=False)
    while st.epoch < end_epoch:
        b = draw_step(st, cfg, data, model)
        with runtime.autocast(dev):
            out = step_model(b.x, b.masks)
        loss = target_loss(cfg.loss, out.float(), b.y, b.targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        epoch_done = record_step(st, loss.detach().double(), spe)
        if epoch_done:
            row = close_epoch(st, cfg, data, model, tb=tb)
            st.run_sum = torch.zeros((), dtype=torch.float64, device=dev) if row is not None else st.run_sum
            bar.update(1)
            if row is not None:
                bar.set_postfix(train=f"{row['train_loss']:.4f}", acc=f"{row['train_acc']:.3f}",
                                test=f"{row['test_loss']:.4f}")
        if ckpt_due(st, cfg, spe):
            save()
        if on_step is not None:
            on_step(st.step)
    bar.close()
    tb.close()
    st.run_sum = float(st.run_sum)
    return write_result(st, cfg, data, spe, runtime)


def run_main(out_dir, cfg: TrainConfig, data: D.CifarTensors, progress=True, tensorboard=False, on_step=None,
             runtime: Runtime = Runtime()) -> dict:
    """The main path: ``cfg.epochs`` epochs at ``cfg.lr``, checkpoints every ``cfg.ckpt_every`` steps.

    Holds the run directory's lock; validates ``cfg`` and records it in ``config.json`` first
    (:func:`save_config`, which refuses a directory made with another main path).
    """
    with DirectoryLock(out_dir, "out"):
        save_config(out_dir, cfg, n_train=len(data.y_train))
        return train_path(Path(out_dir) / "main", cfg, data, lr=cfg.lr, end_epoch=cfg.epochs, progress=progress,
                          tensorboard=tensorboard, on_step=on_step, label="main", runtime=runtime)


@dataclass
class SubpathPlan:
    decay_epoch: int
    dir: Path
    start: dict | None               # the branch state (None when the subpath has checkpoints of its own)
    meta: dict
    done: bool


def plan_subpaths(out_dir, cfg: TrainConfig, data: D.CifarTensors, decay_epochs=None) -> list[SubpathPlan]:
    """What each subpath starts from: its own last checkpoint, or the main-path checkpoint it branches at."""
    cfg.validate(len(data.y_train))
    out_dir = Path(out_dir)
    spe = cfg.steps_per_epoch(len(data.y_train))
    epochs = cfg.decay_epochs if decay_epochs is None else tuple(int(e) for e in decay_epochs)
    TrainConfig.from_dict(cfg.to_dict() | {"decay_epochs": epochs}).validate(len(data.y_train))
    plans = []
    for e in epochs:
        src = ckpt_path(out_dir / "main", e * spe)
        sub = subpath_dir(out_dir, e)
        meta = {"decay_epoch": e, "branch_step": e * spe}
        if (sub / "result.json").exists():
            plans.append(SubpathPlan(e, sub, None, meta, True))
            continue
        if list_checkpoints(sub):
            plans.append(SubpathPlan(e, sub, None, meta, False))
            continue
        if not src.exists():
            raise FileNotFoundError(f"subpath at epoch {e}: main-path checkpoint {src} not found; run the main "
                                    "path first (lrdecay empirics main)")
        start = load_checkpoint(src, data.device)
        check_stored(start.get("config", {}), cfg, TrainConfig.MAIN_FIELDS, str(src))
        start.update(metrics=[], run_sum=0.0, run_cnt=0)
        plans.append(SubpathPlan(e, sub, start, meta, False))
    return plans


def run_subpaths(out_dir, cfg: TrainConfig, data: D.CifarTensors, decay_epochs=None, progress=True,
                 tensorboard=False, runtime: Runtime = Runtime()) -> list[dict]:
    """One subpath per decay epoch, one after another, each from the main-path checkpoint at that epoch
    and each to the main path's end (equal budget). See :func:`lrdecay.empirics.batched.run_subpaths_batched`
    for all of them at once."""
    with DirectoryLock(out_dir, "out"):
        save_config(out_dir, cfg, n_train=len(data.y_train))
        lr = cfg.lr * cfg.decay_factor
        return [train_path(p.dir, cfg, data, lr=lr, end_epoch=cfg.subpath_end(p.decay_epoch), start=p.start,
                           progress=progress,
                           tensorboard=tensorboard, label=f"decay@{p.decay_epoch}", meta=p.meta,
                           check_fields=TrainConfig.SUBPATH_FIELDS, runtime=runtime)
                for p in plan_subpaths(out_dir, cfg, data, decay_epochs)]
