"""Learning-rate schedules: callables ``step -> eta``.

Each schedule accepts an integer step or an integer array of steps (vectorised) and returns the
learning rate(s). Steps count from 0. Parameters are validated on construction with errors that
name the parameter and its accepted range.

Any other callable is accepted too (:func:`as_schedule` wraps it in :class:`FunctionSchedule`): a
function written for one step, such as ``lambda k: 0.01 if k < 5000 else 0.001``, is evaluated step by
step when it fails on an array of steps or returns one number for it. The rates a schedule gives must be
finite and ``>= 0`` (:func:`checked_rates`); a result file stores a schedule by its parameters
(``describe()``), a plain function by its name and source.
"""
from __future__ import annotations

import inspect
import textwrap
import warnings
from dataclasses import dataclass, field

import numpy as np

from lrdecay.theory.validation import fraction, integer, positive


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


#: what a schedule must be, for error messages
SCHEDULE_CONTRACT = ("a schedule is a callable that takes a step k = 0, 1, ... (an int, or an integer array of "
                     "steps) and returns the learning rate(s) eta_k: finite numbers >= 0")


class FunctionSchedule(Schedule):
    """A plain callable ``fn(step) -> eta`` used as a schedule.

    At the first call with two or more steps, ``fn`` is tried on the whole integer array of steps. It is used
    vectorised when it returns an array of that shape that agrees with step-by-step calls at the first, middle
    and last step; a function that raises on an array or returns a single number for it (``lambda k: 0.01 if
    k < 5000 else 0.001``) is evaluated step by step (``fn(int(k))``), which is slower but exact. A function
    that returns an array disagreeing with its own step-by-step values is refused. ``describe()`` stores the
    function's name and source (a warning says when the source cannot be read, so that only the name is
    stored)."""

    def __init__(self, fn):
        if not callable(fn):
            raise ValueError(f"lr: {fn!r} is not callable; {SCHEDULE_CONTRACT}")
        self.fn = fn
        self.vectorised: bool | None = None      # decided at the first call with two or more steps
        self.name = schedule_name(fn)
        self.source = _source(fn)
        if self.source is None:
            warnings.warn(f"schedule {self.name}: its source cannot be read, so result files store its name only; "
                          "a Schedule subclass (lrdecay.theory.schedules) is stored with its parameters", stacklevel=3)

    def __repr__(self) -> str:
        return f"FunctionSchedule({self.name})"

    def describe(self) -> dict:
        return {"kind": "function", "name": self.name, "source": self.source}

    def _one(self, k: int) -> float:
        v = self.fn(int(k))
        try:
            return float(np.asarray(v, dtype=float).reshape(()))
        except (TypeError, ValueError):
            raise ValueError(f"lr: schedule {self.name} returned {v!r} at step {k}; {SCHEDULE_CONTRACT}") from None

    def _stepwise(self, s: np.ndarray) -> np.ndarray:
        return np.array([self._one(k) for k in s.ravel()], dtype=float).reshape(s.shape)

    def _try_array(self, s: np.ndarray):
        """``fn(s)`` as a float array of ``s``'s shape, or ``None`` when ``fn`` does not work on arrays."""
        try:
            out = np.asarray(self.fn(s), dtype=float)
        except Exception:       # noqa: BLE001 - any failure on an array means "a function of one step"
            return None
        return out if out.shape == s.shape else None

    def _eta(self, s):
        if s.ndim == 0:
            return np.float64(self._one(int(s)))
        if self.vectorised is False:
            return self._stepwise(s)
        out = self._try_array(s)
        if self.vectorised is None and s.size >= 2:
            if out is not None:
                flat, probe = out.ravel(), np.unique([0, s.size // 2, s.size - 1])
                one = [self._one(int(k)) for k in s.ravel()[probe]]
                if not np.allclose(flat[probe], one, rtol=1e-12, atol=0, equal_nan=True):
                    k = int(s.ravel()[probe][np.argmax(~np.isclose(flat[probe], one, rtol=1e-12, atol=0))])
                    raise ValueError(f"lr: schedule {self.name} gives other rates for an array of steps than step by "
                                     f"step (at step {k}); {SCHEDULE_CONTRACT}, elementwise for an array")
            self.vectorised = out is not None
        return out if out is not None else self._stepwise(s)


def schedule_name(fn) -> str:
    """A readable name of a callable: ``module.qualname`` for functions (``<lambda>`` included), the
    ``repr`` of other objects unless it is the default ``<… at 0x…>``, else the type's name."""
    if isinstance(fn, Schedule) and not isinstance(fn, FunctionSchedule):
        return repr(fn)
    if isinstance(fn, FunctionSchedule):
        return fn.name
    qual = getattr(fn, "__qualname__", None)
    if qual is not None:
        mod = getattr(fn, "__module__", None)
        return f"{mod}.{qual}" if mod and mod != "__main__" else qual
    text = repr(fn)
    return type(fn).__name__ if " at 0x" in text else text


def _source(fn) -> str | None:
    """The source text of a function (a lambda: the lines it is written on), dedented, at most 2000
    characters; the ``repr`` of a callable object that has a readable one; else ``None``."""
    if inspect.isfunction(fn) or inspect.ismethod(fn):
        try:
            text = textwrap.dedent(inspect.getsource(fn)).strip()
        except (OSError, TypeError):
            return None
        return text if len(text) <= 2000 else text[:1997] + "..."
    text = repr(fn)
    return None if " at 0x" in text else text


def as_schedule(lr) -> Schedule:
    """A number becomes :class:`Constant`, a :class:`Schedule` is used as is, any other callable is wrapped
    in :class:`FunctionSchedule`; anything else is refused with a message saying what a schedule is."""
    if isinstance(lr, Schedule):
        return lr
    if callable(lr):
        return FunctionSchedule(lr)
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)):
        raise ValueError(f"lr must be a number > 0 or a schedule, got {lr!r}; {SCHEDULE_CONTRACT}")
    return Constant(positive("lr", lr))


def checked_rates(schedule, steps: np.ndarray, name: str = "lr") -> np.ndarray:
    """``schedule(steps)`` broadcast to ``steps``' shape, refused unless every rate is finite and ``>= 0``:
    the message names the schedule (``name``: how the caller refers to it), the first bad step and value."""
    out = np.broadcast_to(np.asarray(schedule(steps), dtype=float), steps.shape)
    bad = ~(np.isfinite(out) & (out >= 0))
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        k, v = int(steps.ravel()[i]), float(out.ravel()[i])
        what = "a negative" if v < 0 else "a non-finite"
        raise ValueError(f"{name}: schedule {schedule_name(schedule)} gives {what} learning rate {v!r} at step {k}; "
                         "learning rates must be finite and >= 0")
    return out


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
        out += float(np.sum(checked_rates(sched, ks, "schedule") ** 2))
    return out
