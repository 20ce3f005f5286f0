r"""The two-layer linear network ``f(theta; x) = w_2^T W_1 x``: ``beta(theta) = W_1^T w_2``, hidden width h.

``theta = (vec W_1, w_2)`` with ``W_1`` (h x d, row-major) and ``w_2 in R^h``; ``D = h d + h``. With
``F = ||X||_F^2``, ``g = X^T r``, ``r = X beta - y``:

* ``D beta^T g = (w_2 g^T, W_1 g)``; ``D beta (T_1, t_2) = T_1^T w_2 + W_1^T t_2``;
  Jacobian rows ``J_i = (w_2 x_i^T, W_1 x_i)``;
* ``sum_j g_j Hess beta_j = [[0, B], [B^T, 0]]`` with ``B_{(k,j), k'} = g_j delta_{k k'}`` (beta is bilinear),
  trace 0, so everywhere ``tr Hess L_n = ||J||_F^2 / n = (||w_2||^2 F + ||X W_1^T||_F^2) / n`` and
  ``grad tr Hess L_n = (2 W_1 X^T X, 2 F w_2) / n``;
* minima ``M = {X W_1^T w_2 = y}``.

**References.** The minimum-norm interpolator ``beta_mn = X^+ y``: the end point of gradient flow from a
small initialisation, and the ``beta`` of the minimum-``||theta||`` point of M (``||theta||^2 >= 2 ||beta||``).
*Balancedness* ``W_1 W_1^T - w_2 w_2^T`` is conserved by gradient flow exactly (and by gradient descent
to ``O(eta^2)`` per step); label-noise SGD changes it.

**Trace-minimising points.** ``||X W_1^T||_F^2 >= ||X W_1^T w_2||^2 / s = ||y||^2 / s`` on M (``s = ||w_2||^2``), so
``tr Hess L_n >= (s F + ||y||^2 / s) / n >= 2 ||y|| sqrt(F) / n``, with equality iff ``s = ||y|| / sqrt(F)`` and
``X W_1^T`` has rank one along ``w_2`` ("X-balanced": ``s F = ||X W_1^T||_F^2``). The minimum does not depend
on ``beta``: label noise has no preferred interpolator here. Moreover ``K = W_1 (I - X^+ X)`` (the part of
``W_1`` in ``ker X``) never changes under gradient flow, GD, label-noise SGD or the drift (every update of
``W_1`` is ``w_2 (X^T c)^T`` for some ``c``), so on M ``beta = beta_mn + K^T w_2`` for the ``K`` of the start:
the drift moves ``beta`` only through ``w_2``, towards ``beta_mn + K^T w_2`` with ``||w_2||^2 = ||y|| / sqrt(F)``.
"""
from __future__ import annotations

import numpy as np

from lrdecay.theory import io
from lrdecay.theory.models.base import LinearReadoutModel
from lrdecay.theory.validation import integer, nonneg, positive


