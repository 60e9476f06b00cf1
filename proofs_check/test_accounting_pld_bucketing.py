"""Lemma (docs/theory.md §4.7, fixed projection): bucketing the shared b with each bucket's upper end is an upper
bound, also under a stochastically larger law, and refining the buckets never loosens it.

Statement. Let δ_b(ε) be the hockey-stick curve (either direction) of T adaptive Poisson-sampled Gaussian steps
with noise σ and shift √b (every step the same b). Then
    (i)   b ↦ δ_b(ε) is nondecreasing on [0, 1];
    (ii)  for edges 0 = e_0 < e_1 < … < e_K ≤ 1, any S with S(x) ≥ P(b > x) (S nonincreasing, S(e_0) = 1) and any
          g_1 ≤ … ≤ g_K in [0, 1] with g_i ≥ δ_{e_i}(ε):
          E_b[δ_b(ε)] ≤ B := g_1 + Σ_{i=1}^{K−1} (g_{i+1} − g_i) S(e_i) + (1 − g_K) S(e_K);
    (iii) inserting edges (a nested refinement, same g at shared edges, g nondecreasing) does not increase B.

Proof. (i) For b ≤ b′ and c = √(b/b′), the kernel y ↦ c·y + N(0, σ²(1 − c²)) maps N(0, σ²) to N(0, σ²) and
N(√b′, σ²) to N(√b, σ²); applied coordinate-wise at every step it maps the b′-run's pair of laws (mixtures and
products alike, the sampling coin untouched) to the b-run's, and post-processing cannot increase a hockey-stick
divergence. The kernel is linear in the mean (N(m, σ²) ↦ N(c·m, σ²) for every m), so the same holds for the
replace-one pair of records at ±√b (mixtures (1−q)N(0) + qN(±√b)), which the replace-one fixed PLD uses. (ii) δ_b ≤ g_i on (e_{i−1}, e_i] by (i), and δ_b ≤ 1 above e_K, so
E δ_b ≤ Σ_i P(b ∈ (e_{i−1}, e_i]) g_i + P(b > e_K); Abel summation rewrites this as B with P(b > ·) in place of S,
and B is nondecreasing in every S(e_i) (coefficients g_{i+1} − g_i ≥ 0 and 1 − g_K ≥ 0). (iii) Splitting
(e_{i−1}, e_i] at m changes B by (g(m) − g_i)·P(b ∈ (e_{i−1}, m]) ≤ 0 in the Σ form, and by the same amount in the
Abel form with S.

Checks: SYMBOLIC (sympy) — the kernel's mean and variance; the Abel identity at K = 5; the refinement difference.
NUMERIC — (a) δ_b(ε) of one sampled-Gaussian step, both directions, by quadrature on a grid of b: nondecreasing;
(b) random nondecreasing curves g and the Beta law: E g(b) by quadrature ≤ B, and B with the net bound's S (a
stochastically larger law) ≥ B with the Beta's S.
"""

import numpy as np
import sympy as sp
from scipy import integrate, stats

from lowrankdp.accounting import net_sf


def test_kernel_maps_gaussians_symbolic():
    b, bp, s = sp.symbols("b bprime sigma", positive=True)
    c = sp.sqrt(b / bp)
    # y ~ N(m, σ²) ↦ c y + N(0, σ²(1 − c²)): mean c m, variance c² σ² + σ² (1 − c²)
    for m, target in ((0, 0), (sp.sqrt(bp), sp.sqrt(b)), (-sp.sqrt(bp), -sp.sqrt(b))):
        assert sp.simplify(c * m - target) == 0
    assert sp.simplify(c**2 * s**2 + s**2 * (1 - c**2) - s**2) == 0


