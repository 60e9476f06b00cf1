"""Privacy audits (numpy/scipy only): one-run ε lower bounds from canaries and white-box gradient canaries.

    from lowrankdp import audit
    audit.one_run_epsilon(canaries=1000, guesses=100, correct=95, delta=1e-5, method="snj")
    audit.audit_scores(scores, included, k_pos=50, k_neg=50, delta=1e-5)

IMPORTANT: canary scores follow the lowrankdp convention — higher = more likely a member. Details and
the statistics' sources: ``docs/audit.md`` and :mod:`lowrankdp.audit.one_run`.
"""

from .one_run import (
    CURVES,
    METHODS,
    AuditResult,
    audit_scores,
    fdp_rejects,
    gdp_delta,
    gdp_epsilon,
    guesses_from_scores,
    max_certifiable_epsilon,
    one_run_epsilon,
    one_run_mu,
    snj_p_value,
)

__all__ = [
    "CURVES", "METHODS", "AuditResult", "audit_scores", "fdp_rejects", "gdp_delta", "gdp_epsilon",
    "guesses_from_scores", "max_certifiable_epsilon", "one_run_epsilon", "one_run_mu", "snj_p_value",
]
