"""One training path's state and its data stream: :class:`PathState` (position in the stream, random
generator, running loss, metrics), :func:`draw_step` (the next batch and all of its randomness, in a fixed
order), :func:`record_step` and :func:`close_epoch` (counting steps, evaluating, writing ``metrics.csv``).
The sequential trainer (:mod:`lrdecay.empirics.train`) and the batched one (:mod:`lrdecay.empirics.batched`)
both step their paths through these functions. Re-exported by :mod:`lrdecay.empirics.train`.
"""
from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lrdecay.theory.io import atomic_write_text

from . import data as D
from .train_config import TrainConfig
from .vgg import SQUARED_LOSSES, onehot, target_loss

METRIC_COLUMNS = ("epoch", "step", "lr", "running_train_loss", "train_loss", "train_acc", "test_loss",
                  "test_acc", "wall_s")



@torch.no_grad()
def evaluate(model, x, y, loss: str, batch: int = 500, params: dict | None = None) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` (evaluation mode) on uint8 images ``x`` with labels ``y``.

    ``params``: run the model with these parameters (``torch.func.functional_call``) instead of its own.
    """
    from torch.func import functional_call

    was = model.training
    model.eval()
    tot_loss = torch.zeros((), device=x.device, dtype=torch.float64)
    tot_acc = torch.zeros((), device=x.device, dtype=torch.float64)
    for i in range(0, len(y), batch):
        xb = D.normalize(x[i:i + batch])
        out = model(xb) if params is None else functional_call(model, params, (xb,))
        yb = y[i:i + batch]
        tot_loss += target_loss(loss, out, yb).double() * len(yb)
        tot_acc += (out.argmax(1) == yb).sum()
    model.train(was)
    return (tot_loss / len(y)).item(), (tot_acc / len(y)).item()


def write_metrics_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS)
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in METRIC_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def path_generator(seed: int, device) -> torch.Generator:
    """The path's random stream, seeded from ``SeedSequence(seed)`` (a subpath inherits the main path's state)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(np.random.SeedSequence(int(seed)).generate_state(1)[0]))
    return gen


# ----------------------------------------------------------------------------- one path's state
@dataclass
class PathState:
    """Where a path stands: position in its data stream, random generator, running loss, metrics."""

    dir: Path
    label: str
    lr: float
    end_epoch: int
    gen: torch.Generator
    meta: dict = field(default_factory=dict)
    step: int = 0
    epoch: int = 0
    pos: int = 0
    perm: torch.Tensor | None = None
    run_sum: float = 0.0
    run_cnt: int = 0
    metrics: list = field(default_factory=list)
    wall0: float = 0.0

    @property
    def done(self) -> bool:
        return self.epoch >= self.end_epoch

    def snapshot(self, model_state: dict, opt_state: dict, cfg: TrainConfig) -> dict:
        return {"step": self.step, "epoch": self.epoch, "pos": self.pos,
                "perm": None if self.perm is None else self.perm.cpu(), "model": model_state,
                "optimizer": opt_state, "generator": self.gen.get_state(), "run_sum": float(self.run_sum),
                "run_cnt": self.run_cnt, "metrics": self.metrics, "lr": self.lr, "label": self.label,
                "meta": self.meta, "config": cfg.to_dict()}


def state_from(snapshot: dict | None, *, dir, label, lr, end_epoch, meta, cfg: TrainConfig, device) -> PathState:
    """A :class:`PathState` resumed from a checkpoint dict (or fresh, seeded by ``cfg.seed``)."""
    gen = path_generator(cfg.seed, device)
    st = PathState(Path(dir), label, lr, end_epoch, gen, dict(meta or {}))
    if snapshot is not None:
        gen.set_state(snapshot["generator"].cpu())
        st.step, st.epoch, st.pos = snapshot["step"], snapshot["epoch"], snapshot["pos"]
        st.perm = snapshot["perm"].to(device) if snapshot["perm"] is not None else None
        st.run_sum, st.run_cnt, st.metrics = float(snapshot["run_sum"]), snapshot["run_cnt"], list(snapshot["metrics"])
    st.wall0 = time.perf_counter() - (st.metrics[-1]["wall_s"] if st.metrics else 0.0)
    return st


@dataclass
class StepBatch:
    x: torch.Tensor                  # normalised images, B × 3 × 32 × 32
    y: torch.Tensor                  # labels
    masks: tuple                     # dropout masks, one per dropout layer
    targets: torch.Tensor | None     # regression targets (squared losses): one-hot (+ label noise)


def draw_step(st: PathState, cfg: TrainConfig, data: D.CifarTensors, model, channels_last: bool = True) -> StepBatch:
    """The next batch of path ``st`` and all of its randomness, drawn from ``st.gen`` in a fixed order:

    the epoch's permutation (at its first step), the crops and flips, the dropout masks (layer by layer),
    the label noise :math:`\\sigma\\xi` (``B × K``).
    """
    n = len(data.y_train)
    if st.pos == 0:
        st.perm = torch.randperm(n, generator=st.gen, device=data.device)
    idx = st.perm[st.pos * cfg.batch_size:(st.pos + 1) * cfg.batch_size]
    xb = data.x_train[idx]
    if cfg.augment:
        xb = D.augment(xb, st.gen, pad=0 if cfg.augment == "flip" else 4)
    x = D.normalize(xb)
    if not channels_last:
        x = x.contiguous()
    yb = data.y_train[idx]
    masks = model.draw_masks(cfg.batch_size, st.gen, data.device) if cfg.dropout > 0 else ()
    targets = None
    if cfg.loss in SQUARED_LOSSES:
        targets = onehot(yb, cfg.num_classes)
        if cfg.label_noise > 0:
            targets = targets + cfg.label_noise * torch.randn(targets.shape, generator=st.gen, device=data.device)
    return StepBatch(x, yb, masks, targets)


def record_step(st: PathState, loss: torch.Tensor | float, steps_per_epoch: int) -> bool:
    """Count one optimizer step; returns whether it ended an epoch (the caller then calls :func:`close_epoch`)."""
    st.step += 1
    st.pos += 1
    st.run_sum = st.run_sum + loss
    st.run_cnt += 1
    return st.pos == steps_per_epoch


def close_epoch(st: PathState, cfg: TrainConfig, data: D.CifarTensors, model, params=None, tb=None) -> dict | None:
    """Close an epoch: check for divergence, evaluate when due, write ``metrics.csv``; returns the row."""
    st.epoch += 1
    st.pos = 0
    run = float(st.run_sum)
    if not math.isfinite(run):
        raise FloatingPointError(f"{st.label}: the training loss diverged in epoch {st.epoch} (lr {st.lr}); "
                                 "lower lr or use batch_norm")
    if st.epoch % cfg.eval_every and st.epoch != st.end_epoch:
        return None
    tr_loss, tr_acc = evaluate(model, data.x_train, data.y_train, cfg.loss, cfg.eval_batch, params)
    te_loss, te_acc = evaluate(model, data.x_test, data.y_test, cfg.loss, cfg.eval_batch, params)
    row = {"epoch": st.epoch, "step": st.step, "lr": st.lr, "running_train_loss": run / max(st.run_cnt, 1),
           "train_loss": tr_loss, "train_acc": tr_acc, "test_loss": te_loss, "test_acc": te_acc,
           "wall_s": round(time.perf_counter() - st.wall0, 3)}
    st.metrics.append(row)
    st.run_sum, st.run_cnt = 0.0, 0
    write_metrics_csv(st.dir / "metrics.csv", st.metrics)
    if tb is not None:
        tb.log(row)
    return row


def ckpt_due(st: PathState, cfg: TrainConfig, steps_per_epoch: int) -> bool:
    """A checkpoint after this step: every ``ckpt_every`` steps, and at the path's last step."""
    return st.step % cfg.ckpt_every == 0 or (st.pos == 0 and st.epoch == st.end_epoch)
