"""The training experiment's configuration: :class:`TrainConfig` (what is trained, validated with one-line
errors), :class:`Runtime` (how it is computed: compilation, bf16) and the comparison that refuses a stored
checkpoint or result made with another configuration. Re-exported by :mod:`lrdecay.empirics.train`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch

from . import data as D
from .vgg import ARCHS, INITS, LOSSES, SQUARED_LOSSES

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
