"""lowrankdp.influence: [RPUE] Thm 1 deterministic bound, the Beta(r/2, (d-r)/2) law of docs/theory.md §1.

Monte Carlo conventions as in test_wishart_montecarlo.py: fixed seeds, KS at α = 1e-3, means within 4.5
standard errors computed from the law's variance and the sample size.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from lowrankdp import influence as inf
from lowrankdp import wishart

ALPHA = 1e-3
Z = 4.5


def test_projector_is_orthogonal_projector_onto_row_space():
    a = wishart.sample_projection(d=20, r=5, rng=0)
    p = inf.projector(a)
    assert np.allclose(p, p.T) and np.allclose(p @ p, p)
    assert np.isclose(np.trace(p), 5)
    assert np.allclose(a @ p, a)  # rows of A are fixed by P
    # matches the textbook formula Aᵀ(AAᵀ)⁻¹A
    assert np.allclose(p, a.T @ np.linalg.solve(a @ a.T, a))


def test_deterministic_bound_rpue_thm1():
    rng = np.random.default_rng(1)
    for _ in range(200):
        d = int(rng.integers(2, 30))
        r = int(rng.integers(1, d + 1))
        m = int(rng.integers(1, 5))
        p = inf.projector(rng.standard_normal((r, d)))
        g = rng.standard_normal((m, d)) * rng.exponential(size=(m, 1))
        f = inf.retained_fraction(g, p)
        assert 0.0 <= f <= 1.0
        assert np.linalg.norm(g @ p) <= np.linalg.norm(g) * (1 + 1e-12)
        assert f == pytest.approx(np.linalg.norm(g @ p) ** 2 / np.linalg.norm(g) ** 2, rel=1e-12)


def test_retained_fraction_r_equals_d_is_one():
    p = inf.projector(np.random.default_rng(2).standard_normal((6, 6)))
    assert inf.retained_fraction(np.arange(1.0, 7.0), p) == pytest.approx(1.0, abs=1e-12)


def test_retained_fraction_rejects_non_projectors_and_bad_input():
    m = wishart.sample_wishart(d=8, r=3, rng=3)  # AᵀA is not a projector: the bound fails for it
    with pytest.raises(ValueError, match="orthogonal projector"):
        inf.retained_fraction(np.ones(8), m)
    with pytest.raises(ValueError, match="orthogonal projector"):
        inf.retained_fraction(np.ones(2), np.array([[1.0, 1.0], [0.0, 0.0]]))  # idempotent, not symmetric
    with pytest.raises(ValueError, match=r"projector must have shape \(8, 8\)"):
        inf.retained_fraction(np.ones(8), np.eye(7))
    with pytest.raises(ValueError, match="non-zero"):
        inf.retained_fraction(np.zeros(8), np.eye(8))
    with pytest.raises(ValueError, match="gradient must have shape"):
        inf.retained_fraction(np.ones((2, 2, 2)), np.eye(2))
    with pytest.raises(ValueError, match="full row rank"):
        inf.projector(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"shape \(r, d\)"):
        inf.projector(np.ones((5, 2)))


@pytest.mark.parametrize("d, r", [(60, 8), (10, 1), (25, 24), (7, 3)])
def test_beta_law_by_simulating_projections(d, r):
    """docs/theory.md §1: ‖P_A u‖² ~ Beta(r/2, (d-r)/2), mean r/d (the doc's check used d=60, r=8)."""
    n = 6000
    x = inf.retained_fraction_samples(d=d, r=r, n=n, rng=np.random.default_rng(d * 31 + r))
    assert stats.kstest(x, lambda t: inf.retained_fraction_cdf(d=d, r=r, x=t)).pvalue > ALPHA
    sd = math.sqrt(stats.beta(r / 2, (d - r) / 2).var())
    assert abs(x.mean() - inf.retained_fraction_mean(d=d, r=r)) <= Z * sd / math.sqrt(n)
    # negative control: Beta(r/2, (d-r+2)/2) (a dimension off) is rejected at this n for moderate d
    if d <= 25:
        assert stats.kstest(x, stats.beta(r / 2, (d - r + 2) / 2).cdf).pvalue < ALPHA


def test_rank_one_gradient_fraction_is_the_beta_variable():
    """For g = x hᵀ (projected side x), ‖P_A g‖_F² / ‖g‖_F² = ‖P_A x̂‖² ~ Beta (docs/theory.md §1)."""
    d, r, n = 40, 6, 2500
    rng = np.random.default_rng(4)
    x = rng.standard_normal(d)
    h = rng.standard_normal(3)
    g = np.outer(h, x)  # rows live on the projected (input) side
    fr = np.empty(n)
    for i in range(n):
        p = inf.projector(rng.standard_normal((r, d)))
        fr[i] = inf.retained_fraction(g, p)
    cmp = inf.compare_retained_fractions(fr, d=d, r=r)
    assert cmp.ks_pvalue > ALPHA and abs(cmp.mean_z) < Z and cmp.n_above_one == 0


def test_higher_rank_gradient_keeps_mean_but_not_law():
    """docs/theory.md §4.2: for rank-k gradients, the mean stays r/d while the spread shrinks (convex order)."""
    d, r, n = 30, 3, 2500
    rng = np.random.default_rng(5)
    g = rng.standard_normal((10, d))  # rank 10, independent of A
    fr = np.array([inf.retained_fraction(g, inf.projector(rng.standard_normal((r, d)))) for _ in range(n)])
    cmp = inf.compare_retained_fractions(fr, d=d, r=r)
    assert abs(cmp.mean_z) < Z
    assert cmp.ks_pvalue < ALPHA  # a less spread law, detected
    assert np.var(fr) < stats.beta(r / 2, (d - r) / 2).var()


def test_quantile_sf_cdf_consistency_and_values():
    d, r = 60, 8
    q = np.array([0.01, 0.5, 0.99])
    x = inf.retained_fraction_quantile(d=d, r=r, q=q)
    assert np.allclose(inf.retained_fraction_cdf(d=d, r=r, x=x), q, rtol=1e-10)
    assert np.allclose(inf.retained_fraction_sf(d=d, r=r, x=x), 1 - q, rtol=1e-9)
    assert isinstance(inf.retained_fraction_sf(d=d, r=r, x=0.2), float)
    # closed form at r = 2, d = 4: Beta(1, 1) is uniform
    assert inf.retained_fraction_cdf(d=4, r=2, x=0.37) == pytest.approx(0.37, rel=1e-14)
    assert inf.retained_fraction_mean(d=768, r=8) == pytest.approx(8 / 768)


def test_r_equals_d_point_mass():
    assert inf.retained_fraction_quantile(d=5, r=5, q=0.3) == 1.0
    assert inf.retained_fraction_sf(d=5, r=5, x=0.999) == 1.0
    assert inf.retained_fraction_sf(d=5, r=5, x=1.0) == 0.0
    assert inf.retained_fraction_cdf(d=5, r=5, x=0.5) == 0.0
    assert inf.retained_fraction_cdf(d=5, r=5, x=1.0) == 1.0
    assert inf.retained_fraction_mean(d=5, r=5) == 1.0
    ok = inf.compare_retained_fractions(np.ones(10), d=5, r=5)
    assert ok.ks_pvalue == 1.0 and ok.ks_statistic == 0.0
    bad = inf.compare_retained_fractions(np.r_[np.ones(9), 0.5], d=5, r=5)
    assert bad.ks_pvalue == 0.0 and bad.ks_statistic == pytest.approx(0.1)


def test_compare_flags_violations_and_serialises():
    cmp = inf.compare_retained_fractions([0.1, 0.2, 1.5, 0.05], d=60, r=8)
    assert cmp.n_above_one == 1
    dct = cmp.to_dict()
    assert set(dct) >= {"ks_statistic", "ks_pvalue", "mean", "expected_mean", "mean_z", "n_above_one"}
    assert dct["expected_mean"] == pytest.approx(8 / 60)


def test_lora_parameter_count():
    assert inf.lora_parameter_count(d_in=768, d_out=2304, r=8) == 8 * (768 + 2304)
    assert inf.lora_parameter_count(d_in=5, d_out=3, r=3) == 24


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: inf.retained_fraction_mean(d=5, r=6), r"r must be an integer in \[1, d=5\], got 6"),
        (lambda: inf.retained_fraction_mean(d=0, r=1), r"d must be an integer in \[1, inf\), got 0"),
        (lambda: inf.retained_fraction_quantile(d=5, r=2, q=1.5), r"q must be in \[0, 1\]"),
        (lambda: inf.retained_fraction_sf(d=5, r=2, x=float("nan")), r"x must be real numbers"),
        (lambda: inf.retained_fraction_cdf(d=5.5, r=2, x=0.1), r"d must be an integer, got 5.5"),
        (lambda: inf.lora_parameter_count(d_in=4, d_out=8, r=5), r"r must be an integer in \[1, min\(d_in, d_out\)=4\]"),
        (lambda: inf.lora_parameter_count(d_in=0, d_out=8, r=1), r"d_in must be an integer in \[1, inf\), got 0"),
        (lambda: inf.compare_retained_fractions([], d=5, r=2), "at least one value"),
        (lambda: inf.compare_retained_fractions([-0.5], d=5, r=2), "finite and >= 0"),
        (lambda: inf.retained_fraction_samples(d=5, r=2, n=0, rng=0), r"n must be an integer in \[1, inf\)"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_law_functions_accept_point_positionally_or_by_keyword():
    x = np.array([0.05, 0.2])
    assert np.array_equal(inf.retained_fraction_sf(x, d=60, r=8), inf.retained_fraction_sf(d=60, r=8, x=x))
    assert np.array_equal(inf.retained_fraction_cdf(x, d=60, r=8), inf.retained_fraction_cdf(d=60, r=8, x=x))
    assert inf.retained_fraction_quantile(0.5, d=60, r=8) == inf.retained_fraction_quantile(d=60, r=8, q=0.5)
    with pytest.raises(TypeError):
        inf.retained_fraction_sf(x, 60, 8)  # d and r are keyword-only
