"""Wishart projection mechanism for a vector query, no noise ([LRP] Thm 1).

Source: ``[LRP]`` Hu, Düngler, Schölkopf, Sanyal, *LoRA and Privacy: When Random Projections Help (and When
They Don't)*, arXiv:2601.21719 (v1), Theorem 1; formulas in docs/theory.md §2, the erratum in docs/theory.md §2.2.

Mechanism: ``S ↦ M f(S)`` with ``M = AᵀA``, ``A ∈ R^{r×d}`` with i.i.d. ``N(0, 1/r)`` entries (so
``M ~ W_d(I_d/r, r)``, ``E[M] = I_d``) and a unit-norm query ``f(S) = V ∈ R^d``. Privacy holds only on a
family of datasets whose neighbouring outputs are *aligned*: ``rho = min VᵀV'`` over neighbouring pairs.

IMPORTANT (conventions used throughout this module):

* Everything depends on a neighbouring pair ``(V, V')`` only through ``rho = VᵀV'``; the pair is symmetric, so
  the privacy profile is the same in both directions. The profile is decreasing in ``rho`` (checked by
  property tests), so the family's guarantee is the one at ``rho = min VᵀV'``.
* ``rho <= 0`` is accepted and means that some neighbours are orthogonal (``rho = 0``) or anti-aligned: the
  neighbour then puts mass ``support_delta >= 1/2`` outside the output's support (a half-space), so no
  ``(epsilon, delta)`` guarantee with ``delta < support_delta`` exists. :func:`theorem1_epsilon` returns
  ``inf`` there (the theorem needs ``rho > K >= 0``), and :func:`exact_epsilon` returns ``inf`` for every
  ``delta <= support_delta``. ``|rho| = 1`` is rejected: ``rho = 1`` is the trivial pair ``V = V'`` and
  ``rho = -1`` has disjoint supports.
* ``delta(epsilon)`` is the hockey-stick divergence ``E_{y~P_V}[(1 - e^{epsilon - L(y)})_+]`` with the privacy
  loss ``L = ln p_V(y)/p_V'(y)`` (``L = +inf`` off the neighbour's support).

Facts used (all in docs/theory.md §2, derived in ``proofs_check/test_wishart_*.py``):

1. Output density ``p_V(y) ∝ u^{(r-d-1)/2} exp(-r‖y‖²/(2u)) 1{u>0}``, ``u = Vᵀy``.
2. Privacy loss ``L = ((d+1-r)/2) ln R + (Q/2)(1/R - 1)`` with ``R = rho + sqrt((1-rho²)/r) T``,
   ``T ~ t_r``, ``Q ~ χ²_{d+r-1}`` and -- the fact that makes the exact profile a one-dimensional integral --
   ``T`` and ``Q`` *independent*. (In the sampling recipe ``x ~ χ²_r, z ~ N(0,1), s ~ χ²_{d-2}``,
   ``T = z sqrt(r/x)`` is a function of the direction of ``(z, sqrt(x))`` and ``W = x + z² ~ χ²_{r+1}`` of its
   length, so ``T ⊥ W``, and ``Q = W + s``. Derived symbolically in
   ``proofs_check/test_wishart_privacy_loss.py``.) Given ``R``, the expectation over ``Q`` is closed form
   in χ² tail probabilities, so ``delta(epsilon)`` is a 1-D integral over ``T``, computed here by adaptive
   Gauss–Legendre quadrature. The 2-D integral over ``(x, z)`` described in docs/theory.md §2 is used in the tests
   as an independent check.
"""

from __future__ import annotations

import enum
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from ._validate import check_choice, check_int, check_real

__all__ = [
    "Coefficient",
    "sample_projection",
    "sample_wishart",
    "support_delta",
    "theorem1_epsilon",
    "theorem1_coefficient",
    "exact_delta",
    "exact_epsilon",
    "privacy_loss_samples",
    "output_log_density",
    "privacy_loss",
    "ExactDelta",
    "exact_delta_with_error",
]


class Coefficient(str, enum.Enum):
    """Which coefficient ``c`` of ``ln(rho + K)`` to use in Theorem 1 ([LRP] Thm 1, docs/theory.md §2.2)."""

    CORRECTED = "corrected"  # c = (d - r + 1)/2: what the derivation gives; a valid upper bound.
    AS_PRINTED = "as_printed"  # c = (d + r - 1)/2: the published value; NOT a valid bound (falls below exact ε).


_COEFFICIENTS = tuple(c.value for c in Coefficient)


# ----------------------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------------------


