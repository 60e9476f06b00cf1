"""Privacy-loss-distribution (PLD) path through Google's ``dp_accounting`` (imported lazily, only here).

Supported: Gaussian, Poisson-sampled Gaussian, fresh-projection Gaussian steps (sampled or not),
self-composed and composed. Every PLD is built with **pessimistic** discretisation, so ``dp_accounting``'s
ε is an upper bound of the exact one up to its documented truncation (``log_mass_truncation_bound``,
mass moved to +∞, i.e. also pessimistic).

Fresh projection (docs/theory.md §4.3) with the projection ``A_t`` public: the joint privacy loss of
``(A_t, Y_t)`` is the privacy loss of a sampled Gaussian with sensitivity ``√b``, ``b`` random, so its PLD
is the *mixture over b* of sampled-Gaussian PLDs (``δ(ε) = E_b[δ_b(ε)]``). We discretise ``b``
conservatively: bins ``(t_j, t_{j+1}]`` with their exact probabilities, each bin using the sensitivity
``√t_{j+1}`` of its upper edge, and the last bin ending at 1. This is an upper bound because, for
``b ≤ b′``, the sampled Gaussian with shift ``√b`` is a post-processing of the one with shift ``√b′``
(the kernel ``y ↦ (√b/√b′)·y + N(0, σ²(1 − b/b′))`` maps ``N(0, σ²)`` to itself and
``N(√b′, σ²)`` to ``N(√b, σ²)``), so rounding ``b`` up can only increase every hockey-stick divergence,
before and after composition. dp_accounting's ``MixtureOfGaussiansDpEvent`` is *not* used: it models a
hidden random shift (a weaker adversary who does not see ``A_t``), whereas we credit nothing to hiding
``A_t``. See :data:`~lowrankdp.accounting.events.FRESH_PLD_ASSUMPTION` (rank-one differences: PLD needs
stochastic, not convex-order, domination).
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np

from .._validate import check_choice, check_int, check_real
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
from .projection import shared_variable

__all__ = ["PldAccountant", "fixed_projection_pld_epsilon"]

_BULK = np.linspace(0.0, 1.0, 33)[1:-1]
_TAIL = 1.0 - 10.0 ** (-np.arange(3, 29) / 2.0)


def _check_pld(event: object, neighboring: str) -> None:
    if isinstance(event, GaussianEvent):
        return
    if isinstance(event, FreshProjectedGaussianEvent):
        return
    if isinstance(event, PoissonSampledEvent):
        if not isinstance(event.event, (GaussianEvent, FreshProjectedGaussianEvent)):
            raise UnsupportedEventError(
                f"PldAccountant: PoissonSampledEvent({event_name(event.event)}) is not supported"
            )
        return _check_pld(event.event, neighboring)
    if isinstance(event, SelfComposedEvent):
        return _check_pld(event.event, neighboring)
    if isinstance(event, ComposedEvent):
        for e in event.events:
            _check_pld(e, neighboring)
        return
    if isinstance(event, (FixedProjectionEvent, HighProbabilityProjectionEvent)):
        raise UnsupportedEventError(
            f"PldAccountant does not support {event_name(event)} (one projection shared by all steps couples "
            "the steps, so the PLD does not compose step by step); for a fixed projection use "
            "fixed_projection_pld_epsilon, for the high-probability baseline accountant='rdp'"
        )
    raise UnsupportedEventError(f"PldAccountant does not support {event_name(event)}")


def _gaussians(event, s: float):
    """(noise multiplier, sensitivity) of every Gaussian inside ``event``."""
    if isinstance(event, GaussianEvent):
        yield event.noise_multiplier, s
    elif isinstance(event, FreshProjectedGaussianEvent):
        yield event.noise_multiplier, s
    elif isinstance(event, (PoissonSampledEvent, SelfComposedEvent)):
        yield from _gaussians(event.event, s)
    elif isinstance(event, ComposedEvent):
        for e in event.events:
            yield from _gaussians(e, s)


# ---------------------------------------------------------------------------------------------------
# dp_accounting builds a sampled-Gaussian PLD by evaluating δ(ε) on every point of its loss grid, inverting the
# privacy loss one point at a time in Python (≈ 5,000 calls per PLD at interval 1e−3: 35 ms; a fresh projection's
# b-mixture needs ≈ 60 of them). The subclass below computes the same δ(ε) — the same formulas, the inverse loss
# ``x(ℓ₀)`` of the unsampled Gaussian at ``ℓ₀ = ±log(1 + (e^{±ε} − 1)/q)`` — for the whole grid at once, and
# hands it to dp_accounting's own connect-the-dots construction, so the PLD is dp_accounting's (checked point by
# point in tests/test_accounting_pld.py). If a later dp_accounting lacks the construction function, its public
# path is used.
# ---------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _vectorised_gaussian_loss():
    """dp_accounting's ``GaussianPrivacyLoss`` with ``get_delta_for_epsilon`` over the whole grid at once (the class
    is built once, on first use, because dp_accounting is imported lazily); ``None`` if dp_accounting lacks what it
    needs."""
    from dp_accounting.pld import privacy_loss_distribution as pld
    from dp_accounting.pld import privacy_loss_mechanism as plm

    base = getattr(plm, "GaussianPrivacyLoss", None)
    if getattr(pld, "_create_pld_pmf_from_monotone_privacy_loss", None) is None or base is None:
        return None

    class VectorisedGaussianLoss(base):
        def get_delta_for_epsilon(self, epsilon):
            scalar = isinstance(epsilon, (int, float, np.floating))
            eps = np.atleast_1d(np.asarray(epsilon, dtype=float))
            p = self.sampling_prob
            deltas = np.zeros_like(eps)
            add = self.adjacency_type == plm.AdjacencyType.ADD
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                if p == 1.0:
                    idx = np.ones(len(eps), dtype=bool)
                    loss0 = eps
                elif add:
                    idx = eps < -math.log1p(-p)
                    loss0 = -np.log1p(np.expm1(-eps[idx]) / p)
                else:
                    idx = eps > math.log1p(-p)
                    deltas[~idx] = -np.expm1(eps[~idx])
                    loss0 = np.log1p(np.expm1(eps[idx]) / p)
                sd2, s = self._standard_deviation**2, self.sensitivity
                # the unsampled Gaussian's inverse losses (dp_accounting's formulas): ADD 0.5 s − ℓ σ²/s,
                # REMOVE −0.5 s − ℓ σ²/s
                x = (0.5 * s if add else -0.5 * s) - loss0 * sd2 / s
                deltas[idx] = self.mu_upper_cdf(x) - np.exp(eps[idx] + self.mu_lower_log_cdf(x))
            deltas = np.clip(np.nan_to_num(deltas, nan=0.0), 0.0, 1.0)
            return float(deltas[0]) if scalar else deltas

    return VectorisedGaussianLoss


def _fast_sampled_gaussian_pld(z: float, q: float, sensitivity: float, interval: float,
                               log_mass_truncation_bound: float):
    from dp_accounting.pld import privacy_loss_distribution as pld
    from dp_accounting.pld import privacy_loss_mechanism as plm

    loss_class = _vectorised_gaussian_loss()
    if loss_class is None:
        return None

    def single(adjacency):
        loss = loss_class(z, sensitivity=sensitivity, pessimistic_estimate=True,
                          log_mass_truncation_bound=log_mass_truncation_bound, sampling_prob=q,
                          adjacency_type=adjacency)
        return pld._create_pld_pmf_from_monotone_privacy_loss(loss, pessimistic_estimate=True,
                                                              value_discretization_interval=interval,
                                                              use_connect_dots=True)

    remove = single(plm.AdjacencyType.REMOVE)
    if q == 1.0:
        return pld.PrivacyLossDistribution(remove)
    return pld.PrivacyLossDistribution(remove, single(plm.AdjacencyType.ADD))


class PldAccountant:
    """PLD accountant (pessimistic) for plain and fresh-projection Gaussian steps."""

    def __init__(self, neighboring: str = "add_remove", *, value_discretization_interval: float = 1e-4,
                 log_mass_truncation_bound: float = -50.0, vectorised: bool = True):
        """``vectorised=False`` builds every sampled-Gaussian PLD with dp_accounting's own per-point path (same
        PLD, 5–10× slower; kept for comparison in benchmarks/accounting.py)."""
        self.vectorised = bool(vectorised)
        self.neighboring = check_choice("neighboring", neighboring, ("add_remove", "replace_one"))
        self.value_discretization_interval = check_real(
            "value_discretization_interval", value_discretization_interval, lo=0.0, lo_open=True)
        self.log_mass_truncation_bound = check_real(
            "log_mass_truncation_bound", log_mass_truncation_bound, hi=0.0)
        self._events: list[tuple[DpEvent, int]] = []
        self.notes: list[str] = []

    def supports(self, event: object) -> bool:
        try:
            _check_pld(event, self.neighboring)
        except UnsupportedEventError:
            return False
        return True

    def compose(self, event: DpEvent, count: int = 1) -> "PldAccountant":
        count = check_int("count", count, minimum=0)
        _check_pld(event, self.neighboring)
        self._events.append((event, count))
        return self

    # -- construction ----------------------------------------------------------------------------
    def _gaussian(self, z: float, q: float, sensitivity: float):
        from dp_accounting.pld import privacy_loss_distribution as pld
        from dp_accounting import NeighboringRelation

        if q == 0 or sensitivity == 0 or math.isinf(z):
            return pld.identity(self.value_discretization_interval)
        if self.neighboring == "add_remove" and self.vectorised:
            fast = _fast_sampled_gaussian_pld(z, q, sensitivity, self.value_discretization_interval,
                                              self.log_mass_truncation_bound)
            if fast is not None:
                return fast
        rel = (NeighboringRelation.REPLACE_ONE if self.neighboring == "replace_one"
               else NeighboringRelation.ADD_OR_REMOVE_ONE)
        return pld.from_gaussian_mechanism(
            standard_deviation=z, sensitivity=sensitivity, pessimistic_estimate=True,
            value_discretization_interval=self.value_discretization_interval,
            log_mass_truncation_bound=self.log_mass_truncation_bound, sampling_prob=q,
            neighboring_relation=rel,
        )

    def _fresh(self, ev: FreshProjectedGaussianEvent, q: float):
        from dp_accounting.pld import pld_pmf
        from dp_accounting.pld.privacy_loss_distribution import PrivacyLossDistribution

        # span_dim > 1: b ≤ the largest retained fraction of the record's k directions at this step, whose law is
        # replaced by the stochastically larger union bound (kind "union"; the mixture uses stochastic domination
        # of b, so a larger law keeps it an upper bound)
        # replace-one: each of the two records keeps at most the largest retained fraction of its own directions,
        # so the pair given A_t is dp_accounting's replace pair (records at ±√b) with b under the union law of the
        # 2k directions of both records
        k = ev.span_dim * (2 if self.neighboring == "replace_one" else 1)
        var = shared_variable(d=ev.d, r=ev.r, span_dim=k, unprojected=ev.unprojected, per_step=True)
        if var.kind == "one":
            return self._gaussian(ev.noise_multiplier, q, 1.0)
        probs = np.concatenate([_BULK, _TAIL])
        if var.kind == "union":
            edges = np.unique(np.concatenate([[0.0], [var.bound_upper_quantile(1 - p) for p in probs], [1.0]]))
            sfs = np.where(edges >= 1.0, 0.0, np.minimum(var.bound_sf_array(edges) * (1 + 1e-10), 1.0))
            sfs[0] = 1.0
        else:
            edges = np.unique(np.concatenate([[0.0], [var.upper_quantile(1 - p) for p in probs], [1.0]]))
            sfs = np.array([var.sf(t) if 0 < t < 1 else (1.0 if t <= 0 else 0.0) for t in edges])
        masses = np.maximum(sfs[:-1] - sfs[1:], 0.0)
        masses = masses / masses.sum() if masses.sum() > 0 else masses  # sf telescopes to exactly 1
        comps = []
        for m, hi in zip(masses, edges[1:]):
            if m <= 0:
                continue
            comps.append((m, self._gaussian(ev.noise_multiplier, q, math.sqrt(hi))))

        def mix(pmfs):
            dense = [(w, p.to_dense_pmf()) for w, p in pmfs]
            lo = min(p._lower_loss for _, p in dense)
            hi = max(p._lower_loss + len(p._probs) for _, p in dense)
            probs_ = np.zeros(hi - lo)
            inf_mass = 0.0
            for w, p in dense:
                s = p._lower_loss - lo
                probs_[s: s + len(p._probs)] += w * p._probs
                inf_mass += w * p._infinity_mass
            return pld_pmf.DensePLDPmf(self.value_discretization_interval, lo, probs_, inf_mass, True)

        remove = mix([(w, p._pmf_remove) for w, p in comps])
        add = mix([(w, p._pmf_add) for w, p in comps])
        return PrivacyLossDistribution(remove, add)

    def _pld(self, event: DpEvent):
        from dp_accounting.pld import privacy_loss_distribution as pld

        if isinstance(event, GaussianEvent):
            return self._gaussian(event.noise_multiplier, 1.0, 1.0)
        if isinstance(event, FreshProjectedGaussianEvent):
            return self._fresh(event, 1.0)
        if isinstance(event, PoissonSampledEvent):
            q = event.sampling_probability
            if isinstance(event.event, GaussianEvent):
                return self._gaussian(event.event.noise_multiplier, q, 1.0)
            if q == 0:
                return pld.identity(self.value_discretization_interval)
            return self._fresh(event.event, q)
        if isinstance(event, SelfComposedEvent):
            if event.count == 0:
                return pld.identity(self.value_discretization_interval)
            return self._pld(event.event).self_compose(event.count)
        if isinstance(event, ComposedEvent):
            out = pld.identity(self.value_discretization_interval)
            for e in event.events:
                out = out.compose(self._pld(e))
            return out
        raise UnsupportedEventError(f"PldAccountant does not support {event_name(event)}")  # pragma: no cover

    def _bounded_interval(self, delta: float, rdp_hint: float | None = None) -> float:
        """The discretisation interval actually used: the requested one, coarsened so that one step's loss
        range has at most 1e6 bins and the RDP ε (an upper end of the relevant losses) at most 2e5 bins.
        Pessimistic discretisation stays an upper bound at any interval; this bounds time and memory
        (z = 0.01, q = 0.5, T = 1000 ran > 300 s and 3.2 GB with 1e−4)."""
        from .rdp import RdpAccountant

        vdi = self.value_discretization_interval
        width = 0.0
        for ev, _ in self._events:
            for z, s in _gaussians(ev, 2.0 if self.neighboring == "replace_one" else 1.0):
                if z > 0 and math.isfinite(z):
                    width = max(width, s * s / (2 * z * z) + 10 * s / z + 50.0)
        hint = rdp_hint
        if hint is None:
            rdp = RdpAccountant(neighboring=self.neighboring)
            for ev, count in self._events:
                rdp.compose(ev, count)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hint = rdp.get_epsilon(delta)
        coarse = max(vdi, width / 1e6, (hint / 2e5) if math.isfinite(hint) else 0.0)
        if coarse > vdi:
            self.notes.append(f"PLD discretisation interval coarsened from {vdi:g} to {coarse:.3g} to bound time "
                              "and memory (still pessimistic: an upper bound)")
        return coarse

    def get_epsilon(self, delta: float, *, rdp_hint: float | None = None) -> float:
        """ε at ``delta``. ``rdp_hint``: the RDP accountant's ε for the same events and δ, if already computed
        (it only bounds the discretisation; computed here when not given)."""
        from dp_accounting.pld import privacy_loss_distribution as pld

        delta = check_real("delta", delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        if not self._events:
            return 0.0
        requested = self.value_discretization_interval
        self.value_discretization_interval = self._bounded_interval(delta, rdp_hint)
        try:
            return self._get_epsilon(delta)
        finally:
            self.value_discretization_interval = requested

    def _total(self):
        from dp_accounting.pld import privacy_loss_distribution as pld

        total = pld.identity(self.value_discretization_interval)
        for ev, count in self._events:
            if count == 0:
                continue
            p = self._pld(ev)
            total = total.compose(p.self_compose(count) if count > 1 else p)
        return total

    def get_pld(self, delta: float):
        """The composed (pessimistic) ``PrivacyLossDistribution``, at the interval :meth:`get_epsilon` would use
        for ``delta``."""
        delta = check_real("delta", delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        requested = self.value_discretization_interval
        self.value_discretization_interval = self._bounded_interval(delta)
        try:
            return self._total()
        finally:
            self.value_discretization_interval = requested

    def _get_epsilon(self, delta: float) -> float:
        eps = float(self._total().get_epsilon_for_delta(delta))
        return max(0.0, eps)


# ---------------------------------------------------------------------------------------------------
# Fixed projection (docs/theory.md §4.4, §4.7). Given the one projection A, the shared retained fraction
# b (an upper bound of it, see FIXED_PROJECTION_ASSUMPTION) is the same at every step, so the whole run is
# the plain run with sensitivity √b: its hockey-stick curve δ_b(ε) composes exactly (PLD). Mixing over A
# cannot increase a hockey-stick divergence (joint convexity; equality when A is public), so
# δ(ε) ≤ E_b[δ_b(ε)], separately for the "remove" and "add" directions. δ_b is nondecreasing in b (the
# post-processing kernel of the module docstring, applied at every step), so with edges
# 0 = e_0 < … < e_K = t and S(x) ≥ P(b > x):
#     E_b[δ_b] ≤ δ_{e_1} + Σ_{i=1}^{K−1} (δ_{e_{i+1}} − δ_{e_i}) S(e_i) + (1 − δ_{e_K}) S(e_K)
# (Abel summation of Σ_i P(b ∈ (e_{i−1}, e_i]) δ_{e_i} + P(b > t)·1; every coefficient of S is ≥ 0, so an
# upper S — the net bound for span_dim > 1 — keeps it an upper bound). Proofs:
# proofs_check/test_accounting_pld_mixture.py, proofs_check/test_accounting_pld_bucketing.py.
# ---------------------------------------------------------------------------------------------------
_FIXED_TAIL_FRACTION = 1e-3  # P(b > t) ≤ 1e−3·δ: the mass above the last edge is counted with δ_b = 1
_SF_PAD = 1e-10  # relative padding of the computed survival function (float error of betaincc, upward)


def _scaled(event: DpEvent, factor: float) -> DpEvent:
    """``event`` with every Gaussian's sensitivity multiplied by ``factor`` ≤ 1 (noise ``z/factor``, rounded
    down: less noise, so the PLD errs upward)."""
    if factor == 1.0:
        return event
    if isinstance(event, GaussianEvent):
        z = event.noise_multiplier
        return GaussianEvent(math.inf if factor == 0 else float(np.nextafter(z / factor, 0.0)))
    if isinstance(event, PoissonSampledEvent):
        return PoissonSampledEvent(event.sampling_probability, _scaled(event.event, factor))
    if isinstance(event, SelfComposedEvent):
        return SelfComposedEvent(_scaled(event.event, factor), event.count)
    if isinstance(event, ComposedEvent):
        return ComposedEvent(tuple(_scaled(e, factor) for e in event.events))
    raise UnsupportedEventError(f"fixed-projection PLD: {event_name(event)} inside the projection is not "
                                "supported (Gaussian and Poisson-sampled Gaussian steps only)")


def fixed_projection_pld_epsilon(event: FixedProjectionEvent, delta: float, *, neighboring: str = "add_remove",
                                 value_discretization_interval: float = 1e-4, buckets: int = 128,
                                 rel_tol: float = 1e-6, time_limit_s: float = 8.0) -> tuple[float, dict]:
    """Upper bound on ε(δ) for ``event`` (one projection for all steps) by the b-mixture of exact PLDs.

    Returns ``(ε, details)``. The law of b is that of the RDP accountant (:func:`shared_variable`: Beta, max of
    Betas, or the net bound for ``span_dim > 1``). Edges ``e_i = t·(i/K)²`` (uniform in the sensitivity √b),
    ``K = buckets``, ``t`` with ``P(b > t) ≤ 1e−3·δ``; each ``δ_{e_i}`` is dp_accounting's pessimistic PLD of
    the plain run at sensitivity ``√e_i`` (an upper bound), made nondecreasing in ``i`` by a running maximum
    (still an upper bound). ε is the right end of a bisection on the (nonincreasing) bound, stopped at
    relative width ``rel_tol``. Every approximation errs upward: edges rounded up, noise rounded down,
    pessimistic discretisation, survival function padded up, tail counted with δ = 1. ``neighboring="replace_one"``:
    the two records span twice as many directions (``span_dim`` doubled for the law of b, as in the RDP
    accountant), and given A each step is dp_accounting's replace-one pair (records at ``±C√b``) at sensitivity
    ``√b`` — the same worst case the unprojected replace-one PLD uses; the kernel that makes ``δ_b`` monotone in
    ``b`` maps that pair too (``proofs_check/test_accounting_pld_bucketing.py``).

    Time: the PLDs are built for nested grids ``K = buckets/2^m`` (coarsest first; every level is a valid bound
    and a finer one is never looser); when the next level would pass ``0.75·time_limit_s`` the finest level
    built is used and ``details["fixed_pld_time_limited"]`` is set.
    """
    if not isinstance(event, FixedProjectionEvent):
        raise UnsupportedEventError("fixed_projection_pld_epsilon needs a FixedProjectionEvent, got "
                                    f"{event_name(event)}")
    delta = check_real("delta", delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    nb = check_choice("neighboring", neighboring, ("add_remove", "replace_one"))
    buckets = check_int("buckets", buckets, minimum=1)
    time_limit_s = check_real("time_limit_s", time_limit_s, lo=0.0, lo_open=True, allow_inf=True)
    start = time.monotonic()
    check_plain_steps(event.event, "the projection (fixed-projection PLD)")
    var = shared_variable(d=event.d, r=event.r, span_dim=event.span_dim * (2 if nb == "replace_one" else 1),
                          unprojected=event.unprojected)

    def plain_pld(factor: float, interval: float):
        acc = PldAccountant(nb, value_discretization_interval=interval)
        acc.compose(_scaled(event.event, factor))
        return acc._total()

    # one discretisation interval for every bucket: the one PldAccountant would use for the unprojected run
    # (b = 1: the widest loss range, so the coarsest; pessimistic at any interval, so still an upper bound)
    probe = PldAccountant(nb, value_discretization_interval=value_discretization_interval).compose(event.event)
    interval = probe._bounded_interval(delta)
    if var.kind == "one":
        eps = float(max(0.0, plain_pld(1.0, interval).get_epsilon_for_delta(delta)))
        return eps, {"fixed_pld_law": "one", "fixed_pld_buckets": 0, "fixed_pld_interval": interval}
    tail = _FIXED_TAIL_FRACTION * delta
    if var.kind == "net":
        t = var.bound_upper_quantile(tail)

        def sf(x):
            return var.bound_sf_array(np.asarray(x, float))
    else:
        t = var.upper_quantile(tail)
        sf = var.sf_array
    t = float(min(1.0, t))
    fine = t * (np.arange(1, buckets + 1) / buckets) ** 2  # edge j (1-based) of the finest grid
    fine[-1] = t
    levels = sorted({buckets // 2**m for m in range(buckets.bit_length()) if buckets % 2**m == 0})
    built: dict = {}  # finest-grid index j -> PLD at sensitivity √fine[j−1]
    level, limited = levels[0], False
    for i, k in enumerate(levels):
        idx = [j * (buckets // k) for j in range(1, k + 1)]
        t0 = time.monotonic()
        new = [j for j in idx if j not in built]
        for j in new:
            built[j] = plain_pld(math.sqrt(fine[j - 1]), interval)
        level = k
        per = (time.monotonic() - t0) / max(len(new), 1)
        if i + 1 < len(levels):
            ahead = (levels[i + 1] - k) * per
            if time.monotonic() - start + ahead > 0.75 * time_limit_s:
                limited = True
                break
    idx = [j * (buckets // level) for j in range(1, level + 1)]
    edges = fine[np.array(idx) - 1]
    plds = [built[j] for j in idx]
    s = np.minimum(1.0, np.asarray(sf(edges), float) * (1 + _SF_PAD))
    s[edges >= 1.0] = 0.0

    def bound(eps: float) -> float:
        worst = 0.0
        for side in ("_pmf_remove", "_pmf_add"):
            dl = np.array([float(getattr(p, side).get_delta_for_epsilon(eps)) for p in plds])
            dl = np.maximum.accumulate(np.clip(dl, 0.0, 1.0))
            val = dl[0] + float(np.sum(np.diff(dl) * s[:-1])) + (1.0 - dl[-1]) * s[-1]
            worst = max(worst, val)
        return worst

    details = {"fixed_pld_law": var.kind, "fixed_pld_buckets": level, "fixed_pld_top": t,
               "fixed_pld_tail_mass": float(s[-1]), "fixed_pld_time_limited": limited,
               "fixed_pld_interval": interval}
    if bound(0.0) <= delta:
        return 0.0, details
    hi = max(float(plds[-1].get_epsilon_for_delta(delta / 2)), 1e-6)
    while bound(hi) > delta:
        hi *= 2.0
        if hi > 1e6:
            return math.inf, details
    lo = 0.0
    while hi - lo > rel_tol * hi:
        mid = 0.5 * (lo + hi)
        if bound(mid) <= delta:
            hi = mid
        else:
            lo = mid
    return float(hi), details
