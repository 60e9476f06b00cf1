"""Rényi-DP accountant for Gaussian, Poisson-sampled and projected Gaussian mechanisms.

Sources: [MTZ19] Mironov, Talwar, Zhang, arXiv:1908.10530 (sampled Gaussian RDP: integer orders, eq. in
§3.2; fractional orders, §3.3); [BBG+20] Balle et al. (RDP → (ε, δ), docs/theory.md §4.6); our derivations in
docs/theory.md §4.3 (fresh projection: ₁F₁), §4.4 (fixed projection: ``E_λ[A_α(λ)^T]``), §4.5 (high
probability baseline).

Orders supported. Every projected curve is also capped, order by order, by the plain (unprojected)
curve, which is a valid bound because ``b ≤ 1``; at orders the projected formula cannot handle this cap
is what is used (``rdp(α) = +inf`` only if nothing applies). Every value is rounded UP (cancellation-free
moment sums with per-term rounding pads, ₁F₁ from the upper end of its bracket, divisions one ulp up), so
the curve is never below the exact RDP:

===============================================  =======================  ==============================
event                                            integer α ≥ 2            fractional α > 1
===============================================  =======================  ==============================
Gaussian                                         closed form              closed form
Poisson-sampled Gaussian                         exact sum [MTZ19 §3.2]   signed series [MTZ19 §3.3]
                                                                          (padded), or the ⌈α⌉ value
fresh projection, unsampled (q = 1)              ₁F₁ (§4.3)               ₁F₁ (§4.3)
fresh projection, Poisson-sampled (q < 1)        binomial sum of ₁F₁      min(plain, unsampled, ⌈α⌉)
fixed projection of the above plain steps        E_λ[·] (upper sum)        plain value unless q = 1
high-probability baseline                        as plain                 as plain
===============================================  =======================  ==============================

The default order grid adapts (:meth:`RdpAccountant.get_epsilon_and_order`): extended while the best order is
at the top edge (up to α = 8192), refined around an interior best order.

IMPORTANT: the neighbouring relation is explicit. ``"add_remove"`` (default): the per-example
difference has norm ≤ C. ``"replace_one"``: ≤ 2C, accounted by doubling the sensitivity (for Poisson
sampling this is an upper bound: checked numerically against the exact replace-one pair
``((1−q)N(0)+qN(μ), (1−q)N(0)+qN(−μ))`` in ``tests/test_accounting_rdp.py``); for the fixed
projection the two records span two directions, so ``span_dim`` is doubled.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Sequence

import numpy as np
from scipy import special

from .._validate import check_choice, check_int, check_real
from .._logspace import logsumexp, np_log_expm1
from ._kummer import log_hyp1f1
from .events import (
    ComposedEvent,
    DpEvent,
    FixedProjectionEvent,
    FreshProjectedGaussianEvent,
    GaussianEvent,
    HighProbabilityProjectionEvent,
    PoissonSampledEvent,
    SelfComposedEvent,
    UnsupportedEventError,
    check_plain_steps,
    event_name,
)
from .projection import SharedVariable, bound_grid, shared_variable

__all__ = [
    "DEFAULT_ORDERS",
    "NEIGHBORING_RELATIONS",
    "OrderGridWarning",
    "EstimateWarning",
    "RdpAccountant",
    "rdp_to_epsilon",
    "sampled_gaussian_rdp",
    "fresh_projection_rdp",
]

#: Default Rényi orders: Opacus/dp_accounting's fractional grid 1.1…10.9, integers 11…64, then sparse to 256.
DEFAULT_ORDERS: tuple[float, ...] = tuple(
    [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 65)) + [72, 80, 96, 112, 128, 160, 192, 224, 256]
)
NEIGHBORING_RELATIONS = ("add_remove", "replace_one")
_MAX_ORDER = 8192  # the adaptive grid stops here (integer sums cost O(α²); beyond it the edge warning is issued)
_HP_FRACTIONS = (0.5, 0.3, 0.1, 0.03, 0.01, 1e-3, 1e-4)  # data-independent grid for delta_M / delta
_TRUNCATED_MAX_ORDER = 512  # the fresh truncated moment costs O(α·grid) per order: above this, its caps are used
_MAX_FRAC_TERMS = 1 << 14  # |C(α,i)| decays only like i^(−α−1): α ≈ 1.1 needs ~10⁴ terms


@functools.lru_cache(maxsize=64)
def _beta_grid(a: float, cs: tuple, hi: float, n: int):
    """Interval edges, log interval probabilities and survival function of the Beta / max-of-Betas law
    (independent of the noise, so cached across the evaluations of a calibration)."""
    var = SharedVariable("beta", a=a, cs=cs)
    edges = var.grid(n) if hi >= 1.0 else np.linspace(0.0, hi, n + 1)
    return edges, var.log_interval_masses(edges), var.sf_array(edges)


def _tail_of(event) -> float | None:
    return getattr(event, "failure_probability", None) if isinstance(event, HighProbabilityProjectionEvent) \
        else getattr(event, "tail_probability", None)


class EstimateWarning(RuntimeWarning):
    """A number is a Monte Carlo estimate, not a bound (opt-in ``lambda_law="simulated"`` only)."""


class OrderGridWarning(RuntimeWarning):
    """The best Rényi order lies at the edge of the grid: a wider grid may give a smaller ε."""


def _sensitivity_factor(neighboring: str) -> float:
    return 2.0 if neighboring == "replace_one" else 1.0


def _is_int(a: float) -> bool:
    return float(a).is_integer()


# ---------------------------------------------------------------------------------------------------
# Poisson-sampled Gaussian, integer orders: A_α = Σ_k C(α,k)(1−q)^{α−k} q^k M_k  [MTZ19 §3.2], with
# M_k = exp(k(k−1)/(2σ²)) (plain) or ₁F₁(r/2; d/2; k(k−1)/(2σ²)) (fresh projection, docs/theory.md §4.3).
# Cancellation-free form: the weights sum to 1, so A_α = 1 + Σ_k w_k (M_k − 1) with every term ≥ 0, and
# log A_α = log1p(exp(lse_k(log w_k + log(M_k − 1)))): full relative precision even when A_α − 1 ~ 1e−300
# (the plain log-sum-exp of the M_k lost all digits there: errors up to 5e−3 at z = 1e5, found in review).
# Every term's logarithm is padded by a bound on its rounding error, so the result is rounded UP.
# ---------------------------------------------------------------------------------------------------
_EPS = float(np.finfo(float).eps)


def _half_inv_sq(noise_multiplier: float, sensitivity: float) -> float:
    """``s²/(2z²)`` rounded up (``inf`` if it overflows; the smallest positive double if it underflows)."""
    with np.errstate(over="ignore", under="ignore"):
        ratio = np.float64(sensitivity) / np.float64(noise_multiplier)
        c = float(ratio * ratio * 0.5)
    if c == 0.0 and ratio > 0:
        return 5e-324
    return float(np.nextafter(c, np.inf))


def _round_up(x: np.ndarray) -> np.ndarray:
    """One ulp up (the last division of an RDP value), keeping exact zeros and infinities."""
    x = np.asarray(x, dtype=float)
    return np.where((x == 0) | ~np.isfinite(x), x, np.nextafter(x, np.inf))


def _log_a_int(q: float, alphas: np.ndarray, log_excess: np.ndarray, xs: np.ndarray | None = None) -> np.ndarray:
    """Upper value of ``log A_α`` for integer ``alphas`` (``0 < q < 1``) given upper values of
    ``log(M_k − 1)`` for ``k = 0..max α`` (``-inf`` where ``M_k = 1``) and the moment arguments ``xs``."""
    al = np.asarray(alphas, dtype=float)[:, None]
    K = len(log_excess)
    k = np.arange(K, dtype=float)[None, :]
    valid = (k <= al) & np.isfinite(log_excess)[None, :]
    xs = np.zeros(K) if xs is None else np.asarray(xs, dtype=float)
    with np.errstate(invalid="ignore"):
        g1 = special.gammaln(al + 1)
        g2 = special.gammaln(k + 1)
        g3 = special.gammaln(np.where(k <= al, al - k, 0.0) + 1)
        lq = k * math.log(q)
        l1q = (al - k) * math.log1p(-q)
        le = np.where(np.isfinite(log_excess), log_excess, 0.0)[None, :]
        err = 8 * _EPS * (np.abs(g1) + g2 + g3 + np.abs(lq) + np.abs(l1q) + np.abs(le) + xs[None, :] + 4.0)
        w = g1 - g2 - g3 + lq + l1q + le + err
    w = np.where(valid, w, -np.inf)
    s = logsumexp(w, axis=1)
    s = np.where(np.isfinite(s), s + 8 * _EPS * (np.abs(s) + math.log(K + 1)), s)  # lse's own rounding
    return np.logaddexp(0.0, s)


def _plain_excess(K: int, c: float) -> tuple[np.ndarray, np.ndarray]:
    """``(log(M_k − 1), x_k)`` for the plain Gaussian, ``x_k = k(k−1)c``, ``k = 0..K−1`` (upper values)."""
    k = np.arange(K, dtype=float)
    with np.errstate(over="ignore"):
        xs = k * (k - 1) * c
    ex = np_log_expm1(xs)
    fin = np.isfinite(ex)
    return np.where(fin, ex + 4 * _EPS * np.abs(np.where(fin, ex, 0.0)), ex), xs


_FRAC_SIGMA_RANGE = (0.05, 1e4)  # the signed series is used only here; elsewhere the ceil-integer bound


def _log_a_frac(q: float, sigma: float, alphas: np.ndarray) -> np.ndarray:
    """``log A_α`` for fractional orders [MTZ19 §3.3], vectorised over orders and terms (upper value).

    ``A_α = Σ_i C(α,i)[q^i(1−q)^{α−i} e^{(i²−i)/(2σ²)} ½erfc((i−z₀)/(√2σ)) + q^{α−i}(1−q)^i e^{(j²−j)/(2σ²)}
    ½erfc((z₀−j)/(√2σ))]``, ``j = α − i``, ``z₀ = σ² log(1/q − 1) + ½``. The generalised binomial
    coefficients change sign for ``i > α``; we sum them **with their signs** (positive and negative
    parts in log space), which gives the exact value (checked against an mpmath quadrature in the tests)
    and reproduces Opacus. dp_accounting sums absolute values instead — an upper bound, larger by
    4–18 % near α = 1.1 (q = 0.01–0.04, σ = 0.8–1.5; ≲ 1e−3 at α = 3.5), measured against a quadrature of
    ``E_{μ0}[(μ/μ0)^α]`` (finding reported in docs/accounting.md). Stopping rule as in
    dp_accounting: both magnitudes decrease and are 30 nats below the running total. Rounding: the result
    is padded by ``(1e−12 + 4·n·eps)`` times the positive part (cancellation) plus twice the first omitted
    term (the tail of the alternating series past the stop). Orders that do not stop within 16,384 terms
    get ``+inf`` (the caller then uses the ceil-integer bound).
    """
    all_alphas = np.asarray(alphas, dtype=float)
    z0 = sigma**2 * math.log(1 / q - 1) + 0.5
    log1mq = math.log1p(-q)
    logq = math.log(q)
    out = np.full(len(all_alphas), np.inf)
    todo = np.arange(len(all_alphas))
    n_terms = 128
    while len(todo):
        alphas = all_alphas[todo][:, None]
        i = np.arange(n_terms, dtype=float)[None, :]
        log_coef = special.gammaln(alphas + 1) - special.gammaln(i + 1) - special.gammaln(alphas - i + 1)
        sign = np.sign(special.binom(alphas, i))
        j = alphas - i
        s0 = (log_coef + i * logq + j * log1mq + (i * i - i) / (2 * sigma**2)
              + special.log_ndtr(-(i - z0) / sigma))
        s1 = (log_coef + j * logq + i * log1mq + (j * j - j) / (2 * sigma**2)
              + special.log_ndtr(-(z0 - j) / sigma))
        s01 = np.logaddexp(s0, s1)
        pos = np.logaddexp.accumulate(np.where(sign > 0, s01, -np.inf), axis=1)
        neg = np.logaddexp.accumulate(np.where(sign < 0, s01, -np.inf), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            tot = pos + np.log1p(-np.exp(neg - pos))
        conv = np.zeros_like(s0, dtype=bool)
        conv[:, 1:-1] = (s0[:, 1:-1] < s0[:, :-2]) & (s1[:, 1:-1] < s1[:, :-2]) & (
            np.maximum(s0[:, 1:-1], s1[:, 1:-1]) < tot[:, 1:-1] - 30)
        done = conv.any(axis=1)
        first = np.argmax(conv, axis=1)
        rows = np.flatnonzero(done)
        f = first[done]
        log_err = np.logaddexp(pos[rows, f] + np.log(1e-12 + 4 * (f + 1) * _EPS),
                               math.log(2.0) + s01[rows, f + 1])
        out[todo[done]] = np.logaddexp(tot[rows, f], log_err)
        todo = todo[~done]
        if n_terms >= _MAX_FRAC_TERMS:
            break
        n_terms = min(2 * n_terms, _MAX_FRAC_TERMS)
    out[~np.isfinite(out)] = np.inf
    return out


def _sgm_int(q: float, c: float, ia: np.ndarray) -> np.ndarray:
    """Sampled-Gaussian RDP at integer orders ``ia`` (``0 < q < 1``, finite ``c = s²/(2z²)``), rounded up."""
    ia = np.asarray(ia, dtype=int)
    log_excess, xs = _plain_excess(int(ia.max()) + 1, c)
    return _round_up(_log_a_int(q, ia, log_excess, xs) / (ia - 1))


def _frac_with_ceil(q: float, sigma: float, c: float, fa: np.ndarray, ceil_rdp) -> np.ndarray:
    """Fractional orders: min of the padded signed series and the ceil-integer value (Rényi divergences are
    non-decreasing in the order: van Erven & Harremoës, arXiv:1206.2459v2, Thm 3)."""
    out = ceil_rdp(np.ceil(fa).astype(int))
    if _FRAC_SIGMA_RANGE[0] <= sigma <= _FRAC_SIGMA_RANGE[1]:
        series = _round_up(_log_a_frac(q, sigma, fa) / (fa - 1))
        out = np.minimum(out, series)
    return out


def sampled_gaussian_rdp(*, sampling_rate: float, noise_multiplier: float, orders: Sequence[float],
                         sensitivity: float = 1.0) -> np.ndarray:
    """RDP of one Poisson-sampled Gaussian step at each order [MTZ19] (add/remove; sensitivity in units of C).

    Degenerate ladder (as Opacus): ``q = 0 → 0``; ``z = 0 → ∞``; ``q = 1 → α s²/(2z²)``. Every value is
    rounded up (never below the exact RDP); ``s²/(2z²)`` that overflows gives ``∞``, one that underflows the
    smallest positive double.
    """
    orders = np.asarray(orders, dtype=float)
    q = float(sampling_rate)
    if q == 0 or sensitivity == 0 or math.isinf(noise_multiplier):
        return np.zeros(len(orders))
    if noise_multiplier == 0:
        return np.full(len(orders), np.inf)
    c = _half_inv_sq(noise_multiplier, sensitivity)
    if math.isinf(c):
        return np.full(len(orders), np.inf)
    if q == 1:
        return _round_up(orders * c)
    out = np.empty(len(orders))
    is_int = np.array([_is_int(a) for a in orders])
    if np.any(is_int):
        out[is_int] = _sgm_int(q, c, orders[is_int].astype(int))
    if np.any(~is_int):
        out[~is_int] = _frac_with_ceil(q, noise_multiplier / sensitivity, c, orders[~is_int],
                                       lambda ia: _sgm_int(q, c, ia))
    return out


def fresh_projection_rdp(*, sampling_rate: float, noise_multiplier: float, d: int, r: int,
                         orders: Sequence[float], sensitivity: float = 1.0) -> np.ndarray:
    """RDP of one step of the compressed Gaussian with a fresh rank-``r`` projection (docs/theory.md §4.3).

    ``q = 1``: ``log ₁F₁(r/2; d/2; α(α−1)s²/(2z²))/(α−1)`` at every order; ``q < 1``: integer orders,
    ``(1/(α−1)) log Σ_k C(α,k)(1−q)^{α−k} q^k ₁F₁(r/2; d/2; k(k−1)s²/(2z²))``; fractional orders: the
    smaller of the plain sampled-Gaussian value (``b ≤ 1``) and the unsampled (``q = 1``) projected value
    (sampling is post-processing of the unsampled pair, so it cannot increase a Rényi divergence), which
    keeps ε monotone in ``q`` up to ``q = 1``. ``₁F₁`` enters through its upper bracket value, so every
    value is ≥ the exact RDP. ``r = d`` reduces exactly to the sampled Gaussian (``₁F₁(a; a; x) = eˣ``).
    """
    from ._kummer import log_hyp1f1_minus_one

    orders = np.asarray(orders, dtype=float)
    q = float(sampling_rate)
    if r >= d:
        return sampled_gaussian_rdp(sampling_rate=q, noise_multiplier=noise_multiplier, orders=orders,
                                    sensitivity=sensitivity)
    if q == 0 or sensitivity == 0 or math.isinf(noise_multiplier):
        return np.zeros(len(orders))
    if noise_multiplier == 0:
        return np.full(len(orders), np.inf)
    c = _half_inv_sq(noise_multiplier, sensitivity)
    if math.isinf(c):
        return np.full(len(orders), np.inf)
    a, b = r / 2.0, d / 2.0

    def unsampled(al: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            xs = al * (al - 1) * c
        return _round_up(log_hyp1f1(a, b, xs) / (al - 1))

    if q == 1:
        return unsampled(orders)
    out = np.full(len(orders), np.inf)
    is_int = np.array([_is_int(al) for al in orders])

    def sampled_int(ia: np.ndarray) -> np.ndarray:
        K = int(np.max(ia)) + 1
        k = np.arange(K, dtype=float)
        with np.errstate(over="ignore"):
            xs = k * (k - 1) * c
        log_excess = log_hyp1f1_minus_one(a, b, xs)[1]
        return _round_up(_log_a_int(q, ia, log_excess, xs) / (np.asarray(ia) - 1))

    if np.any(is_int):
        out[is_int] = sampled_int(orders[is_int].astype(int))
    if np.any(~is_int):
        fa = orders[~is_int]
        plain = sampled_gaussian_rdp(sampling_rate=q, noise_multiplier=noise_multiplier, orders=fa,
                                     sensitivity=sensitivity)
        out[~is_int] = np.minimum(plain, np.minimum(unsampled(fa), sampled_int(np.ceil(fa).astype(int))))
    return out


# ---------------------------------------------------------------------------------------------------
# (α−1)·RDP(α) of plain steps at sensitivity scale·√b, vectorised over b (used by the fixed projection).
# ---------------------------------------------------------------------------------------------------
def _log_a_b(logw: np.ndarray, err_w: np.ndarray, xs: np.ndarray, a: int) -> np.ndarray:
    """Upper ``log A_α(b)`` column-wise: ``xs[k, j] = k(k−1)c·b_j`` (cancellation-free form, padded)."""
    excess = np_log_expm1(xs)
    fin = np.isfinite(excess)
    safe = np.where(fin, excess, 0.0)
    terms = np.where(fin, logw[:, None] + err_w[:, None] + safe + 8 * _EPS * (np.abs(safe) + np.where(fin, xs, 0.0)),
                     -np.inf)
    ssum = logsumexp(terms, axis=0)
    fin_s = np.isfinite(ssum)
    sv = np.where(fin_s, ssum, 0.0)
    ssum = np.where(fin_s, sv + 8 * _EPS * (np.abs(sv) + math.log(a + 2)), ssum)
    return np.logaddexp(0.0, ssum)


def _log_moment_b(event: DpEvent, alpha: float, b: np.ndarray, scale: float) -> np.ndarray:
    """Upper value of ``(α−1)·RDP(α)`` of plain steps whose sensitivity is ``scale·√b`` (vectorised over ``b``)."""
    if isinstance(event, GaussianEvent):
        z = event.noise_multiplier
        if math.isinf(z):
            return np.zeros_like(b)
        if z == 0:
            return np.where(b > 0, np.inf, 0.0)
        c = _half_inv_sq(z, scale)
        with np.errstate(over="ignore", invalid="ignore"):
            return _round_up(np.where(b > 0, alpha * (alpha - 1) * c * b, 0.0))
    if isinstance(event, PoissonSampledEvent) and isinstance(event.event, GaussianEvent):
        q, z = event.sampling_probability, event.event.noise_multiplier
        if q == 0 or math.isinf(z):
            return np.zeros_like(b)
        if q == 1:
            return _log_moment_b(event.event, alpha, b, scale)
        if z == 0:
            return np.where(b > 0, np.inf, 0.0)
        if not _is_int(alpha):
            return np.full_like(b, np.inf)
        c = _half_inv_sq(z, scale)
        if math.isinf(c):
            return np.where(b > 0, np.inf, 0.0)
        a = int(alpha)
        k = np.arange(a + 1, dtype=float)
        g = special.gammaln(a + 1) - special.gammaln(k + 1) - special.gammaln(a - k + 1)
        lq, l1q = k * math.log(q), (a - k) * math.log1p(-q)
        logw = g + lq + l1q
        err_w = 8 * _EPS * (special.gammaln(a + 1) + special.gammaln(k + 1) + special.gammaln(a - k + 1)
                            + np.abs(lq) + np.abs(l1q) + 4.0)
        with np.errstate(invalid="ignore", over="ignore"):
            return _log_a_b(logw, err_w, (k * (k - 1))[:, None] * (c * b[None, :]), a)
    if isinstance(event, SelfComposedEvent):
        if event.count == 0:
            return np.zeros_like(b)
        return _round_up(event.count * _log_moment_b(event.event, alpha, b, scale))
    if isinstance(event, ComposedEvent):
        tot = np.zeros_like(b)
        for e in event.events:
            tot = tot + _log_moment_b(e, alpha, b, scale)
        return tot
    raise UnsupportedEventError(f"{event_name(event)} is not supported inside a fixed-projection event")


def _check_rdp(event: object) -> None:
    """Raise UnsupportedEventError naming the first sub-event the RDP accountant cannot handle."""
    if isinstance(event, (GaussianEvent, FreshProjectedGaussianEvent)):
        return
    if isinstance(event, PoissonSampledEvent):
        if not isinstance(event.event, (GaussianEvent, FreshProjectedGaussianEvent)):
            raise UnsupportedEventError(
                f"RdpAccountant: PoissonSampledEvent({event_name(event.event)}) is not supported "
                "(only Gaussian or FreshProjectedGaussian steps can be Poisson-sampled)"
            )
        return
    if isinstance(event, SelfComposedEvent):
        return _check_rdp(event.event)
    if isinstance(event, ComposedEvent):
        for e in event.events:
            _check_rdp(e)
        return
    if isinstance(event, FixedProjectionEvent):
        return check_plain_steps(event.event, "FixedProjectionEvent")
    if isinstance(event, HighProbabilityProjectionEvent):
        return check_plain_steps(event.event, "HighProbabilityProjectionEvent")
    raise UnsupportedEventError(f"RdpAccountant does not support {event_name(event)}")


def rdp_to_epsilon(orders: Sequence[float], rdp: Sequence[float], delta: float, *,
                   warn: bool = True) -> tuple[float, float]:
    """(ε, best order) from an RDP curve: ``ε = min_α rdp(α) + ln((α−1)/α) − (ln δ + ln α)/(α−1)``
    (docs/theory.md §4.6, [BBG+20]; the same conversion as dp_accounting and Opacus).

    Like dp_accounting: orders ``≤ 1.01`` are not used (numerically unstable); if
    ``δ² + expm1(−rdp) > 0`` the KL bound already gives ε = 0. Warns (:class:`OrderGridWarning`) when
    the best order is the smallest or largest order with a finite RDP.
    """
    delta = check_real("delta", delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    orders = np.asarray(orders, dtype=float)
    rdp = np.asarray(rdp, dtype=float)
    if orders.shape != rdp.shape:
        raise ValueError(f"orders and rdp must have the same length, got {len(orders)} and {len(rdp)}")
    if np.all(rdp == 0):
        return 0.0, float(orders[0]) if len(orders) else math.nan
    eps = np.full(len(orders), np.inf)
    for i, (a, r) in enumerate(zip(orders, rdp)):
        if not np.isfinite(r) or a <= 1.0:
            continue
        if r <= 0:
            eps[i] = 0.0
        elif delta**2 + math.expm1(-r) > 0:
            eps[i] = 0.0
        elif a > 1.01:
            eps[i] = r + math.log1p(-1 / a) - math.log(delta * a) / (a - 1)
    if not np.any(np.isfinite(eps)):
        return math.inf, math.nan
    i = int(np.argmin(eps))
    best = float(max(0.0, eps[i]))
    finite = np.flatnonzero(np.isfinite(rdp) & (orders > 1.01))
    if warn and best > 0 and len(finite) > 1 and (i == finite[0] or i == finite[-1]):
        side = "smallest" if i == finite[0] else "largest"
        warnings.warn(
            f"best Renyi order {orders[i]:g} is the {side} usable order of the grid; "
            "a wider grid may give a smaller epsilon",
            OrderGridWarning,
            stacklevel=2,
        )
    return best, float(orders[i])


class RdpAccountant:
    """RDP accountant for every event in :mod:`lowrankdp.accounting.events` (see the module table).

    ``compose`` validates the whole event before changing state and names the sub-event it cannot
    handle (``UnsupportedEventError``, a ``ValueError``). The curve is computed lazily.
    """

    def __init__(self, orders: Sequence[float] | None = None, neighboring: str = "add_remove",
                 *, fixed_grid: int = 512, n_lambda_samples: int = 20000, seed: int = 0,
                 lambda_law: str = "bound"):
        self._adaptive = orders is None
        orders = DEFAULT_ORDERS if orders is None else orders
        orders = np.asarray([check_real("orders", o, lo=1.0, lo_open=True) for o in orders], dtype=float)
        if len(orders) == 0:
            raise ValueError("orders must contain at least one order > 1, got []")
        self.orders = orders
        self.neighboring = check_choice("neighboring", neighboring, NEIGHBORING_RELATIONS)
        self.fixed_grid = check_int("fixed_grid", fixed_grid, minimum=16)
        self.n_lambda_samples = check_int("n_lambda_samples", n_lambda_samples, minimum=100)
        self.seed = seed
        self.lambda_law = check_choice("lambda_law", lambda_law, ("bound", "simulated"))
        self._events: list[tuple[DpEvent, int]] = []
        self._fixed_cache: dict = {}
        self._moment_rows: dict = {}
        self._fixed_min_tail: dict = {}  # id(fixed-projection event) -> smallest tail of the δ split (grid floor)
        self._wrappers: dict = {}  # id(fresh step) -> (step, its one-step FixedProjectionEvent), see _fresh_step
        self._wrapper_ids: set = set()  # ids of those one-step events: their law is the per-step one ("union")
        self.details: dict = {}

    def supports(self, event: object) -> bool:
        try:
            _check_rdp(event)
        except UnsupportedEventError:
            return False
        return True

    def compose(self, event: DpEvent, count: int = 1) -> "RdpAccountant":
        count = check_int("count", count, minimum=0)
        _check_rdp(event)
        self._events.append((event, count))
        self._fixed_cache = {}
        self._moment_rows = {}
        self._wrappers = {}
        self._wrapper_ids = set()
        return self

    # -- curve --------------------------------------------------------------------------------------
    def _floor(self, event: DpEvent, tail: float) -> float:
        """The smallest tail any candidate split of δ gives ``event`` (so one grid serves every candidate)."""
        m = self._fixed_min_tail.get(id(event), 0.0)
        return m if 0 < m <= tail else tail

    def _fresh_steps(self, event: DpEvent, mult: int = 1, out: dict | None = None) -> dict:
        """``{id(step): [step, number of times it runs]}`` for every fresh-projection step whose b can be
        truncated (docs/theory.md §4.8); a step is ``PoissonSampledEvent(q, fresh)`` or a bare fresh event."""
        out = {} if out is None else out
        fresh = event.event if isinstance(event, PoissonSampledEvent) else event
        if isinstance(fresh, FreshProjectedGaussianEvent):
            k = fresh.span_dim * (2 if self.neighboring == "replace_one" else 1)
            q = event.sampling_probability if isinstance(event, PoissonSampledEvent) else 1.0
            if not fresh.unprojected and all(fresh.r < dl for dl in fresh.d) and q > 0 and mult > 0:
                out.setdefault(id(event), [event, 0])[1] += mult
        elif isinstance(event, SelfComposedEvent):
            self._fresh_steps(event.event, mult * event.count, out)
        elif isinstance(event, ComposedEvent):
            for e in event.events:
                self._fresh_steps(e, mult, out)
        return out

    def _hp_events(self, event: DpEvent) -> list:
        """Events whose tail probability δ_M is chosen at conversion (high-probability; fixed: may be 0)."""
        if isinstance(event, HighProbabilityProjectionEvent):
            trivial = event.unprojected or any(1 + event.r > dl for dl in event.d)  # q_M = 1: no δ_M to spend
            return [] if trivial else [event]
        if isinstance(event, FixedProjectionEvent):
            k = event.span_dim * (2 if self.neighboring == "replace_one" else 1)
            trivial = event.unprojected or any(k + event.r > dl for dl in event.d)  # λ ≡ 1: nothing to truncate
            # the simulated λ_max law (an estimate, opt-in) is used without truncation: no δ_M spent on it
            return [] if trivial or (k > 1 and self.lambda_law == "simulated") else [event]
        if isinstance(event, (SelfComposedEvent, PoissonSampledEvent)):
            return self._hp_events(event.event)
        if isinstance(event, ComposedEvent):
            return [h for e in event.events for h in self._hp_events(e)]
        return []

    def _shared(self, d, r, span_dim, unprojected, per_step: bool = False) -> SharedVariable:
        k = span_dim * (2 if self.neighboring == "replace_one" else 1)
        return shared_variable(d=d, r=r, span_dim=k, unprojected=unprojected, n_samples=self.n_lambda_samples,
                               seed=self.seed, law="bound" if per_step else self.lambda_law, per_step=per_step)

    def _rdp(self, event: DpEvent, scale: float, hp_fail: dict) -> np.ndarray:
        orders = self.orders
        if isinstance(event, GaussianEvent):
            z = event.noise_multiplier
            if math.isinf(z) or scale == 0:
                return np.zeros(len(orders))
            if z == 0:
                return np.full(len(orders), np.inf)
            return orders * scale**2 / (2 * z**2)
        if isinstance(event, FreshProjectedGaussianEvent):
            return self._fresh_step(event, 1.0, event, scale, hp_fail)
        if isinstance(event, PoissonSampledEvent):
            inner = event.event
            if isinstance(inner, GaussianEvent):
                return sampled_gaussian_rdp(sampling_rate=event.sampling_probability,
                                            noise_multiplier=inner.noise_multiplier, orders=orders,
                                            sensitivity=scale)
            return self._fresh_step(event, event.sampling_probability, inner, scale, hp_fail)
        if isinstance(event, SelfComposedEvent):
            if event.count == 0:
                return np.zeros(len(orders))
            return event.count * self._rdp(event.event, scale, hp_fail)
        if isinstance(event, ComposedEvent):
            tot = np.zeros(len(orders))
            for e in event.events:
                tot = tot + self._rdp(e, scale, hp_fail)
            return tot
        if isinstance(event, FixedProjectionEvent):
            return self._fixed(event, scale, hp_fail)
        if isinstance(event, HighProbabilityProjectionEvent):
            var = shared_variable(d=event.d, r=event.r, span_dim=1, unprojected=event.unprojected)
            fp = hp_fail.get(id(event), 0.0)
            # replace-one: two directions, union bound over both (max of two Betas).
            tail = fp / 2 if self.neighboring == "replace_one" else fp
            q_m = 1.0 if tail <= 0 else var.upper_quantile(tail)
            self.details.setdefault("high_probability_q_M", q_m)
            return self._rdp(event.event, scale * math.sqrt(q_m), hp_fail)
        raise UnsupportedEventError(f"RdpAccountant does not support {event_name(event)}")  # pragma: no cover

    def _ex_rows(self, event: FixedProjectionEvent, scale: float, grid_key: tuple, edges: np.ndarray) -> np.ndarray:
        """``log(exp((α−1)ε_inner(α; √b)) − 1)`` at ``edges`` for every order (rows cached per order, so a
        refinement of the order grid only computes the new orders); ``+inf`` rows where it is not finite."""
        out = np.full((len(self.orders), len(edges)), np.inf)
        cap = _TRUNCATED_MAX_ORDER if id(event) in self._wrapper_ids else math.inf
        for i, a in enumerate(self.orders):
            if a > cap:  # left +inf: the caller's cap (plain curve, or ₁F₁ for one direction) applies there
                continue
            key = (id(event), scale, grid_key, float(a))
            row = self._moment_rows.get(key)
            if row is None:
                vals = _log_moment_b(event.event, a, edges, scale)
                row = np_log_expm1(vals) if np.all(np.isfinite(vals)) else np.full(len(edges), np.inf)
                self._moment_rows[key] = row
            out[i] = row
        return out

    def _plain_of(self, event: FixedProjectionEvent, scale: float, hp_fail: dict) -> np.ndarray:
        pkey = ("plain", id(event), scale)
        if pkey not in self._fixed_cache:
            self._fixed_cache[pkey] = self._rdp(event.event, scale, hp_fail)
        return self._fixed_cache[pkey]

    def _fixed(self, event: FixedProjectionEvent, scale: float, hp_fail: dict) -> np.ndarray:
        """docs/theory.md §4.4: ``(α−1)ε(α) = log E_λ[exp((α−1)ε_inner(α; √λ))]``, optionally conditioned on
        ``λ ≤ t`` where ``P(λ > t) ≤ δ_M`` (the tail goes into δ: ``P(S) ≤ e^ε P′(S) + δ + δ_M`` because
        the event ``λ ≤ t`` depends on ``A`` only). Upper Riemann–Stieltjes sums in the cancellation-free form
        ``E[f] = 1 + Σ m_i (f(e_{i+1}) − 1)`` (``f ≥ 1`` increasing; masses normalised), padded by a relative
        1e−9 for the quadrature of the masses: errs upward. For ``k > 1`` directions the law of ``λ`` is the
        net bound ``λ′`` (stochastically larger, :mod:`.projection`) and ``E[f(λ) | λ ≤ t] ≤
        E[f(min(λ′, t))]/(1 − P′(λ′ > t))``."""

        orders = self.orders
        per_step = id(event) in self._wrapper_ids
        var = self._shared(event.d, event.r, event.span_dim, event.unprojected, per_step=per_step)
        # a fresh step's grid is 2× finer (its upper sums err by ≲ 0.2 % of (α−1)ε(α) at order 40 of the §4.8
        # example; 8× finer moves that example's ε by only 0.3 % for 3× the time)
        n_grid = self.fixed_grid * (2 if per_step else 1)
        if var.kind == "one":
            return self._rdp(event.event, scale, hp_fail)
        self.details["fixed_law"] = var.kind
        if var.kind == "simulated":
            self.details["estimate"] = True
        tail = hp_fail.get(id(event)) or 0.0
        if tail < 0:  # sentinel: account the unprojected run (λ ≤ 1), spending no δ_M
            return self._plain_of(event, scale, hp_fail)
        plain = self._plain_of(event, scale, hp_fail)
        if var.kind in ("net", "union"):
            return self._fixed_bound_law(event, var, scale, tail, plain)
        # Grid: the whole of [0, 1] for the plain expectation; only [0, t(min tail)] when every query
        # truncates the tail (get_epsilon), which halves the work.
        if tail <= 0 or var.kind != "beta":
            hi = 1.0
        else:
            floor = self._floor(event, tail)
            hi = var.upper_quantile(floor * 0.999)
        key = (id(event), scale, hi)
        if key not in self._fixed_cache:
            if var.kind == "beta":
                edges, lm, sf = _beta_grid(var.a, var.cs, hi, n_grid)
            else:
                edges = np.concatenate([[0.0], np.sort(var.samples)])
                lm = np.full(len(edges) - 1, -math.log(len(edges) - 1))
                sf = None
            cum_den = np.logaddexp.accumulate(lm)
            ex = self._ex_rows(event, scale, (var.kind, hi), edges)
            with np.errstate(invalid="ignore"):
                cum_up = np.logaddexp.accumulate(lm[None, :] + ex[:, 1:], axis=1)
                cum_lo = np.logaddexp.accumulate(lm[None, :] + ex[:, :-1], axis=1)
            self._fixed_cache[key] = (edges, sf, cum_den, cum_up, cum_lo)
        edges, sf, cum_den, cum_up, cum_lo = self._fixed_cache[key]
        j = cum_up.shape[1] - 1
        if tail > 0 and sf is not None:
            ok = np.flatnonzero(sf[1:] <= tail)  # interval index j: keep intervals 0..j, λ ≤ edges[j+1]
            if len(ok) == 0:  # the grid never reaches the quantile (it is within float steps of 1): λ ≤ 1
                return plain
            j = int(ok[0])
            self.details["fixed_truncation"] = float(edges[j + 1])
        with np.errstate(invalid="ignore"):
            up = np.logaddexp(0.0, cum_up[:, j] - cum_den[j]) * (1 + 1e-9)
            lo = np.logaddexp(0.0, cum_lo[:, j] - cum_den[j])
        up = np.where(np.isfinite(cum_up[:, j]), up, np.inf)
        self.details["fixed_rdp_lower"] = lo / (orders - 1)
        fixed = _round_up(up / (orders - 1))
        # λ ≤ 1: for every A (conditioned or not) the run is dominated by the unprojected one, so the plain
        # curve is a bound too, order by order (fills fractional orders).
        return np.minimum(fixed, plain)

    def _fixed_bound_law(self, event: FixedProjectionEvent, var: SharedVariable, scale: float, tail: float,
                         plain: np.ndarray) -> np.ndarray:
        """:meth:`_fixed` when the law of λ is only known through an upper bound ``P′`` of its survival function
        (kinds ``"net"`` and ``"union"``): ``E[f(λ) | λ ≤ t] ≤ E[f(min(λ′, t))]/(1 − P′(λ′ > t))``."""
        orders = self.orders
        floor = self._floor(event, tail)
        hi = var.bound_upper_quantile(floor * 0.999) if tail > 0 else 1.0
        key = (var.kind, id(event), scale, hi)
        if key not in self._fixed_cache:
            edges, sf = bound_grid(var.kind, var.r, var.ds, var.k, hi, self.fixed_grid * 4)
            with np.errstate(divide="ignore"):
                ld = np.log(np.maximum(sf[:-1] - sf[1:], 0.0))
            ex = self._ex_rows(event, scale, (var.kind, hi), edges)
            with np.errstate(invalid="ignore"):
                cum = np.logaddexp.accumulate(ld[None, :] + ex[:, 1:], axis=1)
            self._fixed_cache[key] = (edges, sf, ex, cum)
        edges, sf, ex, cum = self._fixed_cache[key]
        if tail > 0:
            ok = np.flatnonzero(sf[1:] <= tail)
            if len(ok) == 0:
                return plain
            j = int(ok[0])  # condition on λ ≤ t = edges[j+1]; mass sf[j] of λ′ sits at t
        else:
            j = len(edges) - 2
        with np.errstate(divide="ignore", invalid="ignore"):
            num = math.log(sf[j]) + ex[:, j + 1] if sf[j] > 0 else np.full(len(orders), -np.inf)
            if j >= 1:
                num = np.logaddexp(num, cum[:, j - 1])
            cond = -math.log1p(-sf[j + 1]) if sf[j + 1] > 0 else 0.0
            up = (np.logaddexp(0.0, num) * (1 + 1e-9) + cond) / (orders - 1)
        up = np.where(np.isfinite(ex[:, j + 1]), up, np.inf)
        if tail > 0:
            self.details["fixed_truncation"] = float(edges[j + 1])
        return np.minimum(_round_up(up), plain)

    def _fresh_step(self, step: DpEvent, q: float, ev: FreshProjectedGaussianEvent, scale: float,
                    hp_fail: dict) -> np.ndarray:
        """One fresh-projection step: the ₁F₁ curve (§4.3), or — when ``hp_fail`` gives the step a tail ``p > 0``
        — the truncated moment of docs/theory.md §4.8: the RDP of the step *conditioned on* ``b ≤ τ``,
        ``P(b > τ) ≤ p``, i.e. ``log E[A_α(b) | b ≤ τ]/(α−1)``. This is the fixed-projection computation of
        one step (:meth:`_fixed` on ``FixedProjectionEvent(one plain step)``: same law of b, same upper
        Riemann–Stieltjes sums; for ``span_dim > 1`` the per-step union bound over the record's directions,
        kind ``"union"`` of :mod:`.projection`); the caller charges the union ``T·p`` over the steps to δ. For
        one direction the conditioned moment is also ≤ the unconditioned ₁F₁ one (truncating an independent Beta
        from above lowers the mean of an increasing function), so the smaller of the two is taken order by
        order; for ``k > 1`` it is not, and only the plain cap is."""
        key = ("fresh", id(step), scale, len(self.orders))  # the ₁F₁ curve does not depend on the δ split
        if key not in self._fixed_cache:
            self._fixed_cache[key] = self._fresh(q, ev, scale)
        untruncated = self._fixed_cache[key]
        tail = hp_fail.get(id(step)) or 0.0
        if tail <= 0:
            return untruncated
        wrapper = self._wrappers.get(id(step), (None, None))[1]
        if wrapper is None:
            inner = PoissonSampledEvent(q, GaussianEvent(ev.noise_multiplier)) if q < 1 else GaussianEvent(
                ev.noise_multiplier)
            wrapper = FixedProjectionEvent(inner, ev.d, ev.r, span_dim=ev.span_dim, unprojected=ev.unprojected)
            self._wrappers[id(step)] = (step, wrapper)
            self._wrapper_ids.add(id(wrapper))
        self._fixed_min_tail[id(wrapper)] = self._fixed_min_tail.get(id(step), 0.0)
        saved = self.details
        self.details = {}
        try:
            curve = self._fixed(wrapper, scale, {id(wrapper): tail})
            truncation = self.details.get("fixed_truncation")
        finally:
            self.details = saved
        if truncation is not None:
            self.details["fresh_truncation"] = truncation
        k = ev.span_dim * (2 if self.neighboring == "replace_one" else 1)
        return np.minimum(curve, untruncated) if k == 1 else curve

    def _fresh(self, q: float, ev: FreshProjectedGaussianEvent, scale: float) -> np.ndarray:
        d = ev.d_min  # smallest d is the worst case for the fresh RDP (docs/theory.md §4.2; Jensen per layer)
        r = d if ev.unprojected else ev.r
        proj = fresh_projection_rdp(sampling_rate=q, noise_multiplier=ev.noise_multiplier, d=d, r=r,
                                    orders=self.orders, sensitivity=scale)
        # b ≤ 1: given A the step is a sampled Gaussian with sensitivity ≤ scale, so the plain curve is also
        # a bound (order by order); this fills the fractional orders the projected formula lacks.
        plain = sampled_gaussian_rdp(sampling_rate=q, noise_multiplier=ev.noise_multiplier, orders=self.orders,
                                     sensitivity=scale)
        return np.minimum(proj, plain)

    def get_rdp(self, *, failure_probabilities: dict | None = None) -> np.ndarray:
        """RDP at ``self.orders`` of everything composed so far (``+inf`` at unsupported orders).

        High-probability events need their ``failure_probability`` set (or given here by ``id``).
        """
        hp = {id(h): _tail_of(h) for ev, _ in self._events for h in self._hp_events(ev)}
        for ev, _ in self._events:
            for h in self._hp_events(ev):
                if isinstance(h, FixedProjectionEvent) and hp[id(h)] is None:
                    hp[id(h)] = 0.0  # plain expectation unless a tail is chosen
        if failure_probabilities:
            hp.update(failure_probabilities)
        if any(v is None for v in hp.values()):
            raise ValueError("HighProbabilityProjectionEvent without failure_probability: use get_epsilon(delta)")
        self.details = {}
        s = _sensitivity_factor(self.neighboring)
        tot = np.zeros(len(self.orders))
        for ev, count in self._events:
            if count == 0:
                continue
            tot = tot + count * self._rdp(ev, s, hp)
        return tot

    def get_epsilon_and_order(self, delta: float) -> tuple[float, float]:
        """Smallest ε over the orders (docs/theory.md §4.6) for the target ``delta``, and the order attaining it.

        With the default orders the grid **adapts**: while the best order is at the top (bottom) edge the grid
        is extended upward (toward 1.01), and around an interior best order it is refined (every integer
        between the neighbours above 11, steps of ~1 % of ``α − 1`` below), until nothing changes — so ε is
        within 0.5 % of the minimum over continuous orders (tests/test_accounting_rdp.py). User-given orders
        are used as they are. An :class:`OrderGridWarning` is issued only if the best order is still at an
        edge; an :class:`EstimateWarning` if the number is a Monte Carlo estimate (``lambda_law="simulated"``).
        """
        if not self._events:
            return 0.0, math.nan
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            eps, order = self._eps_order(delta)
        if self._adaptive and math.isfinite(eps) and eps > 0:
            for _ in range(12):
                new = self._refinement(order)
                if len(new) == 0:
                    break
                self.orders = np.unique(np.concatenate([self.orders, new]))
                self._fixed_cache = {}
                with warnings.catch_warnings(record=True) as caught2:
                    warnings.simplefilter("always")
                    eps2, order2 = self._eps_order(delta)
                caught = caught2
                if eps2 <= eps:
                    eps, order = eps2, order2
                else:  # pragma: no cover - adding orders cannot increase a minimum
                    break
            self.details["orders_evaluated"] = len(self.orders)
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if self.details.get("estimate"):
            warnings.warn("the fixed-projection epsilon uses a simulated law of lambda_max (lambda_law='simulated'): "
                          "it is a Monte Carlo ESTIMATE, not a bound", EstimateWarning, stacklevel=2)
        return eps, order

    def _refinement(self, order: float) -> np.ndarray:
        """Orders to add around the current best ``order`` (empty when the grid is fine enough there)."""
        orders = np.sort(self.orders)
        i = int(np.searchsorted(orders, order))
        if i >= len(orders) - 1:  # top edge: extend upward
            top = orders[-1]
            if top >= _MAX_ORDER:
                return np.array([])
            return np.unique(np.minimum(np.round(top * np.array([1.125, 1.25, 1.5, 2.0, 3.0, 4.0])), _MAX_ORDER))
        lo = orders[i - 1] if i > 0 else 1.01
        hi = orders[i + 1]
        if order >= 11:
            cand = np.arange(math.floor(lo) + 1, math.ceil(hi), dtype=float)
            if len(cand) > 24:
                cand = np.unique(np.round(np.linspace(lo, hi, 26)[1:-1]))
        else:
            step = 0.01 * (order - 1)
            cand = np.concatenate([np.linspace(lo, order, 5)[1:-1], np.linspace(order, hi, 5)[1:-1]])
            if hi - lo <= 2 * step:
                cand = np.array([])
        cand = cand[(cand > 1.01) & ~np.isin(cand, orders)]
        return cand

    def _eps_order(self, delta: float) -> tuple[float, float]:
        """Smallest ε over the orders (docs/theory.md §4.6) for the target ``delta``, and the order attaining it.

        With high-probability / fixed-projection events whose ``δ_M`` is unset, ``δ`` is split as
        ``δ_M = f·δ`` (shared equally by such events) with ``f`` from a fixed, data-independent grid, plus the
        candidate ``δ_M = 0`` accounted as the unprojected run; the smallest ε is returned (each candidate is
        a valid (ε, δ) statement, so taking the best is too).
        """
        delta = check_real("delta", delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        if not self._events:
            return 0.0, math.nan
        hps = [h for ev, _ in self._events for h in self._hp_events(ev)]
        fixed_sum = sum(_tail_of(h) for h in hps if _tail_of(h) is not None)
        free = [h for h in hps if _tail_of(h) is None]
        fresh: dict = {}
        for ev, count in self._events:
            self._fresh_steps(ev, count, fresh)
        if fixed_sum >= delta:
            raise ValueError(f"delta ({delta}) must exceed the high-probability failure probabilities ({fixed_sum})")
        if not free and not fresh:
            rdp = self.get_rdp()
            eps, order = rdp_to_epsilon(self.orders, rdp, delta - fixed_sum)
            self.details.update(rdp=rdp, best_order=order, delta_M=fixed_sum)
            return eps, order
        best = (math.inf, math.nan, None, None)
        rest = delta - fixed_sum
        units = len(free) + len(fresh)  # δ_M is shared equally; a fresh step's share is split over its T runs

        def split(dm: float) -> dict:
            fp = {id(h): dm / units for h in free}
            fp.update({key: dm / units / mult for key, (_step, mult) in fresh.items()})
            return fp

        self._fixed_min_tail = split(min(_HP_FRACTIONS) * rest)
        for f in _HP_FRACTIONS:
            dm = f * rest
            fp = split(dm)
            rdp = self.get_rdp(failure_probabilities=fp)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OrderGridWarning)
                eps, order = rdp_to_epsilon(self.orders, rdp, rest - dm)
            if eps < best[0]:
                best = (eps, order, dm, rdp)
        # the unprojected run (δ_M = 0, λ ≡ 1) is also a valid bound: never report more than it
        rdp0 = self.get_rdp(failure_probabilities={key: -1.0 for key in split(1.0)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OrderGridWarning)
            eps0, order0 = rdp_to_epsilon(self.orders, rdp0, rest)
        if eps0 <= best[0]:
            best = (eps0, order0, 0.0, rdp0)
        eps, order, dm, rdp = best
        if dm == 0.0:
            rdp_to_epsilon(self.orders, rdp, rest)  # re-issue the grid warning
            self.details.update(rdp=rdp, best_order=order, delta_M=fixed_sum, fixed_truncation=None,
                                fresh_truncation=None, high_probability_q_M=1.0)
        elif dm is not None:
            self.get_rdp(failure_probabilities=split(dm))
            rdp_to_epsilon(self.orders, rdp, rest - dm)  # re-issue the grid warning for the chosen split
            self.details.update(rdp=rdp, best_order=order, delta_M=fixed_sum + dm)
        return eps, order

    def get_epsilon(self, delta: float) -> float:
        return self.get_epsilon_and_order(delta)[0]
