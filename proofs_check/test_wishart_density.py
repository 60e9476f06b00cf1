"""Lemma (docs/theory.md §2 fact 2; [LRP] Thm 1 setting): output density of the Wishart vector mechanism.

For ``A ∈ R^{r×d}`` with i.i.d. ``N(0, 1/r)`` entries and unit ``V``, the output ``y = AᵀA V`` has density

    p_V(y) = C_{d,r} · u^{(r-d-1)/2} · exp(-r‖y‖²/(2u)) · 1{u > 0},     u = Vᵀy,

for every ``r >= 1``.

Derivation (rotated representation). Rotate so that ``V = e_1`` (the law of ``A`` is rotation invariant).
Write ``A = [a, B]`` with ``a = A e_1 ∈ R^r`` and ``B ∈ R^{r×(d-1)}`` independent, all entries ``N(0, 1/r)``.
Then ``y = Aᵀa = (‖a‖², Bᵀa)``: ``u = ‖a‖²`` with ``r u ~ χ²_r``, and given ``a`` the vector ``w = Bᵀa`` has
independent coordinates ``w_j = Σ_i B_ij a_i ~ N(0, ‖a‖²/r) = N(0, u/r)``. So
``p(u, w) = r f_{χ²_r}(r u) · (2π u/r)^{-(d-1)/2} exp(-r‖w‖²/(2u))``; since ``‖y‖² = u² + ‖w‖²`` and
``r u/2 + r‖w‖²/(2u) = r‖y‖²/(2u)``, this is the claimed form. The steps are checked symbolically below,
and a numeric bridge compares the sympy expression with ``lowrankdp.wishart.output_log_density``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from lowrankdp import wishart

u, om = sp.symbols("u omega", positive=True)  # om = ‖w‖²
r, d = sp.symbols("r d", positive=True)


def chi2_pdf(x, k):
    return x ** (k / 2 - 1) * sp.exp(-x / 2) / (2 ** (k / 2) * sp.gamma(k / 2))


def joint_density():
    """p(u, w) from the rotated representation (r u ~ χ²_r, w | u ~ N(0, (u/r) I_{d-1}))."""
    p_u = r * chi2_pdf(r * u, r)  # density of u = x/r, x ~ χ²_r
    p_w = (2 * sp.pi * u / r) ** (-(d - 1) / 2) * sp.exp(-r * om / (2 * u))
    return p_u * p_w


def claimed_kernel():
    ny2 = u**2 + om  # ‖y‖² = u² + ‖w‖²
    return u ** ((r - d - 1) / 2) * sp.exp(-r * ny2 / (2 * u))


def test_conditional_law_of_w_given_a():
    # w_j = Σ_i B_ij a_i with B_ij ~ N(0, 1/r) independent: E[w_j w_k | a] = δ_jk ‖a‖²/r (checked for r = 3)
    a = sp.symbols("a1:4", real=True)
    rr = 3
    b = sp.Matrix(3, 2, lambda i, j: sp.Symbol(f"B{i}{j}"))
    w = b.T * sp.Matrix(a)
    # second moments: E[B_ij B_kl] = δ_ik δ_jl / r
    def expect(expr):
        poly = sp.Poly(sp.expand(expr), *list(b))
        out = 0
        for monom, coeff in poly.terms():
            powers = dict(zip(list(b), monom))
            nz = [s for s, p in powers.items() if p]
            if len(nz) == 1 and powers[nz[0]] == 2:
                out += coeff * sp.Rational(1, rr)
            elif not nz:
                out += coeff
        return sp.simplify(out)

    u_a = sum(ai**2 for ai in a)
    assert sp.simplify(expect(w[0] ** 2) - u_a / rr) == 0
    assert sp.simplify(expect(w[1] ** 2) - u_a / rr) == 0
    assert expect(w[0] * w[1]) == 0


def test_density_has_the_claimed_form():
    ratio = sp.simplify(sp.powsimp(joint_density() / claimed_kernel(), force=True))
    # the ratio is the normalising constant: free of u and ‖w‖²
    assert not ratio.has(u) and not ratio.has(om)
    expected_c = r ** (r / 2) * (r / (2 * sp.pi)) ** ((d - 1) / 2) / (2 ** (r / 2) * sp.gamma(r / 2))
    assert sp.simplify(sp.powsimp(ratio / expected_c, force=True)) == 1


def test_density_integrates_to_one_d3():
    # d = 3 (two orthogonal coordinates w1, w2), symbolic r: ∫∫∫ p = 1
    w1, w2 = sp.symbols("w1 w2", real=True)
    p = joint_density().subs({d: 3, om: w1**2 + w2**2})
    inner = sp.integrate(p, (w1, -sp.oo, sp.oo), (w2, -sp.oo, sp.oo))
    total = sp.integrate(sp.simplify(inner), (u, 0, sp.oo), conds="none")
    assert sp.simplify(total) == 1


def test_bridge_with_shipped_output_log_density():
    logp = sp.log(joint_density())
    f = sp.lambdify((u, om, r, d), logp, "numpy")
    rng = np.random.default_rng(0)
    for dd, rr in [(2, 1), (5, 3), (12, 12), (40, 7)]:
        v = rng.standard_normal(dd)
        v /= np.linalg.norm(v)
        y = wishart.sample_wishart(d=dd, r=rr, rng=rng) @ v
        uu = float(y @ v)
        oo = float(y @ y - uu**2)
        shipped = wishart.output_log_density(y, v=v, r=rr)
        assert np.isclose(shipped, f(uu, oo, rr, dd), rtol=1e-10, atol=1e-10)
