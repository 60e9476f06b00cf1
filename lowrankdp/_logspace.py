"""Log-space arithmetic used wherever values span many orders of magnitude (the one helper module;
the accountant in ``lowrankdp.accounting`` uses it for every cancellation-prone step)."""

from __future__ import annotations

import math

import numpy as np
from scipy import special

__all__ = ["logsumexp", "log_add", "log_sub", "log1mexp", "log_expm1", "np_log1mexp", "np_log_expm1"]


def logsumexp(a, axis=None, b=None):
    """``log(sum(b * exp(a)))`` computed stably (thin wrapper over scipy)."""
    return special.logsumexp(a, axis=axis, b=b)


def log_add(x: float, y: float) -> float:
    """``log(exp(x) + exp(y))``."""
    if x == -math.inf:
        return y
    if y == -math.inf:
        return x
    m = max(x, y)
    return m + math.log1p(math.exp(-abs(x - y)))


def log_sub(x: float, y: float) -> float:
    """``log(exp(x) - exp(y))`` for ``x >= y``; ``-inf`` when equal."""
    if y > x:
        raise ValueError(f"log_sub needs x >= y, got x={x}, y={y}")
    if y == -math.inf:
        return x
    if x == y:
        return -math.inf
    return x + log1mexp(x - y)


def log1mexp(a: float) -> float:
    """``log(1 - exp(-a))`` for ``a > 0`` (Mächler 2012: switch at log 2)."""
    if a <= 0:
        raise ValueError(f"log1mexp needs a > 0, got {a}")
    if a < math.log(2.0):
        return math.log(-math.expm1(-a))
    return math.log1p(-math.exp(-a))


def log_expm1(x: float) -> float:
    """``log(exp(x) - 1)`` for ``x > 0`` without overflow."""
    if x <= 0:
        raise ValueError(f"log_expm1 needs x > 0, got {x}")
    if x > 50:
        return x + math.log1p(-math.exp(-x))
    return math.log(math.expm1(x))


def np_log1mexp(a: np.ndarray) -> np.ndarray:
    """Vectorised ``log(1 - exp(-a))`` for ``a > 0``."""
    a = np.asarray(a, dtype=float)
    out = np.empty_like(a)
    small = a < math.log(2.0)
    out[small] = np.log(-np.expm1(-a[small]))
    out[~small] = np.log1p(-np.exp(-a[~small]))
    return out


def np_log_expm1(x) -> np.ndarray:
    """Vectorised ``log(exp(x) - 1)`` for ``x >= 0`` (``-inf`` at 0, ``inf`` at ``inf``), accurate for tiny ``x``."""
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    big = x > 50
    with np.errstate(divide="ignore"):
        out[~big] = np.log(np.expm1(x[~big]))
    out[big] = x[big] + np.log1p(-np.exp(-x[big]))
    return out
