import math

import pytest

from lowrankdp._logspace import log1mexp, log_add, log_expm1, log_sub
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
    assert log_add(math.log(2), math.log(3)) == pytest.approx(math.log(5), rel=1e-15)
    assert log_sub(math.log(5), math.log(3)) == pytest.approx(math.log(2), rel=1e-15)
    for a in (1e-8, 0.3, 0.7, 5.0, 40.0):
        assert log1mexp(a) == pytest.approx(math.log(1 - math.exp(-a)) if a > 1e-6 else math.log(a), rel=1e-6)
    assert log_expm1(1000.0) == pytest.approx(1000.0, rel=1e-15)
    assert log_expm1(0.5) == pytest.approx(math.log(math.expm1(0.5)), rel=1e-15)
