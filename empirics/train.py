r"""The training experiment: a main path at a large constant learning rate, and decayed subpaths.

Main path: SGD with momentum and weight decay (torch's ``SGD``:
:math:`b \leftarrow \mu b + \nabla L_B(\theta) + \lambda\theta`, :math:`\theta \leftarrow \theta - \eta b`)
at the constant rate :math:`\eta` for ``epochs`` epochs; its full state is saved every ``ckpt_every``
steps. Subpath ``e``: the same run continued from the main-path checkpoint at the end of epoch ``e``
(weights, momentum buffers and the random stream) with :math:`\eta' = \text{decay\_factor}\cdot\eta`
for ``subpath_epochs`` epochs — i.e. the run whose learning rate steps down at epoch ``e``. Later
decay is expected to end at a lower test loss (THEORY.md §4).

The loop below is the whole experiment, top to bottom: the data are uint8 tensors on the device; each
epoch draws a permutation, each step a batch, its random crops and flips and its dropout masks, all from
one ``torch.Generator`` owned by the run. A checkpoint stores the model, the optimizer, that
generator's state, the epoch's permutation, the position in it and the metrics so far, and is written
atomically; a run killed at any point restarts from its last checkpoint and, on the CPU, reproduces the
uninterrupted run bit for bit.

Layout of a run directory ``out/``::

    config.json                   the configuration (train + landscape) and data description
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
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from theory.io import atomic_write_bytes, atomic_write_text, load_json, save_json

from . import data as D
from .vgg import ARCHS, LOSSES, build_model, loss_fn

METRIC_COLUMNS = ("epoch", "step", "lr", "running_train_loss", "train_loss", "train_acc", "test_loss",
                  "test_acc", "wall_s")
CKPT_RE = re.compile(r"^ckpt_(\d{9})\.pt$")


@dataclass
class TrainConfig:
    """Everything that determines the main path and the subpaths (with the seed)."""

    arch: str = "slim_vgg11"
    width: float = 1.0
    batch_norm: bool = False
    dropout: float = 0.5
    loss: str = "mse"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 125
    epochs: int = 3000                      # main-path length
    ckpt_every: int = 400                   # steps between checkpoints
    decay_epochs: tuple = tuple(range(2000, 3001, 100))
    decay_factor: float = 0.1
    subpath_epochs: int = 300               # budget of every subpath
    train_size: int | None = 5000           # class-balanced subset size (None: all images)
    train_per_class: int | None = None      # exact per-class count instead of train_size
    test_size: int | None = None            # None: the whole test set
    augment: bool = True                    # random crop (pad 4) + horizontal flip
    eval_every: int = 1                     # epochs between metric evaluations (the last epoch always)
    eval_batch: int = 500
    seed: int = 0

    # fields that fix the main path; the rest may change between stages
    MAIN_FIELDS = ("arch", "width", "batch_norm", "dropout", "loss", "lr", "momentum", "weight_decay",
                   "batch_size", "epochs", "ckpt_every", "train_size", "train_per_class", "test_size",
                   "augment", "eval_every", "seed")

    def __post_init__(self):
        self.decay_epochs = tuple(int(e) for e in self.decay_epochs)

    def validate(self, n_train: int | None = None) -> "TrainConfig":
        """Raise ``ValueError`` naming the parameter and its accepted range; returns ``self``."""
        def need(ok, name, rng):
            if not ok:
                raise ValueError(f"{name}: expected {rng}, got {getattr(self, name)!r}")

        need(self.arch in ARCHS, "arch", f"one of {ARCHS}")
        need(self.loss in LOSSES, "loss", f"one of {LOSSES}")
        need(0 < self.width <= 16, "width", "a multiplier in (0, 16]")
        need(0 <= self.dropout < 1, "dropout", "a probability in [0, 1)")
        need(0 < self.lr <= 10 and math.isfinite(self.lr), "lr", "a learning rate in (0, 10]")
        need(0 <= self.momentum < 1, "momentum", "a value in [0, 1)")
        need(0 <= self.weight_decay < 1, "weight_decay", "a value in [0, 1)")
        need(0 < self.decay_factor <= 1, "decay_factor", "a factor in (0, 1]")
        for name in ("batch_size", "epochs", "ckpt_every", "eval_every", "eval_batch"):
            need(int(getattr(self, name)) == getattr(self, name) and getattr(self, name) >= 1, name, "an integer >= 1")
        need(self.subpath_epochs >= 1, "subpath_epochs", "an integer >= 1")
        if n_train is not None:
            need(self.batch_size <= n_train, "batch_size", f"an integer in 1..{n_train} (the training-set size)")
            spe = n_train // self.batch_size
            for e in self.decay_epochs:
                if not 1 <= e <= self.epochs:
                    raise ValueError(f"decay_epochs: every decay epoch must lie in 1..{self.epochs} (the main "
                                     f"path's length), got {e}")
                if (e * spe) % self.ckpt_every and e != self.epochs:
                    raise ValueError(
                        f"decay_epochs: epoch {e} ends at step {e * spe}, which is not a checkpoint (every "
                        f"{self.ckpt_every} steps, {spe} steps per epoch); choose epochs that are multiples "
                        f"of {self.ckpt_every // math.gcd(self.ckpt_every, spe)}, or the last epoch")
        return self

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"train config: unknown keys {sorted(unknown)}; known keys {sorted(known)}")
        return cls(**d)


# ----------------------------------------------------------------------------- helpers
def select_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' requested but no CUDA device is available; accepted: auto, cpu, cuda")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device: expected auto, cpu, cuda or cuda:N, got {name!r}") from exc


def load_data(cfg: TrainConfig, data_dir=None, device="cpu", source: str = "auto", download: bool = False):
    """CIFAR-10 tensors on ``device``, class-balanced subsets chosen by ``cfg.seed``."""
    arrays = D.load_cifar10(data_dir, source=source, download=download)
    return D.to_tensors(arrays, device, cfg.train_size, cfg.train_per_class, cfg.test_size, seed=cfg.seed)


@torch.no_grad()
def evaluate(model, x, y, loss: str, batch: int = 500) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` (evaluation mode) on uint8 images ``x`` with labels ``y``."""
    lossf = loss_fn(loss)
    was = model.training
    model.eval()
    tot_loss = torch.zeros((), device=x.device, dtype=torch.float64)
    tot_acc = torch.zeros((), device=x.device, dtype=torch.float64)
    for i in range(0, len(y), batch):
        out = model(D.normalize(x[i:i + batch]))
        yb = y[i:i + batch]
        tot_loss += lossf(out, yb).double() * len(yb)
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


