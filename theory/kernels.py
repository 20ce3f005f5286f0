r"""Compiled kernels (numba) for the built-in nonlinear model's steps; used by :mod:`lrdecay.theory.engine`.

numba is optional (``pip install -e '.[fast]'``): :data:`HAVE_NUMBA` says whether it imported, and the
engine falls back to its numpy loop where it did not. Every function here does the arithmetic of
:meth:`lrdecay.theory.models.nonlinear.NonlinearModel.increment` / ``minibatch_increment`` and of the engine's loop, so
the results equal the numpy engine's to floating-point rounding (only summation orders differ).

Notation as in :mod:`lrdecay.theory.models.nonlinear`: ``r = ||w||``, ``rg = r^gamma`` (``0^gamma = 0`` for gamma > 0,
``0^0 = 1``), ``rad = gamma r^(gamma-2)`` (0 at ``r = 0``), ``res = rg X w - y``. One step, per path:

* full batch (``gd``, ``sgd``, ``em``): ``V = -res dt / n + c xi / sqrt(n)``, ``u = X^T V``,
  ``w <- w + rg u + rad (w . u) w`` (just ``w + u`` for gamma = 0), with ``dt = eta, c = eta sigma /
  sqrt(n)`` (sgd), ``c = 0`` (gd, or sgd without noise), ``c = sqrt(eta a dt)`` (em);
* minibatch ``B`` of size ``b``: ``v_i = -(eta/b) (rg x_i . w - y_i - sigma xi_i)`` for ``i in B``,
  ``u = sum_i v_i x_i``, then the same ``D alpha`` update.

Per step, before the update, the train loss ``L_n = (1/2n) ||res||^2`` of the current state is
tested (full batch only, as in the engine): not finite or ``> divergence_loss`` ends the path as
*diverged*, ``<= stop_loss`` as *stopped*; an update whose new state is not finite (its coordinate
sum is not) ends it as diverged and is not applied.

Two steppers:

* :func:`path_segment` (compiled): every path runs its own loop (parallel over paths, ``prange``),
  for small dimensions (the reduced coordinates, ``n + 1``): each path-step is a handful of tiny dot
  products.
* :class:`BatchedStep` (BLAS): for large ``d`` with data shared by all paths, every path at once with
  two matrix products per step and nothing else of size ``P d`` (see there).
"""
from __future__ import annotations

import math
import os
import threading

import numpy as np

try:  # optional dependency: the engine's numpy loop serves every call without it
    import numba
    from numba import prange
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised where numba is not installed
    numba = None
    prange = range
    HAVE_NUMBA = False

if HAVE_NUMBA and not os.environ.get("NUMBA_THREADING_LAYER"):
    # numba's OpenMP layer waits at every parallel region for all its threads; on a loaded machine
    # (more runnable processes than cores) one descheduled thread made a 0.4 ms region take 13 ms
    # (measured). The workqueue layer does not wait that way. It must not be entered from two
    # threads at once: every parallel kernel runs under LOCK.
    numba.config.THREADING_LAYER = "workqueue"

#: held while a parallel kernel runs (the workqueue threading layer is not re-entrant across threads)
LOCK = threading.Lock()

#: method codes understood by :func:`path_segment`
GD, SGD, MINIBATCH, EM = 0, 1, 2, 3
#: status codes (index into lrdecay.theory.engine.STATUSES)
ACTIVE, STOPPED, DIVERGED = 0, 1, 2
#: observables the kernels record, in this order
OBSERVABLES = ("train_loss", "test_loss", "norm", "dist_mn")


def _jit(**kw):
    """``numba.njit(cache=True, **kw)`` where numba is installed, else the plain function."""
    def wrap(fn):
        if not HAVE_NUMBA:
            return fn
        return numba.njit(cache=True, **kw)(fn)
    return wrap


@_jit(inline="always")
def _rpow(r, g):
    """``r^g`` with ``0^g = 0`` for g > 0 and ``0^0 = 1``."""
    if r == 0.0:
        return 0.0 if g > 0.0 else 1.0
    return r ** g


