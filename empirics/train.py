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
"""
from __future__ import annotations

import csv
import io
import math
import re
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from lrdecay.theory.io import DirectoryLock, atomic_write_bytes, atomic_write_text, load_json, save_json
from lrdecay.theory.io import provenance as io_provenance

from . import data as D
from .vgg import ARCHS, INITS, LOSSES, SQUARED_LOSSES, build_model, onehot, target_loss

METRIC_COLUMNS = ("epoch", "step", "lr", "running_train_loss", "train_loss", "train_acc", "test_loss",
                  "test_acc", "wall_s")
CKPT_RE = re.compile(r"^ckpt_(\d{9})\.pt$")
NUM_CLASSES = 10


@dataclass
class TrainConfig:
    """Everything that determines the main path and the subpaths (with the seed).

    Defaults: the authors' recipe (``yinuoren/landscape``: slim VGG-11, their loss and initialisation,
    SGD 0.1 with momentum 0.9 and weight decay 1e-4, batch 125, crop + flip, 5,000 images, 3,000 epochs,
    a checkpoint every 400 steps, decays at epochs 2000, 2100, …, 2900 to lr × 0.1).
    """

    arch: str = "slim_vgg11"
    width: float = 1.0
    batch_norm: bool = False
    dropout: float = 0.5
    init: str = "authors"                   # see lrdecay.empirics.vgg
    loss: str = "mse"                       # the authors' ½‖z − e_y‖², batch mean
    label_noise: float = 0.0                # σ of the Gaussian noise on the one-hot targets (0: plain SGD)
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 125
    epochs: int = 3000                      # main-path length = the end of every subpath
    ckpt_every: int = 400                   # steps between checkpoints
    decay_epochs: tuple = tuple(range(2000, 3000, 100))
    decay_factor: float = 0.1
    subpath_epochs: int | None = None       # None: every subpath ends at `epochs` (equal budget); L: each runs L epochs
    train_size: int | None = 5000           # class-balanced subset size (None: all images)
    train_per_class: int | None = None      # exact per-class count instead of train_size
    test_size: int | None = None            # None: the whole test set
    classes: int | None = None              # the first k classes only (None: all 10)
    draw: str = "balanced"                  # "authors": their per-class random draw (needs train_per_class)
    test_on: str = "test"                   # "train": the authors' --test-with-train (all training images)
    data_seed: int = 0                      # chooses the subsets (fixed across training seeds)
    augment: bool | str = True              # True: random crop (pad 4) + horizontal flip; "flip": flip only
    eval_every: int = 1                     # epochs between metric evaluations (the last epoch always)
    eval_batch: int = 500
    seed: int = 0                           # initialisation, data order, augmentation, dropout, label noise

    # fields that fix the main path; the others may change between stages
    MAIN_FIELDS = ("arch", "width", "batch_norm", "dropout", "init", "loss", "label_noise", "lr", "momentum",
                   "weight_decay", "batch_size", "epochs", "ckpt_every", "train_size", "train_per_class",
                   "test_size", "data_seed", "augment", "eval_every", "seed", "classes", "draw", "test_on")
    # ... and, with those, a subpath
    SUBPATH_FIELDS = MAIN_FIELDS + ("decay_factor", "subpath_epochs")

    def __post_init__(self):
        if isinstance(self.decay_epochs, (list, tuple)):
            self.decay_epochs = tuple(int(e) if isinstance(e, (int, np.integer)) or
                                      (isinstance(e, float) and e.is_integer()) else e for e in self.decay_epochs)

    def validate(self, n_train: int | None = None) -> "TrainConfig":
        """Raise a one-line ``ValueError`` naming the parameter and its accepted range; returns ``self``."""
        def need(ok, name, rng):
            if not ok:
                raise ValueError(f"{name}: expected {rng}, got {getattr(self, name)!r}")

        def is_int(v):
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        def is_num(v):
            return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)

        need(self.arch in ARCHS, "arch", f"one of {ARCHS}")
        need(self.loss in LOSSES, "loss", f"one of {LOSSES}")
        need(self.init in INITS, "init", f"one of {INITS}")
        need(isinstance(self.batch_norm, bool), "batch_norm", "true or false")
        need(isinstance(self.augment, bool) or self.augment == "flip", "augment",
             'true (crop + flip), false or "flip" (horizontal flip only)')
        need(is_num(self.width) and 0 < self.width <= 16, "width", "a multiplier in (0, 16]")
        need(is_num(self.dropout) and 0 <= self.dropout < 1, "dropout", "a probability in [0, 1)")
        need(is_num(self.label_noise) and 0 <= self.label_noise <= 10, "label_noise", "a noise scale in [0, 10]")
        if self.label_noise > 0 and self.loss not in SQUARED_LOSSES:
            raise ValueError(f"label_noise: Gaussian label noise needs a squared loss {SQUARED_LOSSES}, "
                             f"got loss {self.loss!r}")
        need(is_num(self.lr) and 0 < self.lr <= 10, "lr", "a learning rate in (0, 10]")
        need(is_num(self.momentum) and 0 <= self.momentum < 1, "momentum", "a value in [0, 1)")
        need(is_num(self.weight_decay) and 0 <= self.weight_decay < 1, "weight_decay", "a value in [0, 1)")
        need(is_num(self.decay_factor) and 0 < self.decay_factor <= 1, "decay_factor", "a factor in (0, 1]")
        for name in ("batch_size", "epochs", "ckpt_every", "eval_every", "eval_batch"):
            need(is_int(getattr(self, name)) and getattr(self, name) >= 1, name, "an integer >= 1")
        for name in ("seed", "data_seed"):
            need(is_int(getattr(self, name)) and 0 <= getattr(self, name) < 2 ** 63, name, "an integer >= 0")
        need(self.classes is None or (is_int(self.classes) and 2 <= self.classes <= NUM_CLASSES), "classes",
             f"an integer in 2..{NUM_CLASSES} (the first k classes) or none")
        need(self.draw in D.DRAWS, "draw", f"one of {D.DRAWS}")
        need(self.test_on in D.TEST_ON, "test_on", f"one of {D.TEST_ON}")
        if self.draw == "authors" and self.train_per_class is None:
            raise ValueError("draw: the authors' draw takes train_per_class (images per class; train_size none)")
        for name in ("train_size", "train_per_class", "test_size"):
            v = getattr(self, name)
            need(v is None or (is_int(v) and v >= 1), name, "an integer >= 1 or none")
        if self.train_size is not None and self.train_per_class is not None:
            raise ValueError("train_size, train_per_class: give at most one (the other must be none)")
        if not isinstance(self.decay_epochs, tuple) or not all(is_int(e) for e in self.decay_epochs):
            raise ValueError(f"decay_epochs: expected a list of integer epochs, got {self.decay_epochs!r}")
        need(self.subpath_epochs is None or (is_int(self.subpath_epochs) and self.subpath_epochs >= 1),
             "subpath_epochs", "an integer >= 1 or none (none: every subpath ends at the main path's end)")
        last = self.epochs if self.subpath_epochs is not None else self.epochs - 1
        for e in self.decay_epochs:
            if not 1 <= e <= last:
                where = (f"a subpath branches from a main-path checkpoint, the last at epoch {self.epochs}"
                         if self.subpath_epochs is not None else
                         f"a subpath runs from its decay epoch to the main path's end, epoch {self.epochs}")
                raise ValueError(f"decay_epochs: every decay epoch must lie in 1..{last} ({where}), got {e}")
        if len(set(self.decay_epochs)) != len(self.decay_epochs):
            raise ValueError(f"decay_epochs: each epoch at most once, got {list(self.decay_epochs)}")
        if n_train is not None:
            need(self.batch_size <= n_train, "batch_size", f"an integer in 1..{n_train} (the training-set size)")
            spe = n_train // self.batch_size
            for e in self.decay_epochs:
                if (e * spe) % self.ckpt_every:
                    raise ValueError(
                        f"decay_epochs: epoch {e} ends at step {e * spe}, which is not a checkpoint (every "
                        f"{self.ckpt_every} steps, {spe} steps per epoch); choose epochs that are multiples "
                        f"of {self.ckpt_every // math.gcd(self.ckpt_every, spe)}")
        return self

    def steps_per_epoch(self, n_train: int) -> int:
        return n_train // self.batch_size

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES if self.classes is None else int(self.classes)

    def subpath_end(self, decay_epoch: int) -> int:
        """The epoch at which the subpath decayed at ``decay_epoch`` ends: the main path's end (equal budget)
        or ``decay_epoch + subpath_epochs`` (the authors' fixed-length branches)."""
        return self.epochs if self.subpath_epochs is None else int(decay_epoch) + self.subpath_epochs

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"train config: unknown keys {sorted(unknown)}; known keys {sorted(known)}")
        return cls(**d)


