"""The numba backend: the built-in model's steps on the per-path numpy streams, compiled.

Two steppers, chosen per chunk: :class:`SegmentBackend` runs
:func:`~lrdecay.theory.engine.backends.kernels.path_segment`, a compiled loop per path over a segment
of steps (small dimensions, per-path data, minibatches); :class:`BatchedBackend` runs
:class:`~lrdecay.theory.engine.backends.blas_step.BatchedStep`, two BLAS products per step for all
paths (full batch, shared data, ``n d >= 8192``). Both draw the numbers the numpy backend draws, so
their results equal its results to rounding.
"""
from __future__ import annotations

import math

import numpy as np

from lrdecay.theory.engine.backends import kernels as kn
from lrdecay.theory.engine.driver import Backend, Streams
from lrdecay.theory.engine.records import Status

#: full-batch runs with shared data and ``n * dim`` at least this use two BLAS products per step in
#: place (BatchedStep); smaller ones the per-path compiled loop (path_segment)
_BATCHED_MIN_SIZE = 8192

_METHOD_CODE = {"gd": kn.GD, "em": kn.EM, "sgd": kn.SGD}


def make(model, W, rates, c0, c1, first_path, plan) -> Backend:
    """The numba stepper for this chunk (see the module docstring)."""
    W = np.ascontiguousarray(W, dtype=float)
    data = model.kernel_data()
    if plan.noise.batch_size is None and not data.stacked and model.n * W.shape[1] >= _BATCHED_MIN_SIZE:
        return BatchedBackend(model, W, rates, c0, c1, first_path, plan)
    return SegmentBackend(model, W, rates, c0, c1, first_path, plan)


class SegmentBackend(Backend):
    """Drives :func:`~lrdecay.theory.engine.backends.kernels.path_segment` over segments of steps. With
    the built-in observables (``plan.kernel_obs``) and no record-time stop rule, the kernel also keeps
    the records (``records_inline``: whole blocks, no Python between record steps)."""

    def __init__(self, model, W, rates, c0, c1, first_path, plan):
        super().__init__(plan, W.shape[0])
        self.model, self.W = model, W
        self.streams = Streams(plan, rates, c0, c1, first_path, model.n, model.n)
        self.arrays = model.kernel_data().per_path(self.P)
        noise = plan.noise
        self.code = kn.MINIBATCH if noise.batch_size is not None else _METHOD_CODE[plan.method]
        self.a_dt = float(noise.a * noise.dt) if plan.method == "em" and noise.noisy else 0.0
        self.dt = float(noise.dt) if plan.method == "em" else 0.0
        self.records_inline = plan.kernel_obs is not None
        R = len(plan.rec_steps)
        self.rec_out = np.empty((R, len(kn.OBSERVABLES), self.P)) if self.records_inline else \
            np.zeros((1, len(kn.OBSERVABLES), self.P))
        self.rows = np.arange(R, dtype=np.int64)
        self.ri = 0                      # the next record row the kernel keeps (records_inline)

    def horizon(self, k: int) -> int:
        self.streams.cover(k, self.running())
        return self.streams.end

    def observe(self) -> dict:
        return self.plan.observe(self.W, self.model)

    def advance(self, k: int, K: int) -> None:
        inline = self.records_inline      # the kernel records the record steps in [k, k + K)
        self._kernel(k, K, int(np.searchsorted(self.plan.rec_steps, k + K, side="left")) if inline else self.ri)

    def inline_records(self) -> dict:
        if self.ri < len(self.rows):     # records after the last step or after every path ended: the final states
            self._kernel(0, 0, len(self.rows))
        return {name: self.rec_out[:, kn.OBSERVABLES.index(name)] for name in self.plan.kernel_obs}

    def _kernel(self, k: int, K: int, hi: int) -> None:
        """``path_segment`` over steps ``k .. k + K - 1``, recording rows ``ri .. hi - 1`` on the way."""
        plan, s = self.plan, self.streams
        X, XT, y, gam, a_star, w_mn, off = self.arrays
        eta = s.eta if K else np.zeros((self.P, 1))
        rs, rr = plan.rec_steps[self.ri:hi], self.rows[self.ri:hi]
        with kn.LOCK:
            kn.path_segment(self.W, X, XT, y, gam, a_star, w_mn, off, eta, s.xi, s.idx, self.code,
                            bool(plan.noise.noisy), float(plan.noise.sigma), self.a_dt, self.dt,
                            float(plan.divergence_loss), float(plan.stop_loss) if plan.stop_loss is not None else 0.0,
                            plan.stop_loss is not None, int(k), int(K), int(k - s.k0) if K else 0,
                            self.status, self.stop_step, rs, rr, self.rec_out)
        self.ri = hi
        self.active = self.status == kn.ACTIVE       # the kernel ends paths in place

    def finish(self):
        return self.W, self.status, self.stop_step


class BatchedBackend(Backend):
    """Full-batch steps with shared data at large ``d``: all paths at once, one step at a time, with
    :class:`~lrdecay.theory.engine.backends.blas_step.BatchedStep` (states kept as scaled rows).

    The train loss of the current states is computed once per step: :meth:`observe` computes it (the
    built-in observables use it) and the next step reuses it."""

    def __init__(self, model, W, rates, c0, c1, first_path, plan):
        from lrdecay.theory.engine.backends.blas_step import BatchedStep

        super().__init__(plan, W.shape[0])
        self.model = model
        self.streams = Streams(plan, rates, c0, c1, first_path, model.n, model.n)
        self.stepper = BatchedStep(model, W)
        self.sqrt_n = math.sqrt(model.n)
        self.loss = None                 # the train loss of the current states, when observe() computed it

    def horizon(self, k: int) -> int:
        self.streams.cover(k, self.running())
        return self.streams.end

    def observe(self) -> dict:
        self.loss = self.stepper.loss()
        if self.plan.kernel_obs is not None:          # the built-in observables, from the stepper
            obs = self.stepper.observables(self.loss)
            return {name: obs[name] for name in self.plan.kernel_obs}
        return self.plan.observe(self.stepper.W, self.model)   # reading W folds the row scales in

    def advance(self, k: int, K: int) -> None:
        plan, noise, s = self.plan, self.plan.noise, self.streams
        for k in range(k, k + K):
            running = self.running()
            if not running.any():
                return
            loss, self.loss = (self.stepper.loss() if self.loss is None else self.loss), None
            self.end(~(np.isfinite(loss) & (loss <= plan.divergence_loss)), k, Status.DIVERGED)
            if plan.stop_loss is not None:
                self.end(loss <= plan.stop_loss, k, Status.STOPPED)
            j = k - s.k0
            e = s.eta[:, j][:, None]
            xi = s.xi[:, j] if noise.noisy else None
            if plan.method == "em":
                dt, coef = noise.dt, (np.sqrt(e * noise.a * noise.dt) if noise.noisy else 0.0)
            else:
                dt, coef = e, (e * noise.sigma / self.sqrt_n if noise.noisy else 0.0)
            self.end(self.stepper.update(dt, coef, xi, self.running()), k, Status.DIVERGED)

    def finish(self):
        return self.stepper.W, self.status, self.stop_step   # reading W folds the row scales in (in place)
