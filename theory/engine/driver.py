r"""The one chunk loop: records, stream blocks, record-time stops, progress and trailing records,
written once for every backend.

A *backend* (:class:`Backend`) holds the state of one chunk of paths and supplies two operations:
``advance(k, K)`` runs steps ``k .. k + K - 1`` (all in the current stream block, none of them a
record step unless the backend keeps its own records) and ``observe()`` returns the observables of
the current states. :func:`run_chunk` drives it:

1. at a record step, observe, store the record row and apply the record-time stop rules;
2. make sure the stream block holding the next step is drawn (:meth:`Backend.horizon`);
3. advance to the end of the block, or to the next record step, whichever comes first;
4. after the last step (or once every path has ended), the remaining records are of the final states.

:class:`Streams` draws each path's random numbers and learning rates ahead in blocks of steps, the
same numbers in the same order for every backend that uses numpy's streams:
``SeedSequence(seed, spawn_key=(p, 0))`` for the noise and ``(p, 1)`` for the batches.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from lrdecay.theory.engine.records import Status, StopWhen

_BLOCK_BYTES = 16 * 2**20  # noise drawn in blocks of at most this many bytes per chunk


def path_generators(seed: int, paths: Sequence[int], stream: int):
    """One ``numpy.random.Generator`` per path index: ``SeedSequence(seed, spawn_key=(p, stream))``."""
    return [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(p), stream))) for p in paths]


@dataclass(frozen=True)
class Noise:
    """The resolved noise of a call: ``sigma`` (label noise), ``a`` and ``dt`` (em only), the minibatch
    size (``None``: full batch) and whether any noise is drawn."""

    sigma: float
    a: float | None
    dt: float | None
    batch_size: int | None
    noisy: bool


@dataclass(frozen=True)
class Plan:
    """What every chunk of one call shares: the method and its noise, the record grid, the stop rules,
    the observer and the random seed. ``kernel_obs``: the built-in observables a backend computes
    itself (``None``: the Python observer ``observe(W, model)``)."""

    method: str
    steps: int
    seed: int
    noise: Noise
    rec_steps: np.ndarray
    conditions: tuple[StopWhen, ...]
    observe: Callable
    divergence_loss: float
    stop_loss: float | None
    kernel_obs: tuple | None = None

    @property
    def at_records(self) -> list[StopWhen]:
        return [c for c in self.conditions if not c.every_step]

    @property
    def per_step(self) -> list[StopWhen]:
        return [c for c in self.conditions if c.every_step]


class Streams:
    """Each path's random numbers and learning rates, drawn ahead in blocks of steps. ``eta``, ``xi`` and
    ``idx`` hold steps ``k0 .. k0 + K - 1``, path-major (``(P, K)``, ``(P, K, q)``, ``(P, K, b)``); only the
    paths still running draw (a path's numbers do not depend on the others)."""

    def __init__(self, plan: Plan, rates, c0: int, c1: int, first_path: int, n: int | None, noise_dim: int):
        P = c1 - c0
        paths = range(first_path, first_path + P)
        b = plan.noise.batch_size
        self.rates, self.c0, self.c1, self.steps = rates, c0, c1, plan.steps
        self.noise_gens = path_generators(plan.seed, paths, 0) if plan.noise.noisy else None
        self.batch_gens = path_generators(plan.seed, paths, 1) if b is not None else None
        self.b, self.n = b, n
        self.q = b if b is not None else noise_dim
        self.block = max(1, min(plan.steps, _BLOCK_BYTES // max(1, 8 * P * max(self.q, 1))))
        self.P, self.k0, self.K = P, 0, 0
        self.xi = np.zeros((P, 1, 1))
        self.idx = np.zeros((P, 1, 1), dtype=np.int64)

    def cover(self, k: int, running: np.ndarray) -> bool:
        """Make sure step ``k`` is in the block (draws the next block for the ``running`` paths); returns
        whether a new block was drawn."""
        if self.k0 <= k < self.k0 + self.K:
            return False
        K = min(self.block, self.steps - k)
        self.k0, self.K = k, K
        self.eta = np.ascontiguousarray(self.rates.block(np.arange(k, k + K), self.c0, self.c1).T)
        live = np.flatnonzero(running)
        every = len(live) == self.P
        if self.noise_gens is not None:
            self.xi = np.empty((self.P, K, self.q)) if every else np.zeros((self.P, K, self.q))
            for p in live:
                self.noise_gens[p].standard_normal(out=self.xi[p])
        if self.batch_gens is not None:
            self.idx = np.zeros((self.P, K, self.b), dtype=np.int64)
            for p in live:
                self.idx[p] = np.argsort(self.batch_gens[p].random((K, self.n)), axis=1)[:, :self.b]
        return True

    @property
    def end(self) -> int:
        """The step after the block."""
        return self.k0 + self.K


class Backend:
    """The state of one chunk of ``P`` paths, as a backend holds it.

    Subclasses supply :meth:`advance` and :meth:`observe` and, where the state is not a numpy array,
    :meth:`any_running`, :meth:`end` and :meth:`finish`. ``status`` (``int8`` :class:`Status` codes,
    0 = running) and ``stop_step`` (``-1`` until a path ends) are per path. A backend with
    ``records_inline = True`` records the record steps it passes in :meth:`advance` itself (compiled
    observables, no Python in between) and returns the rows from :meth:`inline_records`.
    """

    records_inline = False

    def __init__(self, plan: Plan, P: int):
        self.plan, self.P = plan, P
        self.status = np.zeros(P, dtype=np.int8)
        self.stop_step = np.full(P, -1, dtype=np.int64)
        self.active = np.ones(P, dtype=bool)      # status == RUNNING, kept up to date by end()

    def running(self) -> np.ndarray:
        """The mask of the paths still running (do not modify it)."""
        return self.active

    def any_running(self) -> bool:
        return bool(self.running().any())

    def end(self, mask: np.ndarray, k: int, code: Status) -> None:
        """End the running paths of ``mask`` at step ``k`` with status ``code``."""
        mask = mask & self.active
        self.status[mask] = code
        self.stop_step[mask] = k
        self.active[mask] = False

    def horizon(self, k: int) -> int:
        """The step after the stream block holding step ``k`` (drawn now if it is not yet)."""
        raise NotImplementedError

    def advance(self, k: int, K: int) -> None:
        raise NotImplementedError

    def observe(self) -> dict:
        raise NotImplementedError

    def inline_records(self) -> dict:
        """The records kept by :meth:`advance`, after the remaining ones (of the final states) are added."""
        raise NotImplementedError

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The final states ``(P, dim)``, status codes and stop steps, as numpy arrays."""
        raise NotImplementedError


def run_chunk(backend: Backend, bar=None):
    """Run one chunk to the end (see the module docstring); returns its records, final states, status
    labels and stop steps."""
    plan, P = backend.plan, backend.P
    rec, steps = plan.rec_steps, plan.steps
    R = len(rec)
    inline = backend.records_inline
    at_records = plan.at_records
    records: dict = {}

    def record(k: int, ri: int) -> None:
        obs = backend.observe()
        for name, v in obs.items():
            records.setdefault(name, np.empty((R, P)))[ri] = v
        for c in at_records:
            backend.end(c.mask(obs, k, P), k, c.code)

    k = ri = 0
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is detected and reported by the backends
        while k < steps and backend.any_running():
            if not inline and ri < R and rec[ri] == k:
                record(k, ri)
                ri += 1
                if not backend.any_running():
                    break
            end = min(steps, backend.horizon(k))
            if not inline and ri < R:
                end = min(end, int(rec[ri]))
            backend.advance(k, end - k)
            if bar is not None:
                bar.update(P * (end - k))
            k = end
        if bar is not None and k < steps:
            bar.update(P * (steps - k))
        if inline:
            records = backend.inline_records()
        while not inline and ri < R:     # the final step, or frozen paths after every one ended
            record(int(rec[ri]), ri)
            ri += 1
        W, status, stop_step = backend.finish()
    return records, W, Status.labels(status), stop_step
