"""theory.stats against closed forms and textbook values (computed here, not by scipy)."""
import math

import numpy as np
import pytest

from theory.stats import clopper_pearson, mean_sem, wilson_interval

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
