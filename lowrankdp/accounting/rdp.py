"""Rényi-DP accountant for Gaussian, Poisson-sampled and projected Gaussian mechanisms.

Sources: [MTZ19] Mironov, Talwar, Zhang, arXiv:1908.10530 (sampled Gaussian RDP: integer orders, eq. in
§3.2; fractional orders, §3.3); [BBG+20] Balle et al. (RDP → (ε, δ), docs/theory.md §4.6); our derivations in
docs/theory.md §4.3 (fresh projection: ₁F₁), §4.4 (fixed projection: ``E_λ[A_α(λ)^T]``), §4.5 (high
probability baseline).

Orders supported. Every projected curve is also capped, order by order, by the plain (unprojected)
curve, which is a valid bound because ``b ≤ 1``; at orders the projected formula cannot handle this cap
is what is used (``rdp(α) = +inf`` only if nothing applies):

===============================================  =======================  ==========================
event                                            integer α ≥ 2            fractional α > 1
===============================================  =======================  ==========================
Gaussian                                         closed form              closed form
Poisson-sampled Gaussian                         exact sum [MTZ19 §3.2]   signed series [MTZ19 §3.3]
                                                                          (exact; = Opacus)
fresh projection, unsampled (q = 1)              ₁F₁ (§4.3)               ₁F₁ (§4.3)
fresh projection, Poisson-sampled (q < 1)        binomial sum of ₁F₁      plain SGM value (b ≤ 1)
fixed projection of the above plain steps        E_λ[·] (upper sum)        plain value unless q = 1
high-probability baseline                        as plain                 as plain
===============================================  =======================  ==========================

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
    event_name,
)
from .projection import SharedVariable, log_expectation_increasing, shared_variable

__all__ = [
    "DEFAULT_ORDERS",
    "NEIGHBORING_RELATIONS",
    "OrderGridWarning",
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
_HP_FRACTIONS = (0.5, 0.3, 0.1, 0.03, 0.01, 1e-3, 1e-4)  # data-independent grid for delta_M / delta
_MAX_FRAC_TERMS = 1 << 16  # |C(α,i)| decays only like i^(−α−1): α ≈ 1.1 needs ~10⁴ terms


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


class OrderGridWarning(RuntimeWarning):
    """The best Rényi order lies at the edge of the grid: a wider grid may give a smaller ε."""


def _sensitivity_factor(neighboring: str) -> float:
    return 2.0 if neighboring == "replace_one" else 1.0


def _is_int(a: float) -> bool:
    return float(a).is_integer()


# ---------------------------------------------------------------------------------------------------
# Poisson-sampled Gaussian, integer orders: log A_α = log Σ_k C(α,k)(1−q)^{α−k} q^k exp(L_k)  [MTZ19 §3.2]
# with L_k = k(k−1)/(2σ²) (plain) or log ₁F₁(r/2; d/2; k(k−1)/(2σ²)) (fresh projection, docs/theory.md §4.3).
# ---------------------------------------------------------------------------------------------------
def _log_binom_weights(alpha: int, q: float) -> np.ndarray:
    k = np.arange(alpha + 1)
    return (
        special.gammaln(alpha + 1) - special.gammaln(k + 1) - special.gammaln(alpha - k + 1)
        + k * math.log(q) + (alpha - k) * math.log1p(-q)
    )


def _lse_rows(mat: np.ndarray) -> np.ndarray:
    """Row-wise log-sum-exp (rows may contain -inf padding)."""
    m = mat.max(axis=1)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return m_safe + np.log(np.exp(mat - m_safe[:, None]).sum(axis=1))


def _log_a_int(q: float, alphas: np.ndarray, log_mgf: np.ndarray) -> np.ndarray:
    """``log A_α`` for integer ``alphas`` given ``log_mgf[k]`` for ``k = 0..max α`` (one padded matrix)."""
    al = np.asarray(alphas, dtype=float)[:, None]
    k = np.arange(len(log_mgf), dtype=float)[None, :]
    valid = k <= al
    with np.errstate(invalid="ignore"):
        w = (special.gammaln(al + 1) - special.gammaln(k + 1) - special.gammaln(np.where(valid, al - k, 0.0) + 1)
             + k * math.log(q) + (al - k) * math.log1p(-q) + log_mgf[None, :])
    w = np.where(valid, w, -np.inf)
    return _lse_rows(w)


def _log_a_frac(q: float, sigma: float, alphas: np.ndarray) -> np.ndarray:
    """``log A_α`` for fractional orders [MTZ19 §3.3], vectorised over orders and terms.

    ``A_α = Σ_i C(α,i)[q^i(1−q)^{α−i} e^{(i²−i)/(2σ²)} ½erfc((i−z₀)/(√2σ)) + q^{α−i}(1−q)^i e^{(j²−j)/(2σ²)}
    ½erfc((z₀−j)/(√2σ))]``, ``j = α − i``, ``z₀ = σ² log(1/q − 1) + ½``. The generalised binomial
    coefficients change sign for ``i > α``; we sum them **with their signs** (positive and negative
    parts in log space), which gives the exact value (checked against an mpmath quadrature in the tests)
    and reproduces Opacus. dp_accounting sums absolute values instead — an upper bound, larger by
    4–18 % near α = 1.1 (q = 0.01–0.04, σ = 0.8–1.5; ≲ 1e−3 at α = 3.5), measured against a quadrature of
    ``E_{μ0}[(μ/μ0)^α]`` (finding reported in docs/accounting.md). Stopping rule as in
    dp_accounting: both magnitudes decrease and are 30 nats below the running total; orders that do not
    stop within 65,536 terms get ``+inf`` with a warning (conservative). Near α = 1 the generalised
    binomial coefficients decay only like a power law, so ~10⁴ terms are needed there.
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
        conv[:, 1:] = (s0[:, 1:] < s0[:, :-1]) & (s1[:, 1:] < s1[:, :-1]) & (
            np.maximum(s0[:, 1:], s1[:, 1:]) < tot[:, 1:] - 30)
        done = conv.any(axis=1)
        first = np.argmax(conv, axis=1)
        out[todo[done]] = tot[np.flatnonzero(done), first[done]]
        todo = todo[~done]
        if n_terms >= _MAX_FRAC_TERMS:
            break
        n_terms = min(2 * n_terms, _MAX_FRAC_TERMS)
    bad = np.zeros(len(all_alphas), dtype=bool)
    bad[todo] = True
    bad |= ~np.isfinite(out)
    if np.any(bad):
        warnings.warn(
            f"fractional-order series did not converge for orders {all_alphas[bad].tolist()} (q={q}, "
            f"sigma={sigma}); using rdp=inf there (conservative)",
            RuntimeWarning,
            stacklevel=3,
        )
        out[bad] = np.inf
    return out


