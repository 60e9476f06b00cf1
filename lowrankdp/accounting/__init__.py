"""Privacy accounting for Gaussian and projected-Gaussian DP-SGD (docs/theory.md §4).

Notebook API (keyword-only)::

    from lowrankdp import accounting
    accounting.epsilon(noise_multiplier=0.8, sampling_rate=0.01, steps=1000, delta=1e-5,
                       d=768, r=8, projection="fresh")
    accounting.calibrate_noise(target_epsilon=3.0, sampling_rate=0.01, steps=1000, delta=1e-5)
    accounting.epsilon_report(noise_multiplier=0.8, sampling_rate=0.01, steps=1000, delta=1e-5, d=768, r=8)
    accounting.epsilon_result(...)   # ε with its source ("rdp" / "pld" / "gaussian_limit") and kind ("bound")

Every ε is an upper bound rounded the safe way (docs/accounting.md, "Soundness"); a Monte Carlo estimate is
only produced on request (``RdpAccountant(lambda_law="simulated")``), flagged ``kind="estimate"`` and warned
about (:class:`EstimateWarning`).

Underneath: immutable events (:mod:`.events`) and accountants (:class:`RdpAccountant`,
:class:`PldAccountant` — the latter imports ``dp_accounting`` lazily). numpy/scipy only at import time.
"""

from .api import (
    ACCOUNTANTS,
    PROJECTIONS,
    EpsilonResult,
    calibrate_noise,
    dpsgd_event,
    epsilon,
    epsilon_report,
    epsilon_result,
    gaussian_limit_epsilon,
)
from .events import (
    FIXED_PROJECTION_ASSUMPTION,
    FRESH_PLD_ASSUMPTION,
    FRESH_PROJECTION_ASSUMPTION,
    HIGH_PROBABILITY_ASSUMPTION,
    ComposedEvent,
    DpEvent,
    FixedProjectionEvent,
    FreshProjectedGaussianEvent,
    GaussianEvent,
    HighProbabilityProjectionEvent,
    PoissonSampledEvent,
    SelfComposedEvent,
    UnsupportedEventError,
)
from ._kummer import log_hyp1f1, log_hyp1f1_bracket
from .projection import net_sf, shared_variable, simulate_lambda_max
from .rdp import (
    DEFAULT_ORDERS,
    NEIGHBORING_RELATIONS,
    EstimateWarning,
    OrderGridWarning,
    RdpAccountant,
    fresh_projection_rdp,
    rdp_to_epsilon,
    sampled_gaussian_rdp,
)


def __getattr__(name):
    if name == "PldAccountant":
        from .pld import PldAccountant

        return PldAccountant
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "epsilon", "calibrate_noise", "epsilon_report", "epsilon_result", "EpsilonResult", "gaussian_limit_epsilon",
    "EstimateWarning", "log_hyp1f1_bracket", "net_sf", "dpsgd_event", "PROJECTIONS", "ACCOUNTANTS",
    "FIXED_PROJECTION_ASSUMPTION", "FRESH_PROJECTION_ASSUMPTION", "FRESH_PLD_ASSUMPTION",
    "HIGH_PROBABILITY_ASSUMPTION", "DpEvent", "GaussianEvent", "FreshProjectedGaussianEvent",
    "PoissonSampledEvent", "SelfComposedEvent", "ComposedEvent", "FixedProjectionEvent",
    "HighProbabilityProjectionEvent", "UnsupportedEventError", "RdpAccountant", "PldAccountant",
    "DEFAULT_ORDERS", "NEIGHBORING_RELATIONS", "OrderGridWarning", "rdp_to_epsilon", "sampled_gaussian_rdp",
    "fresh_projection_rdp", "log_hyp1f1", "shared_variable", "simulate_lambda_max",
]
