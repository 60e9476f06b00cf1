"""Canary exposure (lowrankdp.attacks.exposure): exact ranks, ties, random baseline, fitted estimate."""

import math

import numpy as np
import pytest
from scipy import stats

from lowrankdp.attacks.exposure import exposure, exposure_from_rank, random_exposure_moments


def test_exact_rank_by_hand():
    cands = np.array([-1.0, -2.0, -3.0, -0.5])
    r = exposure(canary_logprob=-2.0, candidate_logprobs=cands, space_size=4)
    assert r.method == "exact" and r.rank == 3.0  # -0.5, -1 and the canary itself
    assert r.value == pytest.approx(2.0 - math.log2(3))
    top = exposure(canary_logprob=-0.5, candidate_logprobs=cands, space_size=4)
    assert top.rank == 1.0 and top.value == pytest.approx(2.0) == pytest.approx(top.max_value)
    bottom = exposure(canary_logprob=-3.0, candidate_logprobs=cands, space_size=4)
    assert bottom.value == pytest.approx(0.0)


def test_ties_count_against_the_canary():
    cands = np.array([-1.0, -1.0, -1.0, -5.0])
    r = exposure(canary_logprob=-1.0, candidate_logprobs=cands, space_size=4)
    assert r.rank == 3.0 and r.rank_if_ties_won == 1.0
    flat = exposure(canary_logprob=-2.0, candidate_logprobs=np.full(8, -2.0), space_size=8)
    assert flat.value == 0.0  # a model that scores everything the same exposes nothing
    near = exposure(canary_logprob=-1.0, candidate_logprobs=np.array([-1.0, -1.0 - 1e-9, -3.0]),
                    space_size=3, tie_atol=1e-6)
    assert near.rank == 2.0
    d = r.to_dict()
    assert d["rank"] == 3.0 and d["method"] == "exact" and d["space_size"] == 4 and "interval" not in d


def test_exposure_from_rank_and_moments_by_hand():
    assert exposure_from_rank(1, 1024) == pytest.approx(10.0)
    assert exposure_from_rank(1024, 1024) == pytest.approx(0.0)
    mean, sd = random_exposure_moments(4)
    vals = [2.0 - math.log2(r) for r in (1, 2, 3, 4)]
    assert mean == pytest.approx(np.mean(vals)) and sd == pytest.approx(np.std(vals))
    # large spaces: continuous limit Exp(rate ln 2); exact sum at 10^7 agrees with the Stirling branch
    m_exact, _ = random_exposure_moments(10_000_000)
    m_big, sd_big = random_exposure_moments(10_000_001)
    assert m_exact == pytest.approx(1 / math.log(2), abs=1e-5)
    assert m_big == pytest.approx(m_exact, abs=1e-5) and sd_big == pytest.approx(1 / math.log(2))


def test_random_canary_averages_random_baseline():
    """Scores independent of the secret: mean exposure over S random secrets has the uniform-rank mean,
    within 4 standard errors (sd / sqrt(S))."""
    rng = np.random.default_rng(1)
    n, s = 10_000, 400
    scores = rng.normal(size=n)
    secrets = rng.integers(0, n, size=s)
    vals = [exposure(canary_logprob=scores[i], candidate_logprobs=scores, space_size=n).value for i in secrets]
    mean, sd = random_exposure_moments(n)
    assert abs(np.mean(vals) - mean) < 4 * sd / math.sqrt(s)
    assert mean == pytest.approx(1.44, abs=0.01)


@pytest.mark.parametrize("method, law", [("skewnorm", stats.skewnorm(4.0, loc=-20.0, scale=3.0)),
                                         ("normal", stats.norm(loc=-15.0, scale=2.0))])
