"""Summary statistics used by the studies and the report, each written once.

* :func:`mean_sem` — mean and standard error of the mean, ``s / sqrt(k)`` with the ``ddof = 1``
  standard deviation (0 for a single value);
* :func:`wilson_interval`, :func:`clopper_pearson` — two-sided intervals for a binomial proportion
  ``k / n`` (Wilson score; exact Clopper–Pearson), both from :func:`scipy.stats.binomtest`.
"""
from __future__ import annotations

import numpy as np

from theory.validation import integer, open_unit


def mean_sem(x, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, s.e.)`` along ``axis``; the s.e. is ``std(ddof=1) / sqrt(k)`` (0 when ``k = 1``)."""
    x = np.asarray(x, dtype=float)
    k = x.shape[axis]
    mean = x.mean(axis=axis)
    sem = x.std(axis=axis, ddof=1) / np.sqrt(k) if k > 1 else np.zeros_like(mean)
    return mean, sem


def _binom_ci(k: int, n: int, confidence: float, method: str) -> tuple[float, float]:
    from scipy.stats import binomtest

    n = integer("n", n, 1)
    k = integer("k", k, 0, n)
    confidence = open_unit("confidence", confidence)
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method=method)
    return float(ci.low), float(ci.high)


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (without continuity correction)."""
    return _binom_ci(k, n, confidence, "wilson")


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval for ``k`` successes in ``n`` trials."""
    return _binom_ci(k, n, confidence, "exact")
