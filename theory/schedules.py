"""Learning-rate schedules: plain callables ``step -> eta``.

Each schedule accepts an integer step or an integer array of steps (vectorised) and returns the
learning rate(s). Steps count from 0. Parameters are validated on construction with errors that
name the parameter and its accepted range.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from theory.validation import fraction, integer, positive


_pos = positive


def _nonneg_int(name, v):
    return integer(name, v, 0)


_fraction = fraction


class Schedule:
    """Base class: subclasses implement ``_eta(steps: int ndarray) -> ndarray``."""

    def __call__(self, step):
        s = np.asarray(step)
        if np.any(s < 0):
            raise ValueError(f"step must be >= 0, got {step!r}")
        out = self._eta(s.astype(np.int64))
        return float(out) if np.ndim(out) == 0 else out

    def describe(self) -> dict:
        return {"kind": type(self).__name__, **self.__dict__}


@dataclass
class Constant(Schedule):
    """``eta_k = eta``."""

    eta: float

    def __post_init__(self):
        self.eta = _pos("eta", self.eta)

    def _eta(self, s):
        return np.full(s.shape, self.eta) if s.ndim else np.float64(self.eta)


@dataclass
class StepDecay(Schedule):
    """``eta_k = eta`` for ``k < decay_step``, then ``eta * factor`` ("late decay" when decay_step is large)."""

    eta: float
    decay_step: int
    factor: float = 0.1

    def __post_init__(self):
        self.eta = _pos("eta", self.eta)
        self.decay_step = _nonneg_int("decay_step", self.decay_step)
        self.factor = _fraction("factor", self.factor)

    def _eta(self, s):
        return np.where(s < self.decay_step, self.eta, self.eta * self.factor)


@dataclass
class MultiStep(Schedule):
    """``eta_k = eta * factor^(number of milestones <= k)``; milestones strictly increasing."""

    eta: float
    milestones: list = field(default_factory=list)
    factor: float = 0.1

    def __post_init__(self):
        self.eta = _pos("eta", self.eta)
        ms = [_nonneg_int("milestones[i]", m) for m in self.milestones]
        if any(b <= a for a, b in zip(ms, ms[1:])):
            raise ValueError(f"milestones must be strictly increasing, got {ms}")
        self.milestones = ms
        self.factor = _fraction("factor", self.factor)

    def _eta(self, s):
        return self.eta * self.factor ** np.searchsorted(np.asarray(self.milestones), s, side="right")


@dataclass
class Cosine(Schedule):
    """``eta_k = eta_min + (eta - eta_min) (1 + cos(pi min(k, T)/T)) / 2`` over ``total_steps = T``."""

    eta: float
    total_steps: int
    eta_min: float = 0.0

    def __post_init__(self):
        self.eta = _pos("eta", self.eta)
        self.total_steps = _nonneg_int("total_steps", self.total_steps)
        if self.total_steps < 1:
            raise ValueError("total_steps must be an integer >= 1, got 0")
        self.eta_min = float(self.eta_min)
        if not (0 <= self.eta_min <= self.eta):
            raise ValueError(f"eta_min must be in [0, eta] = [0, {self.eta}], got {self.eta_min!r}")

    def _eta(self, s):
        frac = np.minimum(s, self.total_steps) / self.total_steps
        return self.eta_min + (self.eta - self.eta_min) * 0.5 * (1 + np.cos(np.pi * frac))


@dataclass
class WarmupStableDecay(Schedule):
    """Linear warm-up from ``eta * warmup_start`` over ``warmup_steps``, constant ``eta`` until
    ``decay_start``, then linear decay to ``eta * final_factor`` over ``decay_steps``, then constant."""

    eta: float
    warmup_steps: int
    decay_start: int
    decay_steps: int
    final_factor: float = 0.1
    warmup_start: float = 0.0

    def __post_init__(self):
        self.eta = _pos("eta", self.eta)
        self.warmup_steps = _nonneg_int("warmup_steps", self.warmup_steps)
        self.decay_start = _nonneg_int("decay_start", self.decay_start)
        self.decay_steps = _nonneg_int("decay_steps", self.decay_steps)
        if self.decay_start < self.warmup_steps:
            raise ValueError(f"decay_start must be >= warmup_steps = {self.warmup_steps}, got {self.decay_start}")
        self.final_factor = _fraction("final_factor", self.final_factor)
        self.warmup_start = float(self.warmup_start)
        if not (0 <= self.warmup_start <= 1):
            raise ValueError(f"warmup_start must be in [0, 1], got {self.warmup_start!r}")

    def _eta(self, s):
        s = s.astype(float)
        w = self.warmup_steps
        warm = self.warmup_start + (1 - self.warmup_start) * (s / w if w else 1.0)
        dec = 1 + (self.final_factor - 1) * np.clip((s - self.decay_start) / max(self.decay_steps, 1), 0, 1)
        if self.decay_steps == 0:
            dec = np.where(s >= self.decay_start, self.final_factor, 1.0)
        f = np.where(s < w, warm, np.where(s < self.decay_start, 1.0, dec))
        return self.eta * f


def as_schedule(lr) -> Schedule:
    """A number becomes :class:`Constant`; a callable is used as is."""
    if isinstance(lr, Schedule):
        return lr
    if callable(lr):
        return lr
    return Constant(lr)
