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

import math

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
    event_name,
)
from .projection import shared_variable

__all__ = ["PldAccountant"]

_BULK = np.linspace(0.0, 1.0, 33)[1:-1]
_TAIL = 1.0 - 10.0 ** (-np.arange(3, 29) / 2.0)


def _check_pld(event: object, neighboring: str) -> None:
    if isinstance(event, GaussianEvent):
        return
    if isinstance(event, FreshProjectedGaussianEvent):
        if neighboring == "replace_one" and not event.unprojected and event.r < event.d_min:
            raise UnsupportedEventError(
                "PldAccountant: FreshProjectedGaussianEvent with neighboring='replace_one' is not supported "
                "(the difference of two records is rank two; use the RDP accountant)"
            )
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
            "the steps, so the PLD does not compose); use accountant='rdp'"
        )
    raise UnsupportedEventError(f"PldAccountant does not support {event_name(event)}")


class PldAccountant:
    """PLD accountant (pessimistic) for plain and fresh-projection Gaussian steps."""

    def __init__(self, neighboring: str = "add_remove", *, value_discretization_interval: float = 1e-4,
                 log_mass_truncation_bound: float = -50.0):
        self.neighboring = check_choice("neighboring", neighboring, ("add_remove", "replace_one"))
        self.value_discretization_interval = check_real(
            "value_discretization_interval", value_discretization_interval, lo=0.0, lo_open=True)
        self.log_mass_truncation_bound = check_real(
            "log_mass_truncation_bound", log_mass_truncation_bound, hi=0.0)
        self._events: list[tuple[DpEvent, int]] = []

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

        var = shared_variable(d=ev.d, r=ev.r, span_dim=1, unprojected=ev.unprojected)
        if var.kind == "one":
            return self._gaussian(ev.noise_multiplier, q, 1.0)
        probs = np.concatenate([_BULK, _TAIL])
        edges = np.unique(np.concatenate([[0.0], [var.upper_quantile(1 - p) if p < 0.5 else
                                                  var.upper_quantile(1 - p) for p in probs], [1.0]]))
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

    def get_epsilon(self, delta: float) -> float:
        from dp_accounting.pld import privacy_loss_distribution as pld

        delta = check_real("delta", delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        if not self._events:
            return 0.0
        total = pld.identity(self.value_discretization_interval)
        for ev, count in self._events:
            if count == 0:
                continue
            p = self._pld(ev)
            total = total.compose(p.self_compose(count) if count > 1 else p)
        eps = float(total.get_epsilon_for_delta(delta))
        return max(0.0, eps)