@_jit(inline="always")
def _radial(r, g):
    """``g r^(g-2)``, 0 at r = 0."""
    if r == 0.0:
        return 0.0
    return g * r ** (g - 2.0)


@_jit()
def _observe(w, Xp, yp, g, a_star, w_mn, offset, out, row, p):
    """The four observables of one path into ``out[row, :, p]``: train loss
    ``(1/2n) ||X alpha(w) - y||^2``, test loss ``1/2 ||alpha(w) - alpha*||^2 + offset``, ``||w||``,
    ``||w - w_mn||``."""
    n, m = Xp.shape
    s = 0.0
    for j in range(m):
        s += w[j] * w[j]
    r = math.sqrt(s)
    rg = _rpow(r, g)
    tl = 0.0
    for i in range(n):
        acc = 0.0
        for j in range(m):
            acc += Xp[i, j] * (rg * w[j])
        e = acc - yp[i]
        tl += e * e
    te = 0.0
    dm = 0.0
    for j in range(m):
        e = rg * w[j] - a_star[j]
        te += e * e
        f = w[j] - w_mn[j]
        dm += f * f
    out[row, 0, p] = 0.5 * (tl / n)
    out[row, 1, p] = 0.5 * te + offset
    out[row, 2, p] = r
    out[row, 3, p] = math.sqrt(dm)


@_jit(parallel=True)
def path_segment(W, X, XT, y, gam, a_star, w_mn, offset, eta, xi, idx, method, noisy, sigma, a_dt, dt,
                 div_loss, stop_loss, has_stop, k0, K, j0, status, stop_step, rec_steps, rec_rows, rec_out):
    """Advance every active path by the steps ``k0 .. k0 + K - 1`` in place (see module docstring).

    Shapes: ``W (P, m)``; per-path or shared (leading axis 1) ``X (., n, m)`` and its transpose
    ``XT (., m, n)`` (C-contiguous), ``y (., n)``,
    ``gam (.,)``, ``a_star (., m)``, ``w_mn (., m)``, ``offset (.,)``; ``eta (P, L)``; noise
    ``xi (P, L, q)`` (``q = n``, or ``b`` for minibatches; read only when ``noisy``); batches
    ``idx (P, L, b)``, of which step ``k0 + j`` reads column ``j0 + j``; ``status`` (int8) and ``stop_step`` (int64) per path, updated. ``a_dt`` is
    ``a * dt`` (em). Records: the observables of the state at step ``rec_steps[i]`` go to
    ``rec_out[rec_rows[i], :, p]``; records at steps ``>= k0 + K`` (or after the path ended) are of
    the last state.
    """
    P, m = W.shape
    n = X.shape[1]
    nr = rec_steps.shape[0]
    sqrt_n = math.sqrt(n)
    for pi in prange(P):
        p = np.int64(pi)            # a signed index (prange's may be unsigned)
        if status[p] != ACTIVE and nr == 0:
            continue
        Xp = X[p if X.shape[0] > 1 else 0]
        yp = y[p if y.shape[0] > 1 else 0]
        g = gam[p if gam.shape[0] > 1 else 0]
        ap = a_star[p if a_star.shape[0] > 1 else 0]
        wp = w_mn[p if w_mn.shape[0] > 1 else 0]
        op = offset[p if offset.shape[0] > 1 else 0]
        w = W[p]
        res = np.empty(n)
        u = np.empty(m)
        ri = 0
        for j in range(K):
            k = k0 + j
            while ri < nr and rec_steps[ri] <= k:
                _observe(w, Xp, yp, g, ap, wp, op, rec_out, rec_rows[ri], p)
                ri += 1
            if status[p] != ACTIVE:
                break
            e = eta[p, j0 + j]
            sq = 0.0
            for c in range(m):
                sq += w[c] * w[c]
            r = math.sqrt(sq)
            rg = _rpow(r, g)
            for c in range(m):
                u[c] = 0.0
            if method == MINIBATCH:
                b = idx.shape[2]
                for t in range(b):
                    i = idx[p, j0 + j, t]
                    acc = 0.0
                    for c in range(m):
                        acc += Xp[i, c] * w[c]
                    v = rg * acc - yp[i]
                    if noisy:
                        v = v - sigma * xi[p, j0 + j, t]
                    v = v * (-e / b)
                    for c in range(m):
                        u[c] += v * Xp[i, c]
            else:
                # X w as a sum of columns (vectorises over i; a dot product per row would not)
                XTp = XT[p if XT.shape[0] > 1 else 0]
                for i in range(n):
                    res[i] = 0.0
                for c in range(m):
                    wc = w[c]
                    for i in range(n):
                        res[i] += XTp[c, i] * wc
                loss = 0.0
                for i in range(n):
                    res[i] = rg * res[i] - yp[i]
                    loss += res[i] * res[i]
                loss = 0.5 * (loss / n)
                if not (loss <= div_loss):          # not finite, or above the divergence threshold
                    status[p] = DIVERGED
                    stop_step[p] = k
                    break
                if has_stop and loss <= stop_loss:
                    status[p] = STOPPED
                    stop_step[p] = k
                    break
                if method == EM:
                    h = dt
                    cn = math.sqrt(e * a_dt) if noisy else 0.0
                else:
                    h = e
                    cn = e * sigma / sqrt_n if noisy else 0.0
                for i in range(n):
                    v = res[i] * (-h / n)
                    if noisy:
                        v = v + cn * xi[p, j0 + j, i] / sqrt_n
                    for c in range(m):
                        u[c] += v * Xp[i, c]
            if g != 0.0:
                wu = 0.0
                for c in range(m):
                    wu += w[c] * u[c]
                cw = _radial(r, g) * wu
                for c in range(m):
                    u[c] = rg * u[c] + cw * w[c]
            tot = 0.0
            for c in range(m):
                tot += w[c] + u[c]
            if not math.isfinite(tot):
                status[p] = DIVERGED
                stop_step[p] = k
                break
            for c in range(m):
                w[c] = w[c] + u[c]
        while ri < nr:
            _observe(w, Xp, yp, g, ap, wp, op, rec_out, rec_rows[ri], p)
            ri += 1