def sampled_gaussian_rdp(*, sampling_rate: float, noise_multiplier: float, orders: Sequence[float],
                         sensitivity: float = 1.0) -> np.ndarray:
    """RDP of one Poisson-sampled Gaussian step at each order [MTZ19] (add/remove; sensitivity in units of C).

    Degenerate ladder (as Opacus): ``q = 0 → 0``; ``z = 0 → ∞``; ``q = 1 → α s²/(2z²)``.
    """
    orders = np.asarray(orders, dtype=float)
    q = float(sampling_rate)
    if q == 0 or sensitivity == 0 or math.isinf(noise_multiplier):
        return np.zeros(len(orders))
    if noise_multiplier == 0:
        return np.full(len(orders), np.inf)
    sigma = noise_multiplier / sensitivity
    if q == 1:
        return orders / (2 * sigma**2)
    out = np.empty(len(orders))
    is_int = np.array([_is_int(a) for a in orders])
    if np.any(is_int):
        ia = orders[is_int].astype(int)
        k = np.arange(int(ia.max()) + 1)
        out[is_int] = _log_a_int(q, ia, k * (k - 1) / (2 * sigma**2)) / (ia - 1)
    if np.any(~is_int):
        fa = orders[~is_int]
        out[~is_int] = _log_a_frac(q, sigma, fa) / (fa - 1)
    return out


