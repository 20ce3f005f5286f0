r"""Compiled kernels (numba) for the built-in nonlinear model's steps; driven by :mod:`.numba`.

numba is optional (``pip install -e '.[fast]'``): :data:`HAVE_NUMBA` says whether it imported, and the
engine falls back to its numpy backend where it did not. Every function here does the arithmetic of
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

:func:`path_segment` runs every path its own loop (parallel over paths, ``prange``), for small
dimensions (the reduced coordinates, ``n + 1``): each path-step is a handful of tiny dot products.
Large ``d`` with data shared by all paths uses two BLAS products per step instead
(:class:`~lrdecay.theory.engine.backends.blas_step.BatchedStep`).
"""
from __future__ import annotations

import math
import os
import threading

import numpy as np

from lrdecay.theory.engine.records import Status

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
#: status codes, as plain integers for the compiled code (:class:`~lrdecay.theory.engine.records.Status`)
ACTIVE, STOPPED, DIVERGED = int(Status.COMPLETED), int(Status.STOPPED), int(Status.DIVERGED)
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


@_jit(inline="always")
def _minibatch_u(w, Xp, yp, rg, e, idx, xi, p, jj, noisy, sigma, u):
    """``u += sum_{i in B} v_i x_i`` with ``v_i = -(eta/b) (rg x_i . w - y_i - sigma xi_i)``."""
    n, m = Xp.shape
    b = idx.shape[2]
    for t in range(b):
        i = idx[p, jj, t]
        acc = 0.0
        for c in range(m):
            acc += Xp[i, c] * w[c]
        v = rg * acc - yp[i]
        if noisy:
            v = v - sigma * xi[p, jj, t]
        v = v * (-e / b)
        for c in range(m):
            u[c] += v * Xp[i, c]


@_jit(inline="always")
def _residual_loss(w, XTp, yp, rg, res):
    """``res = rg X w - y`` into ``res``; returns the train loss ``(1/2n) ||res||^2``."""
    m = w.shape[0]
    n = res.shape[0]
    # X w as a sum of columns (vectorises over i; a dot product per row would not)
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
    return 0.5 * (loss / n)


@_jit(inline="always")
def _full_batch_u(res, Xp, h, cn, xi, p, jj, noisy, sqrt_n, u):
    """``u += X^T V`` with ``V = -res h / n + cn xi / sqrt(n)``."""
    n, m = Xp.shape
    for i in range(n):
        v = res[i] * (-h / n)
        if noisy:
            v = v + cn * xi[p, jj, i] / sqrt_n
        for c in range(m):
            u[c] += v * Xp[i, c]


@_jit(inline="always")
def _step_path(w, Xp, XTp, yp, g, e, xi, idx, p, jj, method, noisy, sigma, a_dt, dt, div_loss, stop_loss, has_stop,
               sqrt_n, res, u):
    """One step of one path in place: returns ``ACTIVE``, or the status that ends the path (the state is
    then left as it was)."""
    m = w.shape[0]
    sq = 0.0
    for c in range(m):
        sq += w[c] * w[c]
    r = math.sqrt(sq)
    rg = _rpow(r, g)
    for c in range(m):
        u[c] = 0.0
    if method == MINIBATCH:
        _minibatch_u(w, Xp, yp, rg, e, idx, xi, p, jj, noisy, sigma, u)
    else:
        loss = _residual_loss(w, XTp, yp, rg, res)
        if not (loss <= div_loss):          # not finite, or above the divergence threshold
            return DIVERGED
        if has_stop and loss <= stop_loss:
            return STOPPED
        if method == EM:
            h = dt
            cn = math.sqrt(e * a_dt) if noisy else 0.0
        else:
            h = e
            cn = e * sigma / sqrt_n if noisy else 0.0
        _full_batch_u(res, Xp, h, cn, xi, p, jj, noisy, sqrt_n, u)
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
        return DIVERGED
    for c in range(m):
        w[c] = w[c] + u[c]
    return ACTIVE


@_jit(parallel=True)
def path_segment(W, X, XT, y, gam, a_star, w_mn, offset, eta, xi, idx, method, noisy, sigma, a_dt, dt,
                 div_loss, stop_loss, has_stop, k0, K, j0, status, stop_step, rec_steps, rec_rows, rec_out):
    """Advance every active path by the steps ``k0 .. k0 + K - 1`` in place (see module docstring).

    Shapes: ``W (P, m)``; per-path or shared (leading axis 1) ``X (., n, m)`` and its transpose
    ``XT (., m, n)`` (C-contiguous), ``y (., n)``, ``gam (.,)``, ``a_star (., m)``, ``w_mn (., m)``,
    ``offset (.,)``; ``eta (P, L)``; noise ``xi (P, L, q)`` (``q = n``, or ``b`` for minibatches; read
    only when ``noisy``); batches ``idx (P, L, b)``, of which step ``k0 + j`` reads column ``j0 + j``;
    ``status`` (int8) and ``stop_step`` (int64) per path, updated. ``a_dt`` is ``a * dt`` (em).
    Records: the observables of the state at step ``rec_steps[i]`` go to ``rec_out[rec_rows[i], :, p]``;
    records at steps ``>= k0 + K`` (or after the path ended) are of the last state.
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
        XTp = XT[p if XT.shape[0] > 1 else 0]
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
            code = _step_path(w, Xp, XTp, yp, g, eta[p, j0 + j], xi, idx, p, j0 + j, method, noisy, sigma, a_dt, dt,
                              div_loss, stop_loss, has_stop, sqrt_n, res, u)
            if code != ACTIVE:
                status[p] = code
                stop_step[p] = k
                break
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