def _check_dims(d: Any, r: Any) -> tuple[int, int]:
    d = check_int("d", d, minimum=2)
    r = check_int("r", r, minimum=1)
    if r > d:
        raise ValueError(f"r must be an integer in [1, d={d}], got {r}")
    return d, r


def _check_rho(rho: Any) -> float:
    return check_real("rho", rho, lo=-1.0, hi=1.0, lo_open=True, hi_open=True)


def _check_delta(delta: Any) -> float:
    return check_real("delta", delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True)


def _rng(rng: Any) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise ValueError(f"rng must be a numpy.random.Generator, an integer seed or None, got {rng!r}")


# ----------------------------------------------------------------------------------------------------------
# sampling
# ----------------------------------------------------------------------------------------------------------


def sample_projection(*, d: int, r: int, rng: np.random.Generator | int | None) -> np.ndarray:
    """Draw ``A ∈ R^{r×d}`` with i.i.d. ``N(0, 1/r)`` entries (docs/theory.md §0), so ``E[AᵀA] = I_d``."""
    d, r = _check_dims(d, r)
    return _rng(rng).standard_normal((r, d)) / math.sqrt(r)


def sample_wishart(*, d: int, r: int, rng: np.random.Generator | int | None) -> np.ndarray:
    """Draw ``M = AᵀA ~ W_d(I_d/r, r)`` (rank ``min(r, d)``, ``E[M] = I_d``) with ``A`` from :func:`sample_projection`."""
    a = sample_projection(d=d, r=r, rng=rng)
    return a.T @ a


def privacy_loss_samples(
    *, d: int, r: int, rho: float, n: int, rng: np.random.Generator | int | None
) -> np.ndarray:
    """``n`` i.i.d. draws of the privacy loss ``L = ln p_V(y)/p_V'(y)``, ``y ~ p_V``, with ``VᵀV' = rho``.

    Recipe of docs/theory.md §2 fact 3 ([LRP] Thm 1 setting): ``x ~ χ²_r``, ``z ~ N(0,1)``, ``s ~ χ²_{d-2}``,
    ``R = rho + sqrt(1-rho²) z/sqrt(x)``, ``Q = x + z² + s``,
    ``L = ((d+1-r)/2) ln R + (Q/2)(1/R - 1)``; ``L = +inf`` where ``R <= 0`` (``y`` outside the neighbour's
    support). Exact in distribution (no approximation).
    """
    d, r = _check_dims(d, r)
    rho = _check_rho(rho)
    n = check_int("n", n, minimum=1)
    g = _rng(rng)
    x = g.chisquare(r, size=n)
    z = g.standard_normal(n)
    s = g.chisquare(d - 2, size=n) if d > 2 else np.zeros(n)
    rr = rho + math.sqrt(1.0 - rho * rho) * z / np.sqrt(x)
    q = x + z * z + s
    out = np.full(n, np.inf)
    ok = rr > 0
    a = 0.5 * (d + 1 - r)
    out[ok] = a * np.log(rr[ok]) + 0.5 * q[ok] * (1.0 / rr[ok] - 1.0)  # [LRP] Thm 1 / docs/theory.md §2 fact 3
    return out


# ----------------------------------------------------------------------------------------------------------
# densities of the released output (for attacks and the proofs_check bridge tests)
# ----------------------------------------------------------------------------------------------------------


def _unit(name: str, v: Any, d: int | None = None) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    if v.ndim != 1 or (d is not None and v.shape[0] != d):
        raise ValueError(f"{name} must be a 1-D vector of length {d if d is not None else 'd'}, got shape {v.shape}")
    nv = float(np.linalg.norm(v))
    if not math.isfinite(nv) or abs(nv - 1.0) > 1e-8:
        raise ValueError(f"{name} must have unit Euclidean norm (within 1e-8), got norm {nv!r}")
    return v



def _outputs(y: Any, r: Any) -> tuple[np.ndarray, int, int, bool]:
    """Outputs ``y`` as an ``(n, d)`` array, the dimension ``d``, validated ``r``, and whether ``y`` was one vector."""
    y = np.asarray(y, dtype=float)
    y2 = np.atleast_2d(y)
    d = y2.shape[1]
    r = check_int("r", r, minimum=1)
    if d < 2 or r > d:
        raise ValueError(f"y must have d >= max(2, r) columns, got d={d} with r={r}")
    return y2, d, r, y.ndim == 1