def fresh_projection_rdp(*, sampling_rate: float, noise_multiplier: float, d: int, r: int,
                         orders: Sequence[float], sensitivity: float = 1.0) -> np.ndarray:
    """RDP of one step of the compressed Gaussian with a fresh rank-``r`` projection (docs/theory.md §4.3).

    ``q = 1``: ``log ₁F₁(r/2; d/2; α(α−1)s²/(2z²))/(α−1)`` at every order; ``q < 1``: integer orders,
    ``(1/(α−1)) log Σ_k C(α,k)(1−q)^{α−k} q^k ₁F₁(r/2; d/2; k(k−1)s²/(2z²))``, fractional orders ``inf``.
    ``r = d`` reduces exactly to the sampled Gaussian (``₁F₁(a; a; x) = eˣ``).
    """
    orders = np.asarray(orders, dtype=float)
    q = float(sampling_rate)
    if r >= d:
        return sampled_gaussian_rdp(sampling_rate=q, noise_multiplier=noise_multiplier, orders=orders,
                                    sensitivity=sensitivity)
    if q == 0 or sensitivity == 0 or math.isinf(noise_multiplier):
        return np.zeros(len(orders))
    if noise_multiplier == 0:
        return np.full(len(orders), np.inf)
    sigma = noise_multiplier / sensitivity
    a, b = r / 2.0, d / 2.0
    if q == 1:
        return log_hyp1f1(a, b, orders * (orders - 1) / (2 * sigma**2)) / (orders - 1)
    out = np.full(len(orders), np.inf)
    is_int = np.array([_is_int(al) for al in orders])
    if np.any(is_int):
        ia = orders[is_int].astype(int)
        k = np.arange(int(ia.max()) + 1)
        log_mgf = log_hyp1f1(a, b, k * (k - 1) / (2 * sigma**2))
        out[is_int] = _log_a_int(q, ia, log_mgf) / (ia - 1)
    return out


# ---------------------------------------------------------------------------------------------------
# (α−1)·RDP(α) of plain steps at sensitivity scale·√b, vectorised over b (used by the fixed projection).
# ---------------------------------------------------------------------------------------------------
def _log_moment_b(event: DpEvent, alpha: float, b: np.ndarray, scale: float) -> np.ndarray:
    if isinstance(event, GaussianEvent):
        z = event.noise_multiplier
        if math.isinf(z):
            return np.zeros_like(b)
        if z == 0:
            return np.where(b > 0, np.inf, 0.0)
        return alpha * (alpha - 1) * scale**2 * b / (2 * z**2)
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
        a = int(alpha)
        k = np.arange(a + 1)
        w = _log_binom_weights(a, q)
        mat = w[:, None] + (k * (k - 1))[:, None] * (scale**2 * b[None, :] / (2 * z**2))
        m = mat.max(axis=0)
        return m + np.log(np.exp(mat - m[None, :]).sum(axis=0))
    if isinstance(event, SelfComposedEvent):
        if event.count == 0:
            return np.zeros_like(b)
        return event.count * _log_moment_b(event.event, alpha, b, scale)
    if isinstance(event, ComposedEvent):
        tot = np.zeros_like(b)
        for e in event.events:
            tot = tot + _log_moment_b(e, alpha, b, scale)
        return tot
    raise UnsupportedEventError(f"{event_name(event)} is not supported inside a fixed-projection event")


