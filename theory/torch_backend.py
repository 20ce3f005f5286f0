r"""The engine's torch backend (``simulate(..., backend="torch")``): the built-in model's steps for
all paths at once as tensor operations, on the CPU or a CUDA device, in float64 or float32.

The step is :meth:`lrdecay.theory.models.nonlinear.NonlinearModel.increment` (full batch: ``A = W X^T``,
``res = rg A - y``, ``V = -res dt / n + c xi / sqrt(n)``, ``U = V X``, ``W <- W + rg U + rad (A . V) W``,
using ``w . X^T V = (X w) . V``) or ``minibatch_increment``, with the engine's per-step loss tests,
finiteness check, records and record-time stops. Shared data use matrix products; per-path data
(stacked models) batched ones.

Random numbers come from one ``torch.Generator`` per chunk of paths on the device, seeded from
``SeedSequence(seed, spawn_key=(first path, 2))``: results are reproducible for a fixed seed, path
count and chunking, and equal in distribution to the numpy engine's, not path by path (its per-path
numpy streams would cost more than the steps at large path counts). torch is imported here, inside
functions only, so the rest of :mod:`theory` imports without it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_ETA_BLOCK = 2**22       # learning-rate values moved to the device per block


@dataclass(frozen=True)
class Options:
    device: str
    dtype: str
    seed: int

    @classmethod
    def make(cls, device, dtype, seed) -> "Options":
        import torch

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device: {device!r} requested but torch.cuda.is_available() is False; use device='cpu'")
        return cls(str(device), dtype or "float64", int(seed))


def _rpow(torch, r, g):
    """``r^g`` with ``0^g = 0`` (g > 0) and ``0^0 = 1``; ``g`` a number or a column."""
    out = torch.pow(r, g)
    return torch.where((r == 0) & (torch.as_tensor(g, device=r.device) > 0), torch.zeros_like(out), out)


def _radial(torch, r, g):
    """``g r^(g-2)``, 0 at ``r = 0`` (and where g = 0)."""
    gt = torch.as_tensor(g, device=r.device, dtype=r.dtype)
    out = gt * torch.pow(r, gt - 2.0)
    return torch.where((r == 0) | (gt == 0), torch.zeros_like(out), out)


def run_chunk(model, W, rates, c0, c1, first_path, spec, bar, statuses):
    """Run paths ``c0 .. c1 - 1`` (see :func:`lrdecay.theory.engine._run_chunk`); returns records, final
    states, status and stop steps as numpy arrays."""
    import torch

    opts = spec.torch
    dev, dtype = torch.device(opts.device), getattr(torch, opts.dtype)
    P, m = W.shape
    steps, rec_steps, method, b = spec.steps, spec.rec_steps, spec.method, spec.batch_size
    R = len(rec_steps)
    n = model.n
    sqrt_n = math.sqrt(n)

    def t(x):
        return torch.as_tensor(np.asarray(x, dtype=float), dtype=dtype, device=dev)

    stacked = bool(getattr(model, "stacked", False))
    X, y = t(model.X), t(model.y)                       # (n, m) | (P, n, m);  (n,) | (P, n)
    g = float(model.gamma) if np.ndim(model.gamma) == 0 else t(model.gamma)   # number | (P, 1)
    a_star, w_mn = t(model.alpha_star), t(model.w_mn)
    offset = t(model.test_offset).reshape(-1) if np.ndim(model.test_offset) else float(model.test_offset)
    Wt = t(W)
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(np.random.SeedSequence(opts.seed, spawn_key=(int(first_path), 2)).generate_state(1)[0]))
    status = torch.zeros(P, dtype=torch.int8, device=dev)
    stop_step = torch.full((P,), -1, dtype=torch.int64, device=dev)
    rows = torch.arange(P, device=dev)

    def times_X(A):                                     # X a per path: (P, m) -> (P, n)
        return A @ X.T if not stacked else torch.bmm(X, A[:, :, None])[:, :, 0]

    def times_XT(V):                                    # X^T v per path: (P, n) -> (P, m)
        return V @ X if not stacked else torch.bmm(V[:, None, :], X)[:, 0, :]

    def observe_builtin():
        r = torch.linalg.vector_norm(Wt, dim=1, keepdim=True)
        alpha = _rpow(torch, r, g) * Wt
        res = times_X(alpha) - y
        return {"train_loss": 0.5 * (res**2).mean(1), "test_loss": 0.5 * ((alpha - a_star) ** 2).sum(1) + offset,
                "norm": r[:, 0], "dist_mn": torch.linalg.vector_norm(Wt - w_mn, dim=1)}

    at_records = [c for c in spec.conditions if not c.every_step]
    code = {"stopped": 1, "diverged": 2}
    records = {}

    def record(k, ri):
        if spec.kernel_obs is not None:
            obs = {name: v.double().cpu().numpy() for name, v in observe_builtin().items() if name in spec.kernel_obs}
        else:
            obs = spec.observe(Wt.double().cpu().numpy(), model)
        for name, v in obs.items():
            records.setdefault(name, np.empty((R, P)))[ri] = v
        if at_records:
            st = status.cpu().numpy()
            ss = stop_step.cpu().numpy()
            for c in at_records:
                hit = c.mask(obs, k, P) & (st == 0)
                st[hit] = code[c.status]
                ss[hit] = k
            status.copy_(torch.as_tensor(st, device=dev))
            stop_step.copy_(torch.as_tensor(ss, device=dev))

    def end(mask, label, k):
        mask = mask & (status == 0)
        status[mask] = label
        stop_step[mask] = k

    block = max(1, min(steps, _ETA_BLOCK // max(P, 1)))
    k, ri, k_eta, eta = 0, 0, 0, None
    while k < steps:
        if ri < R and rec_steps[ri] == k:
            record(k, ri)
            ri += 1
        active = status == 0
        if not bool(active.any()):
            break
        if eta is None or k >= k_eta + eta.shape[0]:
            k_eta = k
            eta = t(rates.block(np.arange(k, min(steps, k + block)), c0, c1))
        e = eta[k - k_eta][:, None]                      # (P, 1)
        sq = (Wt * Wt).sum(1, keepdim=True)
        r = torch.sqrt(sq)
        rg, rad = _rpow(torch, r, g), _radial(torch, r, g)
        if b is not None:                                # minibatch label-noise SGD (no per-step loss test)
            idx = torch.rand((P, n), generator=gen, device=dev, dtype=dtype).argsort(dim=1)[:, :b]
            Xb = X[idx] if not stacked else X[rows[:, None], idx]          # (P, b, m)
            yb = y[idx] if not stacked else y[rows[:, None], idx]
            pred = rg * torch.einsum("pbm,pm->pb", Xb, Wt)
            v = pred - yb
            if spec.noisy:
                v = v - spec.sigma * torch.randn((P, b), generator=gen, device=dev, dtype=dtype)
            U = torch.einsum("pb,pbm->pm", v * (-e / b), Xb)
            cw = rad * (Wt * U).sum(1, keepdim=True)
        else:
            A = times_X(Wt)
            res = rg * A - y
            loss = 0.5 * (res**2).mean(1)
            end(~(torch.isfinite(loss) & (loss <= spec.divergence_loss)), 2, k)
            if spec.stop_loss is not None:
                end(loss <= spec.stop_loss, 1, k)
            if method == "em":
                V = res * (-spec.dt / n)
                coef = torch.sqrt(e * (spec.a * spec.dt)) if spec.noisy else None
            else:
                V = res * (-e / n)
                coef = e * (spec.sigma / sqrt_n) if spec.noisy else None
            if coef is not None:
                V = V + coef * torch.randn((P, n), generator=gen, device=dev, dtype=dtype) / sqrt_n
            U = times_XT(V)
            cw = rad * (A * V).sum(1, keepdim=True)
        U.mul_(rg).addcmul_(cw, Wt).add_(Wt)            # the new state, W + rg U + cw W
        live = status == 0
        finite = torch.isfinite(U.sum(1))
        end(~finite, 2, k)
        keep = (live & finite)[:, None]
        Wt = torch.where(keep, U, Wt)
        k += 1
        if bar is not None:
            bar.update(P)
    if bar is not None and k < steps:
        bar.update(P * (steps - k))
    while ri < R:
        record(int(rec_steps[ri]), ri)
        ri += 1
    return (records, Wt.double().cpu().numpy(), np.asarray(statuses)[status.cpu().numpy()],
            stop_step.cpu().numpy())
