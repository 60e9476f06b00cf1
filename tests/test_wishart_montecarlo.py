"""Monte Carlo checks of each distributional fact of docs/theory.md §2, simulating the mechanism y = AᵀA V itself.

Conventions: fixed seeds (deterministic); KS tests reject at α = 1e-3 (the critical value of the KS statistic
is ≈ 1.95/√n at that level, so the tolerance shrinks with the sample size); proportions and means are
compared with intervals of 4.5 standard errors computed from the sample (two-sided level ≈ 7e-6 per check,
≈ 1e-4 over all checks in this file). Each fact also gets a negative control showing the test has power
against a nearby wrong law.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from lowrankdp import wishart as w

ALPHA = 1e-3
Z = 4.5


def _pair(d: int, rho: float) -> tuple[np.ndarray, np.ndarray]:
    """V = e1 rotated by a fixed random orthogonal matrix, V' with VᵀV' = rho (a non-axis-aligned pair)."""
    q, _ = np.linalg.qr(np.random.default_rng(123).standard_normal((d, d)))
    v = q[:, 0]
    vp = rho * q[:, 0] + math.sqrt(1 - rho * rho) * q[:, 1]
    return v, vp


def _mechanism(v: np.ndarray, r: int, n: int, seed: int) -> np.ndarray:
    """n outputs y = AᵀA v with fresh A (entries N(0, 1/r)) for each output."""
    d = v.shape[0]
    g = np.random.default_rng(seed)
    out = np.empty((n, d))
    batch = 5000
    for i in range(0, n, batch):
        m = min(batch, n - i)
        a = g.standard_normal((m, r, d)) / math.sqrt(r)
        av = a @ v  # (m, r)
        out[i:i + m] = np.einsum("mrd,mr->md", a, av)
    return out


CASES = [(12, 4, 0.6), (12, 12, 0.8), (7, 1, 0.9), (30, 6, 0.5)]


@pytest.mark.parametrize("d, r, rho", CASES)
def test_fact1_support_and_neighbour_mass(d, r, rho):
    v, vp = _pair(d, rho)
    n = 20000
    y = _mechanism(v, r, n, seed=d * 100 + r)
    assert np.all(y @ v >= 0)  # Vᵀ(MV) = ‖AV‖² >= 0: the output lives in a half-space
    y2 = _mechanism(vp, r, n, seed=d * 100 + r + 1)
    p_hat = float(np.mean(y2 @ v <= 0))  # neighbour's mass outside V's support
    p = w.support_delta(rho=rho, r=r)
    se = math.sqrt(p * (1 - p) / n)
    assert abs(p_hat - p) <= Z * se + 1.0 / n


@pytest.mark.parametrize("d, r, rho", CASES)
def test_fact2_output_density(d, r, rho):
    """p_V(y) ∝ u^{(r-d-1)/2} exp(-r‖y‖²/(2u)) ⇔ r u ~ χ²_r and w | u ~ N(0, (u/r) I_{d-1})."""
    v, vp = _pair(d, rho)
    n = 20000
    y = _mechanism(v, r, n, seed=7 + d + r)
    u = y @ v
    wperp = y - u[:, None] * v[None, :]
    assert stats.kstest(r * u, stats.chi2(r).cdf).pvalue > ALPHA
    # ‖w‖² r/u ~ χ²_{d-1}, independent of u
    s = r * np.sum(wperp**2, axis=1) / u
    assert stats.kstest(s, stats.chi2(d - 1).cdf).pvalue > ALPHA
    # one fixed direction of w, scaled: N(0, 1); on the lower and upper half of u separately (independence)
    e = vp - rho * v
    e /= np.linalg.norm(e)
    zz = (wperp @ e) / np.sqrt(u / r)
    med = np.median(u)
    assert stats.kstest(zz[u < med], stats.norm.cdf).pvalue > ALPHA
    assert stats.kstest(zz[u >= med], stats.norm.cdf).pvalue > ALPHA
    # negative control: the same statistic against χ²_{d} (wrong degrees of freedom) is rejected
    assert stats.kstest(s, stats.chi2(d).cdf).pvalue < ALPHA


@pytest.mark.parametrize("d, r, rho", CASES)
def test_fact2_shipped_log_density_is_the_simulated_product_form(d, r, rho):
    """output_log_density equals ln[r f_{χ²_r}(r u)] + Σ_i ln N(w_i; 0, u/r) in an orthonormal basis of V⊥
    (the product form whose factors the test above checks by simulation), at simulated outputs."""
    v, _ = _pair(d, rho)
    y = _mechanism(v, r, 500, seed=11)
    q, _ = np.linalg.qr(np.column_stack([v, np.random.default_rng(0).standard_normal((d, d - 1))]))
    basis = q[:, 1:]  # orthonormal basis of V⊥
    u = y @ v
    coords = y @ basis
    expected = (
        stats.chi2(r).logpdf(r * u) + math.log(r)
        + stats.norm.logpdf(coords, scale=np.sqrt(u / r)[:, None]).sum(axis=1)
    )
    assert np.allclose(w.output_log_density(y, v=v, r=r), expected, rtol=1e-10, atol=1e-9)
    assert w.output_log_density(-y[0], v=v, r=r) == -np.inf  # outside the half-space


@pytest.mark.parametrize("d, r, rho", CASES)
def test_fact3_privacy_loss_law(d, r, rho):
    """R = V'ᵀy/Vᵀy = rho + sqrt((1-rho²)/r) T with T ~ t_r, Q = r‖y‖²/u ~ χ²_{d+r-1}, T ⊥ Q, and the loss
    of the mechanism (shipped privacy_loss on simulated outputs) equals the sampling recipe in law."""
    v, vp = _pair(d, rho)
    n = 20000
    y = _mechanism(v, r, n, seed=3 * d + r)
    u = y @ v
    rr = (y @ vp) / u
    t = (rr - rho) / math.sqrt((1 - rho * rho) / r)
    q = r * np.sum(y * y, axis=1) / u
    assert stats.kstest(t, stats.t(r).cdf).pvalue > ALPHA
    assert stats.kstest(q, stats.chi2(d + r - 1).cdf).pvalue > ALPHA
    med = np.median(t)
    assert stats.kstest(q[t < med], stats.chi2(d + r - 1).cdf).pvalue > ALPHA
    assert stats.kstest(q[t >= med], stats.chi2(d + r - 1).cdf).pvalue > ALPHA
    # negative control: χ²_{d+r+1} is rejected (the dof matters at this n)
    assert stats.kstest(q, stats.chi2(d + r + 1).cdf).pvalue < ALPHA
    # the loss itself: mechanism vs recipe (two-sample KS on the finite part, proportion test on +inf)
    lm = w.privacy_loss(y, v=v, v_prime=vp, r=r)
    lr = w.privacy_loss_samples(d=d, r=r, rho=rho, n=n, rng=np.random.default_rng(99))
    assert not np.any(np.isnan(lm))
    p = w.support_delta(rho=rho, r=r)
    for arr in (lm, lr):
        assert abs(np.mean(np.isinf(arr)) - p) <= Z * math.sqrt(p * (1 - p) / n) + 1.0 / n
    assert stats.ks_2samp(lm[np.isfinite(lm)], lr[np.isfinite(lr)]).pvalue > ALPHA


def test_recipe_independence_of_t_and_w():
    """The fact behind the 1-D integral: with x ~ χ²_r, z ~ N(0,1), T = z sqrt(r/x) ⊥ W = x + z² ~ χ²_{r+1}."""
    g = np.random.default_rng(5)
    r, n = 3, 40000
    x = g.chisquare(r, n)
    z = g.standard_normal(n)
    t = z * np.sqrt(r / x)
    wsum = x + z * z
    for sel in (t < -1.0, np.abs(t) <= 1.0, t > 1.0):
        assert stats.kstest(wsum[sel], stats.chi2(r + 1).cdf).pvalue > ALPHA
    # negative control: x alone is not independent of T
    assert stats.ks_2samp(x[np.abs(t) <= 0.3], x[np.abs(t) > 2.0]).pvalue < ALPHA


# (d, r, rho, eps): small and large dimensions; the last ones exercise χ² tails beyond 1e-308.
DELTA_POINTS = [
    (12, 4, 0.6, 2.0),
    (2, 1, 0.3, 0.5),
    (60, 8, 0.7, 10.0),
    (10, 10, 0.95, 0.3),
    (1000, 64, 0.99, 3.0),
    (4096, 2048, 0.5, 2800.0),
]


@pytest.mark.parametrize("d, r, rho, eps", DELTA_POINTS)
def test_exact_delta_agrees_with_monte_carlo(d, r, rho, eps):
    n = 400_000 if d < 4096 else 1_000_000
    lv = w.privacy_loss_samples(d=d, r=r, rho=rho, n=n, rng=np.random.default_rng(d + r))
    with np.errstate(over="ignore"):
        contrib = np.where(np.isinf(lv), 1.0, np.clip(-np.expm1(np.minimum(eps - lv, 700.0)), 0.0, None))
    mc = float(contrib.mean())
    se = float(contrib.std(ddof=1)) / math.sqrt(n)
    exact = w.exact_delta(d=d, r=r, rho=rho, epsilon=eps)
    assert abs(mc - exact) <= Z * se, (mc, se, exact)
