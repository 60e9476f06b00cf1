"""Lemma (docs/theory.md §4.4, k > 1 directions): a provable stochastic upper bound on λ = λ_max(Uᵀ P_A U).

Statement. U ∈ R^{d×k} fixed orthonormal, P_A a uniformly random rank-r projector. For every η ∈ (0, ½) and t:
P(λ > t) ≤ (1 + 2/η)^k · P(Beta(r/2, (d−r)/2) > (1 − 2η) t), and the same with (k, r) swapped.

Proof. (1) M = Uᵀ P_A U is symmetric PSD, so for an η-net N of the unit sphere S^{k−1},
λ_max(M) ≤ max_{x∈N} xᵀMx / (1 − 2η) (Vershynin, arXiv:1011.3027v7, Lemma 5.4), and a net with
|N| ≤ (1 + 2/η)^k exists (same paper, Lemma 5.2). (2) For a fixed unit x, xᵀMx = ‖P_A Ux‖², and Ux is a fixed unit
vector of R^d, so xᵀMx ~ Beta(r/2, (d−r)/2) (proofs_check/test_accounting_beta_law.py). (3) Union bound over N.
Swap: the nonzero eigenvalues of Uᵀ P_A U equal those of Qᵀ P_U Q for an orthonormal basis Q of range(A) (both are
the squared cosines of the principal angles); for a fixed coefficient vector c, Qc is uniform on S^{d−1}
(range(A) is uniform and Q can be drawn uniformly within it), so ‖P_U Qc‖² ~ Beta(k/2, (d−k)/2), and (1)–(3) apply
with (k, r) swapped. Taking the minimum over a fixed grid of η and both sides keeps a valid bound on the survival
function at every t (each candidate is one); it is non-increasing in t, so it is the survival function of a law
that dominates λ stochastically, which is all the fixed-projection moment needs (E f(λ) ≤ E f(λ′), f increasing).

Checks: NUMERIC — (a) step (1) on random PSD matrices with an explicit η-net of the circle (k = 2); (b) step (2)
by simulation (KS test); (c) the whole bound against the simulated law of λ_max (simulate_lambda_max, an exact
Bartlett construction) at several t: the empirical tail never exceeds the bound by more than 4 standard errors.
"""

import math

import numpy as np
from scipy import stats

from lowrankdp.accounting import net_sf, simulate_lambda_max


def test_step1_net_quadratic_form_bound_k2():
    rng = np.random.default_rng(0)
    for eta in (0.05, 0.1, 0.3):
        # explicit η-net of the unit circle: angles spaced so that chord length ≤ η
        step = 2 * math.asin(eta / 2)
        ang = np.arange(0, 2 * math.pi, step)
        net = np.stack([np.cos(ang), np.sin(ang)], axis=1)
        assert len(net) <= (1 + 2 / eta) ** 2  # within the covering-number bound
        for _ in range(200):
            g = rng.standard_normal((2, 5))
            m = g @ g.T
            lam = np.linalg.eigvalsh(m)[-1]
            best = np.max(np.einsum("ij,jk,ik->i", net, m, net))
            assert lam <= best / (1 - 2 * eta) * (1 + 1e-12)


def test_step2_fixed_direction_is_beta():
    rng = np.random.default_rng(1)
    d, r, n = 30, 4, 4000
    x = np.zeros(d)
    x[0] = 1.0
    vals = np.empty(n)
    for i in range(n):
        q, _ = np.linalg.qr(rng.standard_normal((d, r)))  # uniform r-dim subspace
        vals[i] = np.sum((q.T @ x) ** 2)
    assert stats.kstest(vals, stats.beta(r / 2, (d - r) / 2).cdf).pvalue > 1e-3


def test_bound_dominates_simulated_lambda_max():
    for d, r, k in ((64, 4, 2), (200, 8, 3), (768, 8, 2), (40, 3, 6)):
        lam = simulate_lambda_max(d=d, r=r, k=k, n=40000, seed=3)
        ts = np.quantile(lam, [0.5, 0.9, 0.99, 0.999])
        bound = net_sf(ts, d=d, r=r, k=k)
        emp = np.array([(lam > t).mean() for t in ts])
        se = np.sqrt(np.maximum(emp * (1 - emp), 1.0 / len(lam)) / len(lam))
        assert np.all(emp <= bound + 4 * se), (d, r, k, emp, bound)
        assert np.all(np.diff(net_sf(np.linspace(0, 1, 50), d=d, r=r, k=k)) <= 0)  # a survival function


def test_no_amplification_when_span_plus_rank_exceeds_d():
    np.testing.assert_array_equal(net_sf([0.0, 0.5, 0.999], d=10, r=6, k=5), [1.0, 1.0, 1.0])
