"""Input validation shared by every public function.

Each check raises ``ValueError`` naming the parameter, its allowed range and the value
received, e.g. ``"rho must be in (-1, 1), got 1.2"`` (docs/architecture.md, "Conventions").
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = [
    "check_int",
    "check_real",
    "check_probability",
    "check_choice",
]


def _fmt(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    left = "(" if (lo_open or lo is None) else "["
    right = ")" if (hi_open or hi is None) else "]"
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    return f"{left}{lo_s}, {hi_s}{right}"


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as ``int`` if it is an integer (bools rejected) within the bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer in {_fmt(minimum, maximum, False, False)}, got {value}")
    return value


def check_real(
    name: str,
    value: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """Return ``value`` as ``float`` if it is a real number within the (open/closed) bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    x = float(value)
    if math.isnan(x) or (math.isinf(x) and not allow_inf):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    bad = (
        (lo is not None and (x < lo or (lo_open and x == lo)))
        or (hi is not None and (x > hi or (hi_open and x == hi)))
    )
    if bad:
        raise ValueError(f"{name} must be in {_fmt(lo, hi, lo_open, hi_open)}, got {value!r}")
    return x


def check_probability(name: str, value: Any, *, open_left: bool = True, open_right: bool = True) -> float:
    """A probability-like parameter in (0, 1) by default."""
    return check_real(name, value, lo=0.0, hi=1.0, lo_open=open_left, hi_open=open_right)


def check_choice(name: str, value: Any, choices: tuple[str, ...] | list[str]) -> str:
    """A string option among ``choices`` (accepts ``str`` Enums)."""
    v = getattr(value, "value", value)
    if v not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return v
