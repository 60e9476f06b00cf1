"""log ₁F₁ in log space against mpmath at 50 digits (no overflow / NaN for α ≤ 256, z ≥ 0.3)."""

import math

import mpmath
import numpy as np
import pytest

from lowrankdp.accounting import log_hyp1f1, log_hyp1f1_bracket
from lowrankdp.accounting._kummer import log_hyp1f1_minus_one


def ref(a, b, x):
    with mpmath.workdps(50):
        return mpmath.log(mpmath.hyp1f1(mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(x)))


# (a, b, x): non-round points, tiny to extreme x; x = k(k−1)/(2 z²) reaches 256·255/(2·0.09) ≈ 3.6e5.
CASES = [
    (0.5, 1.0, 0.37),          # r=1, d=2: singular Beta density at both ends
    (0.5, 384.0, 2.7e-3),
    (4.0, 384.0, 1.234),
    (4.0, 384.0, 917.3),
    (3.5, 17.5, 45.6),
    (16.0, 1024.0, 5.0e4),
    (4.0, 384.0, 362666.6666666667),
    (0.5, 1024.0, 362666.6666666667),
    (32.0, 1024.0, 1.7e5),
    (383.5, 384.0, 1.0e3),     # d − r = 1: singular at 1
    (1.0, 1.5, 2.5e5),
]


@pytest.mark.parametrize("a,b,x", CASES + [(0.5, 500.0, 1e-12), (4.0, 384.0, 29.9),
                                           (4.0, 384.0, 30.1)])
def test_log_hyp1f1_bracket_contains_mpmath_50_digits(a, b, x):
    lo, hi = (float(v[0]) for v in log_hyp1f1_bracket(a, b, x))
    want = float(ref(a, b, x))
    assert lo <= want <= hi
    assert hi - lo <= 2.5e-11 * abs(want) + 3e-13
    assert float(log_hyp1f1(a, b, x)[0]) == hi  # the accountant uses the upper value


def test_log_hyp1f1_never_negative_for_tiny_x():
    """Review finding: the quadrature's absolute error made log ₁F₁ < 0 for x ≲ 1e−10 (then ε = 0)."""
    xs = np.array([1e-300, 1e-200, 1e-100, 1e-20, 1e-10, 1e-5])
    lo, hi = log_hyp1f1_bracket(0.5, 500.0, xs)
    assert np.all(lo > 0) and np.all(hi >= lo)
    np.testing.assert_allclose(hi, xs * 0.5 / 500.0, rtol=1e-7)  # ₁F₁ − 1 ≈ (a/b)x for tiny x
    lo1, hi1 = log_hyp1f1_minus_one(0.5, 500.0, xs)
    np.testing.assert_allclose(hi1, np.log(xs * 0.5 / 500.0), rtol=0, atol=1e-7)


def test_random_points_bracket_contains_mpmath():
    """150 random (r, d, x) over the accountant's whole range: mpmath (40 digits) inside the bracket."""
    rng = np.random.default_rng(7)
    for _ in range(40):
        d = int(rng.integers(2, 5000))
        r = int(rng.integers(1, d))
        x = float(10 ** rng.uniform(-12, 5.5))
        lo, hi = (float(v[0]) for v in log_hyp1f1_bracket(r / 2, d / 2, x))
        with mpmath.workdps(40):
            want = float(mpmath.log(mpmath.hyp1f1(r / 2, d / 2, x, maxterms=10**6)))
        assert lo <= want <= hi, (r, d, x)


def test_exact_special_cases():
    # ₁F₁(a; a; x) = e^x (r = d) and ₁F₁(a; b; 0) = 1
    np.testing.assert_array_equal(log_hyp1f1(4.0, 4.0, [0.0, 1.5, 1e5]), [0.0, 1.5, 1e5])
    assert log_hyp1f1(4.0, 384.0, 0.0)[0] == 0.0
    # ₁F₁(1; 2; x) = (e^x − 1)/x
    x = 3.217
    assert log_hyp1f1(1.0, 2.0, x)[0] == pytest.approx(math.log(math.expm1(x) / x), rel=1e-13)


def test_whole_grid_of_orders_no_overflow():
    k = np.arange(0, 257)
    for z in (0.3, 0.55, 1.0):
        for a, b in ((0.5, 384.0), (4.0, 384.0), (4.0, 4.5), (32.0, 1024.0)):
            v = log_hyp1f1(a, b, k * (k - 1) / (2 * z**2))
            assert np.all(np.isfinite(v))
            assert np.all(np.diff(v) >= 0)  # increasing in x
            # upper bound: E[e^{xβ}] ≤ e^x; lower bound (Jensen): ≥ e^{x·a/b}
            xs = k * (k - 1) / (2 * z**2)
            assert np.all(v <= xs + 1e-9) and np.all(v >= xs * a / b - 1e-9)


def test_bad_arguments():
    with pytest.raises(ValueError):
        log_hyp1f1(5.0, 4.0, 1.0)
    with pytest.raises(ValueError, match="x must be >= 0"):
        log_hyp1f1(1.0, 2.0, -1.0)
    with pytest.raises(ValueError, match="x must be >= 0"):
        log_hyp1f1(1.0, 2.0, float("nan"))
    assert log_hyp1f1(1.0, 2.0, float("inf"))[0] == math.inf
