"""Summary statistics used by the studies and the report, each written once.

* :func:`mean_sem` — mean and standard error of the mean, ``s / sqrt(k)`` with the ``ddof = 1``
  standard deviation (0 for a single value);
* :func:`wilson_interval`, :func:`clopper_pearson` — two-sided intervals for a binomial proportion
  ``k / n`` (Wilson score; exact Clopper–Pearson), both from :func:`scipy.stats.binomtest`;
* :func:`kaplan_meier`, :func:`km_median` — the product-limit estimate ``S(t) = prod_{t_i <= t} (1 - d_i / n_i)``
  of a survival function from right-censored times (``d_i`` events at ``t_i``, ``n_i`` at risk just before),
  and its median ``min{t : S(t) <= 1/2}`` (``inf`` when more than half are censored before it);
* :func:`censored_normal_regression` — maximum likelihood for ``y = x^T b + s e``, ``e ~ N(0, 1)``, with
  right-censored responses (a censored ``y_i`` only says ``y >= c_i``): the Tobit / log-normal
  accelerated-failure-time model when ``y`` is a log time.
"""
from __future__ import annotations

import numpy as np

from lrdecay.theory.validation import integer, open_unit


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


def kaplan_meier(times, censored) -> tuple[np.ndarray, np.ndarray]:
    """``(t, S)``: the distinct event times and the Kaplan–Meier survival just after each.

    ``censored[i]`` means ``times[i]`` is a lower bound (still running then). At a tie, events come before
    censorings (the usual convention)."""
    t = np.asarray(times, dtype=float).reshape(-1)
    c = np.asarray(censored, dtype=bool).reshape(-1)
    if t.shape != c.shape or t.size == 0 or np.any(np.isnan(t)):
        raise ValueError(f"times and censored must be non-empty, of equal length and without NaN, got {t.shape}, {c.shape}")
    ev = np.unique(t[~c])
    S, out = 1.0, []
    for u in ev:
        at_risk = int(np.sum(t >= u))
        d = int(np.sum((t == u) & ~c))
        S *= 1.0 - d / at_risk
        out.append(S)
    return ev, np.array(out)


def km_median(times, censored) -> float:
    """The Kaplan–Meier median ``min{t : S(t) <= 1/2}``; ``inf`` if ``S`` stays above 1/2."""
    ev, S = kaplan_meier(times, censored)
    below = np.nonzero(S <= 0.5 + 1e-12)[0]
    return float(ev[below[0]]) if below.size else float("inf")


def censored_normal_regression(y, X, censored=None) -> dict:
    """Maximum-likelihood ``(b, s)`` of ``y_i = x_i^T b + s e_i``, ``e_i ~ N(0, 1)``, where ``censored[i]`` marks
    ``y_i`` as a right-censoring value (the response is ``>= y_i``). Negative log-likelihood
    ``sum_obs [log s + (y - x b)^2 / (2 s^2)] - sum_cens log(1 - Phi((y - x b) / s))``, minimised over
    ``(b, log s)`` by BFGS (analytic gradient) from the least-squares fit of the uncensored rows. Without censoring it is least
    squares, with ``s^2 = RSS / N``. Returns ``dict(coef, scale, n_obs, n_censored, success)``."""
    from scipy.optimize import minimize
    from scipy.stats import norm

    y = np.asarray(y, dtype=float).reshape(-1)
    X = np.asarray(X, dtype=float)
    c = np.zeros(y.shape, dtype=bool) if censored is None else np.asarray(censored, dtype=bool).reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.size or c.shape != y.shape:
        raise ValueError(f"X must be (N, k) with N = len(y) = {y.size}, and censored of length N; got {X.shape}, {c.shape}")
    obs = ~c
    if obs.sum() <= X.shape[1]:
        raise ValueError(f"need more than {X.shape[1]} uncensored responses, got {int(obs.sum())}")
    b0 = np.linalg.lstsq(X[obs], y[obs], rcond=None)[0]
    s0 = max(float(np.sqrt(np.mean((y[obs] - X[obs] @ b0) ** 2))), 1e-12)
    if not c.any():
        return dict(coef=b0, scale=s0, n_obs=int(obs.sum()), n_censored=0, success=True)

    lo, hi = np.log(s0) - 25.0, np.log(s0) + 10.0

    def nll(p):
        # log s is held inside [lo, hi] so that a line search cannot send s to 0 (where z and the hazard overflow)
        b, ls = p[:-1], float(np.clip(p[-1], lo, hi))
        s = np.exp(ls)
        z = (y - X @ b) / s
        val = np.sum(ls + 0.5 * z[obs] ** 2) - np.sum(norm.logsf(z[c]))
        h = np.exp(norm.logpdf(z[c]) - norm.logsf(z[c]))              # hazard of the censored rows (~ z for large z)
        gb = -(X[obs].T @ z[obs]) / s - (X[c].T @ h) / s
        gls = np.sum(1 - z[obs] ** 2) - np.sum(h * z[c])
        return val, np.concatenate([gb, [gls]])

    with np.errstate(over="ignore", invalid="ignore"):
        res = minimize(nll, np.concatenate([b0, [np.log(s0)]]), jac=True, method="BFGS",
                       options=dict(gtol=1e-8, maxiter=2000))
        grad_ok = bool(np.max(np.abs(nll(res.x)[1])) <= 1e-6 * max(1.0, y.size))
    return dict(coef=res.x[:-1], scale=float(np.exp(np.clip(res.x[-1], lo, hi))), n_obs=int(obs.sum()), n_censored=int(c.sum()),
                success=bool(res.success) or grad_ok)