# ----------------------------------------------------------------------------- the loop
def train_path(path_dir, cfg: TrainConfig, data: D.CifarTensors, *, lr: float, end_epoch: int,
               start: dict | None = None, progress: bool = True, tensorboard: bool = False,
               on_step=None, label: str = "main", meta: dict | None = None) -> dict:
    """Train one path in ``path_dir`` up to the end of epoch ``end_epoch``, resuming if it can.

    ``start`` is the state to begin from when ``path_dir`` holds no checkpoint (``None``: a fresh model
    seeded by ``cfg.seed``). ``on_step(step)`` is called after every optimizer step (tests use it to
    interrupt a run). ``meta`` is stored in every checkpoint and in the result. Returns the path's
    result (also saved as ``result.json``).
    """
    from tqdm.auto import tqdm

    path_dir = Path(path_dir)
    path_dir.mkdir(parents=True, exist_ok=True)
    done = path_dir / "result.json"
    if done.exists():
        return load_json(done)
    dev = data.device
    n = len(data.y_train)
    spe = n // cfg.batch_size                      # steps per epoch (the last partial batch is dropped)
    lossf = loss_fn(cfg.loss)

    # --- state: the newest checkpoint here, else ``start``, else a fresh model
    model = build_model(cfg.arch, cfg.width, cfg.batch_norm, cfg.dropout, seed=cfg.seed)
    model = model.to(dev, memory_format=torch.channels_last)  # matches D.normalize's layout
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(np.random.SeedSequence(cfg.seed).generate_state(1)[0]))
    ckpts = list_checkpoints(path_dir)
    state = load_checkpoint(ckpts[-1][1], dev) if ckpts else start
    if state is None:
        step, epoch, pos, perm, run_sum, run_cnt, metrics = 0, 0, 0, None, 0.0, 0, []
    else:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"].cpu())
        step, epoch, pos = state["step"], state["epoch"], state["pos"]
        perm = state["perm"].to(dev) if state["perm"] is not None else None
        run_sum, run_cnt, metrics = state["run_sum"], state["run_cnt"], list(state["metrics"])
    run_sum = torch.tensor(float(run_sum), dtype=torch.float64, device=dev)
    for g in opt.param_groups:                     # a subpath starts from the main path's optimizer
        g["lr"] = lr
    model.set_generator(gen)
    model.train()
    wall0 = time.perf_counter() - (metrics[-1]["wall_s"] if metrics else 0.0)

    def snapshot() -> dict:
        return {"step": step, "epoch": epoch, "pos": pos, "perm": None if perm is None else perm.cpu(),
                "model": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                "run_sum": run_sum.item(), "run_cnt": run_cnt, "metrics": metrics, "lr": lr, "label": label,
                "meta": meta or {}, "config": cfg.to_dict()}

    if state is None:
        save_checkpoint(ckpt_path(path_dir, 0), snapshot())   # the initialisation is a trajectory point
    tb = _TensorBoard(path_dir / "tb" if tensorboard else None, label)
    bar = tqdm(total=end_epoch, initial=epoch, desc=label, unit="ep", disable=not progress, leave=False)

    while epoch < end_epoch:
        if pos == 0:
            perm = torch.randperm(n, generator=gen, device=dev)
        while pos < spe:
            idx = perm[pos * cfg.batch_size:(pos + 1) * cfg.batch_size]
            xb = data.x_train[idx]
            if cfg.augment:
                xb = D.augment(xb, gen)
            loss = lossf(model(D.normalize(xb)), data.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            pos += 1
            run_sum += loss.detach().double()
            run_cnt += 1
            if step % cfg.ckpt_every == 0 and pos < spe:
                save_checkpoint(ckpt_path(path_dir, step), snapshot())
            if on_step is not None:
                on_step(step)
        epoch += 1
        pos = 0
        if not torch.isfinite(run_sum):
            raise FloatingPointError(f"{label}: the training loss diverged in epoch {epoch} (lr {lr}); "
                                     "lower lr or use batch_norm")
        if epoch % cfg.eval_every == 0 or epoch == end_epoch:
            tr_loss, tr_acc = evaluate(model, data.x_train, data.y_train, cfg.loss, cfg.eval_batch)
            te_loss, te_acc = evaluate(model, data.x_test, data.y_test, cfg.loss, cfg.eval_batch)
            row = {"epoch": epoch, "step": step, "lr": lr, "running_train_loss": run_sum.item() / max(run_cnt, 1),
                   "train_loss": tr_loss, "train_acc": tr_acc, "test_loss": te_loss, "test_acc": te_acc,
                   "wall_s": round(time.perf_counter() - wall0, 3)}
            metrics.append(row)
            run_sum.zero_()
            run_cnt = 0
            write_metrics_csv(path_dir / "metrics.csv", metrics)
            tb.log(row)
            bar.set_postfix(train=f"{tr_loss:.4f}", test=f"{te_loss:.4f}", acc=f"{te_acc:.3f}")
        bar.update(1)
        if step % cfg.ckpt_every == 0 or epoch == end_epoch:
            save_checkpoint(ckpt_path(path_dir, step), snapshot())
    bar.close()
    tb.close()
    result = {"label": label, "meta": meta or {}, "lr": lr, "end_epoch": end_epoch, "steps": step, "steps_per_epoch": spe,
              "final": metrics[-1] if metrics else None, "metrics": metrics, "config": cfg.to_dict(),
              "seed": cfg.seed, "data": data.info}
    save_json(done, result)
    return result


def subpath_dir(out_dir, epoch: int) -> Path:
    return Path(out_dir) / f"sub_e{int(epoch):06d}"


def run_main(out_dir, cfg: TrainConfig, data: D.CifarTensors, progress=True, tensorboard=False, on_step=None) -> dict:
    """The main path: ``cfg.epochs`` epochs at ``cfg.lr``, checkpoints every ``cfg.ckpt_every`` steps."""
    cfg.validate(len(data.y_train))
    return train_path(Path(out_dir) / "main", cfg, data, lr=cfg.lr, end_epoch=cfg.epochs, progress=progress,
                      tensorboard=tensorboard, on_step=on_step, label="main")


def run_subpaths(out_dir, cfg: TrainConfig, data: D.CifarTensors, decay_epochs=None, progress=True,
                 tensorboard=False) -> list[dict]:
    """One subpath per decay epoch, each from the main-path checkpoint at the end of that epoch."""
    cfg.validate(len(data.y_train))
    out_dir = Path(out_dir)
    spe = len(data.y_train) // cfg.batch_size
    lr = cfg.lr * cfg.decay_factor
    results = []
    for e in (cfg.decay_epochs if decay_epochs is None else decay_epochs):
        e = int(e)
        src = ckpt_path(out_dir / "main", e * spe)
        if not src.exists():
            raise FileNotFoundError(f"subpath at epoch {e}: main-path checkpoint {src} not found; run the main "
                                    "path first (lrdecay empirics main)")
        sub = subpath_dir(out_dir, e)
        done = sub / "result.json"
        if done.exists():
            old = load_json(done)
            if old["end_epoch"] != e + cfg.subpath_epochs or not math.isclose(old["lr"], lr):
                raise ValueError(f"subpath_epochs/decay_factor: {sub} was run with lr {old['lr']} to epoch "
                                 f"{old['end_epoch']}, the configuration now asks for lr {lr} to epoch "
                                 f"{e + cfg.subpath_epochs}; delete {sub} to rerun it")
        start = None
        if not list_checkpoints(sub):
            start = load_checkpoint(src, data.device)
            start.update(metrics=[], run_sum=0.0, run_cnt=0)
        results.append(train_path(sub, cfg, data, lr=lr, end_epoch=e + cfg.subpath_epochs, start=start,
                                  progress=progress, tensorboard=tensorboard, label=f"decay@{e}",
                                  meta={"decay_epoch": e, "branch_step": e * spe}))
    return results


def save_config(out_dir, cfg: TrainConfig, extra: dict | None = None) -> dict:
    """Write ``out/config.json``; refuse if it holds a different main path (the checkpoints would not match)."""
    out_dir = Path(out_dir)
    p = out_dir / "config.json"
    new = {"train": cfg.to_dict()} | (extra or {})
    if p.exists():
        old = load_json(p)
        old_t = old.get("train", {})
        diff = {k: (old_t.get(k), v) for k, v in cfg.to_dict().items()
                if k in TrainConfig.MAIN_FIELDS and _norm(old_t.get(k)) != _norm(v)}
        if diff and list_checkpoints(out_dir / "main"):
            raise ValueError(f"out: {out_dir} already holds a main path with another configuration "
                             f"(field: (stored, requested)) {diff}; use a fresh output directory")
        new = old | new
    save_json(p, new)
    return new


def _norm(v):
    return list(v) if isinstance(v, tuple) else v


def load_config(out_dir) -> tuple[TrainConfig, dict]:
    p = Path(out_dir) / "config.json"
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: start with 'lrdecay empirics main --out {out_dir}' "
                                "or 'lrdecay empirics profile'")
    d = load_json(p)
    return TrainConfig.from_dict(d["train"]), d