def output_log_density(y: Any, *, v: Any, r: int) -> np.ndarray | float:
    """Normalised log-density of the output ``y = AᵀA v`` at ``y`` (shape ``(d,)`` or ``(n, d)``).

    docs/theory.md §2 fact 2 ([LRP] Thm 1 setting): in coordinates ``u = vᵀy``, ``w = y - u v`` (an orthogonal
    change of variables), ``r u ~ χ²_r`` and ``w | u ~ N(0, (u/r) I_{d-1})``, so::

        ln p_v(y) = ln r + (r/2 - 1) ln(r u) - (r/2) ln 2 - lnΓ(r/2) - ((d-1)/2) ln(2π u/r) - r‖y‖²/(2u)

    i.e. ``p_v(y) ∝ u^{(r-d-1)/2} exp(-r‖y‖²/(2u))`` for ``u > 0``, and ``-inf`` for ``u <= 0``. The output
    lies in an r-dimensional subspace for each ``A``, but ``A`` is random, so ``y`` has this density on R^d.
    """
    y2, d, r, scalar = _outputs(y, r)
    v = _unit("v", v, d)
    u = y2 @ v
    ny2 = np.einsum("ij,ij->i", y2, y2)
    out = np.full(u.shape, -np.inf)
    ok = u > 0
    uo = u[ok]
    # density of (u, w) = (vᵀy, y - u v): r u ~ χ²_r, w | u ~ N(0, (u/r) I_{d-1})  [docs/theory.md §2 fact 2]
    out[ok] = (
        math.log(r)
        + (0.5 * r - 1.0) * np.log(r * uo)
        - 0.5 * r * math.log(2.0)
        - special.gammaln(0.5 * r)
        - 0.5 * (d - 1) * np.log(2.0 * math.pi * uo / r)
        - r * ny2[ok] / (2.0 * uo)
    )
    return float(out[0]) if scalar else out


def privacy_loss(y: Any, *, v: Any, v_prime: Any, r: int) -> np.ndarray | float:
    """Privacy loss ``L(y) = ln p_v(y) - ln p_v'(y)`` at outputs ``y`` (``(d,)`` or ``(n, d)``).

    Closed form ([LRP] Thm 1; docs/theory.md §2 fact 3 before substituting the rotated representation):
    ``L = ((d+1-r)/2) ln R + (Q/2)(1/R - 1)`` with ``u = vᵀy``, ``R = v'ᵀy / vᵀy`` and ``Q = r‖y‖²/u``. ``+inf`` where ``u > 0 >= u'`` (outside the neighbour's support),
    ``-inf`` where ``u' > 0 >= u``, ``nan`` outside both supports. This is the likelihood-ratio statistic of
    the optimal membership test for the vector mechanism.
    """
    y2, d, r, scalar = _outputs(y, r)
    v = _unit("v", v, d)
    vp = _unit("v_prime", v_prime, d)
    u = y2 @ v
    up = y2 @ vp
    ny2 = np.einsum("ij,ij->i", y2, y2)
    out = np.full(u.shape, np.nan)
    both = (u > 0) & (up > 0)
    out[(u > 0) & (up <= 0)] = np.inf
    out[(u <= 0) & (up > 0)] = -np.inf
    rr = up[both] / u[both]
    q = r * ny2[both] / u[both]
    out[both] = 0.5 * (d + 1 - r) * np.log(rr) + 0.5 * q * (1.0 / rr - 1.0)  # docs/theory.md §2 fact 3
    return float(out[0]) if scalar else out


# ----------------------------------------------------------------------------------------------------------
# support term and Theorem 1
# ----------------------------------------------------------------------------------------------------------


def _tau(rho: float, r: int) -> float:
    # R <= 0  <=>  T <= -rho sqrt(r) / sqrt(1 - rho²)
    return rho * math.sqrt(r) / math.sqrt((1.0 - rho) * (1.0 + rho))


def support_delta(*, rho: float, r: int) -> float:
    """Mass ``δ_supp`` that the neighbour ``V'`` puts outside the support ``{y: Vᵀy > 0}`` of ``V``'s output.

    docs/theory.md §2 fact 1 ([LRP] Thm 1): ``δ_supp = E_{x~χ²_r}[Φ(-rho sqrt(x)/sqrt(1-rho²))]``. Writing
    ``Φ(-c sqrt(x)) = P(z <= -c sqrt(x))`` and dividing by ``sqrt(x/r)`` gives the Student-t closed form
    ``δ_supp = F_{t_r}(-rho sqrt(r)/sqrt(1-rho²))``, evaluated by scipy's incomplete-beta based ``stdtr``
    (relative accuracy ~1e-13 down to 1e-300, checked against mpmath in the tests). Values below the
    smallest normal double (~2e-308) lose relative accuracy and underflow to 0.0 (an under-estimate of a
    number that is negligible next to any usable δ). Does not depend on ``d``.
    """
    rho = _check_rho(rho)
    r = check_int("r", r, minimum=1)
    return float(special.stdtr(r, -_tau(rho, r)))


