r"""The torch backend (``simulate(..., backend="torch")``): the built-in model's steps for all paths at
once as tensor operations, on the CPU or a CUDA device, in float64 or float32.

The step is :meth:`lrdecay.theory.models.nonlinear.NonlinearModel.increment` (full batch: ``A = W X^T``,
``res = rg A - y``, ``V = -res dt / n + c xi / sqrt(n)``, ``U = V X``, ``W <- W + rg U + rad (A . V) W``,
using ``w . X^T V = (X w) . V``) or ``minibatch_increment``, with the engine's per-step loss tests and
finiteness check. Shared data use matrix products; per-path data (stacked models) batched ones.

Random numbers come from one ``torch.Generator`` per chunk of paths on the device, seeded from
``SeedSequence(seed, spawn_key=(first path, 2))``: results are reproducible for a fixed seed, path
count and chunking, and equal in distribution to the numpy engine's, not path by path (its per-path
numpy streams would cost more than the steps at large path counts). torch is imported inside
functions only, so the rest of :mod:`lrdecay.theory` imports without it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lrdecay.theory.engine.driver import Backend
from lrdecay.theory.engine.records import RUNNING, Status

_ETA_BLOCK = 2**22       # learning-rate values moved to the device per block


def available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class Device:
    """Where and in what precision the tensors live."""

    device: str
    dtype: str

    @classmethod
    def make(cls, device, dtype) -> "Device":
        import torch

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device: {device!r} requested but torch.cuda.is_available() is False; use device='cpu'")
        return cls(str(device), dtype or "float64")


def _rpow(torch, r, g):
    """``r^g`` with ``0^g = 0`` (g > 0) and ``0^0 = 1``; ``g`` a number or a column."""
    out = torch.pow(r, g)
    return torch.where((r == 0) & (torch.as_tensor(g, device=r.device) > 0), torch.zeros_like(out), out)


def _radial(torch, r, g):
    """``g r^(g-2)``, 0 at ``r = 0`` (and where g = 0)."""
    gt = torch.as_tensor(g, device=r.device, dtype=r.dtype)
    out = gt * torch.pow(r, gt - 2.0)
    return torch.where((r == 0) | (gt == 0), torch.zeros_like(out), out)


class TorchBackend(Backend):
    """One chunk of paths as tensors: ``W``, the status codes and stop steps on the device."""

    def __init__(self, model, W, rates, c0, c1, first_path, plan, where: Device):
        import torch

        super().__init__(plan, W.shape[0])
        self.torch, self.model, self.rates, self.c0, self.c1 = torch, model, rates, c0, c1
        self.dev, self.dtype = torch.device(where.device), getattr(torch, where.dtype)
        data = model.kernel_data()
        self.n = model.n
        self.sqrt_n = math.sqrt(self.n)
        self.stacked = data.stacked
        t = self._tensor
        self.X, self.y = t(data.X), t(data.y)                       # (n, m) | (P, n, m);  (n,) | (P, n)
        self.g = float(data.gamma) if np.ndim(data.gamma) == 0 else t(data.gamma)   # number | (P, 1)
        self.a_star, self.w_mn = t(data.alpha_star), t(data.w_mn)
        off = data.test_offset
        self.offset = t(off).reshape(-1) if np.ndim(off) else float(off)
        self.W = t(W)
        self.gen = torch.Generator(device=self.dev)
        seed = np.random.SeedSequence(plan.seed, spawn_key=(int(first_path), 2)).generate_state(1)[0]
        self.gen.manual_seed(int(seed))
        self.status = torch.zeros(self.P, dtype=torch.int8, device=self.dev)
        self.stop_step = torch.full((self.P,), -1, dtype=torch.int64, device=self.dev)
        self.rows = torch.arange(self.P, device=self.dev)
        self.block = max(1, min(plan.steps, _ETA_BLOCK // max(self.P, 1)))
        self.k_eta, self.eta = 0, None

    def _tensor(self, x):
        return self.torch.as_tensor(np.array(x, dtype=float), dtype=self.dtype, device=self.dev)   # a writable copy

    # ---- the state ----------------------------------------------------------------------------
    def running(self):
        return self.status == RUNNING

    def end(self, mask, k: int, code: Status) -> None:
        if isinstance(mask, np.ndarray):
            mask = self.torch.as_tensor(np.array(mask, dtype=bool), device=self.dev)   # a writable copy
        mask = mask & self.running()
        self.status[mask] = int(code)
        self.stop_step[mask] = k

    def finish(self):
        return self.W.double().cpu().numpy(), self.status.cpu().numpy(), self.stop_step.cpu().numpy()

    def horizon(self, k: int) -> int:
        """The learning rates of the block of steps from ``k`` moved to the device."""
        if self.eta is None or k >= self.k_eta + self.eta.shape[0]:
            self.k_eta = k
            ks = np.arange(k, min(self.plan.steps, k + self.block))
            self.eta = self._tensor(self.rates.block(ks, self.c0, self.c1))
        return self.k_eta + self.eta.shape[0]

    # ---- observe and advance -----------------------------------------------------------------
    def _times_X(self, A):                              # X a per path: (P, m) -> (P, n)
        return A @ self.X.T if not self.stacked else self.torch.bmm(self.X, A[:, :, None])[:, :, 0]

    def _times_XT(self, V):                             # X^T v per path: (P, n) -> (P, m)
        return V @ self.X if not self.stacked else self.torch.bmm(V[:, None, :], self.X)[:, 0, :]

    def observe(self) -> dict:
        if self.plan.kernel_obs is None:
            return self.plan.observe(self.W.double().cpu().numpy(), self.model)
        torch, W = self.torch, self.W
        r = torch.linalg.vector_norm(W, dim=1, keepdim=True)
        alpha = _rpow(torch, r, self.g) * W
        res = self._times_X(alpha) - self.y
        obs = {"train_loss": 0.5 * (res**2).mean(1),
               "test_loss": 0.5 * ((alpha - self.a_star) ** 2).sum(1) + self.offset,
               "norm": r[:, 0], "dist_mn": torch.linalg.vector_norm(W - self.w_mn, dim=1)}
        return {name: v.double().cpu().numpy() for name, v in obs.items() if name in self.plan.kernel_obs}

    def advance(self, k: int, K: int) -> None:
        for k in range(k, k + K):
            if not bool(self.running().any()):
                return
            e = self.eta[k - self.k_eta][:, None]            # (P, 1)
            W = self.W
            r = self.torch.sqrt((W * W).sum(1, keepdim=True))
            rg, rad = _rpow(self.torch, r, self.g), _radial(self.torch, r, self.g)
            if self.plan.noise.batch_size is not None:        # minibatch label-noise SGD (no per-step loss test)
                U, cw = self._minibatch(e, rg, rad)
            else:
                U, cw = self._full_batch(k, e, rg, rad)
            U.mul_(rg).addcmul_(cw, W).add_(W)            # the new state, W + rg U + cw W
            live = self.running()
            finite = self.torch.isfinite(U.sum(1))
            self.end(~finite, k, Status.DIVERGED)
            self.W = self.torch.where((live & finite)[:, None], U, W)

    def _randn(self, *shape):
        return self.torch.randn(shape, generator=self.gen, device=self.dev, dtype=self.dtype)

    def _minibatch(self, e, rg, rad):
        torch, noise, W, b = self.torch, self.plan.noise, self.W, self.plan.noise.batch_size
        idx = torch.rand((self.P, self.n), generator=self.gen, device=self.dev, dtype=self.dtype).argsort(dim=1)[:, :b]
        rows = self.rows[:, None]
        Xb = self.X[idx] if not self.stacked else self.X[rows, idx]          # (P, b, m)
        yb = self.y[idx] if not self.stacked else self.y[rows, idx]
        v = rg * torch.einsum("pbm,pm->pb", Xb, W) - yb
        if noise.noisy:
            v = v - noise.sigma * self._randn(self.P, b)
        U = torch.einsum("pb,pbm->pm", v * (-e / b), Xb)
        return U, rad * (W * U).sum(1, keepdim=True)

    def _full_batch(self, k, e, rg, rad):
        plan, noise, n = self.plan, self.plan.noise, self.n
        A = self._times_X(self.W)
        res = rg * A - self.y
        loss = 0.5 * (res**2).mean(1)
        self.end(~(self.torch.isfinite(loss) & (loss <= plan.divergence_loss)), k, Status.DIVERGED)
        if plan.stop_loss is not None:
            self.end(loss <= plan.stop_loss, k, Status.STOPPED)
        if plan.method == "em":
            V = res * (-noise.dt / n)
            coef = self.torch.sqrt(e * (noise.a * noise.dt)) if noise.noisy else None
        else:
            V = res * (-e / n)
            coef = e * (noise.sigma / self.sqrt_n) if noise.noisy else None
        if coef is not None:
            V = V + coef * self._randn(self.P, n) / self.sqrt_n
        U = self._times_XT(V)
        return U, rad * (A * V).sum(1, keepdim=True)
