"""One-run audits (lowrankdp.audit.one_run): reference values, an independent p-value, validity by simulation."""

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import special, stats

from lowrankdp.audit import (
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


def _snj_reference(m, r, v, eps, delta):
    """The SNJ p-value with exact rational binomial sums (independent of scipy)."""
    q = Fraction(math.exp(eps) / (1 + math.exp(eps)))
    pmf = [Fraction(math.comb(r, k)) * q**k * (1 - q) ** (r - k) for k in range(r + 1)]
    tail = sum(pmf[v:])
    best = max(sum(pmf[v - i:v]) / i for i in range(1, v + 1))
    return min(1.0, float(tail + 2 * m * Fraction(delta) * best))


@pytest.mark.parametrize("m,r,v,eps,delta", [(37, 23, 19, 1.37, 3e-3), (200, 60, 52, 2.2, 1e-5), (50, 50, 50, 3.1, 0.0)])
def test_snj_p_value_matches_exact_rational_sum(m, r, v, eps, delta):
    got = snj_p_value(canaries=m, guesses=r, correct=v, epsilon=eps, delta=delta)
    assert got == pytest.approx(_snj_reference(m, r, v, eps, delta), rel=1e-9)


def test_perfect_attack_reference_values_snj():
    # The reference ceilings are 3.49 / 5.78 / 7.83 for β = 0.05, δ = 1e-5 (SNJ, perfect attack, all m guessed).
    got = [max_certifiable_epsilon(canaries=m, delta=1e-5, method="snj") for m in (100, 1000, 10000)]
    assert got == pytest.approx([3.49, 5.78, 7.83], abs=0.006)
    # δ = 0 and r = v = m: the bound solves q^m = β exactly.
    q = 0.05 ** (1 / 100)
    assert max_certifiable_epsilon(canaries=100, delta=0.0) == pytest.approx(math.log(q / (1 - q)), abs=2e-4)


def test_fdp_epsilon_delta_curve_at_least_snj_for_perfect_attack_and_gaussian_curve_higher():
    for m in (100, 1000):
        snj = max_certifiable_epsilon(canaries=m, delta=1e-5, method="snj")
        fed = max_certifiable_epsilon(canaries=m, delta=1e-5, method="fdp", curve="epsilon_delta")
        fg = max_certifiable_epsilon(canaries=m, delta=1e-5, method="fdp", curve="gaussian")
        assert fed >= snj - 1e-3 and fg > fed


def test_returned_epsilon_is_rejected_and_a_bit_more_is_not():
    kw = dict(canaries=1000, guesses=200, correct=170, delta=1e-5)
    e = one_run_epsilon(**kw, method="snj")
    assert 0 < e
    assert snj_p_value(**kw, epsilon=e) <= 0.05 < snj_p_value(**kw, epsilon=e + 2e-3)
    e2 = one_run_epsilon(**kw, method="fdp", curve="epsilon_delta")
    assert fdp_rejects(canaries=1000, guesses=200, correct=170, curve="epsilon_delta", param=e2, delta=1e-5)
    assert not fdp_rejects(canaries=1000, guesses=200, correct=170, curve="epsilon_delta", param=e2 + 2e-3,
                           delta=1e-5)


def test_chance_level_guesses_certify_nothing():
    assert one_run_epsilon(canaries=1000, guesses=200, correct=100, delta=1e-5) == 0.0
    assert one_run_epsilon(canaries=1000, guesses=200, correct=100, delta=1e-5, method="fdp") == 0.0
    assert one_run_epsilon(canaries=10, guesses=0, correct=0, delta=1e-5) == 0.0


def test_gdp_conversion_against_quadrature():
    # δ(ε) of μ-GDP = ∫ max(0, p(x) − e^ε q(x)) dx for N(μ, 1) vs N(0, 1).
    from scipy import integrate

    mu, eps = 1.3, 2.1
    val, _ = integrate.quad(lambda x: max(0.0, stats.norm.pdf(x, mu) - math.exp(eps) * stats.norm.pdf(x)), -10, 15,
                            points=[eps / mu + mu / 2], limit=200)
    assert gdp_delta(mu=mu, epsilon=eps) == pytest.approx(val, rel=1e-7)
    e = gdp_epsilon(mu=mu, delta=1e-5)
    assert gdp_delta(mu=mu, epsilon=e) <= 1e-5 < gdp_delta(mu=mu, epsilon=e * (1 - 1e-6))


def test_guesses_from_scores_counts():
    s = [5, 4, 3, 2, 1, 0]
    b = [1, 0, 1, 0, 0, 1]
    assert guesses_from_scores(s, b, k_pos=2, k_neg=2) == (4, 1 + 1)
    assert guesses_from_scores(s, b, k_pos=0, k_neg=0) == (0, 0)
    with pytest.raises(ValueError, match="k_neg"):
        guesses_from_scores(s, b, k_pos=4, k_neg=3)
    with pytest.raises(ValueError, match="included"):
        guesses_from_scores(s, b[:3], k_pos=1, k_neg=1)


@pytest.mark.parametrize("kw,name", [
    (dict(canaries=0, guesses=0, correct=0, delta=1e-5), "canaries"),
    (dict(canaries=10, guesses=11, correct=0, delta=1e-5), "guesses"),
    (dict(canaries=10, guesses=5, correct=6, delta=1e-5), "correct"),
    (dict(canaries=10, guesses=5, correct=5, delta=1.0), "delta"),
    (dict(canaries=10, guesses=5, correct=5, delta=1e-5, confidence=1.0), "confidence"),
    (dict(canaries=10, guesses=5, correct=5, delta=1e-5, method="x"), "method"),
    (dict(canaries=10, guesses=5, correct=5, delta=0.0, method="fdp"), "delta"),
])
def test_validation_names_the_parameter(kw, name):
    with pytest.raises(ValueError, match=name):
        one_run_epsilon(**kw)


def _exceedances(make_run, truth, reps, rng):
    """How often each analysis's lower bound exceeds the truth over independent runs."""
    out = {"snj": 0, "fdp_ed": 0, "mu": 0}
    for _ in range(reps):
        m, g, c = make_run(rng)
        kw = dict(canaries=m, guesses=g, correct=c)
        out["snj"] += one_run_epsilon(**kw, delta=1e-5, method="snj") > truth["eps"]
        out["fdp_ed"] += one_run_epsilon(**kw, delta=1e-5, method="fdp", curve="epsilon_delta") > truth["eps"]
        out["mu"] += one_run_mu(**kw) > truth["mu"]
    return out


# Upper 0.999 quantile of Bin(200, 0.05): a valid 95 % bound exceeds the truth at most this often
# (failure probability of a correct implementation ≤ 1e-3 per analysis).
_LIMIT = int(stats.binom.ppf(0.999, 200, 0.05))


def test_randomised_response_lower_bounds_are_valid():
    """ε-DP randomised response on every canary, every canary guessed: the bounds are nearly tight here
    (SNJ at δ = 0 is an exact binomial test), so an error of a few % in ε would show as > β exceedances."""
    eps, m = 1.0, 500
    q = special.expit(eps)

    def run(rng):
        b = rng.random(m) < 0.5
        out = np.where(rng.random(m) < q, b, ~b)
        g, c = guesses_from_scores(out.astype(float) + 1e-9 * rng.random(m), b, k_pos=int(out.sum()),
                                   k_neg=m - int(out.sum()))
        return m, g, c

    # RR is μ-GDP for μ = 2Φ⁻¹(q) (the curves touch at the kink α = 1 − q).
    truth = {"eps": eps, "mu": 2 * stats.norm.ppf(q)}
    ex = _exceedances(run, truth, 200, np.random.default_rng(11))
    assert all(v <= _LIMIT for v in ex.values()), ex
    # Power: the same runs judged against a truth 10 % lower are exceeded far more often than β.
    ex_low = _exceedances(run, {"eps": 0.9 * eps, "mu": 0.9 * truth["mu"]}, 200, np.random.default_rng(11))
    assert ex_low["snj"] > _LIMIT and ex_low["fdp_ed"] > _LIMIT


def test_gaussian_mechanism_lower_bounds_are_valid():
    """μ-GDP idealised canaries (score = μ·b + N(0, 1)), top/bottom 50 guessed: bounds at most β above truth.
    One-run audits are loose on Gaussian mechanisms, so this check is weak (reported in docs/audit.md)."""
    mu, m = 2.0, 500
    eps = gdp_epsilon(mu=mu, delta=1e-5)

    def run(rng):
        b = rng.random(m) < 0.5
        g, c = guesses_from_scores(mu * b + rng.standard_normal(m), b, k_pos=25, k_neg=25)
        return m, g, c

    ex = _exceedances(run, {"eps": eps, "mu": mu}, 200, np.random.default_rng(12))
    assert all(v <= _LIMIT for v in ex.values()), ex


def test_audit_scores_perfect_separation_and_judgement():
    rng = np.random.default_rng(0)
    b = rng.random(1000) < 0.5
    res = audit_scores(b.astype(float) + 0.01 * rng.random(1000), b, k_pos=int(b.sum()), k_neg=1000 - int(b.sum()),
                       delta=1e-5)
    assert res.correct == res.guesses == 1000
    assert res.epsilon_snj == pytest.approx(res.max_epsilon_snj)
    assert res.judge(2.0)["verdict"] == "violated"
    assert res.judge(9.0)["verdict"] == "not testable"
    assert res.judge(None)["verdict"] == "not testable"
