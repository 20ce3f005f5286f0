"""What a simulation returns: the per-path :class:`Status`, the stop rules (:class:`StopWhen`) and
the :class:`SimulationResult`.

:class:`Status` is the one spelling of a path's state, used by every backend (the compiled kernels
take their integer codes from it): while the engine runs, code 0 means *running*; a path that is
still running after the last step is ``COMPLETED``.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from lrdecay.theory import io
from lrdecay.theory.problem import Problem


class Status(enum.IntEnum):
    """A path's state, as an ``int8`` code while the engine runs and as its ``label`` in results.

    Each member carries ``label`` (the string in :attr:`SimulationResult.status`) and ``message``
    (what it means), after diffrax's ``RESULTS``.
    """

    COMPLETED = 0, "completed", "ran every step (code 0 also means: still running)"
    STOPPED = 1, "stopped", "a stop condition held (stop_loss, or a StopWhen with status 'stopped')"
    DIVERGED = 2, "diverged", "the train loss exceeded divergence_loss or a state was not finite"

    def __new__(cls, code: int, label: str, message: str):
        obj = int.__new__(cls, code)
        obj._value_ = code
        obj.label = label
        obj.message = message
        return obj

    @classmethod
    def parse(cls, status) -> "Status":
        """``status`` as a member: a member itself, or the label ``"stopped"`` or ``"diverged"``
        (the two a stop rule can set)."""
        if isinstance(status, cls):
            return status
        for member in (cls.STOPPED, cls.DIVERGED):
            if status == member.label:
                return member
        raise ValueError(f"status must be 'stopped' or 'diverged', got {status!r}")

    @classmethod
    def labels(cls, codes: np.ndarray) -> np.ndarray:
        """The labels of an array of codes, as the strings of :attr:`SimulationResult.status`."""
        return np.asarray(STATUSES)[codes]


#: the labels, indexed by code
STATUSES = tuple(s.label for s in Status)
#: the code of a running path (a path still running at the end has completed)
RUNNING = int(Status.COMPLETED)


@dataclass(frozen=True)
class StopWhen:
    """End a path when ``test`` holds.

    ``every_step=True``: ``test(loss, step) -> bool (P,)`` sees the train loss of the current state
    before each step; ``every_step=False``: ``test(obs, step)`` sees the dict of recorded observables at
    record steps. The path ends with ``status`` (``"stopped"`` or ``"diverged"``) at that step.
    """

    test: Callable
    every_step: bool = False
    status: str = "stopped"
    name: str = ""

    def __post_init__(self):
        Status.parse(self.status)          # refuse any other status before the run

    @property
    def code(self) -> Status:
        """:attr:`status` as a :class:`Status`."""
        return Status.parse(self.status)

    @property
    def builtin(self) -> bool:
        """Built from ``stop_loss`` or ``divergence_loss`` (the compiled backends test these themselves)."""
        return self.name.startswith(_BUILTIN_STOP)

    def mask(self, value, k: int, P: int) -> np.ndarray:
        """``test(value, k)`` as a bool array ``(P,)`` (one bool applies to every path); any other shape is
        refused with a ``ValueError`` naming the condition, before it could end the wrong paths."""
        hit = np.asarray(self.test(value, k), dtype=bool)
        if hit.shape not in ((), (P,)):
            name = self.name if self.name and not self.builtin else "stop_fn"
            raise ValueError(f"{name} must return one bool per path, shape ({P},) (or one bool for all paths), "
                             f"got shape {hit.shape}")
        return np.broadcast_to(hit, (P,))


_BUILTIN_STOP = "builtin:"   # name prefix of the conditions built from stop_loss and divergence_loss


def stop_conditions(stop_loss, stop_fn, divergence_loss) -> list[StopWhen]:
    """The stop rules of a call: divergence (every step), ``stop_loss`` (every step), ``stop_fn``."""
    div = float(divergence_loss)
    conds = [StopWhen(lambda loss, k: ~(np.isfinite(loss) & (loss <= div)), True, "diverged",
                      f"{_BUILTIN_STOP}train loss > {div:g} or not finite")]
    if stop_loss is not None:
        eps = float(stop_loss)
        conds.append(StopWhen(lambda loss, k: loss <= eps, True, "stopped", f"{_BUILTIN_STOP}train loss <= {eps:g}"))
    if stop_fn is not None:
        conds.append(stop_fn if isinstance(stop_fn, StopWhen) else StopWhen(stop_fn, False, "stopped", "stop_fn"))
    return conds


@dataclass
class SimulationResult(io.Result):
    """Records on a grid of steps, final states and per-path status.

    ``records[name]`` has shape ``(len(steps), P)``; a stopped or diverged path keeps its last state,
    so its later records repeat. ``status[p]`` is ``"completed"`` (ran all steps), ``"stopped"``
    (a stop condition held at ``stop_step[p]``) or ``"diverged"`` (non-finite or exploding loss at
    ``stop_step[p]``; ``W_final`` is the last finite state): the labels of :class:`Status`. ``times``
    are the records' times ``t_k = sum_{j<k} eta_j`` (``k dt`` for EM), per path ``(R, P)`` when the
    learning rate is. ``tau`` beside them are the records' drift times ``tau_k = sum_{j<k} eta_j^2``
    (``dt sum_{j<k} eta_j`` for EM), the clock of the quasistatic drift along M (``eta^2 k`` at a
    constant rate; compare with :func:`lrdecay.theory.quasistatic.drift_ode`), with the shape of
    ``times``; ``None`` in files saved before it was recorded. ``problem`` is the simulated instance
    when the model was a :class:`~lrdecay.theory.problem.Problem`.
    """

    KIND = "SimulationResult"

    steps: np.ndarray
    times: np.ndarray
    records: dict
    W_final: np.ndarray
    status: np.ndarray
    stop_step: np.ndarray
    message: str
    config: dict = field(default_factory=dict)
    wall_time: float = 0.0
    problem: Problem | None = None
    tau: np.ndarray | None = None

    @property
    def n_paths(self) -> int:
        return self.W_final.shape[0]

    @property
    def diverged(self) -> np.ndarray:
        return self.status == Status.DIVERGED.label

    def final(self, name: str) -> np.ndarray:
        """The last record of observable ``name`` for every path."""
        if name not in self.records:
            raise KeyError(f"no record named {name!r}; recorded: {sorted(self.records)}")
        return self.records[name][-1]

    def __repr__(self) -> str:
        return (f"SimulationResult({self.config.get('method', '?')}, {self.n_paths} paths, "
                f"{int(self.steps[-1]) if len(self.steps) else 0} steps, {len(self.steps)} records "
                f"of {sorted(self.records)}; {self.message})")


def summary(status: np.ndarray, stop_step: np.ndarray) -> str:
    """The result's message: how many paths ended how, and the first divergence."""
    P = len(status)
    counts = {s: int(np.sum(status == s)) for s in STATUSES}
    message = ", ".join(f"{v} {k}" for k, v in counts.items() if v) + f" of {P} paths"
    if counts[Status.DIVERGED.label]:
        first = int(stop_step[status == Status.DIVERGED.label].min())
        message += f"; first divergence at step {first} (lower the learning rate)"
    return message
