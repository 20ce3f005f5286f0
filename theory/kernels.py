r"""Compiled kernels (numba) for the built-in nonlinear model's steps; used by :mod:`theory.engine`.

numba is optional (``pip install -e '.[fast]'``): :data:`HAVE_NUMBA` says whether it imported, and the
engine falls back to its numpy loop where it did not. Every function here does the arithmetic of
:meth:`theory.model.NonlinearModel.increment` / ``minibatch_increment`` and of the engine's loop, so
the results equal the numpy engine's to floating-point rounding (only summation orders differ).

Notation as in :mod:`theory.model`: ``r = ||w||``, ``rg = r^gamma`` (``0^gamma = 0`` for gamma > 0,
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

Two kernels:

* :func:`path_segment`: every path runs its own loop (parallel over paths, ``prange``), for small
  dimensions (the reduced coordinates, ``n + 1``): each path-step is a handful of tiny dot products.
* :func:`fused_update`: for large ``d`` with data shared by all paths the engine forms the two
  products ``A = W X^T`` and ``U = V X`` with BLAS (:class:`BatchedStep`) and this kernel applies
  ``W <- W + rg U + (rad wu) W`` in one pass, where ``wu = w . u = (X w) . V`` comes from the
  ``(P, n)`` products, so no other pass over the ``(P, d)`` arrays is needed; the same pass returns
  the new ``||w||^2`` for the next step.
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
#: status codes (index into theory.engine.STATUSES)
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
def path_segment(W, X, y, gam, a_star, w_mn, offset, eta, xi, idx, method, noisy, sigma, a_dt, dt,
                 div_loss, stop_loss, has_stop, k0, K, j0, status, stop_step, rec_steps, rec_rows, rec_out):
    """Advance every active path by the steps ``k0 .. k0 + K - 1`` in place (see module docstring).

    Shapes: ``W (P, m)``; per-path or shared (leading axis 1) ``X (., n, m)``, ``y (., n)``,
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
                loss = 0.0
                for i in range(n):
                    acc = 0.0
                    for c in range(m):
                        acc += Xp[i, c] * w[c]
                    res[i] = rg * acc - yp[i]
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
def fused_update(W, U, rg, cw, active, sq):
    """``W[p] <- W[p] + (rg[p] U[p] + cw[p] W[p])`` for the active rows whose new row is finite, in
    one pass; ``sq[p]`` gets the new ``||W[p]||^2``. Returns, per row, 1 where the new row was not
    finite (the row is then left as it was)."""
    P, d = W.shape
    bad = np.zeros(P, dtype=np.int8)
    for p in range(P):   # serial: the pass is memory-bound
        if not active[p]:
            continue
        a = rg[p]
        c = cw[p]
        tot = 0.0
        for j in range(d):
            tot += W[p, j] + (a * U[p, j] + c * W[p, j])
        if not math.isfinite(tot):
            bad[p] = 1
            continue
        s = 0.0
        for j in range(d):
            x = W[p, j] + (a * U[p, j] + c * W[p, j])
            W[p, j] = x
            s += x * x
        sq[p] = s
    return bad


class BatchedStep:
    """The full-batch step of a :class:`~theory.model.NonlinearModel` with data ``X (n, d)`` shared by
    all ``P`` paths, in preallocated buffers: per step the products ``A = W X^T`` and ``U = V X``
    (BLAS, written in place) and one fused pass (:func:`fused_update`); everything else is of size
    ``P n``. ``W`` is updated in place.

    A step is :meth:`loss` (forms ``A``, the residuals and ``L_n`` of the current state) followed by
    :meth:`update` with ``V = -res dt / n + c xi / sqrt(n)`` (``dt`` and ``c`` per-path columns).
    """

    def __init__(self, model, W):
        from theory.model import _col

        self.X = np.ascontiguousarray(model.X)
        self.y = model.y
        self.g = _col(model.gamma)                 # scalar, or a (P, 1) column
        P, d = W.shape
        self.n = self.X.shape[0]
        self.W = W
        self.A = np.empty((P, self.n))
        self.U = np.empty((P, d))
        self.sq = np.einsum("ij,ij->i", W, W)      # ||w||^2, kept up to date by fused_update

    def loss(self) -> np.ndarray:
        from theory.model import _radial, _rpow

        np.matmul(self.W, self.X.T, out=self.A)    # A = X w per path, (P, n)
        r = np.sqrt(self.sq)[:, None]
        self.rg = _rpow(r, self.g)
        self.rad = np.where(np.asarray(self.g) == 0, 0.0, _radial(r, self.g))
        self.res = self.rg * self.A - self.y
        return 0.5 * np.mean(self.res**2, axis=1)

    def update(self, dt, coef, xi, active) -> np.ndarray:
        """Apply the step to the ``active`` rows; returns the mask of rows whose new state was not
        finite (left unchanged)."""
        V = self.res * (-np.asarray(dt) / self.n)
        if xi is not None:
            V = V + np.asarray(coef) * xi / math.sqrt(self.n)
        np.matmul(V, self.X, out=self.U)           # U = X^T V per path, (P, d)
        wu = np.einsum("ij,ij->i", self.A, V)      # w . U = (X w) . V
        cw = np.ascontiguousarray(self.rad[:, 0] * wu)
        rg = np.ascontiguousarray(np.broadcast_to(self.rg, (len(wu), 1))[:, 0])
        return fused_update(self.W, self.U, rg, cw, np.ascontiguousarray(active), self.sq).astype(bool)
