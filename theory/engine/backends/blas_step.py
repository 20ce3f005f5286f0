r"""The full-batch step of the built-in model at large ``d`` with data shared by all paths: two BLAS
products per step, updated in place (the numba backend's stepper for ``n d >= 8192``)."""
from __future__ import annotations

import math

import numpy as np

from lrdecay.theory.engine.backends.kernels import row_observables


class BatchedStep:
    r"""The full-batch step of a :class:`~lrdecay.theory.models.nonlinear.NonlinearModel` with data
    ``X (n, d)`` shared by all ``P`` paths, with the two matrix products and nothing else of size ``P d`` per step.

    The states are kept as ``W = diag(s) Z`` (a scale ``s_p`` per row). The update
    ``w' = (1 + c) w + rg U``, ``c = rad (w . U)``, ``U = X^T V`` becomes ``s' = (1 + c) s`` and
    ``Z' = Z + diag(rg / s') V X``: one BLAS product accumulated into ``Z`` in place (``dgemm`` with
    ``beta = 1``). The other product is ``A = Z X^T`` (so ``X w = s A``). The quantities the step
    needs are of size ``P n``: ``w . U = (X w) . V`` and the new squared norms
    ``||Z'||^2 = ||Z||^2 + 2 A . V' + V' G V'^T`` with the Gram matrix ``G = X X^T`` and
    ``V' = diag(rg / s') V``. A row whose new ``s'^2 ||Z'||^2`` is not finite is left as it was (and
    reported); rows with ``1 + c <= 1/2`` are updated directly (``W' = (1 + c) W + rg V X`` on those
    rows). Every ``resync`` steps, and whenever the states are read (:attr:`W`), ``s`` is folded into
    ``Z`` and the norms are recomputed exactly, so the running sums cannot drift.
    """

    def __init__(self, model, W, resync: int = 32):
        from scipy.linalg import blas

        self.data = data = model.kernel_data()
        self._gemm = blas.dgemm
        self.X = np.ascontiguousarray(data.X, dtype=float)
        self.G = self.X @ self.X.T
        self.y = data.y
        self.g = data.gamma                        # scalar, or a (P, 1) column
        self.a_star, self.w_mn, self.offset = data.alpha_star, data.w_mn, data.test_offset
        P, d = W.shape
        self.n = self.X.shape[0]
        self.Z = W                                 # C-contiguous; its transpose is Fortran-ordered for BLAS
        self.s = np.ones(P)
        self.A = np.zeros((P, self.n))
        self.resync, self.since = int(resync), 0
        self._sync()

    def _sync(self):
        """Fold the scales into ``Z`` (and into ``A = Z X^T``) and recompute ``||Z||^2``."""
        if np.any(self.s != 1.0):
            self.Z *= self.s[:, None]
            self.A *= self.s[:, None]
            self.s[:] = 1.0
        self.zz = np.einsum("ij,ij->i", self.Z, self.Z)
        self.since = 0

    @property
    def W(self) -> np.ndarray:
        """The current states ``(P, d)`` (the stepper's own array, after folding the scales in)."""
        self._sync()
        return self.Z

    def loss(self) -> np.ndarray:
        """Train loss of the current states; forms ``X w`` and the residuals for :meth:`update`."""
        if self.since >= self.resync:
            self._sync()
        np.matmul(self.Z, self.X.T, out=self.A)    # A = X z per path, (P, n)
        s = self.s[:, None]
        self.Xw = s * self.A
        r = np.sqrt(self.s**2 * self.zz)[:, None]
        self.rg, rad = self.data.factors(r)
        self.rad = np.where(np.asarray(self.g) == 0, 0.0, rad)
        self.res = self.rg * self.Xw - self.y
        return 0.5 * np.mean(self.res**2, axis=1)

    def observables(self, loss) -> dict:
        """The built-in observables of the current states, after :meth:`loss` (which gave ``loss``):
        one pass over the rows instead of the model's several."""
        P = self.Z.shape[0]
        out = np.empty((3, P))
        lead = lambda v: np.ascontiguousarray(np.atleast_2d(np.asarray(v, dtype=float)))  # noqa: E731
        row_observables(self.Z, self.s, np.ascontiguousarray(np.broadcast_to(self.rg, (P, 1))[:, 0]),
                        lead(self.a_star), lead(self.w_mn), np.atleast_1d(np.asarray(self.offset, dtype=float)), out)
        return {"train_loss": loss, "test_loss": out[0], "norm": out[1], "dist_mn": out[2]}

    def update(self, dt, coef, xi, active) -> np.ndarray:
        """Apply the step to the ``active`` rows; returns the mask of active rows whose new state
        would not be finite (left unchanged)."""
        V = self.res * (-np.asarray(dt) / self.n)
        if xi is not None:
            V = V + np.asarray(coef) * xi / math.sqrt(self.n)
        rg = np.broadcast_to(self.rg, (len(V), 1))
        f = 1.0 + self.rad * np.einsum("ij,ij->i", self.Xw, V)[:, None]     # 1 + rad (w . U)
        s_new = f[:, 0] * self.s
        Vp = V * (rg / s_new[:, None])
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            zz_new = self.zz + 2 * np.einsum("ij,ij->i", self.A, Vp) + np.einsum("ij,ij->i", Vp @ self.G, Vp)
            bad = active & ~np.isfinite(s_new**2 * zz_new)
        direct = active & ~bad & (f[:, 0] <= 0.5)
        go = active & ~bad & ~direct
        Vp[~go] = 0.0
        if direct.any():                          # W' = f W + rg V X on these rows
            rows = np.flatnonzero(direct)
            self.Z[rows] = (f[rows] * self.s[rows, None]) * self.Z[rows] + rg[rows] * (V[rows] @ self.X)
            self.s[rows] = 1.0
            self.zz[rows] = np.einsum("ij,ij->i", self.Z[rows], self.Z[rows])
        out = self._gemm(1.0, self.X.T, Vp.T, beta=1.0, c=self.Z.T, overwrite_c=1)   # Z += Vp X, in place
        if out.ctypes.data != self.Z.ctypes.data:   # BLAS wrapper made a copy: keep its result
            self.Z[:] = out.T
        self.s[go] = s_new[go]
        self.zz[go] = zz_new[go]
        self.since += 1
        return bad