def config_diff(stored: dict, requested: dict, names) -> dict:
    """``{field: (stored, requested)}`` for the ``names`` whose values differ (tuples compare as lists)."""
    return {k: (stored.get(k, "<absent>"), requested.get(k)) for k in names
            if _norm(stored.get(k, "<absent>")) != _norm(requested.get(k))}


def _norm(v):
    if isinstance(v, (tuple, list)):
        return [_norm(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


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


def ckpt_path(path_dir: Path, step: int) -> Path:
    return Path(path_dir) / f"ckpt_{step:09d}.pt"


def list_checkpoints(path_dir: Path) -> list[tuple[int, Path]]:
    """``(step, file)`` of every checkpoint in ``path_dir``, by step."""
    path_dir = Path(path_dir)
    if not path_dir.is_dir():
        return []
    out = [(int(m.group(1)), p) for p in path_dir.iterdir() if (m := CKPT_RE.match(p.name))]
    return sorted(out)


def save_checkpoint(path: Path, state: dict) -> Path:
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, device="cpu") -> dict:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise ValueError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); delete it to resume "
                         f"from the one before") from exc


def write_metrics_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS)
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in METRIC_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def make_model(cfg: TrainConfig, device="cpu", seed: int | None = None, channels_last: bool = True):
    """The configured network (initialised from ``seed``, default ``cfg.seed``) on ``device``."""
    model = build_model(cfg.arch, cfg.width, cfg.batch_norm, cfg.dropout, num_classes=cfg.num_classes,
                        seed=cfg.seed if seed is None else seed, init=cfg.init)
    return model.to(device, memory_format=torch.channels_last) if channels_last else model.to(device)


