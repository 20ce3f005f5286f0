"""The numpy backend: any model (:mod:`lrdecay.theory.engine.protocol`), one step at a time for all paths
of a chunk, on the per-path numpy streams (:class:`~lrdecay.theory.engine.driver.Streams`)."""
from __future__ import annotations

import math

import numpy as np

from lrdecay.theory.engine.driver import Backend, Streams
from lrdecay.theory.engine.protocol import examples
from lrdecay.theory.engine.records import Status


class NumpyBackend(Backend):
    """Steps ``W <- W + dW`` with the model's ``increment`` (or ``minibatch_increment``); a path ends when a
    per-step stop rule holds for the loss the increment returns, or when its new state is not finite
    (the last finite state is kept)."""

    def __init__(self, model, W, rates, c0, c1, first_path, plan):
        super().__init__(plan, W.shape[0])
        self.model, self.W = model, W
        self.streams = Streams(plan, rates, c0, c1, first_path, examples(model), model.noise_dim)
        n = examples(model)
        self.sqrt_n = math.sqrt(n) if n else None
        b = plan.noise.batch_size
        self.zeros_xi = np.zeros((self.P, b)) if b is not None else None
        self.per_step = [(c, c.code) for c in plan.per_step]     # the stop rules tested every step

    def horizon(self, k: int) -> int:
        if self.streams.cover(k, self.running()):      # step-major copies: xi[j] is one step's (P, q) block
            s = self.streams
            self.eta = np.ascontiguousarray(s.eta.T)
            self.xi = np.ascontiguousarray(s.xi.swapaxes(0, 1)) if self.plan.noise.noisy else None
            self.idx = np.ascontiguousarray(s.idx.swapaxes(0, 1)) if self.plan.noise.batch_size is not None else None
        return self.streams.end

    def observe(self) -> dict:
        return self.plan.observe(self.W, self.model)

    def advance(self, k: int, K: int) -> None:
        j0 = k - self.streams.k0
        for j in range(j0, j0 + K):
            if not self.any_running():
                return
            dW, loss = self._increment(j)
            if loss is not None:
                for c, code in self.per_step:
                    self.end(c.mask(loss, k, self.P), k, code)
            W_new = self.W + dW
            # a row sum is finite iff every entry is (short of overflow)
            self.end(~np.isfinite(np.einsum("ij->i", W_new)), k, Status.DIVERGED)
            self.W = W_new if self.active.all() else np.where(self.active[:, None], W_new, self.W)
            k += 1

    def _increment(self, j: int):
        """The increment of block step ``j`` and the train loss before it (``None`` for minibatches)."""
        plan, noise = self.plan, self.plan.noise
        e = self.eta[j][:, None]  # per-path scalars travel as (P, 1) columns
        xi = self.xi[j] if noise.noisy else None
        if noise.batch_size is not None:
            dW = self.model.minibatch_increment(self.W, e, self.idx[j], xi if noise.noisy else self.zeros_xi,
                                                noise.sigma)
            return dW, None
        if plan.method == "em":
            coef = np.sqrt(e * noise.a * noise.dt) if noise.noisy else 0.0
            return self.model.increment(self.W, noise.dt, coef, xi)
        coef = e * noise.sigma / self.sqrt_n if noise.noisy else 0.0
        return self.model.increment(self.W, e, coef, xi)

    def finish(self):
        return self.W, self.status, self.stop_step
