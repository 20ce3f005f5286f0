r"""A problem instance of the nonlinear overparameterized model.

Data ``X`` (n x d, i.i.d. N(0, 1) entries), a target effective predictor ``alpha_star`` (||alpha*|| set
by ``alpha_norm``), labels ``y = X alpha* (+ obs_noise * N(0, I_n))``, an initial point ``w0``
(random direction, norm ``w0_norm``), the depth-like exponent ``gamma >= 0`` and the label-noise level
``sigma`` used by label-noise SGD. Everything is drawn from one seed through independent
``numpy.random.SeedSequence`` children, so changing one size does not reshuffle the other draws'
streams. ``test_offset`` is the constant ``1/2 ||(I - Q Q^T) alpha*||^2`` a reduced problem
(see :mod:`lrdecay.theory.reduction`) adds to its test loss; it is 0 for a full problem.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
import warnings

import numpy as np

from lrdecay.theory import io
from lrdecay.theory.validation import finite_array as _finite_array, integer, nonneg as check_nonneg, positive


class UnderparameterizedWarning(UserWarning):
    """n >= d: the minima set is a single point (or empty), not a manifold."""


def check_gamma(gamma) -> float:
    return check_nonneg("gamma", gamma)


@io.record_type
@dataclass(frozen=True, eq=False)
class Problem:
    """One instance: ``X`` (n, d), ``y`` (n,), ``alpha_star`` (d,), ``w0`` (d,), ``gamma``, ``sigma``.

    ``meta`` holds the generation parameters that the arrays do not determine (``alpha_norm``,
    ``w0_norm``, ``obs_noise``, and ``reduced_from_d`` for a reduced problem)."""

    X: np.ndarray
    y: np.ndarray
    alpha_star: np.ndarray
    w0: np.ndarray
    gamma: float
    sigma: float = 0.0
    seed: int | None = None
    test_offset: float = 0.0
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        X = _finite_array("X", self.X, 2)
        n, d = X.shape
        y = _finite_array("y", self.y, 1)
        a = _finite_array("alpha_star", self.alpha_star, 1)
        w0 = _finite_array("w0", self.w0, 1)
        if y.shape != (n,):
            raise ValueError(f"y must have shape (n,) = ({n},) to match X, got {y.shape}")
        if a.shape != (d,):
            raise ValueError(f"alpha_star must have shape (d,) = ({d},) to match X, got {a.shape}")
        if w0.shape != (d,):
            raise ValueError(f"w0 must have shape (d,) = ({d},) to match X, got {w0.shape}")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "alpha_star", a)
        object.__setattr__(self, "w0", w0)
        object.__setattr__(self, "gamma", check_gamma(self.gamma))
        object.__setattr__(self, "sigma", check_nonneg("sigma", self.sigma))
        object.__setattr__(self, "test_offset", check_nonneg("test_offset", self.test_offset))
        if n >= d:
            warnings.warn(
                f"n = {n} >= d = {d}: the model is not overparameterized; the set of training-loss "
                "minima is a single point (or empty), not a manifold of dimension d - n.",
                UnderparameterizedWarning, stacklevel=3)

    # ---- sizes ---------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]

    @property
    def overparameterized(self) -> bool:
        return self.n < self.d

    # ---- derived quantities (cached: the instance is immutable) ----------------------------------
    @cached_property
    def alpha_mn(self) -> np.ndarray:
        """Minimum-norm interpolator ``alpha_mn = X^+ y`` (least squares when n >= d)."""
        from lrdecay.theory.models.nonlinear import min_norm_alpha
        return min_norm_alpha(self.X, self.y)

    @cached_property
    def w_mn(self) -> np.ndarray:
        """``w_mn = ||alpha_mn||^(-gamma/(gamma+1)) alpha_mn``."""
        from lrdecay.theory.models.nonlinear import alpha_inverse
        return alpha_inverse(self.alpha_mn, self.gamma)

    @cached_property
    def min_norm_test_loss(self) -> float:
        """Test loss of the minimum-norm solution, ``1/2 ||alpha_mn - alpha*||^2`` (+ offset)."""
        return float(0.5 * np.sum((self.alpha_mn - self.alpha_star) ** 2) + self.test_offset)

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def generate(cls, d: int = 50, n: int = 10, gamma: float = 1.0, sigma: float = 0.3,
                 alpha_norm: float = 1.0, w0_norm: float = 1.5, obs_noise: float = 0.0,
                 seed: int = 0) -> "Problem":
        """Draw an instance from ``seed`` (see module docstring for the distribution)."""
        d = integer("d", d, 1)
        n = integer("n", n, 1)
        gamma = check_gamma(gamma)
        sigma = check_nonneg("sigma", sigma)
        alpha_norm = check_nonneg("alpha_norm", alpha_norm)
        w0_norm = positive("w0_norm", w0_norm)
        obs_noise = check_nonneg("obs_noise", obs_noise)
        seed = integer("seed", seed, 0)
        sx, sa, sw, sn = np.random.SeedSequence(int(seed)).spawn(4)
        X = np.random.default_rng(sx).standard_normal((n, d))
        a = np.random.default_rng(sa).standard_normal(d)
        a *= alpha_norm / np.linalg.norm(a)
        w0 = np.random.default_rng(sw).standard_normal(d)
        w0 *= w0_norm / np.linalg.norm(w0)
        y = X @ a
        if obs_noise > 0:
            y = y + obs_noise * np.random.default_rng(sn).standard_normal(n)
        meta = dict(alpha_norm=alpha_norm, w0_norm=w0_norm, obs_noise=obs_noise)
        return cls(X=X, y=y, alpha_star=a, w0=w0, gamma=gamma, sigma=sigma, seed=int(seed), meta=meta)

    def with_(self, **changes) -> "Problem":
        """A copy with some fields replaced (e.g. ``gamma``), re-validated."""
        fields = dict(X=self.X, y=self.y, alpha_star=self.alpha_star, w0=self.w0, gamma=self.gamma,
                      sigma=self.sigma, seed=self.seed, test_offset=self.test_offset,
                      meta=dict(self.meta))
        fields.update(changes)
        return Problem(**fields)

    # ---- persistence ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (f"Problem(d={self.d}, n={self.n}, gamma={self.gamma:g}, sigma={self.sigma:g}, seed={self.seed}"
                + (f", test_offset={self.test_offset:.4g}" if self.test_offset else "") + ")")

    def config(self) -> dict:
        """JSON-serialisable description (scalars and generation parameters)."""
        return dict(n=self.n, d=self.d, gamma=self.gamma, sigma=self.sigma, seed=self.seed,
                    test_offset=self.test_offset, meta=self.meta)

    def arrays(self, prefix: str = "") -> dict:
        return {f"{prefix}X": self.X, f"{prefix}y": self.y, f"{prefix}alpha_star": self.alpha_star,
                f"{prefix}w0": self.w0}

    def save(self, path) -> Path:
        """Save the instance (arrays and configuration) to a ``.npz`` file, atomically."""
        return io.save_result(path, self.arrays(), {"kind": "Problem", **self.config()})

    @classmethod
    def from_arrays(cls, arrays: dict, config: dict, prefix: str = "") -> "Problem":
        return cls(X=arrays[f"{prefix}X"], y=arrays[f"{prefix}y"],
                   alpha_star=arrays[f"{prefix}alpha_star"], w0=arrays[f"{prefix}w0"],
                   gamma=config["gamma"], sigma=config["sigma"], seed=config.get("seed"),
                   test_offset=config.get("test_offset", 0.0), meta=config.get("meta", {}))

    @classmethod
    def load(cls, path) -> "Problem":
        arrays, config = io.load_result(path)
        if config.get("kind") != "Problem":
            raise io.ResultFileError(f"path: {path} is not a saved Problem (kind = {config.get('kind')!r})")
        try:
            return cls.from_arrays(arrays, config)
        except KeyError as exc:
            raise io.ResultFileError(f"{path}: incomplete Problem file (missing {exc})") from None
