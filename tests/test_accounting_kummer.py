"""log ₁F₁ in log space against mpmath at 50 digits (no overflow / NaN for α ≤ 256, z ≥ 0.3)."""

import math

import mpmath
import numpy as np
import pytest

from lowrankdp.accounting import log_hyp1f1


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


@pytest.mark.parametrize("a,b,x", CASES)
def test_log_hyp1f1_matches_mpmath_50_digits(a, b, x):
    got = float(log_hyp1f1(a, b, x)[0])
    want = float(ref(a, b, x))
    assert math.isfinite(got)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-11)


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
    with pytest.raises(ValueError):
        log_hyp1f1(1.0, 2.0, -1.0)
