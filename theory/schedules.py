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


# --------------------------------------------------------------------------------------------------
# Cyclic schedules
# --------------------------------------------------------------------------------------------------

@dataclass
class Triangular(Schedule):
    """Triangular cyclic learning rate (Smith 2017): linear between ``eta_min`` and ``eta`` with period
    ``2 half_period``. With ``x = (k mod 2h) / h`` and ``f = x`` for ``x < 1``, ``2 - x`` otherwise,
    ``eta_k = eta_min + (eta - eta_min) f`` (``start = "low"``) or ``eta - (eta - eta_min) f`` (``"high"``)."""

    eta: float
    half_period: int
    eta_min: float = 0.0
    start: str = "low"

    def __post_init__(self):
        self.eta = _pos("eta", self.eta)
        self.half_period = integer("half_period", self.half_period, 1)
        self.eta_min = float(self.eta_min)
        if not (0 <= self.eta_min <= self.eta):
            raise ValueError(f"eta_min must be in [0, eta] = [0, {self.eta}], got {self.eta_min!r}")
        if self.start not in ("low", "high"):
            raise ValueError(f"start must be one of ('low', 'high'), got {self.start!r}")

    def _eta(self, s):
        h = self.half_period
        x = (s % (2 * h)) / h
        f = np.where(x < 1, x, 2 - x)
        if self.start == "high":
            f = 1 - f
        return self.eta_min + (self.eta - self.eta_min) * f


@dataclass
class CosineWarmRestarts(Schedule):
    """Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter 2017): cycle ``i`` lasts
    ``T_i = round(period * period_mult^i)`` steps and, ``t`` steps into it,
    ``eta_k = eta_min + (eta - eta_min) (1 + cos(pi t / T_i)) / 2``."""

    eta: float
    period: int
    period_mult: float = 1.0
    eta_min: float = 0.0

    def __post_init__(self):
        self.eta = _pos("eta", self.eta)
        self.period = integer("period", self.period, 1)
        self.period_mult = float(self.period_mult)
        if not (1.0 <= self.period_mult <= 16.0):
            raise ValueError(f"period_mult must be in [1, 16], got {self.period_mult!r}")
        self.eta_min = float(self.eta_min)
        if not (0 <= self.eta_min <= self.eta):
            raise ValueError(f"eta_min must be in [0, eta] = [0, {self.eta}], got {self.eta_min!r}")

    def _starts(self, top: int) -> np.ndarray:
        starts, length, k = [0], float(self.period), 0
        while starts[-1] <= top:
            k += 1
            starts.append(starts[-1] + max(1, int(round(self.period * self.period_mult ** (k - 1)))))
        return np.asarray(starts, dtype=np.int64)

    def _eta(self, s):
        starts = self._starts(int(np.max(s)) if np.size(s) else 0)
        i = np.searchsorted(starts, s, side="right") - 1
        t = s - starts[i]
        T = starts[i + 1] - starts[i]
        return self.eta_min + (self.eta - self.eta_min) * 0.5 * (1 + np.cos(np.pi * t / T))


@dataclass
class OneCycle(Schedule):
    """One-cycle policy (Smith & Topin 2019; the two-phase cosine form of ``torch.optim.lr_scheduler.OneCycleLR``):
    from ``eta / div_factor`` up to ``eta`` over the first ``pct_start`` of ``total_steps``, then down to
    ``eta / (div_factor final_div_factor)`` at step ``total_steps - 1``, each phase by
    ``end + (start - end) (1 + cos(pi p)) / 2`` with ``p`` the fraction of the phase done; constant afterwards."""

    eta: float
    total_steps: int
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4

    def __post_init__(self):
        self.eta = _pos("eta", self.eta)
        self.total_steps = integer("total_steps", self.total_steps, 2)
        self.pct_start = float(self.pct_start)
        if not (0 < self.pct_start < 1):
            raise ValueError(f"pct_start must be in the open interval (0, 1), got {self.pct_start!r}")
        if _pos("div_factor", self.div_factor) < 1 or _pos("final_div_factor", self.final_div_factor) < 1:
            raise ValueError("div_factor and final_div_factor must be >= 1")

    def _eta(self, s):
        lo = self.eta / self.div_factor
        end = lo / self.final_div_factor
        up_end = float(self.pct_start * self.total_steps) - 1
        down_end = float(self.total_steps - 1)
        s = np.minimum(s, self.total_steps - 1).astype(float)

        def cos_anneal(a, b, p):
            return b + (a - b) * 0.5 * (1 + np.cos(np.pi * p))

        up = cos_anneal(lo, self.eta, np.clip(s / max(up_end, 1e-12), 0, 1))
        down = cos_anneal(self.eta, end, np.clip((s - up_end) / (down_end - up_end), 0, 1))
        return np.where(s <= up_end, up, down)


def drift_budget(schedule, total_steps: int) -> float:
    """``tau_S = sum_{k < total_steps} eta_k^2``: the drift time a schedule gives the quasistatic drift
    (``tau = eta^2 k`` at a constant rate), summed in blocks."""
    total_steps = integer("total_steps", total_steps, 0)
    sched = as_schedule(schedule)
    out = 0.0
    for a in range(0, total_steps, 1 << 20):
        ks = np.arange(a, min(total_steps, a + (1 << 20)))
        out += float(np.sum(np.broadcast_to(sched(ks), ks.shape) ** 2))
    return out
