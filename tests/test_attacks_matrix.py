"""Tests for lowrankdp.attacks.matrix (numpy only)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from lowrankdp.attacks import matrix as mx
from lowrankdp.attacks.matrix import MatrixAttackConfig, NeighbouringPair, ThreatModel
from lowrankdp.metrics import auc

KNOWS_A = ThreatModel(knows_projection=True)


def _auc_se(a: float, n1: int, n2: int) -> float:
    """Hanley & McNeil (1982) standard error of an AUC estimate."""
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return math.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a)) / (n1 * n2))


# ---------------------------------------------------------------- exact fixtures


def test_identical_pair_gives_auc_exactly_half():
    rng = np.random.default_rng(1)
    v = rng.standard_normal((6, 3))
    pair = NeighbouringPair(v, v)
    cfg = MatrixAttackConfig(d=6, r=2, columns=3, trials=200, n_bootstrap=0)
    res = mx.run_matrix_attack(cfg, pair=pair)
    assert np.all(res.scores_in == 0.0) and np.all(res.scores_out == 0.0)
    assert res.auc == 0.5
    assert res.report.epsilon_lower_bound == 0.0


@pytest.mark.parametrize("dist,cols", [("symmetry", 2), ("symmetry", 5), ("reconstruction", 4)])
def test_noise_free_matrix_query_is_perfectly_separated(dist, cols):
    cfg = MatrixAttackConfig(d=8, r=3, columns=cols, distinguisher=dist, trials=300, n_bootstrap=0, seed=3)
    res = mx.run_matrix_attack(cfg)
    assert res.auc == 1.0
    assert res.scores_in.min() > 10 and res.scores_out.max() < -10  # log-ratios, both hypotheses checked
    assert res.epsilon_accountant is None


def test_symmetry_by_hand_two_by_two():
    a = np.array([[1.0, 2.0], [0.5, -1.0]])  # r = d = 2, any A: M = AᵀA symmetric
    m = a.T @ a
    v, w, w2 = np.array([1.0, 0.0]), np.array([0.6, 0.8]), np.array([0.0, 1.0])
    pair = NeighbouringPair(np.stack([v, w], 1), np.stack([v, w2], 1))
    y_in = (m @ pair.v_in)[None, None]
    y_out = (m @ pair.v_out)[None, None]
    # wᵀ(Mv) − vᵀ(Mw) = 0 exactly under V; under V' the statistic is |vᵀM(w − w')| ≠ 0.
    assert abs(w @ y_in[0, 0, :, 0] - v @ y_in[0, 0, :, 1]) < 1e-14
    assert abs(w @ y_out[0, 0, :, 0] - v @ y_out[0, 0, :, 1]) > 0.1
    assert mx.symmetry_score(y_in, pair)[0] > 20
    assert mx.symmetry_score(y_out, pair)[0] < -20


def test_reconstruction_full_rank_matches_theory_formula():
    # r = d: M = Y_{-j} V_{-j}^+ (docs/theory.md §3.2) predicts column j exactly under V_in.
    rng = np.random.default_rng(5)
    d = 4
    pair = mx.neighbouring_pair(d=d, columns=d + 1, seed=2)
    a = rng.standard_normal((1, 1, d, d)) / 2.0
    m = a[0, 0].T @ a[0, 0]
    y = (m @ pair.v_in)[None, None]
    m_hat = y[0, 0, :, :-1] @ np.linalg.pinv(pair.v_in[:, :-1])
    np.testing.assert_allclose(m_hat, m, atol=1e-10)
    assert mx.reconstruction_score(y, pair, r=d)[0] > 15
    assert mx.reconstruction_score((m @ pair.v_out)[None, None], pair, r=d)[0] < -15


# ---------------------------------------------------------------- simulator


def test_simulator_mean_is_the_query_and_fixed_projection_is_shared():
    rng = np.random.default_rng(0)
    pair = mx.neighbouring_pair(d=5, columns=2, seed=1)
    y, a = mx.simulate_releases(pair.v_in, mechanism="noise_free", r=2, sigma=0.0, releases=1, projection="fresh",
                                n=20000, rng=rng)
    assert y.shape == (20000, 1, 5, 2) and a.shape == (20000, 1, 2, 5)
    # E[AᵀA] = I (entries N(0, 1/r)): the mean of MV is V, tolerance 5 standard errors per entry.
    se = y.std(axis=0)[0] / math.sqrt(y.shape[0])
    assert np.all(np.abs(y.mean(axis=0)[0] - pair.v_in) < 5 * se)
    y2, a2 = mx.simulate_releases(pair.v_in, mechanism="noise_free", r=2, sigma=0.0, releases=3, projection="fixed",
                                  n=4, rng=rng)
    assert a2.shape == (4, 1, 2, 5)
    np.testing.assert_array_equal(y2[:, 0], y2[:, 2])
    y3, a3 = mx.simulate_releases(pair.v_in, mechanism="noise_free", r=2, sigma=0.0, releases=3, projection="fresh",
                                  n=4, rng=rng)
    assert a3.shape == (4, 3, 2, 5) and not np.allclose(y3[:, 0], y3[:, 2])


def test_simulator_m2_equals_projection_of_noisy_query():
    pair = mx.neighbouring_pair(d=6, columns=2, seed=1)
    y, a = mx.simulate_releases(pair.v_in, mechanism="m2", r=3, sigma=0.7, releases=1, projection="fresh", n=3,
                                rng=np.random.default_rng(9))
    rng = np.random.default_rng(9)
    a_ref = rng.standard_normal((3, 1, 3, 6)) / math.sqrt(3)
    e = 0.7 * rng.standard_normal((3, 1, 6, 2))
    np.testing.assert_allclose(a, a_ref)
    for i in range(3):
        m = a_ref[i, 0].T @ a_ref[i, 0]
        np.testing.assert_allclose(y[i, 0], m @ (pair.v_in + e[i, 0]), atol=1e-12)


# ---------------------------------------------------------------- vector query (docs/theory.md §2)


def test_support_violation_closed_form_reference():
    # docs/theory.md §2: δ_supp(0.6, r=6) ≈ 0.05792
    assert mx.support_violation_probability(rho=0.6, r=6) == pytest.approx(0.05792, abs=5e-6)


def test_vector_query_support_violations_and_density():
    d, r, rho, n = 10, 6, 0.6, 20000
    pair = mx.neighbouring_pair(d=d, columns=1, rho=rho, seed=4)
    assert pair.v_in[:, 0] @ pair.v_out[:, 0] == pytest.approx(rho)
    rng = np.random.default_rng(11)
    y_in, _ = mx.simulate_releases(pair.v_in, mechanism="noise_free", r=r, sigma=0.0, releases=1, projection="fresh",
                                   n=n, rng=rng)
    y_out, _ = mx.simulate_releases(pair.v_out, mechanism="noise_free", r=r, sigma=0.0, releases=1, projection="fresh",
                                    n=n, rng=rng)
    u_in = y_in[:, 0, :, 0] @ pair.v_in[:, 0]
    u_out = y_out[:, 0, :, 0] @ pair.v_in[:, 0]
    assert np.all(u_in > 0)  # vᵀMv = ‖Av‖² ≥ 0
    p = mx.support_violation_probability(rho=rho, r=r)
    frac = np.mean(u_out <= 0)
    assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / n)
    # Density check: the members' log-likelihood ratios follow the exact privacy-loss law of docs/theory.md §2
    # fact 3 (independent recipe: x~χ²_r, z~N(0,1), s~χ²_{d−2}; R = ρ + √(1−ρ²)z/√x; Q = x + z² + s).
    lr = mx.likelihood_ratio_score(y_in, pair, mechanism="noise_free", r=r)
    x, z, s = rng.chisquare(r, n), rng.standard_normal(n), rng.chisquare(d - 2, n)
    big_r = rho + math.sqrt(1 - rho**2) * z / np.sqrt(x)
    q = x + z**2 + s
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = np.where(big_r > 0, 0.5 * (d + 1 - r) * np.log(big_r) + 0.5 * q * (1 / big_r - 1), np.inf)
    assert stats.ks_2samp(lr[lr < 1e300], loss[np.isfinite(loss)]).pvalue > 1e-3
    assert abs(np.mean(lr >= 1e300) - p) < 5 * math.sqrt(p * (1 - p) / n)
    # and the members' scores are never −inf; the non-members outside the support get the floor
    lr_out = mx.likelihood_ratio_score(y_out, pair, mechanism="noise_free", r=r)
    assert np.all(lr > -1e300)
    assert np.mean(lr_out <= -1e300) == pytest.approx(frac)


def test_vector_query_is_not_perfectly_separated_but_matrix_query_is():
    vec = mx.run_matrix_attack(MatrixAttackConfig(d=16, r=4, columns=1, distinguisher="likelihood_ratio", rho=0.6,
                                                  trials=2000, n_bootstrap=0))
    mat = mx.run_matrix_attack(MatrixAttackConfig(d=16, r=4, columns=2, trials=2000, n_bootstrap=0))
    assert 0.6 < vec.auc < 0.99
    assert mat.auc == 1.0


# ---------------------------------------------------------------- noisy likelihood ratios


def test_m2_likelihood_ratio_full_rank_matches_gaussian_auc():
    # r = d: P_A = I, so the LR test is the Gaussian test with sensitivity ‖ΔV‖: AUC = Φ(Δ/(σ√2)).
    cfg = MatrixAttackConfig(d=6, r=6, columns=2, mechanism="m2", sigma=1.0, distinguisher="likelihood_ratio",
                             threat=KNOWS_A, trials=4000, n_bootstrap=0, seed=2)
    res = mx.run_matrix_attack(cfg)
    expected = stats.norm.cdf(res.sensitivity / (cfg.sigma * math.sqrt(2)))
    assert abs(res.auc - expected) < 4 * _auc_se(expected, cfg.trials, cfg.trials)


def test_m2_likelihood_ratio_low_rank_matches_beta_mixture():
    # r < d: sensitivity given A is ‖P_A ΔV‖ = Δ√b, b ~ Beta(r/2, (d−r)/2) (docs/theory.md §1, §4.1).
    d, r, sigma = 12, 3, 0.5
    cfg = MatrixAttackConfig(d=d, r=r, columns=2, mechanism="m2", sigma=sigma, distinguisher="likelihood_ratio",
                             threat=KNOWS_A, trials=4000, n_bootstrap=0, seed=7)
    res = mx.run_matrix_attack(cfg)
    delta_v = res.sensitivity
    # AUC = P(LLR_in > LLR_out) for independent trials with independent b1, b2: given (b1, b2) the two
    # statistics are Gaussian (means ±Δ²b/(2σ²), variances Δ²b/σ²); average over a midpoint grid in
    # probability space (discretisation error ~1e-4, far below the AUC's standard error ~6e-3).
    grid = stats.beta.ppf((np.arange(600) + 0.5) / 600, r / 2, (d - r) / 2)
    b1, b2 = np.meshgrid(grid, grid)
    num = (delta_v**2) * (b1 + b2) / (2 * sigma**2)
    den = math.sqrt(delta_v**2) * np.sqrt(b1 + b2) / sigma
    expected = float(np.mean(stats.norm.cdf(num / den)))
    assert abs(res.auc - expected) < 4 * _auc_se(expected, cfg.trials, cfg.trials)


def test_m1_likelihood_ratio_uses_projected_sensitivity():
    # M1 given A is Gaussian with sensitivity ‖MΔV‖: the per-trial LLR mean is ‖MΔV‖²/(2σ²).
    pair = mx.neighbouring_pair(d=8, columns=2, seed=3)
    rng = np.random.default_rng(1)
    y, a = mx.simulate_releases(pair.v_in, mechanism="m1", r=2, sigma=0.3, releases=1, projection="fixed", n=1,
                                rng=rng)
    a1 = a[0, 0]
    dv = pair.v_in - pair.v_out
    mdv = a1.T @ a1 @ dv
    big = np.broadcast_to(a, (50000,) + a.shape[1:])
    ys = (a1.T @ a1 @ pair.v_in)[None, None] + 0.3 * rng.standard_normal((50000, 1, 8, 2))
    llr = mx.likelihood_ratio_score(ys, pair, mechanism="m1", r=2, sigma=0.3, a=big)
    mean = np.sum(mdv**2) / (2 * 0.09)
    sd = math.sqrt(np.sum(mdv**2)) / 0.3
    assert abs(llr.mean() - mean) < 5 * sd / math.sqrt(50000)
    assert llr.std() == pytest.approx(sd, rel=0.02)


def test_empirical_epsilon_stays_below_accountant_on_noisy_m2():
    cfg = MatrixAttackConfig(d=16, r=16, columns=2, mechanism="m2", sigma=0.5, distinguisher="likelihood_ratio",
                             threat=KNOWS_A, trials=4000, n_bootstrap=0, delta=1e-5, seed=1)
    res = mx.run_matrix_attack(cfg)
    lb = res.report.epsilon_lower_bound
    assert lb > 0.5  # the audit certifies something, so the comparison is not vacuous
    assert res.epsilon_accountant is not None and lb <= res.epsilon_accountant
    assert lb <= res.accountant["epsilon_plain"]


# ---------------------------------------------------------------- accountant


def test_accountant_refuses_where_none_applies():
    kw = dict(projection="fresh", d=16, r=4, sensitivity=1.0, releases=1, delta=1e-5)
    assert mx.accountant_epsilon(mechanism="noise_free", sigma=0.0, **kw)["epsilon"] is None
    m1 = mx.accountant_epsilon(mechanism="m1", sigma=1.0, **kw)
    assert m1["epsilon"] is None and "M1" in m1["note"]
    m2 = mx.accountant_epsilon(mechanism="m2", sigma=1.0, **kw)
    assert 0 < m2["epsilon"] <= m2["epsilon_plain"] < math.inf
    more_noise = mx.accountant_epsilon(mechanism="m2", sigma=2.0, **kw)
    assert more_noise["epsilon"] < m2["epsilon"]


def test_fixed_projection_with_rank_two_difference_falls_back_to_plain():
    kw = dict(mechanism="m2", d=16, r=4, sigma=1.0, sensitivity=1.0, releases=3, delta=1e-5)
    acc = mx.accountant_epsilon(projection="fixed", difference_rank=2, **kw)
    assert acc["epsilon"] == acc["epsilon_plain"] and "rank > 1" in acc["note"]


# ---------------------------------------------------------------- threat model and bad inputs


def test_threat_model_is_frozen_and_validated():
    t = ThreatModel()
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.knows_projection = True  # type: ignore[misc]
    with pytest.raises(ValueError, match="knows_projection must be a bool"):
        ThreatModel(knows_projection="yes")  # type: ignore[arg-type]


def test_threat_model_requirements_are_enforced():
    with pytest.raises(ValueError, match="knows_projection=True"):
        MatrixAttackConfig(d=8, r=2, mechanism="m2", sigma=1.0, distinguisher="likelihood_ratio")
    with pytest.raises(ValueError, match="knows_other_records=True"):
        MatrixAttackConfig(d=8, r=2, threat=ThreatModel(knows_other_records=False))
    with pytest.raises(ValueError, match="knows_initial_weights"):
        MatrixAttackConfig(d=8, r=2, threat=ThreatModel(knows_initial_weights=False))
    pair = mx.neighbouring_pair(d=6, columns=2)
    y = np.zeros((2, 1, 6, 2))
    with pytest.raises(ValueError, match="needs the projections A"):
        mx.likelihood_ratio_score(y, pair, mechanism="m2", r=2, sigma=1.0, a=None)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(d=8, r=9), "r must be"),
        (dict(d=8, r=0), "r must be"),
        (dict(d=8, r=2, sigma=1.0), "sigma must be 0"),
        (dict(d=8, r=2, mechanism="m2"), "sigma must be > 0"),
        (dict(d=8, r=2, mechanism="m2", sigma=-1.0), "sigma must be"),
        (dict(d=8, r=2, trials=1), "trials must be"),
        (dict(d=8, r=2, rho=1.0), "rho must be"),
        (dict(d=8, r=2, distinguisher="magic"), "distinguisher must be one of"),
        (dict(d=8, r=2, mechanism="m3", sigma=1.0), "mechanism must be one of"),
        (dict(d=8, r=2, projection="sometimes"), "projection must be one of"),
        (dict(d=8, r=2, columns=1), "columns must be >= 2"),
        (dict(d=8, r=4, columns=4, distinguisher="reconstruction"), "columns must be >= r \\+ 1"),
        (dict(d=8, r=2, columns=2, distinguisher="likelihood_ratio"), "columns must be 1"),
        (dict(d=8, r=2, releases=0), "releases must be"),
        (dict(d=8, r=2, delta=0.0), "delta must be"),
        (dict(d=8, r=2.5), "r must be an integer"),
    ],
)
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MatrixAttackConfig(**kwargs)


def test_bad_arrays_raise():
    with pytest.raises(ValueError, match="one shape"):
        NeighbouringPair(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        NeighbouringPair(np.full((3, 2), np.nan), np.zeros((3, 2)))
    pair = mx.neighbouring_pair(d=5, columns=2)
    with pytest.raises(ValueError, match="Y must have shape"):
        mx.symmetry_score(np.zeros((3, 1, 4, 2)), pair)
    with pytest.raises(ValueError, match="columns >= 2"):
        mx.symmetry_score(np.zeros((3, 1, 5, 1)), mx.neighbouring_pair(d=5, columns=1))
    with pytest.raises(ValueError, match="unit vector"):
        mx.vector_query_log_density(np.ones(3), np.ones(3), r=1)
    with pytest.raises(ValueError, match="pair must have shape"):
        mx.run_matrix_attack(MatrixAttackConfig(d=6, r=2, trials=10), pair=pair)


def test_correlation_needs_no_projection_and_detects_large_signal():
    cfg = MatrixAttackConfig(d=4, r=4, columns=2, mechanism="m1", sigma=0.2, distinguisher="correlation",
                             trials=500, n_bootstrap=0)
    res = mx.run_matrix_attack(cfg)
    assert res.auc > 0.9
    assert auc(res.scores_in, res.scores_out) == res.auc


# ---------------------------------------------------------------- the claims (slow)


@pytest.mark.slow
@pytest.mark.parametrize("d", [16, 64, 256])
def test_noise_free_matrix_auc_grid(d):
    for r in sorted({4, 16, d // 2}):
        for dist, cols in (("symmetry", 2), ("reconstruction", r + 1)):
            res = mx.run_matrix_attack(MatrixAttackConfig(d=d, r=r, columns=cols, distinguisher=dist, trials=2000,
                                                          n_bootstrap=0, seed=d + r))
            assert res.auc >= 0.99, (d, r, dist, res.auc)
