"""Lemma (docs/theory.md §4.3): for β ~ Beta(a, b − a), E[exp(xβ)] = ₁F₁(a; b; x) (Kummer's function).

Proof: E[β^n] = B(a+n, b−a)/B(a, b−a) = (a)_n/(b)_n, and E[e^{xβ}] = Σ_n x^n E[β^n]/n! (dominated
convergence, β ∈ [0,1]) = Σ_n (a)_n/(b)_n x^n/n! = ₁F₁(a; b; x).

Checks: SYMBOLIC (sympy) — the moment identity E[β^n] = (a)_n/(b)_n for symbolic a, b and n = 0..5, and
the series ↔ hypergeometric identification; NUMERIC (mpmath, 50 digits) — the Beta integral of e^{xβ}
by quadrature against mpmath.hyp1f1 at non-round points, and our log-space implementation against both.
"""

import mpmath
import pytest
import sympy as sp

from lowrankdp.accounting import log_hyp1f1


def test_moments_symbolic():
    # E[β^n] = B(a+n, c)/B(a, c) (definition of the Beta function); the Gamma-function identity
    # B(a+n, c)/B(a, c) = (a)_n/(a+c)_n is checked symbolically, the Beta integral itself numerically below.
    a, c = sp.symbols("a c", positive=True)
    for n in range(6):
        moment = sp.gamma(a + n) * sp.gamma(c) / sp.gamma(a + n + c) / (sp.gamma(a) * sp.gamma(c) / sp.gamma(a + c))
        want = sp.rf(a, n) / sp.rf(a + c, n)
        assert sp.simplify(sp.gammasimp(moment / want)) == 1


def test_series_is_hypergeometric_symbolic():
    a, b, x = sp.symbols("a b x", positive=True)
    # the coefficient of x^n in hyper([a],[b],x) is exactly (a)_n/((b)_n n!)
    expansion = sp.series(sp.hyper([a], [b], x), x, 0, 6).removeO()
    for k in range(6):
        coeff = expansion.coeff(x, k)
        assert sp.simplify(coeff - sp.rf(a, k) / (sp.rf(b, k) * sp.factorial(k))) == 0


def test_beta_moment_integral_numeric():
    with mpmath.workdps(50):
        a, c = mpmath.mpf("2.7"), mpmath.mpf("11.3")
        for n in range(4):
            integral = mpmath.quad(lambda t: t ** (a - 1 + n) * (1 - t) ** (c - 1), [0, 1]) / mpmath.beta(a, c)
            assert abs(integral / (mpmath.rf(a, n) / mpmath.rf(a + c, n)) - 1) < mpmath.mpf(10) ** -40


@pytest.mark.parametrize("a,b,x", [(2.5, 17.0, 3.7), (0.5, 9.5, 41.3), (4.0, 384.0, 123.4)])
def test_beta_mgf_numeric_50_digits(a, b, x):
    with mpmath.workdps(50):
        a_, b_, x_ = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(x)
        integral = mpmath.quad(lambda t: mpmath.exp(x_ * t) * t ** (a_ - 1) * (1 - t) ** (b_ - a_ - 1),
                               mpmath.linspace(0, 1, 9)) / mpmath.beta(a_, b_ - a_)
        hyp = mpmath.hyp1f1(a_, b_, x_)
        assert abs(integral / hyp - 1) < mpmath.mpf(10) ** -30
        assert float(log_hyp1f1(a, b, x)[0]) == pytest.approx(float(mpmath.log(hyp)), rel=1e-12, abs=1e-12)
