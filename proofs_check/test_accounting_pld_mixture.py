"""Lemma (docs/theory.md §4.7, fixed projection): a mixture over the shared projection costs at most the average
hockey-stick divergence.

Statement. Let W be a random index with law μ (here: the projection A, or the retained fraction b it induces) and,
for each w, a pair of output laws (P_w, Q_w) with densities p_w, q_w. For every γ = e^ε ≥ 0, with
H_γ(P‖Q) = ∫ (p − γ q)_+ (the δ of (ε, δ)-DP in one direction):
    (i)  hidden W:  H_γ(∫P_w dμ ‖ ∫Q_w dμ) ≤ ∫ H_γ(P_w‖Q_w) dμ(w);
    (ii) public W:  H_γ(μ⊗P_W ‖ μ⊗Q_W) = ∫ H_γ(P_w‖Q_w) dμ(w)   (the output is (W, Y)).

Proof. (i) x ↦ x_+ is convex and positively homogeneous, so pointwise
(∫ (p_w − γ q_w) dμ)_+ ≤ ∫ (p_w − γ q_w)_+ dμ; integrate over y (Tonelli). (ii) The joint densities are
μ(w) p_w(y) and μ(w) q_w(y), and (μ(w) x)_+ = μ(w) x_+. Applied to each direction ("remove": P = with the record,
"add": the swap) separately, the bound of the fixed projection is max over directions of E_b[δ_b(ε)], with δ_b the
curve of the plain run at sensitivity √b (given A, every step sees the same b).

Checks: SYMBOLIC (sympy) — subadditivity and positive homogeneity of x_+ on every sign pattern; NUMERIC —
(a) random discrete pairs: (i) and (ii) exactly (to float accuracy); (b) a Beta mixture of one-step Poisson-sampled
Gaussians (shift √b) by quadrature: the hidden-b curve lies below E_b[δ_b], strictly for some ε.
"""

import numpy as np
import sympy as sp
from scipy import integrate, stats


def _pos(x):
    return sp.Max(x, 0)


def test_positive_part_subadditive_and_homogeneous_symbolic():
    u, c = sp.symbols("u c", positive=True)
    for sa in (1, -1):
        for sb in (1, -1):
            for big_first in (True, False):  # |a| = u + c ≥ |b| = u, or the reverse
                a = sa * (u + c if big_first else u)
                b = sb * (u if big_first else u + c)
                gap = sp.simplify(_pos(a) + _pos(b) - _pos(a + b))
                assert gap.is_nonnegative, (sa, sb, big_first, gap)
    m, x = sp.symbols("m x", positive=True)
    for sx in (1, -1):  # x > 0 and x < 0 (x = 0 is trivial)
        assert sp.simplify(_pos(m * sx * x) - m * _pos(sx * x)) == 0


def _hs(p, q, g):
    return np.maximum(p - g * q, 0.0).sum()


def test_mixture_bounds_on_random_discrete_pairs():
    rng = np.random.default_rng(0)
    for _ in range(200):
        k, n = rng.integers(2, 6), rng.integers(2, 8)
        mu = rng.dirichlet(np.ones(k))
        P = rng.dirichlet(np.ones(n), size=k)
        Q = rng.dirichlet(np.ones(n), size=k)
        g = float(np.exp(rng.uniform(-1, 2)))
        avg = float(np.sum(mu * np.array([_hs(P[i], Q[i], g) for i in range(k)])))
        hidden = _hs(mu @ P, mu @ Q, g)
        public = _hs((mu[:, None] * P).ravel(), (mu[:, None] * Q).ravel(), g)
        assert hidden <= avg + 1e-12
        assert abs(public - avg) <= 1e-12


def test_beta_mixture_of_sampled_gaussians_quadrature():
    d, r, q, z = 16, 2, 0.5, 1.0
    law = stats.beta(r / 2, (d - r) / 2)
    nodes, weights = np.polynomial.legendre.leggauss(30)
    bs = 0.5 * (nodes + 1)  # b ∈ (0, 1): Gauss–Legendre on [0, 1] against the Beta density
    wb = 0.5 * weights * law.pdf(bs)
    wb = wb / wb.sum()

    def dens(y, s, shifted):
        base = stats.norm.pdf(y, 0, z)
        return (1 - q) * base + q * stats.norm.pdf(y, s, z) if shifted else base

    strict = False
    for eps in (0.0, 0.3, 1.0):
        g = np.exp(eps)
        per_b = [integrate.quad(lambda y: max(dens(y, np.sqrt(b), True) - g * dens(y, np.sqrt(b), False), 0.0),
                                -12, 14, limit=200)[0] for b in bs]
        avg = float(np.dot(wb, per_b))

        def mix(y, shifted):
            return sum(w * dens(y, np.sqrt(b), shifted) for w, b in zip(wb, bs))

        hidden = integrate.quad(lambda y: max(mix(y, True) - g * mix(y, False), 0.0), -12, 14, limit=200)[0]
        assert hidden <= avg + 1e-8
        strict = strict or hidden < avg - 1e-6
    assert strict
