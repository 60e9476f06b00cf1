"""Mechanism descriptions: small immutable objects that say *what* was released (dp_accounting style).

Events never compute privacy; accountants (:mod:`.rdp`, :mod:`.pld`) do. Every event is a frozen
dataclass validated at construction (``ValueError`` naming the field, its range and the value).

Sensitivity convention: every Gaussian here has clipping norm ``C`` and noise standard deviation
``z·C`` (``z`` = ``noise_multiplier``). Under the add/remove relation the per-example difference has
norm ``≤ C``; under replace-one it is ``≤ 2C`` — the accountant applies that factor (docs/theory.md §0).

Projection events (docs/theory.md §4). ``d`` is the dimension the projection acts on and ``r`` its rank;
``d`` may be a tuple (one entry per projected layer, each with its own independent projection).
``unprojected=True`` says some trained parameters are not projected (their ``b = 1``), which removes all
amplification: the event is then accounted exactly like the plain Gaussian.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Sequence, Union

from .._validate import check_int, check_probability, check_real

__all__ = [
    "DpEvent",
    "GaussianEvent",
    "FreshProjectedGaussianEvent",
    "PoissonSampledEvent",
    "SelfComposedEvent",
    "ComposedEvent",
    "FixedProjectionEvent",
    "HighProbabilityProjectionEvent",
    "FIXED_PROJECTION_ASSUMPTION",
    "FRESH_PROJECTION_ASSUMPTION",
    "FRESH_PLD_ASSUMPTION",
    "HIGH_PROBABILITY_ASSUMPTION",
    "check_plain_steps",
    "UnsupportedEventError",
    "event_name",
]

FRESH_PROJECTION_ASSUMPTION = (
    "Fresh projection (docs/theory.md §4.3): a new projection A_t with i.i.d. N(0, 1/r) entries is drawn at "
    "every step, independently of the data (it may be published). Per-example differences may have any "
    "rank: b = ||P_A dV||^2/C^2 is dominated in convex order by Beta(r/2, (d-r)/2) (§4.2), which is "
    "enough for the plain RDP bound (with several projected layers the smallest d is used). The tighter "
    "truncated moment (§4.8: condition on b_t <= tau at every step, union bound over the steps) and the PLD "
    "need the number of directions the projected side of one example's gradient spans: span_dim (default 1, "
    "rank one; tokens per record for a weight matrix projected on its input side)."
)

FIXED_PROJECTION_ASSUMPTION = (
    "Fixed projection (docs/theory.md §4.4): ONE projection A (i.i.d. N(0, 1/r) entries) is used for all T "
    "steps. The bound assumes (i) the projected side of each example's gradient is independent of A "
    "(true for a first layer's inputs; an assumption for deep networks) and (ii) it is one direction "
    "(rank one: the same unit vector x at every step, gradient x g_t^T). If the projected side spans k > 1 "
    "dimensions (e.g. k tokens; pass span_dim=k), the shared variable is lambda_max(U^T P_A U), whose law is "
    "replaced by a provable upper bound (union bound over a net of the span), and which equals 1 - no "
    "amplification - once k + r > d. Replace-one neighbours span two "
    "directions and are accounted with k doubled. Convex order does NOT rescue a violated assumption."
)

FRESH_PLD_ASSUMPTION = (
    "PLD with fresh projection: the mixture over b needs a law that dominates b stochastically, not only in "
    "convex order: Beta(r/2, (d-r)/2) for a rank-one difference (span_dim=1, the default), the net bound on "
    "lambda_max of the span for span_dim=k > 1 (tokens per record). A span larger than the one passed "
    "voids it; the plain RDP bound does not depend on the span."
)

HIGH_PROBABILITY_ASSUMPTION = (
    "High-probability baseline (docs/theory.md §4.5): with probability 1 - delta_M over one projection A, "
    "b <= q_M = Beta^-1(1 - delta_M; r/2, (d-r)/2); then a Gaussian mechanism with sensitivity "
    "C*sqrt(q_M) for all steps, plus delta_M. Same independence and rank-one assumptions as the fixed "
    "projection (one A shared by all steps)."
)


class UnsupportedEventError(ValueError):
    """An accountant cannot handle an event; the message names the (sub-)event."""


class DpEvent:
    """Base class of every mechanism description."""


def _check_nm(value) -> float:
    return check_real("noise_multiplier", value, lo=0.0, allow_inf=True)


def _normalise_d(d) -> tuple[int, ...]:
    if isinstance(d, numbers.Integral) and not isinstance(d, bool):
        ds = (check_int("d", d, minimum=1),)
    elif isinstance(d, (list, tuple)):
        if len(d) == 0:
            raise ValueError("d must be a positive integer or a non-empty list of positive integers, got []")
        ds = tuple(check_int("d", v, minimum=1) for v in d)
    else:
        raise ValueError(f"d must be a positive integer or a list of positive integers, got {d!r}")
    return ds


def _check_projection(d, r) -> tuple[tuple[int, ...], int]:
    ds = _normalise_d(d)
    r = check_int("r", r, minimum=1)
    if r > min(ds):
        raise ValueError(f"r must be an integer in [1, min(d)] = [1, {min(ds)}], got {r}")
    return ds, r


@dataclass(frozen=True, slots=True)
class GaussianEvent(DpEvent):
    """Gaussian mechanism: noise ``z·C`` on a sum whose per-example difference has norm ``≤ C``."""

    noise_multiplier: float

    def __post_init__(self):
        object.__setattr__(self, "noise_multiplier", _check_nm(self.noise_multiplier))


@dataclass(frozen=True, slots=True)
class FreshProjectedGaussianEvent(DpEvent):
    """Compressed (M2) Gaussian step ``V ↦ A_tᵀ A_t (V + E)`` with a fresh projection ``A_t`` (docs/theory.md §4.1, §4.3).

    Given ``A_t`` it is a Gaussian mechanism with sensitivity ``C·√b``, ``b = ‖P_A ΔV‖²/C²``;
    averaged over ``A_t`` the RDP is ``log ₁F₁(r/2; d/2; α(α−1)/(2z²))/(α−1)`` (any rank of ``ΔV``).
    ``span_dim``: how many directions the projected side of one example's difference spans (default one);
    used by the truncated moment (docs/theory.md §4.8) and the PLD, which need stochastic domination of
    ``b``. See :data:`FRESH_PROJECTION_ASSUMPTION`.
    """

    noise_multiplier: float
    d: Union[int, Sequence[int]]
    r: int
    unprojected: bool = False
    span_dim: int = 1

    def __post_init__(self):
        object.__setattr__(self, "noise_multiplier", _check_nm(self.noise_multiplier))
        ds, r = _check_projection(self.d, self.r)
        object.__setattr__(self, "d", ds)
        object.__setattr__(self, "r", r)
        if not isinstance(self.unprojected, bool):
            raise ValueError(f"unprojected must be a bool, got {self.unprojected!r}")
        object.__setattr__(self, "span_dim", check_int("span_dim", self.span_dim, minimum=1))

    @property
    def d_min(self) -> int:
        return min(self.d)


@dataclass(frozen=True, slots=True)
class PoissonSampledEvent(DpEvent):
    """Each record enters the inner mechanism independently with probability ``sampling_probability``."""

    sampling_probability: float
    event: DpEvent

    def __post_init__(self):
        object.__setattr__(
            self, "sampling_probability",
            check_probability("sampling_probability", self.sampling_probability, open_left=False, open_right=False),
        )
        if not isinstance(self.event, DpEvent):
            raise ValueError(f"event must be a DpEvent, got {self.event!r}")


@dataclass(frozen=True, slots=True)
class SelfComposedEvent(DpEvent):
    """``count`` independent repetitions of ``event``."""

    event: DpEvent
    count: int

    def __post_init__(self):
        if not isinstance(self.event, DpEvent):
            raise ValueError(f"event must be a DpEvent, got {self.event!r}")
        object.__setattr__(self, "count", check_int("count", self.count, minimum=0))


@dataclass(frozen=True, slots=True)
class ComposedEvent(DpEvent):
    """Sequential composition of several events."""

    events: tuple = field(default_factory=tuple)

    def __post_init__(self):
        evs = tuple(self.events)
        for e in evs:
            if not isinstance(e, DpEvent):
                raise ValueError(f"events must all be DpEvents, got {e!r}")
        object.__setattr__(self, "events", evs)


@dataclass(frozen=True, slots=True)
class FixedProjectionEvent(DpEvent):
    """All of ``event`` (Gaussian / Poisson-sampled Gaussian steps, composed) run through ONE projection.

    docs/theory.md §4.4: ``exp((α−1)ε(α)) = E_λ[exp((α−1)·ε_event(α; sensitivity √λ))]`` where the shared
    variable ``λ`` is ``Beta(r/2, (d−r)/2)`` for ``span_dim = 1`` (with several layers: the maximum of the
    layers' independent Betas), and ``λ_max(Uᵀ P_A U)`` for ``span_dim = k > 1`` (its law replaced by the
    provable net bound of :mod:`.projection`); ``λ ≡ 1`` when ``k + r > d``.

    ``tail_probability`` ``δ_M``: condition on ``λ ≤ t`` with ``P(λ > t) ≤ δ_M`` and add ``δ_M`` to δ
    (valid because that event depends on ``A`` only); ``0`` = plain expectation; ``None`` (default) lets the
    accountant pick ``δ_M`` from a fixed grid of fractions of δ, including 0.

    Assumptions (also in :data:`FIXED_PROJECTION_ASSUMPTION`, printed with every report that uses it):
    the projected side of each per-example gradient is **independent of A** and spans **span_dim**
    directions (default one: rank one) that stay the same over all steps.
    """

    event: DpEvent
    d: Union[int, Sequence[int]]
    r: int
    span_dim: int = 1
    unprojected: bool = False
    tail_probability: float | None = None

    def __post_init__(self):
        if not isinstance(self.event, DpEvent):
            raise ValueError(f"event must be a DpEvent, got {self.event!r}")
        ds, r = _check_projection(self.d, self.r)
        object.__setattr__(self, "d", ds)
        object.__setattr__(self, "r", r)
        object.__setattr__(self, "span_dim", check_int("span_dim", self.span_dim, minimum=1))
        if self.tail_probability is not None:
            object.__setattr__(self, "tail_probability", check_probability(
                "tail_probability", self.tail_probability, open_left=False))
        if not isinstance(self.unprojected, bool):
            raise ValueError(f"unprojected must be a bool, got {self.unprojected!r}")


@dataclass(frozen=True, slots=True)
class HighProbabilityProjectionEvent(DpEvent):
    """Baseline of docs/theory.md §4.5: ``event`` with sensitivity ``√q_M`` (one projection), plus ``δ_M``.

    ``failure_probability`` is ``δ_M``; ``None`` lets the accountant choose it (from a fixed,
    data-independent grid of fractions of the target δ) when converting to (ε, δ).
    See :data:`HIGH_PROBABILITY_ASSUMPTION`.
    """

    event: DpEvent
    d: Union[int, Sequence[int]]
    r: int
    failure_probability: float | None = None
    unprojected: bool = False

    def __post_init__(self):
        if not isinstance(self.event, DpEvent):
            raise ValueError(f"event must be a DpEvent, got {self.event!r}")
        ds, r = _check_projection(self.d, self.r)
        object.__setattr__(self, "d", ds)
        object.__setattr__(self, "r", r)
        if self.failure_probability is not None:
            object.__setattr__(
                self, "failure_probability", check_probability("failure_probability", self.failure_probability)
            )
        if not isinstance(self.unprojected, bool):
            raise ValueError(f"unprojected must be a bool, got {self.unprojected!r}")


def event_name(event: object) -> str:
    """Short readable name of an event, used in error messages."""
    if isinstance(event, DpEvent):
        return type(event).__name__
    return f"{type(event).__name__} (not a lowrankdp DpEvent)"


def check_plain_steps(event: DpEvent, where: str) -> None:
    """Inside a projection shared by all steps (fixed / high-probability events) only plain Gaussian and
    Poisson-sampled Gaussian steps, composed, are allowed: raise UnsupportedEventError naming the first other one."""
    if isinstance(event, GaussianEvent):
        return
    if isinstance(event, PoissonSampledEvent):
        if not isinstance(event.event, GaussianEvent):
            raise UnsupportedEventError(
                f"PoissonSampledEvent({event_name(event.event)}) is not supported inside {where}"
            )
        return
    if isinstance(event, SelfComposedEvent):
        return check_plain_steps(event.event, where)
    if isinstance(event, ComposedEvent):
        for e in event.events:
            check_plain_steps(e, where)
        return
    raise UnsupportedEventError(f"{event_name(event)} is not supported inside {where}")
