"""White-box gradient canaries (lowrankdp.audit.canaries): scores, simulator, and mutations caught by the audit."""

import math

import numpy as np
import pytest

from lowrankdp import accounting
from lowrankdp.audit import audit_scores
from lowrankdp.audit.canaries import (
    ProjectedCanaryScorer,
    score_dirac_canaries,
    simulate_dpsgd_canaries,
    simulate_projected_dpsgd_canaries,
    step_log_likelihood_ratio,
)

Q, T, M, DELTA = 0.01, 1000, 1000, 1e-5
K = 50  # guesses on each side, fixed before any score is seen


def test_step_llr_matches_density_ratio():
    from scipy import stats

    y, q, z, c = np.array([-0.7, 0.2, 1.9]), 0.03, 0.8, 1.3
    mix = (1 - q) * stats.norm.pdf(y, 0, z * c) + q * stats.norm.pdf(y, c, z * c)
    want = np.log(mix / stats.norm.pdf(y, 0, z * c))
    got = step_log_likelihood_ratio(y, sampling_rate=q, noise_multiplier=z, clip_norm=c)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_projected_scorer_with_identity_projection_equals_dirac_scorer():
    rng = np.random.default_rng(0)
    d, m, q, z = 6, 4, 0.2, 0.9
    obs = rng.normal(size=(5, d))
    sc = ProjectedCanaryScorer(canaries=m, sampling_rate=q, noise_multiplier=z, clip_norm=1.0, interference=False)
    eye = np.eye(d)
    for row in obs:
        sc.update(row, eye, np.arange(m))
    want = score_dirac_canaries(obs[:, :m], sampling_rate=q, noise_multiplier=z, clip_norm=1.0)
    np.testing.assert_allclose(sc.scores, want, rtol=1e-12)
    np.testing.assert_allclose(sc.retained, np.full(m, 5.0))


def test_projected_scorer_dense_directions_equal_integer_directions():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 8))
    u = np.eye(8)[[1, 4, 6]]
    s1 = ProjectedCanaryScorer(canaries=3, sampling_rate=0.1, noise_multiplier=1.0, clip_norm=2.0)
    s2 = ProjectedCanaryScorer(canaries=3, sampling_rate=0.1, noise_multiplier=1.0, clip_norm=2.0)
    for _ in range(3):
        zt = rng.normal(size=3)
        s1.update(zt, a, np.array([1, 4, 6]))
        s2.update(zt, a, u)
    np.testing.assert_allclose(s1.scores, s2.scores, rtol=1e-12)


def test_scorer_validation():
    with pytest.raises(ValueError, match="observed"):
        score_dirac_canaries(np.zeros(3), sampling_rate=0.1, noise_multiplier=1.0, clip_norm=1.0)
    with pytest.raises(ValueError, match="noise_multiplier"):
        score_dirac_canaries(np.zeros((2, 3)), sampling_rate=0.1, noise_multiplier=0.0, clip_norm=1.0)
    with pytest.raises(ValueError, match="mode"):
        score_dirac_canaries(np.zeros((2, 3)), sampling_rate=0.1, noise_multiplier=1.0, clip_norm=1.0, mode="x")


@pytest.fixture(scope="module")
def sigma_eps2():
    return accounting.calibrate_noise(target_epsilon=2.0, sampling_rate=Q, steps=T, delta=DELTA)


def _audit(run, mode="all_iterates"):
    s = score_dirac_canaries(run.observed, sampling_rate=run.sampling_rate, noise_multiplier=run.noise_multiplier,
                             clip_norm=run.clip_norm, mode=mode)
    return audit_scores(s, run.included, k_pos=K, k_neg=K, delta=DELTA)


def test_correct_dpsgd_audit_stays_below_accountant_and_detects_something(sigma_eps2):
    res = _audit(simulate_dpsgd_canaries(canaries=M, steps=T, sampling_rate=Q, noise_multiplier=sigma_eps2, seed=3))
    assert res.max_epsilon_snj > 2.0  # the claim could fail at this m
    assert res.judge(2.0)["verdict"] == "consistent"
    assert res.epsilon_snj <= 2.0 and res.epsilon_fdp_epsilon_delta <= 2.0


@pytest.mark.parametrize("mutation", [dict(noise_scale=0.0), dict(noise_scale=0.1),
                                      dict(clip=False, canary_norm=10.0)],
                         ids=["noise-off", "noise-1/10", "clipping-off"])
def test_mutations_are_caught(sigma_eps2, mutation):
    """The accountant is told σ (ε = 2); the run is broken; the audited lower bound must exceed 2."""
    run = simulate_dpsgd_canaries(canaries=M, steps=T, sampling_rate=Q, noise_multiplier=sigma_eps2, seed=4,
                                  **mutation)
    res = _audit(run)
    assert res.judge(2.0)["verdict"] == "violated", res
    assert res.epsilon_snj > 2.0


def test_last_iterate_is_weaker_than_all_iterates(sigma_eps2):
    run = simulate_dpsgd_canaries(canaries=M, steps=T, sampling_rate=Q, noise_multiplier=sigma_eps2 / 2, seed=5)
    assert _audit(run, "last_iterate").epsilon_snj < _audit(run, "all_iterates").epsilon_snj


def test_projected_simulator_retained_fraction_is_r_over_d():
    # E[u^T P_A u] = r/d for a direction independent of A (Beta(r/2, (d−r)/2) mean).
    d, r, steps, m = 400, 8, 200, 50
    _, _, ret = simulate_projected_dpsgd_canaries(canaries=m, d=d, r=r, steps=steps, sampling_rate=0.01,
                                                  noise_multiplier=1.0, projection="fresh", seed=6)
    var = (r / d) * (1 - r / d) * 2 / (d + 2)  # Beta variance
    se = math.sqrt(var / (m * steps))
    assert abs(ret.mean() - r / d) < 4 * se
    # the λ_max direction of a k-dim span retains more than a fixed direction
    _, _, ret4 = simulate_projected_dpsgd_canaries(canaries=m, d=d, r=r, steps=20, sampling_rate=0.01,
                                                   noise_multiplier=1.0, projection="fixed", span=4, seed=6)
    assert ret4.mean() > 1.5 * r / d


def test_projected_noise_off_is_caught_at_moderate_rank():
    """Noise off in compressed DP-SGD, fresh A published: caught at r = 32 of d = 400. At r = 8 the same
    per-canary scorer certifies only ≈ 0.65 (other canaries' projections overlap in 8 dimensions), which
    docs/audit.md reports as a limit of the scorer, not evidence of privacy."""
    inc, s, _ = simulate_projected_dpsgd_canaries(canaries=200, d=400, r=32, steps=300, sampling_rate=0.01,
                                                  noise_multiplier=1e-6, projection="fresh", seed=7)
    res = audit_scores(s, inc, k_pos=40, k_neg=40, delta=DELTA)
    assert res.epsilon_snj > 2.0