@io.record_type
class TwoLayerLinear(LinearReadoutModel):
    """``beta = W_1^T w_2``; shape parameter ``hidden`` (h)."""

    NAME = "two_layer"

    def __init__(self, X, y, beta_star, theta0, sigma: float = 0.0, meta: dict | None = None, *, hidden: int):
        self.h = integer("hidden", hidden, 1)
        super().__init__(X, y, beta_star, theta0, sigma, meta, hidden=self.h)
        self._P_row = np.linalg.pinv(self.X) @ self.X          # projector onto row(X)

    @staticmethod
    def param_dim(d: int, **shape) -> int:
        h = shape["hidden"]
        return h * d + h

    def split(self, Theta):
        """``(W_1, w_2)`` with shapes ``(..., h, d)`` and ``(..., h)``."""
        Theta = np.asarray(Theta, dtype=float)
        h, d = self.h, self.d
        return Theta[..., :h * d].reshape(Theta.shape[:-1] + (h, d)), Theta[..., h * d:]

    def join(self, W1, w2) -> np.ndarray:
        W1, w2 = np.asarray(W1, dtype=float), np.asarray(w2, dtype=float)
        return np.concatenate([W1.reshape(W1.shape[:-2] + (-1,)), w2], axis=-1)

    def beta(self, Theta) -> np.ndarray:
        W1, w2 = self.split(Theta)
        return np.einsum("...hd,...h->...d", W1, w2)

    def vjp(self, Theta, G) -> np.ndarray:
        W1, w2 = self.split(Theta)
        G = np.asarray(G, dtype=float)
        gW1 = w2[..., :, None] * G[..., None, :]                    # (..., h, d)
        gw2 = np.matmul(W1, G[..., :, None])[..., 0]                 # (..., h)
        lead = np.broadcast_shapes(gW1.shape[:-2], gw2.shape[:-1])
        return np.concatenate([np.broadcast_to(gW1, lead + (self.h, self.d)).reshape(lead + (-1,)),
                               np.broadcast_to(gw2, lead + (self.h,))], axis=-1)

    def jvp(self, Theta, T) -> np.ndarray:
        W1, w2 = self.split(Theta)
        T1, t2 = self.split(T)
        return np.einsum("...hd,...h->...d", T1, w2) + np.einsum("...hd,...h->...d", W1, t2)

    def beta_hessian_dot(self, Theta, g) -> np.ndarray:
        g = np.asarray(g, dtype=float)
        h, d = self.h, self.d
        B = np.einsum("kl,...j->...kjl", np.eye(h), g).reshape(g.shape[:-1] + (h * d, h))
        out = np.zeros(g.shape[:-1] + (self.dim, self.dim))
        out[..., :h * d, h * d:] = B
        out[..., h * d:, :h * d] = np.swapaxes(B, -1, -2)
        return out

    def beta_hessian_trace_dot(self, Theta, g) -> np.ndarray:
        return np.zeros(np.shape(g)[:-1])

    def hessian_trace(self, Theta) -> np.ndarray:
        """``(||w_2||^2 ||X||_F^2 + ||X W_1^T||_F^2) / n`` (exact everywhere)."""
        W1, w2 = self.split(Theta)
        XW = np.matmul(W1, self.X.T)                                  # (..., h, n) = (X W1^T)^T
        return (np.sum(w2**2, axis=-1) * self.fro2 + np.sum(XW**2, axis=(-2, -1))) / self.n

    def hessian_trace_grad(self, Theta) -> np.ndarray:
        """``(2 W_1 X^T X, 2 ||X||_F^2 w_2) / n``."""
        W1, w2 = self.split(Theta)
        return self.join(2 * np.matmul(W1, self.X.T @ self.X) / self.n, 2 * self.fro2 * w2 / self.n)

    # ---- references ----------------------------------------------------------------------------
    def min_norm(self) -> np.ndarray:
        """``beta_mn = X^+ y``."""
        return np.linalg.lstsq(self.X, self.y, rcond=None)[0]

    def balancedness(self, Theta) -> np.ndarray:
        """``W_1 W_1^T - w_2 w_2^T`` (h x h), conserved by gradient flow."""
        W1, w2 = self.split(Theta)
        return np.matmul(W1, np.swapaxes(W1, -1, -2)) - w2[..., :, None] * w2[..., None, :]

    def kernel_part(self, Theta) -> np.ndarray:
        """``K = W_1 (I - X^+ X)`` (h x d), invariant under every update of the model."""
        W1, _ = self.split(Theta)
        return W1 - np.matmul(W1, self._P_row)

    def x_balance(self, Theta) -> np.ndarray:
        """``||w_2||^2 ||X||_F^2 / ||X W_1^T||_F^2`` (1 at the trace-minimising points)."""
        W1, w2 = self.split(Theta)
        return np.sum(w2**2, axis=-1) * self.fro2 / np.sum(np.matmul(W1, self.X.T) ** 2, axis=(-2, -1))

    def trace_minimum(self) -> float:
        """``min_M tr Hess L_n = 2 ||y|| ||X||_F / n``."""
        return 2.0 * float(np.linalg.norm(self.y)) * np.sqrt(self.fro2) / self.n

    def trace_min_w2_norm2(self) -> float:
        """``||w_2||^2 = ||y|| / ||X||_F`` at the trace-minimising points."""
        return float(np.linalg.norm(self.y)) / np.sqrt(self.fro2)

    def extra_observables(self, Theta, B) -> dict:
        """``trace``, ``dist_mn`` (``||beta - beta_mn||``), ``w2_norm2`` (``||w_2||^2``), ``x_balance``."""
        if not hasattr(self, "_beta_mn"):
            self._beta_mn = self.min_norm()
        _, w2 = self.split(Theta)
        return {"trace": self.hessian_trace(Theta), "dist_mn": np.linalg.norm(B - self._beta_mn, axis=-1),
                "w2_norm2": np.sum(w2**2, axis=-1), "x_balance": self.x_balance(Theta)}

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def generate(cls, d: int = 30, n: int = 10, hidden: int = 5, init_scale: float = 1.0, sigma: float = 1.0,
                 beta_norm: float = 1.0, seed: int = 0) -> "TwoLayerLinear":
        """``X`` i.i.d. N(0, 1), dense ``beta*`` (N(0, I) scaled to ``beta_norm``), ``y = X beta*``, start
        ``W_1 = init_scale G_1 / sqrt(d)``, ``w_2 = init_scale g_2 / sqrt(h)`` (``G_1, g_2`` i.i.d. N(0, 1))."""
        d = integer("d", d, 2)
        n = integer("n", n, 1, d - 1)
        h = integer("hidden", hidden, 1)
        init_scale = positive("init_scale", init_scale)
        beta_norm = positive("beta_norm", beta_norm)
        seed = integer("seed", seed, 0)
        sx, sb, s1, s2 = np.random.SeedSequence(seed).spawn(4)
        X = np.random.default_rng(sx).standard_normal((n, d))
        b = np.random.default_rng(sb).standard_normal(d)
        b *= beta_norm / np.linalg.norm(b)
        W1 = init_scale * np.random.default_rng(s1).standard_normal((h, d)) / np.sqrt(d)
        w2 = init_scale * np.random.default_rng(s2).standard_normal(h) / np.sqrt(h)
        theta0 = np.concatenate([W1.ravel(), w2])
        meta = dict(init_scale=init_scale, beta_norm=beta_norm, seed=seed)
        return cls(X, X @ b, b, theta0, sigma=nonneg("sigma", sigma), meta=meta, hidden=h)