@pytest.mark.parametrize("tail", [0.2, 0.005])
def test_exact_and_fitted_agree(method, law, tail):
    """A population of 200,000 candidate log-likelihoods from the fitted family; the canary sits at the
    top ``tail`` fraction. The fit from a 10,000-candidate sample estimates the exact exposure within
    4 standard errors of the sampled tail fraction (delta method: sd(log2 p̂) = sqrt((1-p)/(n p))/ln 2,
    plus the population's own binomial spread), and the distribution-free 99.9 % interval covers it."""
    rng = np.random.default_rng(7)
    N, n = 200_000, 10_000
    pop = law.rvs(size=N, random_state=rng)
    x = float(np.quantile(pop, 1 - tail))
    exact = exposure(canary_logprob=x, candidate_logprobs=pop, space_size=N)
    sample = rng.choice(pop, size=n, replace=False)
    fit = exposure(canary_logprob=x, candidate_logprobs=sample, space_size=N, method=method, confidence=0.999)
    assert fit.method == method and fit.estimate_method == method and fit.n_scored == n
    assert fit.value_kind == "lower_bound"
    se = math.sqrt((1 - tail) / (n * tail) + (1 - tail) / (N * tail)) / math.log(2)
    assert abs(fit.estimate - exact.value) < 4 * se, (fit.estimate, exact.value, se)
    lo, hi = fit.interval
    assert lo <= exact.value <= hi
    assert fit.value <= exact.value  # the 99.9 % lower bound
    auto = exposure(canary_logprob=x, candidate_logprobs=sample, space_size=N)
    assert auto.estimate_method == "skewnorm"
    d = auto.to_dict()
    assert d["value_kind"] == "lower_bound" and "not a bound" in d["estimate_note"]


def test_fit_extrapolates_beyond_the_sample():
    """Canary far above every sampled candidate: the fit gives more than the sample-based lower end but
    never more than log2|R|."""
    rng = np.random.default_rng(3)
    sample = rng.normal(-20, 2, size=5000)
    r = exposure(canary_logprob=-5.0, candidate_logprobs=sample, space_size=10**6, method="normal")
    lo, hi = r.interval
    assert hi == pytest.approx(math.log2(10**6))
    assert lo < r.estimate <= r.max_value
    assert r.estimate > 19.0  # 7.5 sd above the mean: essentially rank 1 out of 10^6
    # the bound is what the sample supports: k = 0 of 5,000 → rank ≤ 1 + |R|·(1 − 0.05^(1/5000))
    p = 1 - 0.05 ** (1 / 5000)
    assert r.value == pytest.approx(math.log2(10**6) - math.log2(1 + (10**6 - 1) * p), rel=1e-9)
    assert r.value < r.estimate


def test_sampled_lower_bound_is_valid():
    """Over 400 independent samples the 95 % lower bound exceeds the exact exposure at most β of the time
    (binomial tolerance: the 0.999 quantile of Bin(400, 0.05))."""
    rng = np.random.default_rng(9)
    N, n = 50_000, 2_000
    pop = rng.normal(size=N)
    x = float(np.quantile(pop, 1 - 0.003))
    exact = exposure(canary_logprob=x, candidate_logprobs=pop, space_size=N).value
    over = sum(exposure(canary_logprob=x, candidate_logprobs=rng.choice(pop, n, replace=False),
                        space_size=N, method="normal").value > exact for _ in range(400))
    assert over <= stats.binom.ppf(0.999, 400, 0.05), over


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(canary_logprob=float("nan"), candidate_logprobs=[0.0, -1.0], space_size=2), "canary_logprob"),
        (dict(canary_logprob=-1.0, candidate_logprobs=[0.0, np.nan], space_size=2), "finite"),
        (dict(canary_logprob=-1.0, candidate_logprobs=[], space_size=2), "at least one"),
        (dict(canary_logprob=-1.0, candidate_logprobs=[[0.0]], space_size=2), "1-D"),
        (dict(canary_logprob=-1.0, candidate_logprobs=[0.0, -1.0, -2.0], space_size=2), "more than space_size"),
        (dict(canary_logprob=-1.0, candidate_logprobs=[0.0, -1.0], space_size=3, method="exact"), "all space_size"),
        (dict(canary_logprob=-1.0, candidate_logprobs=[0.0, -1.0], space_size=3, method="skewnorm"), "at least 10"),
        (dict(canary_logprob=-1.0, candidate_logprobs=np.full(20, -2.0), space_size=100), "all equal"),
        (dict(canary_logprob=-1.0, candidate_logprobs=[0.0], space_size=0), "space_size"),
        (dict(canary_logprob=-1.0, candidate_logprobs=[0.0], space_size=1, method="bogus"), "method"),
        (dict(canary_logprob=-1.0, candidate_logprobs=[0.0], space_size=1, tie_atol=-1.0), "tie_atol"),
        (dict(canary_logprob=-1.0, candidate_logprobs=[0.0], space_size=1, confidence=1.0), "confidence"),
    ],
)
def test_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        exposure(**kwargs)


def test_keyword_only():
    with pytest.raises(TypeError):
        exposure(-1.0, [0.0], 1)  # type: ignore[misc]