def test_abel_identity_and_refinement_symbolic():
    K = 5
    g = sp.symbols(f"g1:{K + 1}")
    S = sp.symbols(f"S1:{K + 1}")  # S(e_1) … S(e_K); S(e_0) = 1
    s_all = (1,) + S
    direct = sum((s_all[i] - s_all[i + 1]) * g[i] for i in range(K)) + S[-1]
    abel = g[0] + sum((g[i + 1] - g[i]) * S[i] for i in range(K - 1)) + (1 - g[-1]) * S[-1]
    assert sp.expand(direct - abel) == 0
    # refinement: split bucket j at a point with survival Sm (S(e_{j−1}) ≥ Sm ≥ S(e_j)) and value gm ≤ g_j
    j, Sm, gm = 2, sp.Symbol("Sm"), sp.Symbol("gm")
    refined = direct - (s_all[j - 1] - s_all[j]) * g[j - 1] + (s_all[j - 1] - Sm) * gm + (Sm - s_all[j]) * g[j - 1]
    assert sp.expand(refined - direct - (gm - g[j - 1]) * (s_all[j - 1] - Sm)) == 0


def _delta_one_step(b, eps, q=0.4, z=1.0):
    s = np.sqrt(b)
    g = np.exp(eps)
    mix = lambda y: (1 - q) * stats.norm.pdf(y, 0, z) + q * stats.norm.pdf(y, s, z)  # noqa: E731
    null = lambda y: stats.norm.pdf(y, 0, z)  # noqa: E731
    rem = integrate.quad(lambda y: max(mix(y) - g * null(y), 0.0), -12, 14, limit=200, epsabs=1e-13)[0]
    add = integrate.quad(lambda y: max(null(y) - g * mix(y), 0.0), -12, 14, limit=200, epsabs=1e-13)[0]
    return rem, add


def test_delta_nondecreasing_in_b_numeric():
    bs = np.linspace(0.0, 1.0, 21)
    for eps in (0.0, 0.1, 0.4):
        vals = np.array([_delta_one_step(b, eps) for b in bs])
        assert np.all(np.diff(vals, axis=0) >= -1e-10)
        assert vals[-1, 0] > vals[1, 0] + 1e-3  # and genuinely increasing


def _delta_replace_one_step(b, eps, q=0.4, z=1.0):
    s = np.sqrt(b)
    g = np.exp(eps)
    up = lambda y: (1 - q) * stats.norm.pdf(y, 0, z) + q * stats.norm.pdf(y, s, z)  # noqa: E731
    down = lambda y: (1 - q) * stats.norm.pdf(y, 0, z) + q * stats.norm.pdf(y, -s, z)  # noqa: E731
    return integrate.quad(lambda y: max(up(y) - g * down(y), 0.0), -14, 14, limit=200, epsabs=1e-13)[0]


def test_replace_one_delta_nondecreasing_in_b_numeric():
    bs = np.linspace(0.0, 1.0, 21)
    for eps in (0.0, 0.1, 0.4):
        vals = np.array([_delta_replace_one_step(b, eps) for b in bs])
        assert np.all(np.diff(vals) >= -1e-10)
        assert vals[-1] > vals[1] + 1e-3


def test_bucket_bound_above_expectation_numeric():
    rng = np.random.default_rng(2)
    d, r, k = 64, 4, 2
    law = stats.beta(r / 2, (d - r) / 2)
    for _ in range(20):
        K = int(rng.integers(2, 12))
        top = float(rng.uniform(0.2, 1.0))
        edges = np.concatenate([[0.0], np.sort(rng.uniform(0, top, K - 1)), [top]])
        knots = np.sort(rng.uniform(0, 1, 5))
        levels = np.sort(rng.uniform(0, 1, 7))  # a random nondecreasing curve with values in [0, 1]
        g_fun = lambda x: np.interp(x, [0.0, *knots, 1.0], levels)  # noqa: E731
        g = g_fun(edges[1:])
        S = law.sf(edges[1:])
        B = g[0] + np.sum(np.diff(g) * S[:-1]) + (1 - g[-1]) * S[-1]
        exact = integrate.quad(lambda x: g_fun(x) * law.pdf(x), 0, 1, limit=400, points=list(edges[1:]))[0]
        assert exact <= B + 1e-9
        S_net = np.maximum(net_sf(edges[1:], d=d, r=r, k=k), S)  # an upper survival function
        B_net = g[0] + np.sum(np.diff(g) * S_net[:-1]) + (1 - g[-1]) * S_net[-1]
        assert B_net >= B - 1e-15
