"""Log-space arithmetic used wherever values span many orders of magnitude (the one helper module; the
accountant in ``lowrankdp.accounting`` uses it for every cancellation-prone step)."""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["logsumexp", "np_log_expm1"]


def logsumexp(a, axis=None, b=None):
    """``log(sum(b * exp(a)))`` computed stably (thin wrapper over scipy; all ``-inf`` gives ``-inf``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return special.logsumexp(a, axis=axis, b=b)


def np_log_expm1(x) -> np.ndarray:
    """Vectorised ``log(exp(x) - 1)`` for ``x >= 0`` (``-inf`` at 0, ``inf`` at ``inf``), accurate for tiny ``x``."""
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    big = x > 50
    with np.errstate(divide="ignore"):
        out[~big] = np.log(np.expm1(x[~big]))
    out[big] = x[big] + np.log1p(-np.exp(-x[big]))
    return out
