r"""Exact reduction to the invariant subspace ``S = span{w_0^(p), x_1, ..., x_n}``.

Every gradient of ``L_n`` and every label-noise term is a combination of the ``x_i`` and ``w``
(``grad f_i = r^gamma x_i + gamma r^(gamma-2) (w . x_i) w``), so gradient flow, gradient descent and
label-noise SGD started in ``S`` stay in ``S``. With an orthonormal basis ``Q`` (d x m) of ``S``,
``w = Q u`` and ``||w|| = ||u||``, ``alpha(Q u) = Q alpha(u)``, so the dynamics of ``u`` are those of the
same model with data ``X Q`` (n x m). The test loss splits as
``1/2 ||alpha(u) - Q^T alpha*||^2 + 1/2 ||(I - Q Q^T) alpha*||^2``: the second term is the constant
``test_offset`` of the reduced problem. The one-time cost is a QR factorisation, ``O(d m^2)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrdecay.theory.problem import Problem


@dataclass
class Reduction:
    Q: np.ndarray          # (d, m) orthonormal basis of the invariant subspace
    full: Problem
    reduced: Problem

    @classmethod
    def from_problem(cls, problem: Problem, W0=None, tol: float = 1e-12) -> "Reduction":
        """Basis of ``span{rows of W0, rows of X}`` (``W0`` defaults to ``problem.w0``)."""
        W0 = np.atleast_2d(problem.w0 if W0 is None else np.asarray(W0, dtype=float))
        if W0.shape[-1] != problem.d:
            raise ValueError(f"W0 must have d = {problem.d} columns, got shape {W0.shape}")
        A = np.concatenate([problem.X, W0], axis=0).T          # (d, n + P)
        Q, R = np.linalg.qr(A)
        diag = np.abs(np.diag(R))
        keep = diag > tol * max(diag.max(), 1.0)
        if not np.all(keep):                                   # rank-deficient: use an SVD basis
            U, s, _ = np.linalg.svd(A, full_matrices=False)
            Q = U[:, s > tol * s.max()]
        a_red = Q.T @ problem.alpha_star
        offset = 0.5 * float(np.sum((problem.alpha_star - Q @ a_red) ** 2)) + problem.test_offset
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a reduced problem can have m = n + 1 <= ... ; fine
            reduced = Problem(X=problem.X @ Q, y=problem.y, alpha_star=a_red, w0=Q.T @ problem.w0,
                              gamma=problem.gamma, sigma=problem.sigma, seed=problem.seed,
                              test_offset=offset, meta={**problem.meta, "reduced_from_d": problem.d})
        return cls(Q=Q, full=problem, reduced=reduced)

    @property
    def m(self) -> int:
        return self.Q.shape[1]

    def project(self, W) -> np.ndarray:
        """Coordinates ``u = Q^T w`` (exact for ``w`` in the subspace)."""
        return np.asarray(W, dtype=float) @ self.Q

    def lift(self, U) -> np.ndarray:
        """Back to R^d: ``w = Q u``."""
        return np.asarray(U, dtype=float) @ self.Q.T

    def residual_norm(self, W) -> np.ndarray:
        """``||(I - Q Q^T) w||``: how far ``W`` lies outside the subspace."""
        W = np.asarray(W, dtype=float)
        return np.linalg.norm(W - self.lift(self.project(W)), axis=-1)