def theorem1_coefficient(*, d: int, r: int, coefficient: Coefficient | str = "corrected") -> float:
    """Coefficient ``c`` of ``ln(rho + K)`` in Theorem 1 ([LRP] Thm 1; docs/theory.md §2.2).

    ``"corrected"``: ``c = (d - r + 1)/2`` (the exponent of ``R`` in the exact privacy loss, fact 3).
    ``"as_printed"``: ``c = (d + r - 1)/2`` as published; it is *not* a valid bound (it falls below the exact
    ε, e.g. d=400, rho=0.5, r=400, δ=0.01: 545.6 vs ≈609).
    """
    d, r = _check_dims(d, r)
    c = check_choice("coefficient", coefficient, _COEFFICIENTS)
    return 0.5 * (d - r + 1) if c == Coefficient.CORRECTED.value else 0.5 * (d + r - 1)


def theorem1_epsilon(
    *, d: int, r: int, rho: float, delta: float, coefficient: Coefficient | str = "corrected"
) -> float:
    """ε of [LRP] Theorem 1 for the total ``delta`` (split ``δ' = (delta - δ_supp)/3``).

    [LRP] Thm 1 (docs/theory.md §2): with ``t = t_r(1-δ')`` (Student-t quantile), ``K = sqrt((1-rho²)/r)·t``,
    and ``rho > K``,
    ``ε = c·ln(rho + K) + (1 - rho + K)·κ_{d+r-1}(1-δ') / (2(rho - K))``, ``δ = δ_supp + 3δ'``.

    Direction of error: with ``coefficient="corrected"`` (default) this is an *upper bound* on the exact ε
    (the bound replaces ``R`` by the worst end of its central ``1-2δ'`` interval and ``Q`` by its
    ``1-δ'`` quantile, and spends δ_supp on top of the t tail that already contains it). With
    ``"as_printed"`` it is the published formula, which is *not* a bound (see docs/theory.md §2.2);
    a ``UserWarning`` says so every time it is requested.

    Returns ``math.inf`` when the theorem gives no finite bound: ``delta <= δ_supp``, or ``rho <= K``
    (equivalently ``rho <= t/sqrt(r + t²)``; always the case for ``rho <= 0``). A negative value of the
    formula is returned as 0.0 (an (0, δ) guarantee is implied by any (ε<0, δ) one).
    """
    d, r = _check_dims(d, r)
    rho = _check_rho(rho)
    delta = _check_delta(delta)
    c = theorem1_coefficient(d=d, r=r, coefficient=coefficient)
    if check_choice("coefficient", coefficient, _COEFFICIENTS) == Coefficient.AS_PRINTED.value:
        warnings.warn(
            "coefficient='as_printed' uses the published c=(d+r-1)/2, which is not a valid privacy bound "
            "(docs/theory.md §2.2); use it only to reproduce the paper",
            UserWarning,
            stacklevel=2,
        )
    dsupp = support_delta(rho=rho, r=r)
    if delta <= dsupp or rho <= 0.0:
        return math.inf
    dp = (delta - dsupp) / 3.0  # δ = δ_supp + 3δ'   [LRP] Thm 1
    t = float(stats.t.isf(dp, r))  # t_r(1 - δ')
    k_cap = math.sqrt((1.0 - rho) * (1.0 + rho) / r) * t  # K = sqrt((1-ρ²)/r) t   [LRP] Thm 1
    if not rho > k_cap:
        return math.inf
    kappa = float(stats.chi2.isf(dp, d + r - 1))  # κ_{d+r-1}(1 - δ')
    eps = c * math.log(rho + k_cap) + (1.0 - rho + k_cap) * kappa / (2.0 * (rho - k_cap))  # [LRP] Thm 1
    return max(eps, 0.0)


# ----------------------------------------------------------------------------------------------------------
# exact privacy profile
# ----------------------------------------------------------------------------------------------------------

_GL_N = 16
_GL_X, _GL_W = np.polynomial.legendre.leggauss(_GL_N)
_P_TAIL = 1e-300  # t-mass left out at each end of the integration range (added to the error estimate)
_RTOL = 1e-9  # relative tolerance of the quadrature on δ(ε)
# Refinement stops at this many panels (each 2×16 points); the error estimate is then returned, so
# exact_epsilon (which uses the upper end) stays conservative. Reached only at extreme parameters, e.g.
# d = r = 1e8 with rho = 1 - 4e-10, where unbounded refinement took ~40 s per evaluation of delta(eps)
# (0.07 s now). No test case of tests/test_wishart*.py reaches it (they run with the warning as an error).
_MAX_PANELS = 4_000


