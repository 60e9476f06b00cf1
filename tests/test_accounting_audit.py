"""Quick privacy audit by simulation (the full one: experiments/audit_projected_gaussian.py).

Runs the unsampled M2 mechanism itself (docs/theory.md §4.1) for T = 6 steps on worst-case neighbours and checks
that neither the Clopper–Pearson ε lower bound nor the hockey-stick estimate contradicts the accountant —
and that the audit *does* contradict the fixed-projection bound when its assumptions are broken
(ΔV chosen inside A's row space; the best direction of a 10-dimensional span). Thresholds are 3 standard
errors of the Monte Carlo estimate; the seeds are fixed.
"""

import pytest

from lowrankdp import accounting as A
from lowrankdp.accounting.audit import hockey_stick, simulate_privacy_loss
from lowrankdp.metrics import epsilon_lower_bound

D, R, Z, T, N, DELTA = 16, 2, 1.0, 6, 3000, 1e-2


def accountant_eps(projection, span_dim=1):
    base = A.SelfComposedEvent(A.GaussianEvent(Z), T)
    if projection == "none":
        ev = base
    elif projection == "fresh":
        ev = A.SelfComposedEvent(A.FreshProjectedGaussianEvent(Z, D, R), T)
    else:
        ev = A.FixedProjectionEvent(base, D, R, span_dim=span_dim)
    return A.RdpAccountant(n_lambda_samples=4000).compose(ev).get_epsilon(DELTA)


def losses(projection, scenario, seed):
    kw = dict(d=D, r=R, noise_multiplier=Z, steps=T, n=N, projection=projection, scenario=scenario, span_k=10)
    return (simulate_privacy_loss(world="in", seed=seed, **kw), simulate_privacy_loss(world="out", seed=seed + 1, **kw))


@pytest.mark.parametrize("projection,scenario", [("none", "rank_one"), ("fresh", "rank_one"), ("fresh", "rank_two"),
                                                 ("fixed", "rank_one")])
def test_audit_never_exceeds_accountant(projection, scenario):
    eps = accountant_eps(projection)
    l_in, l_out = losses(projection, scenario, seed=7)
    assert epsilon_lower_bound(l_in, l_out, delta=DELTA, confidence=0.95) <= eps
    d_hat, se = hockey_stick(l_in, l_out, eps)
    assert d_hat - 3 * se <= DELTA


@pytest.mark.parametrize("scenario", ["in_rowspace", "span"])
def test_audit_catches_broken_fixed_projection_assumption(scenario):
    eps_assumed = accountant_eps("fixed")  # rank one, independent of A
    l_in, l_out = losses("fixed", scenario, seed=11)
    d_hat, se = hockey_stick(l_in, l_out, eps_assumed)
    assert d_hat - 3 * se > DELTA  # significant violation: the assumption matters
    # the honest accounting (no amplification / lambda_max of the span) is not contradicted
    honest = accountant_eps("none") if scenario == "in_rowspace" else accountant_eps("fixed", span_dim=10)
    d_hat, se = hockey_stick(l_in, l_out, honest)
    assert d_hat - 3 * se <= DELTA
