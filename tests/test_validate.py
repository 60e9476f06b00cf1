import math

import pytest

from lowrankdp._logspace import logsumexp, np_log_expm1
from lowrankdp._validate import check_choice, check_int, check_probability, check_real


def test_check_int_accepts_integral_floats_and_rejects_others():
    assert check_int("d", 5) == 5 and check_int("d", 5.0) == 5
    with pytest.raises(ValueError, match=r"d must be an integer, got 5.5"):
        check_int("d", 5.5)
    with pytest.raises(ValueError, match=r"r must be an integer in \[1, inf\), got 0"):
        check_int("r", 0, minimum=1)
    with pytest.raises(ValueError):
        check_int("r", True)


def test_check_real_ranges():
    with pytest.raises(ValueError, match=r"rho must be in \(-1, 1\), got 1.2"):
        check_real("rho", 1.2, lo=-1, hi=1, lo_open=True, hi_open=True)
    with pytest.raises(ValueError, match="finite"):
        check_real("x", float("nan"))
    assert check_real("x", math.inf, allow_inf=True) == math.inf
    with pytest.raises(ValueError):
        check_probability("q", 0.0)
    assert check_probability("q", 1.0, open_right=False) == 1.0
    with pytest.raises(ValueError, match="one of"):
        check_choice("mode", "x", ("a", "b"))


def test_logspace_helpers_against_direct_computation():
    import numpy as np

    assert logsumexp(np.log([2.0, 3.0])) == pytest.approx(math.log(5), rel=1e-15)
    assert logsumexp(np.array([-np.inf, -np.inf])) == -np.inf  # empty sum, no warning
    x = np.array([0.0, 1e-300, 1e-12, 0.5, 49.9, 50.1, 1000.0, np.inf])
    got = np_log_expm1(x)
    assert got[0] == -np.inf and got[-1] == np.inf
    assert got[1] == pytest.approx(math.log(1e-300), rel=1e-15)  # log(expm1(x)) = log x for tiny x
    assert got[2] == pytest.approx(math.log(math.expm1(1e-12)), rel=1e-15)
    for xi, gi in zip(x[3:6], got[3:6]):
        assert gi == pytest.approx(math.log(math.expm1(xi)), rel=1e-15)
    assert got[6] == pytest.approx(1000.0, rel=1e-15)
