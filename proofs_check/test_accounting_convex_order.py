"""Lemma (docs/theory.md §4.2): rank one is the worst case. For ΔV with ‖ΔV‖_F ≤ C and P_A independent of ΔV,
b = ‖P_A ΔV‖²/C² ≤_cx Beta(r/2, (d−r)/2), hence E f(b) ≤ E f(β) for every convex f (in particular the
RDP moment-generating functions, so the fresh-projection RDP bound of §4.3 holds for any rank).

Proof: SVD ΔV = Σ s_i u_i v_iᵀ, Σ s_i² ≤ C². ‖P_A ΔV‖_F² = Σ s_i² ‖P_A u_i‖², each β_i = ‖P_A u_i‖² ~ Beta;
with weights w_i = s_i²/C² (Σ w_i ≤ 1) and f convex, increasing with f(0) ≤ f(β): f(Σ w_i β_i) ≤
Σ w_i f(β_i) + (1 − Σw_i) f(0) (Jensen), and E f(β_i) = E f(β).

Checks: SYMBOLIC (sympy) — the Jensen step for f = exp(c·) at symbolic weights reduces to convexity (second
derivative c² e^{c x} ≥ 0) and the mean identity E b = Σ w_i r/d; NUMERIC (Monte Carlo with real projections,
tolerance 4 standard errors) — for rank-2 and rank-3 ΔV, E exp(c·b) stays below ₁F₁(r/2; d/2; c) (mpmath),
and the fixed-projection counterexample: the shared λ_max for a 2-dimensional span is NOT dominated
(its mean exceeds r/d), which is why §4.4 needs the rank-one assumption.
"""

import mpmath
import numpy as np
import sympy as sp

from lowrankdp.accounting import simulate_lambda_max


def test_jensen_step_symbolic():
    c, x = sp.symbols("c x", real=True)
    f = sp.exp(c * x)
    assert sp.simplify(sp.diff(f, x, 2) - c**2 * sp.exp(c * x)) == 0  # convex for every real c
    w1, b1, b2 = sp.symbols("w1 b1 b2", nonnegative=True)
    # E b = w1 E b1 + (1 − w1) E b2 with E b_i = r/d  ->  r/d
    r, d = sp.symbols("r d", positive=True)
    assert sp.simplify(w1 * r / d + (1 - w1) * r / d - r / d) == 0


def _mc_mgf(d, r, sv, c, n, rng):
    s2 = np.asarray(sv, float) ** 2
    s2 /= s2.sum()
    k = len(s2)
    vals = np.empty(n)
    for i in range(n):
        A = rng.standard_normal((r, d))
        q, _ = np.linalg.qr(A.T)
        proj = q.T[:, :k]  # U = first k coordinate vectors (rotation invariance)
        vals[i] = np.exp(c * np.sum(s2 * np.sum(proj**2, axis=0)))
    return vals.mean(), vals.std() / np.sqrt(n)


def test_higher_rank_below_rank_one_numeric():
    rng = np.random.default_rng(5)
    d, r, c = 24, 3, 6.0
    bound = float(mpmath.hyp1f1(r / 2, d / 2, c))
    for sv in ([1.0, 1.0], [3.0, 1.0, 0.5]):
        m, se = _mc_mgf(d, r, sv, c, 3000, rng)
        assert m <= bound + 4 * se
        assert m < bound  # strictly, for a genuinely higher-rank difference
    m1, se1 = _mc_mgf(d, r, [1.0], c, 3000, rng)
    assert abs(m1 - bound) < 4 * se1  # rank one attains the bound


def test_fixed_projection_span_is_not_dominated_numeric():
    lam = simulate_lambda_max(d=24, r=3, k=2, n=5000, seed=1)
    se = lam.std() / np.sqrt(len(lam))
    assert lam.mean() > 3 / 24 + 10 * se
