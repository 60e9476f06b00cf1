"""Lemma (docs/theory.md §4.3): with Poisson sampling and integer α, the fresh-projection Rényi moment expands
term by term: E_A E_{y~N(0,σ²)}[((1−q) + q·L_b(y))^α] = Σ_k C(α,k)(1−q)^{α−k} q^k ₁F₁(r/2; d/2; k(k−1)/(2σ²)),
where L_b(y) = exp((2y√b − b)/(2σ²)) is the likelihood ratio of N(√b, σ²) to N(0, σ²), σ = z.

Proof: binomial theorem (finite sum, integer α), E_{N(0,σ²)}[L_b^k] = exp(k(k−1)b/(2σ²)) (Gaussian MGF),
then E_b[exp(k(k−1)b/(2σ²))] = ₁F₁(r/2; d/2; k(k−1)/(2σ²)) (Beta MGF lemma).

Checks: SYMBOLIC (sympy) — the Gaussian moment E[L_b^k] for symbolic b, σ and k = 0..4; NUMERIC (mpmath,
50 digits) — the double integral over (b, y) at α = 3 and 4, non-round q, z, d, r, against the expansion
and against our implementation.
"""

import mpmath
import pytest
import sympy as sp

from lowrankdp.accounting import fresh_projection_rdp


def test_gaussian_likelihood_ratio_moments_symbolic():
    y = sp.Symbol("y", real=True)
    b, s = sp.symbols("b sigma", positive=True)
    dens = sp.exp(-y**2 / (2 * s**2)) / sp.sqrt(2 * sp.pi * s**2)
    for k in range(5):
        L_k = sp.exp(k * (2 * y * sp.sqrt(b) - b) / (2 * s**2))
        val = sp.integrate(dens * L_k, (y, -sp.oo, sp.oo), conds="none")
        assert sp.simplify(val - sp.exp(k * (k - 1) * b / (2 * s**2))) == 0


@pytest.mark.parametrize("alpha,q,z,d,r", [(3, 0.137, 0.83, 11, 3), (4, 0.071, 1.27, 9, 2)])
def test_double_integral_numeric_50_digits(alpha, q, z, d, r):
    with mpmath.workdps(50):
        q_, s = mpmath.mpf(q), mpmath.mpf(z)
        a, c = mpmath.mpf(r) / 2, mpmath.mpf(d - r) / 2
        B = mpmath.beta(a, c)

        def inner(b):
            sb = mpmath.sqrt(b)
            f = lambda y: mpmath.npdf(y, 0, s) * ((1 - q_) + q_ * mpmath.exp((2 * y * sb - b) / (2 * s * s))) ** alpha  # noqa
            return mpmath.quad(f, [-mpmath.inf, -5, 0, 5, mpmath.inf])

        # E_b of the closed-form inner moment (the inner integral is checked at two b values below)
        expansion_inner = lambda b: mpmath.fsum(  # noqa: E731
            mpmath.binomial(alpha, k) * (1 - q_) ** (alpha - k) * q_**k * mpmath.exp(k * (k - 1) * b / (2 * s * s))
            for k in range(alpha + 1))
        for b in (mpmath.mpf("0.173"), mpmath.mpf("0.81")):
            assert abs(inner(b) / expansion_inner(b) - 1) < mpmath.mpf(10) ** -25
        outer = mpmath.quad(lambda b: expansion_inner(b) * b ** (a - 1) * (1 - b) ** (c - 1) / B, [0, 0.5, 1])
        expansion = mpmath.fsum(mpmath.binomial(alpha, k) * (1 - q_) ** (alpha - k) * q_**k
                                * mpmath.hyp1f1(a, a + c, k * (k - 1) / (2 * s * s)) for k in range(alpha + 1))
        assert abs(outer / expansion - 1) < mpmath.mpf(10) ** -20
        ours = fresh_projection_rdp(sampling_rate=q, noise_multiplier=z, d=d, r=r, orders=[alpha])[0]
        assert ours == pytest.approx(float(mpmath.log(expansion) / (alpha - 1)), rel=1e-12)