@dataclass(frozen=True)
class ExactDelta:
    """``delta(epsilon)`` with its numerical error: the true value lies in ``[lower, upper]``.

    ``upper - estimate`` is the quadrature error estimate (difference between a Gauss–Legendre panel rule
    and the same rule on the two halves, summed over panels — a conservative estimate for these smooth
    integrands) plus the t-mass truncated outside the integration range (≤ 2e-300). ``lower`` subtracts
    the quadrature error only (truncation can only add mass).
    """

    lower: float
    estimate: float
    upper: float


_LOG_DIRECT_MIN = 1e-250  # below this, tail probabilities are recomputed in log space


def _log_prefactor(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    return a * np.log(x) - x - special.gammaln(a)


def _log_gammaincc(a: float, x: np.ndarray) -> np.ndarray:
    """``ln Q(a, x)`` (regularised upper incomplete gamma), accurate where ``Q`` underflows.

    scipy's ``gammaincc`` is used where ``Q >= 1e-250``; below that (only possible for ``x > a``) the
    Legendre continued fraction ``Q = x^a e^{-x}/Γ(a) · 1/(x+1-a- 1(1-a)/(x+3-a- ...))`` is evaluated by the
    modified Lentz method with the prefactor in log space (relative accuracy ~1e-13).
    """
    x = np.asarray(x, dtype=float)
    p = special.gammaincc(a, x)
    with np.errstate(divide="ignore"):
        out = np.log(p)
    bad = (p < _LOG_DIRECT_MIN) & (x > a + 1.0)
    if bad.any():
        xb = x[bad]
        tiny = 1e-300
        b = xb + 1.0 - a
        c = np.full_like(xb, 1.0 / tiny)
        dd = 1.0 / b
        h = dd.copy()
        for i in range(1, 5000):
            an = -i * (i - a)
            b = b + 2.0
            dd = an * dd + b
            dd = np.where(np.abs(dd) < tiny, tiny, dd)
            c = b + an / c
            c = np.where(np.abs(c) < tiny, tiny, c)
            dd = 1.0 / dd
            de = dd * c
            h = h * de
            if np.all(np.abs(de - 1.0) < 1e-15):
                break
        out[bad] = _log_prefactor(a, xb) + np.log(h)
    return out


def _log_gammainc(a: float, x: np.ndarray) -> np.ndarray:
    """``ln P(a, x)`` (regularised lower incomplete gamma), accurate where ``P`` underflows.

    Below 1e-250 (only possible for ``x < a``) the series ``P = x^a e^{-x}/Γ(a+1) · Σ_n x^n/((a+1)…(a+n))`` is
    summed with the prefactor in log space.
    """
    x = np.asarray(x, dtype=float)
    p = special.gammainc(a, x)
    with np.errstate(divide="ignore"):
        out = np.log(p)
    bad = (p < _LOG_DIRECT_MIN) & (x > 0) & (x < a)
    if bad.any():
        xb = x[bad]
        term = np.full_like(xb, 1.0 / a)
        total = term.copy()
        ap = a
        for _ in range(100000):
            ap += 1.0
            term = term * xb / ap
            total = total + term
            if np.all(term < total * 1e-16):
                break
        out[bad] = _log_prefactor(a, xb) + np.log(total)
    return out


class _Profile:
    """Exact privacy profile for fixed ``(d, r, rho)``; caches the quadrature partition between calls."""

    def __init__(self, d: int, r: int, rho: float) -> None:
        self.d, self.r, self.rho = d, r, rho
        self.a = 0.5 * (d + 1 - r)  # exponent of R in L   [docs/theory.md §2 fact 3]
        self.k = d + r - 1  # degrees of freedom of Q
        self.scale = math.sqrt((1.0 - rho) * (1.0 + rho) / r)  # R = rho + scale·T
        self.t0 = -_tau(rho, r)  # R = 0
        self.dsupp = float(special.stdtr(r, self.t0))
        self.log_c_t = special.gammaln(0.5 * (r + 1)) - special.gammaln(0.5 * r) - 0.5 * math.log(r * math.pi)
        # Tail cut-off from the rigorous bound sf_t(T) <= c_t r^{(r-1)/2} T^{-r} (integrate the density bound
        # (1 + T²/r)^{-(r+1)/2} <= (T²/r)^{-(r+1)/2}); scipy's stdtrit is unreliable this far out.
        t_hi = math.exp((self.log_c_t + 0.5 * (r - 1) * math.log(r) - math.log(_P_TAIL)) / r)
        t_lo = max(self.t0, -t_hi)
        self.truncated = (_P_TAIL if t_lo > self.t0 else 0.0) + _P_TAIL
        self._eval_cache: dict[float, ExactDelta] = {}
        if t_lo >= t_hi:
            # R > 0 only where T > t0 >= t_hi: that region holds t-mass <= _P_TAIL (rho near -1 with large r),
            # so delta(eps) lies in [δ_supp, δ_supp + _P_TAIL] for every eps; nothing to integrate.
            self.truncated = _P_TAIL
            self.breaks = np.empty(0)
            return
        v_lo, v_hi = math.asinh(t_lo), math.asinh(t_hi)
        # initial partition in v = asinh(T): width 0.25 on [-6, 6], geometric growth outside, plus R = 1
        inner = np.arange(-6.0, 6.0 + 1e-12, 0.25)
        outer = 6.0 + 2.0 * (2.0 ** np.arange(0, 12) - 1.0)
        pts = np.concatenate(([v_lo, v_hi], inner, outer, -outer))
        t1 = (1.0 - rho) / self.scale  # R = 1: the loss changes sign there
        pts = np.append(pts, math.asinh(t1))
        pts = np.unique(pts[(pts >= v_lo) & (pts <= v_hi)])
        if pts.size < 2 or not np.all(np.isfinite(pts)):
            raise RuntimeError(f"internal error: bad quadrature range for d={d}, r={r}, rho={rho}: {pts!r}")
        self.breaks = pts

    # integrand ------------------------------------------------------------------------------------------
    def _log_weight(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """R(v) and ln(f_t(T) dT/dv) at ``v`` with ``T = sinh v``."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            t = np.sinh(v)
            at = np.abs(t)
            # ln(1 + T²/r) without overflowing T² (|T| reaches 1e299 for r = 1)
            l1p = np.where(at > 1e100, 2.0 * np.log(at) - math.log(self.r), np.log1p(np.minimum(at, 1e100) ** 2 / self.r))
            logw = self.log_c_t - 0.5 * (self.r + 1) * l1p + np.log(np.cosh(v))
        logw = np.where(np.isfinite(logw), logw, -np.inf)
        return self.rho + self.scale * t, logw

    def _h(self, rr: np.ndarray, eps: float) -> np.ndarray:
        """``h(R) = E_Q[(1 - e^{eps - L})_+]`` for ``Q ~ χ²_k``, closed form (docs/theory.md §2 fact 3).

        With ``b = (1/R - 1)/2`` and ``q* = (eps - a ln R)/b``, using
        ``E[e^{-bQ} 1{Q ∈ B}] = R^{k/2} P(Q/R ∈ B)`` (since ``1 + 2b = 1/R``):
        ``R < 1``: ``h = S_k(q*) - e^{eps} R^{r-1} S_k(q*/R)``;
        ``R > 1``: ``h = F_k(q*) - e^{eps} R^{r-1} F_k(q*/R)`` (0 if ``q* <= 0``). ``k/2 - a = r - 1``.
        Evaluated as ``P1·(1 - exp(eps + (r-1) ln R + ln P2 - ln P1))`` so small values keep relative accuracy.
        """
        out = np.zeros_like(rr)
        pos = rr > 0
        lnr = np.zeros_like(rr)
        lnr[pos] = np.log(rr[pos])
        b = np.zeros_like(rr)
        with np.errstate(over="ignore"):  # R subnormal: b = inf, then q* = 0 and h = 1 (L = +inf in effect)
            b[pos] = (1.0 - rr[pos]) / (2.0 * rr[pos])
        lo = pos & (rr < 1.0)
        hi = pos & (rr > 1.0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # R < 1: loss increasing in Q
            if lo.any():
                qs = (eps - self.a * lnr[lo]) / b[lo]
                lp1 = _log_gammaincc(0.5 * self.k, 0.5 * qs)  # ln S_k(q*)
                lp2 = _log_gammaincc(0.5 * self.k, 0.5 * qs / rr[lo])  # ln S_k(q*/R)
                out[lo] = self._combine(lp1, lp2, eps + (self.r - 1) * lnr[lo])
            if hi.any():
                qs = (eps - self.a * lnr[hi]) / b[hi]  # b < 0
                m = qs > 0
                idx = np.flatnonzero(hi)[m]
                if idx.size:
                    qm = qs[m]
                    lp1 = _log_gammainc(0.5 * self.k, 0.5 * qm)  # ln F_k(q*)
                    lp2 = _log_gammainc(0.5 * self.k, 0.5 * qm / rr[idx])  # ln F_k(q*/R)
                    out[idx] = self._combine(lp1, lp2, eps + (self.r - 1) * lnr[idx])
        # R <= 0 is the support term, accounted for separately (h = 1 there)
        return out

    @staticmethod
    def _combine(lp1: np.ndarray, lp2: np.ndarray, log_coef: np.ndarray) -> np.ndarray:
        """``P1 - e^{log_coef} P2`` from logs; both terms can be astronomically large/small separately."""
        res = np.zeros_like(lp1)
        ok = np.isfinite(lp1)
        ex = log_coef[ok] + lp2[ok] - lp1[ok]  # -inf when P2 underflows even in log space: h = P1
        ex = np.minimum(ex, 0.0)  # h >= 0 exactly; clip rounding
        res[ok] = np.exp(lp1[ok]) * -np.expm1(ex)
        return res

    def _panel(self, a: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
        """Gauss–Legendre estimate of ∫_a^b f_t h dv on each panel (vectorised)."""
        half = 0.5 * (b - a)
        mid = 0.5 * (b + a)
        v = mid[:, None] + half[:, None] * _GL_X[None, :]
        rr, logw = self._log_weight(v.ravel())
        val = np.exp(logw) * self._h(rr, eps)
        return half * (val.reshape(v.shape) @ _GL_W)

    # profile ----------------------------------------------------------------------------------------------
    def delta(self, eps: float) -> ExactDelta:
        if eps == math.inf:
            return ExactDelta(self.dsupp, self.dsupp, self.dsupp)
        cached = self._eval_cache.get(eps)
        if cached is not None:
            return cached
        if self.breaks.size == 0:  # empty integration range (see __init__)
            return ExactDelta(self.dsupp, self.dsupp, min(1.0, self.dsupp + self.truncated))
        a = self.breaks[:-1].copy()
        b = self.breaks[1:].copy()
        whole = self._panel(a, b, eps)
        m = 0.5 * (a + b)
        left = self._panel(a, m, eps)
        right = self._panel(m, b, eps)
        err = np.abs(whole - left - right)
        est = left + right
        for _ in range(60):
            total = self.dsupp + float(est.sum())
            tol = _RTOL * total + 1e-300
            if float(err.sum()) <= tol:
                break
            if len(a) >= _MAX_PANELS:  # bounded work: stop refining, keep the error estimate (see below)
                warnings.warn(
                    f"exact_delta quadrature stopped at {len(a)} panels before relative tolerance {_RTOL:g} "
                    f"(d={self.d}, r={self.r}, rho={self.rho}, epsilon={eps}); the error estimate is returned",
                    RuntimeWarning,
                    stacklevel=3,
                )
                break
            thresh = tol / len(a)
            ref = err > thresh
            ref[int(np.argmax(err))] = True
            ra, rb, rm = a[ref], b[ref], m[ref]
            keep = ~ref
            # children of refined panels: [ra, rm] with known integral left[ref], [rm, rb] with right[ref]
            na = np.concatenate((ra, rm))
            nb = np.concatenate((rm, rb))
            nwhole = np.concatenate((left[ref], right[ref]))
            nm = 0.5 * (na + nb)
            nleft = self._panel(na, nm, eps)
            nright = self._panel(nm, nb, eps)
            a = np.concatenate((a[keep], na))
            b = np.concatenate((b[keep], nb))
            m = np.concatenate((m[keep], nm))
            left = np.concatenate((left[keep], nleft))
            right = np.concatenate((right[keep], nright))
            err = np.concatenate((err[keep], np.abs(nwhole - nleft - nright)))
            est = left + right
        else:
            warnings.warn(
                f"exact_delta quadrature did not reach relative tolerance {_RTOL:g} "
                f"(d={self.d}, r={self.r}, rho={self.rho}, epsilon={eps}); the error estimate is returned",
                RuntimeWarning,
                stacklevel=3,
            )
        # keep the refined partition for the next call (same (d, r, rho): features move little with eps)
        if len(a) <= 4096:
            self.breaks = np.unique(np.concatenate((a, b)))
        integral = float(est.sum())
        e = float(err.sum())
        estimate = min(1.0, self.dsupp + integral)
        res = ExactDelta(
            lower=max(self.dsupp, estimate - e),
            estimate=estimate,
            upper=min(1.0, estimate + e + self.truncated),
        )
        self._eval_cache[eps] = res
        return res


_PROFILE_CACHE: dict[tuple[int, int, float], _Profile] = {}
_EPS_BRACKET = 1e7  # geometric bracketing of the exact ε stops here (then Theorem 1 closes the bracket)


def _profile(d: int, r: int, rho: float) -> _Profile:
    key = (d, r, rho)
    p = _PROFILE_CACHE.get(key)
    if p is None:
        if len(_PROFILE_CACHE) > 64:
            _PROFILE_CACHE.clear()
        p = _PROFILE_CACHE[key] = _Profile(d, r, rho)
    return p


def exact_delta_with_error(*, d: int, r: int, rho: float, epsilon: float) -> ExactDelta:
    """Exact ``delta(epsilon)`` of the Wishart vector mechanism with a numerical error interval.

    See :func:`exact_delta` for the formula; :class:`ExactDelta` for the meaning of the interval.
    """
    d, r = _check_dims(d, r)
    rho = _check_rho(rho)
    epsilon = check_real("epsilon", epsilon, lo=0.0, allow_inf=True)
    return _profile(d, r, rho).delta(epsilon)


def exact_delta(*, d: int, r: int, rho: float, epsilon: float) -> float:
    """Exact privacy profile ``delta(epsilon)`` for neighbours with ``VᵀV' = rho`` (deterministic quadrature).

    ``delta(epsilon) = E[(1 - e^{epsilon - L})_+]`` with ``L`` the privacy loss of [LRP] Thm 1 /
    docs/theory.md §2 fact 3 (``L = +inf`` counts 1). Computed as
    ``δ_supp + ∫_{R(T) > 0} f_{t_r}(T) h(R(T)) dT`` where ``h`` is the closed-form expectation over the
    independent ``Q ~ χ²_{d+r-1}`` (see the module docstring), by adaptive Gauss–Legendre quadrature in
    ``v = asinh(T)`` to relative tolerance 1e-9.

    Accuracy: relative error ≲ 1e-9 for values ≳ 1e-280 (absolute floor: ~2e-300 truncated t-mass plus
    double rounding). Use :func:`exact_delta_with_error` for the error interval. ``epsilon = inf`` gives
    ``δ_supp``. Decreasing in ``epsilon``.
    """
    return exact_delta_with_error(d=d, r=r, rho=rho, epsilon=epsilon).estimate


def exact_epsilon(*, d: int, r: int, rho: float, delta: float) -> float:
    """Smallest ε with ``delta(ε) <= delta`` for the exact profile of :func:`exact_delta`.

    Direction of error: the root is found on the *upper* end of the quadrature interval
    (:class:`ExactDelta.upper`) and returned at the upper end of the root-finder's bracket, so the result is
    ≥ the exact ε up to the quadrature's error estimate; its relative excess is ≲ 1e-7 (target: 1e-3).

    Returns ``math.inf`` when ``delta <= δ_supp`` (no finite ε: the neighbour has that much mass where the
    output cannot be) and 0.0 when ``delta >= delta(0)`` (the total-variation distance).
    The root is bracketed by growing ε geometrically up to 1e7; beyond that, the Theorem-1 bound (corrected
    coefficient, a valid upper bound on the exact ε) closes the bracket when it is finite (large ``d``, e.g.
    d = 1e8, r = 5e7, rho = 0.9, δ = 0.01: exact 5.72e6). If neither brackets the root, a ``RuntimeWarning``
    is issued and ``inf`` returned (the conservative answer).
    """
    d, r = _check_dims(d, r)
    rho = _check_rho(rho)
    delta = _check_delta(delta)
    prof = _profile(d, r, rho)
    if delta <= prof.dsupp:
        return math.inf
    log_target = math.log(delta)

    def g(eps: float) -> float:
        up = prof.delta(eps).upper
        return math.log(up) - log_target

    if g(0.0) <= 0.0:
        return 0.0
    lo, hi = 0.0, 1.0
    # bracket the root: delta(eps) is decreasing in eps (grow the upper end geometrically)
    while g(hi) > 0.0:
        lo, hi = hi, hi * 4.0
        if hi > _EPS_BRACKET:
            bound = theorem1_epsilon(d=d, r=r, rho=rho, delta=delta)  # corrected c: exact ε <= bound
            if math.isfinite(bound) and bound > lo and g(bound) <= 0.0:
                hi = bound
                break
            warnings.warn(
                f"exact_epsilon: no ε <= {_EPS_BRACKET:g} reaches delta={delta:g} (d={d}, r={r}, rho={rho}) and "
                f"Theorem 1 does not bracket it (bound {bound:g}); returning inf",
                RuntimeWarning,
                stacklevel=2,
            )
            return math.inf
    xtol, rtol = 1e-10, 1e-8
    root = optimize.brentq(g, lo, hi, xtol=xtol, rtol=rtol, maxiter=200)
    return root + xtol + 4 * rtol * abs(root)
