"""lrdecay.theory.stats against closed forms and textbook values (computed here, not by scipy)."""
import math

import numpy as np
import pytest

from lrdecay.theory.stats import clopper_pearson, mean_sem, wilson_interval

Z95 = 1.959963984540054


def _wilson_by_hand(k, n, z=Z95):
    p = k / n
    denom = 1 + z**2 / n
    center = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return center - half, center + half


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (7, 20), (20, 20), (1, 1), (37, 40), (12, 200)])
def test_wilson_interval_matches_the_score_formula(k, n):
    lo, hi = wilson_interval(k, n)
    elo, ehi = _wilson_by_hand(k, n)
    assert lo == pytest.approx(max(elo, 0.0), abs=1e-12) and hi == pytest.approx(min(ehi, 1.0), abs=1e-12)


def test_wilson_interval_textbook_value():
    # k = 0 of n = 10: upper end z^2 / (n + z^2) = 3.8415 / 13.8415 = 0.2775
    lo, hi = wilson_interval(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-15) and hi == pytest.approx(Z95**2 / (10 + Z95**2), rel=1e-12)


def test_clopper_pearson_against_known_values():
    n, a = 20, 0.05
    assert clopper_pearson(0, n)[1] == pytest.approx(1 - (a / 2) ** (1 / n), rel=1e-10)
    assert clopper_pearson(n, n)[0] == pytest.approx((a / 2) ** (1 / n), rel=1e-10)
    lo, hi = clopper_pearson(5, 10)  # textbook value (0.1871, 0.8129)
    assert lo == pytest.approx(0.1871, abs=1e-4) and hi == pytest.approx(0.8129, abs=1e-4)


def test_mean_sem():
    x = np.array([[1.0, 2.0, 3.0, 6.0], [5.0, 5.0, 5.0, 5.0]])
    m, s = mean_sem(x)
    np.testing.assert_allclose(m, [3.0, 5.0])
    np.testing.assert_allclose(s, [math.sqrt(14 / 3) / 2, 0.0])
    m1, s1 = mean_sem(np.array([[2.5]]))
    assert m1[0] == 2.5 and s1[0] == 0.0


@pytest.mark.parametrize("fn", [wilson_interval, clopper_pearson])
@pytest.mark.parametrize("k, n, match", [(3, 0, r"n must be an integer >= 1"),
                                         (5, 4, r"k must be an integer in \[0, 4\]"),
                                         (-1, 4, r"k must be an integer in \[0, 4\]"),
                                         (1, 4.0, r"n must be an integer >= 1")])
def test_bad_input(fn, k, n, match):
    with pytest.raises(ValueError, match=match):
        fn(k, n)


def test_bad_confidence():
    with pytest.raises(ValueError, match=r"confidence must be a number in the open interval \(0, 1\)"):
        clopper_pearson(1, 4, confidence=1.0)


# ---- survival and censored regression --------------------------------------------------------------
from lrdecay.theory.stats import censored_normal_regression, kaplan_meier, km_median  # noqa: E402


def test_kaplan_meier_by_hand():
    # times 1, 2, 2+, 3, 4+, 5: S = 5/6, then 5/6 * 4/5, then * 2/3, then * 0
    t, S = kaplan_meier([1, 2, 2, 3, 4, 5], [0, 0, 1, 0, 1, 0])
    np.testing.assert_allclose(t, [1, 2, 3, 5])
    np.testing.assert_allclose(S, [5 / 6, 4 / 6, 4 / 9, 0.0], rtol=1e-12)
    assert km_median([1, 2, 2, 3, 4, 5], [0, 0, 1, 0, 1, 0]) == 3.0


def test_kaplan_meier_without_censoring_is_the_empirical_survival(rng):
    x = rng.exponential(size=25)
    t, S = kaplan_meier(x, np.zeros(25, dtype=bool))
    np.testing.assert_allclose(S, 1 - np.arange(1, 26) / 25, atol=1e-12)
    assert km_median(x, np.zeros(25, dtype=bool)) == np.sort(x)[12]
    assert km_median([1, 2, 3], [0, 1, 1]) == float("inf")           # S stays at 2/3


def test_censored_regression_is_least_squares_without_censoring(rng):
    X = np.c_[np.ones(50), rng.standard_normal(50)]
    y = X @ [0.3, -1.2] + 0.1 * rng.standard_normal(50)
    f = censored_normal_regression(y, X)
    b = np.linalg.lstsq(X, y, rcond=None)[0]
    np.testing.assert_allclose(f["coef"], b, rtol=1e-12)
    assert f["scale"] == pytest.approx(np.sqrt(np.mean((y - X @ b) ** 2)), rel=1e-12)


def test_censored_regression_recovers_a_censored_model(rng):
    """Tobit data with a third of the responses censored: the estimates within 4 standard errors of the truth
    (s.e. of the slope about s / sqrt(N) ~ 0.02 at N = 400), while least squares on the censored values is biased."""
    N = 400
    X = np.c_[np.ones(N), rng.standard_normal(N)]
    y = X @ [1.0, 0.5] + 0.3 * rng.standard_normal(N)
    cens = y > 1.2
    yc = np.where(cens, 1.2, y)
    f = censored_normal_regression(yc, X, cens)
    assert f["success"] and f["n_censored"] == int(cens.sum()) > 100
    np.testing.assert_allclose(f["coef"], [1.0, 0.5], atol=4 * 0.3 / np.sqrt(N) * 2)
    assert f["scale"] == pytest.approx(0.3, rel=0.1)
    naive = np.linalg.lstsq(X, yc, rcond=None)[0]
    assert abs(naive[1] - 0.5) > 3 * abs(f["coef"][1] - 0.5)


def test_survival_bad_inputs():
    with pytest.raises(ValueError, match="times and censored must be non-empty"):
        kaplan_meier([], [])
    with pytest.raises(ValueError, match="need more than 2 uncensored responses"):
        censored_normal_regression([1.0, 2.0, 3.0], np.ones((3, 2)), [True, True, False])