def _check_plain(event: DpEvent, where: str) -> None:
    """Inside fixed / high-probability events only plain (Poisson-sampled) Gaussian steps are allowed."""
    if isinstance(event, GaussianEvent):
        return
    if isinstance(event, PoissonSampledEvent):
        if not isinstance(event.event, GaussianEvent):
            raise UnsupportedEventError(
                f"PoissonSampledEvent({event_name(event.event)}) is not supported inside {where}"
            )
        return
    if isinstance(event, SelfComposedEvent):
        return _check_plain(event.event, where)
    if isinstance(event, ComposedEvent):
        for e in event.events:
            _check_plain(e, where)
        return
    raise UnsupportedEventError(f"{event_name(event)} is not supported inside {where}")


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
        return _check_plain(event.event, "FixedProjectionEvent")
    if isinstance(event, HighProbabilityProjectionEvent):
        return _check_plain(event.event, "HighProbabilityProjectionEvent")
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
                 *, fixed_grid: int = 512, n_lambda_samples: int = 20000, seed: int = 0):
        orders = DEFAULT_ORDERS if orders is None else orders
        orders = np.asarray([check_real("orders", o, lo=1.0, lo_open=True) for o in orders], dtype=float)
        if len(orders) == 0:
            raise ValueError("orders must contain at least one order > 1, got []")
        self.orders = orders
        self.neighboring = check_choice("neighboring", neighboring, NEIGHBORING_RELATIONS)
        self.fixed_grid = check_int("fixed_grid", fixed_grid, minimum=16)
        self.n_lambda_samples = check_int("n_lambda_samples", n_lambda_samples, minimum=100)
        self.seed = seed
        self._events: list[tuple[DpEvent, int]] = []
        self._fixed_cache: dict = {}
        self._fixed_min_tail = 0.0
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
        return self

    # -- curve --------------------------------------------------------------------------------------
    def _hp_events(self, event: DpEvent) -> list:
        """Events whose tail probability δ_M is chosen at conversion (high-probability; fixed: may be 0)."""
        if isinstance(event, HighProbabilityProjectionEvent):
            trivial = event.unprojected or any(1 + event.r > dl for dl in event.d)  # q_M = 1: no δ_M to spend
            return [] if trivial else [event]
        if isinstance(event, FixedProjectionEvent):
            k = event.span_dim * (2 if self.neighboring == "replace_one" else 1)
            trivial = event.unprojected or any(k + event.r > dl for dl in event.d)  # λ ≡ 1: nothing to truncate
            # the simulated λ_max law (k > 1) is used without truncation, so no δ_M is spent on it
            return [] if trivial or k > 1 else [event]
        if isinstance(event, (SelfComposedEvent, PoissonSampledEvent)):
            return self._hp_events(event.event)
        if isinstance(event, ComposedEvent):
            return [h for e in event.events for h in self._hp_events(e)]
        return []

    def _shared(self, d, r, span_dim, unprojected) -> SharedVariable:
        k = span_dim * (2 if self.neighboring == "replace_one" else 1)
        return shared_variable(d=d, r=r, span_dim=k, unprojected=unprojected,
                               n_samples=self.n_lambda_samples, seed=self.seed)

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
            return self._fresh(1.0, event, scale)
        if isinstance(event, PoissonSampledEvent):
            inner = event.event
            if isinstance(inner, GaussianEvent):
                return sampled_gaussian_rdp(sampling_rate=event.sampling_probability,
                                            noise_multiplier=inner.noise_multiplier, orders=orders,
                                            sensitivity=scale)
            return self._fresh(event.sampling_probability, inner, scale)
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

    def _fixed(self, event: FixedProjectionEvent, scale: float, hp_fail: dict) -> np.ndarray:
        """docs/theory.md §4.4: ``(α−1)ε(α) = log E_λ[exp((α−1)ε_inner(α; √λ))]``, optionally conditioned on
        ``λ ≤ t`` where ``P(λ > t) ≤ δ_M`` (the tail goes into δ: ``P(S) ≤ e^ε P′(S) + δ + δ_M`` because
        the event ``λ ≤ t`` depends on ``A`` only). Upper Riemann–Stieltjes sums: errs upward."""
        orders = self.orders
        var = self._shared(event.d, event.r, event.span_dim, event.unprojected)
        if var.kind == "one":
            return self._rdp(event.event, scale, hp_fail)
        tail = hp_fail.get(id(event)) or 0.0
        pkey = ("plain", id(event), scale)
        if tail < 0:  # sentinel: account the unprojected run (λ ≤ 1), spending no δ_M
            if pkey not in self._fixed_cache:
                self._fixed_cache[pkey] = self._rdp(event.event, scale, hp_fail)
            return self._fixed_cache[pkey]
        # Grid: the whole of [0, 1] for the plain expectation; only [0, t(min tail)] when every query
        # truncates the tail (get_epsilon), which halves the work.
        if tail <= 0 or var.kind != "beta":
            hi = 1.0
        else:
            floor = self._fixed_min_tail if 0 < self._fixed_min_tail <= tail else tail
            hi = var.upper_quantile(floor * 0.999)
        key = (id(event), scale, hi)
        if key not in self._fixed_cache:
            if var.kind == "beta":
                edges, lm, sf = _beta_grid(var.a, var.cs, hi, self.fixed_grid)
            else:
                edges = np.sort(var.samples)
                lm = np.full(len(edges), -math.log(len(edges)))
                sf = None
            cum_up = np.full((len(orders), len(lm)), np.inf)
            cum_lo = np.full((len(orders), len(lm)), np.inf)
            for i, a in enumerate(orders):
                vals = _log_moment_b(event.event, a, edges, scale)
                if not np.all(np.isfinite(vals)):
                    continue
                if var.kind == "beta":
                    cum_up[i] = np.logaddexp.accumulate(lm + vals[1:])
                    cum_lo[i] = np.logaddexp.accumulate(lm + vals[:-1])
                else:
                    cum_up[i] = cum_lo[i] = np.logaddexp.accumulate(lm + vals)
            self._fixed_cache[key] = (var, edges, sf, cum_up, cum_lo)
        var, edges, sf, cum_up, cum_lo = self._fixed_cache[key]
        j = cum_up.shape[1] - 1
        log_norm = 0.0
        if tail > 0 and sf is not None:
            ok = np.flatnonzero(sf[1:] <= tail)  # interval index j: keep intervals 0..j, λ ≤ edges[j+1]
            j = int(ok[0])
            log_norm = math.log1p(-sf[j + 1])
            self.details["fixed_truncation"] = float(edges[j + 1])
        self.details["fixed_law"] = var.kind
        self.details["fixed_rdp_lower"] = (cum_lo[:, j] - log_norm) / (orders - 1)
        fixed = (cum_up[:, j] - log_norm) / (orders - 1)
        # λ ≤ 1: for every A (conditioned or not) the run is dominated by the unprojected one, so the plain
        # curve is a bound too, order by order (fills fractional orders).
        pkey = ("plain", id(event), scale)
        if pkey not in self._fixed_cache:
            self._fixed_cache[pkey] = self._rdp(event.event, scale, hp_fail)
        return np.minimum(fixed, self._fixed_cache[pkey])

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
        if fixed_sum >= delta:
            raise ValueError(f"delta ({delta}) must exceed the high-probability failure probabilities ({fixed_sum})")
        if not free:
            rdp = self.get_rdp()
            eps, order = rdp_to_epsilon(self.orders, rdp, delta - fixed_sum)
            self.details.update(rdp=rdp, best_order=order, delta_M=fixed_sum)
            return eps, order
        best = (math.inf, math.nan, None, None)
        rest = delta - fixed_sum
        self._fixed_min_tail = min(_HP_FRACTIONS) * rest / len(free)
        for f in _HP_FRACTIONS:
            dm = f * rest
            fp = {id(h): dm / len(free) for h in free}
            rdp = self.get_rdp(failure_probabilities=fp)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OrderGridWarning)
                eps, order = rdp_to_epsilon(self.orders, rdp, rest - dm)
            if eps < best[0]:
                best = (eps, order, dm, rdp)
        # the unprojected run (δ_M = 0, λ ≡ 1) is also a valid bound: never report more than it
        rdp0 = self.get_rdp(failure_probabilities={id(h): -1.0 for h in free})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OrderGridWarning)
            eps0, order0 = rdp_to_epsilon(self.orders, rdp0, rest)
        if eps0 <= best[0]:
            best = (eps0, order0, 0.0, rdp0)
        eps, order, dm, rdp = best
        if dm == 0.0:
            rdp_to_epsilon(self.orders, rdp, rest)  # re-issue the grid warning
            self.details.update(rdp=rdp, best_order=order, delta_M=fixed_sum, fixed_truncation=None,
                                high_probability_q_M=1.0)
        elif dm is not None:
            self.get_rdp(failure_probabilities={id(h): dm / len(free) for h in free})
            rdp_to_epsilon(self.orders, rdp, rest - dm)  # re-issue the grid warning for the chosen split
            self.details.update(rdp=rdp, best_order=order, delta_M=fixed_sum + dm)
        return eps, order

    def get_epsilon(self, delta: float) -> float:
        return self.get_epsilon_and_order(delta)[0]