@_jit()
def row_observables(Z, s, rg, a_star, w_mn, offset, out):
    """For each row ``w = s_p Z[p]`` in one pass: ``out[0] = 1/2 ||rg w - alpha*||^2 + offset``,
    ``out[1] = ||w||``, ``out[2] = ||w - w_mn||`` (``alpha*``, ``w_mn`` shared ``(1, d)`` or per row)."""
    P, d = Z.shape
    for p in range(P):
        sa = p if a_star.shape[0] > 1 else 0
        sw = p if w_mn.shape[0] > 1 else 0
        te = 0.0
        nn = 0.0
        dm = 0.0
        for j in range(d):
            w = s[p] * Z[p, j]
            e = rg[p] * w - a_star[sa, j]
            te += e * e
            nn += w * w
            f = w - w_mn[sw, j]
            dm += f * f
        out[0, p] = 0.5 * te + offset[p if offset.shape[0] > 1 else 0]
        out[1, p] = math.sqrt(nn)
        out[2, p] = math.sqrt(dm)


class BatchedStep:
    r"""The full-batch step of a :class:`~lrdecay.theory.models.nonlinear.NonlinearModel` with data ``X (n, d)`` shared by
    all ``P`` paths, with the two matrix products and nothing else of size ``P d`` per step.

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

        from lrdecay.theory.models.nonlinear import _col

        self._gemm = blas.dgemm
        self.X = np.ascontiguousarray(model.X, dtype=float)
        self.G = self.X @ self.X.T
        self.y = model.y
        self.g = _col(model.gamma)                 # scalar, or a (P, 1) column
        self.a_star, self.w_mn, self.offset = model.alpha_star, model.w_mn, model.test_offset
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
        from lrdecay.theory.models.nonlinear import _radial, _rpow

        if self.since >= self.resync:
            self._sync()
        np.matmul(self.Z, self.X.T, out=self.A)    # A = X z per path, (P, n)
        s = self.s[:, None]
        self.Xw = s * self.A
        r = np.sqrt(self.s**2 * self.zz)[:, None]
        self.rg = _rpow(r, self.g)
        self.rad = np.where(np.asarray(self.g) == 0, 0.0, _radial(r, self.g))
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