def make_optimizer(cfg: TrainConfig, params, lr: float) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def path_generator(seed: int, device) -> torch.Generator:
    """The path's random stream, seeded from ``SeedSequence(seed)`` (a subpath inherits the main path's state)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(np.random.SeedSequence(int(seed)).generate_state(1)[0]))
    return gen


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


@dataclass(frozen=True)
class Runtime:
    """How to compute, not what: options that change speed and float rounding, never the experiment.

    ``compile``: ``torch.compile`` the network of a sequential path (its training step; evaluation runs
    eagerly). ``bf16``: forward passes of training steps under ``torch.autocast(dtype=torch.bfloat16)``
    (CUDA), the loss in float32; evaluation and curvature stay in float32. Recorded in every result's
    provenance.
    """

    compile: bool = False
    bf16: bool = False

    def autocast(self, device):
        dev = torch.device(device)
        return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.bf16)


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


def check_stored(stored: dict, cfg: TrainConfig, names, what: str, lr: float | None = None,
                 stored_lr: float | None = None) -> None:
    """Refuse ``stored`` (a checkpoint's or result's configuration) when it differs from ``cfg`` on ``names``."""
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    diff = config_diff(defaults | stored, cfg.to_dict(), names)   # a field added later: its default
    if lr is not None and stored_lr is not None and not math.isclose(lr, stored_lr, rel_tol=1e-12):
        diff["lr of this path"] = (stored_lr, lr)
    if diff:
        shown = ", ".join(f"{k} (stored {a!r}, requested {b!r})" for k, (a, b) in diff.items())
        raise ValueError(f"{what} was made with another configuration: {shown}; use a fresh output directory "
                         f"or delete {what}")


def resume(path_dir, cfg: TrainConfig, *, lr: float, end_epoch: int, start: dict | None, check_fields,
           device) -> tuple[dict | None, dict | None]:
    """Where the path in ``path_dir`` (created if needed) stands, for the sequential and the batched trainers:
    ``(result, None)`` when it is finished (its ``result.json``), else ``(None, snapshot)`` with the state to
    continue from — its newest checkpoint, or ``start`` when it has none (``None``: a fresh model).

    A stored result or checkpoint whose configuration differs from ``cfg`` on ``check_fields``, or whose rate
    differs from ``lr``, is refused (:func:`check_stored`), and so is a result that ends at another epoch."""
    path_dir = Path(path_dir)
    path_dir.mkdir(parents=True, exist_ok=True)
    done = path_dir / "result.json"
    if done.exists():
        old = load_json(done)
        check_stored(old.get("config", {}), cfg, check_fields, str(done), lr, old.get("lr"))
        if old.get("end_epoch") != end_epoch:
            raise ValueError(f"epochs: {done} ends at epoch {old.get('end_epoch')}, the configuration asks for "
                             f"{end_epoch}; use a fresh output directory")
        return old, None
    ckpts = list_checkpoints(path_dir)
    if not ckpts:
        return None, start
    snapshot = load_checkpoint(ckpts[-1][1], device)
    check_stored(snapshot.get("config", {}), cfg, check_fields, str(ckpts[-1][1]), lr, snapshot.get("lr"))
    return None, snapshot


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


def subpath_dir(out_dir, epoch: int) -> Path:
    return Path(out_dir) / f"sub_e{int(epoch):06d}"


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


# ----------------------------------------------------------------------------- the run directory's configuration
def _refuse_orphans(out_dir) -> None:
    """Checkpoints without ``config.json`` belong to an unknown run: refuse them."""
    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists():
        return
    dirs = [out_dir / "main"] + sorted(out_dir.glob("sub_e*"))
    if any(list_checkpoints(d) for d in dirs):
        raise ValueError(f"out: {out_dir} holds checkpoints but no config.json (an interrupted or foreign run); "
                         "use a fresh output directory or delete its main/ and sub_e*/ folders")


def save_config(out_dir, cfg: TrainConfig, extra: dict | None = None, n_train: int | None = None) -> dict:
    """Validate ``cfg``, then write ``out/config.json`` (under the directory's lock).

    Refused (nothing written): an invalid configuration; a directory with checkpoints but no
    ``config.json``; a stored main path with another configuration (the differing fields are named).
    """
    cfg.validate(n_train)
    out_dir = Path(out_dir)
    with DirectoryLock(out_dir, "out"):
        p = out_dir / "config.json"
        _refuse_orphans(out_dir)
        new = {"train": cfg.to_dict()} | (extra or {})
        if p.exists():
            old = load_json(p)
            if list_checkpoints(out_dir / "main"):
                check_stored(old.get("train", {}), cfg, TrainConfig.MAIN_FIELDS, str(p))
            new = old | new
        save_json(p, new)
        return new


def load_config(out_dir) -> tuple[TrainConfig, dict]:
    p = Path(out_dir) / "config.json"
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: start with 'lrdecay empirics main --out {out_dir}' "
                                "or 'lrdecay empirics profile'")
    d = load_json(p)
    return TrainConfig.from_dict(d["train"]), d
