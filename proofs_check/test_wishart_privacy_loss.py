"""Lemma (docs/theory.md §2 fact 3; [LRP] Thm 1): the privacy loss of the Wishart vector mechanism and its law.

For neighbours ``V, V'`` with ``VᵀV' = ρ`` and ``y ~ p_V``,

    L = ln p_V(y)/p_V'(y) = ((d+1-r)/2) ln R + (Q/2)(1/R - 1),
    R = ρ + sqrt(1-ρ²) z/sqrt(x) = ρ + sqrt((1-ρ²)/r) T,    Q = x + z² + s,

with ``x ~ χ²_r``, ``z ~ N(0,1)``, ``s ~ χ²_{d-2}`` independent, ``T = z sqrt(r/x) ~ t_r``; moreover
``T`` is independent of ``W = x + z² ~ χ²_{r+1}``, hence of ``Q = W + s ~ χ²_{d+r-1}``. Given ``R``, with
``b = (1/R - 1)/2`` (so ``1 + 2b = 1/R``), ``E[e^{-bQ} 1{Q ∈ B}] = R^{k/2} P(Q/R ∈ B)`` for ``Q ~ χ²_k``; these two
facts make ``δ(ε)`` a one-dimensional integral (used by ``lowrankdp.wishart.exact_delta``).

Derivation: (i) from the density of ``test_wishart_density.py``, ``L`` in terms of ``u = Vᵀy``, ``u' = V'ᵀy``,
``‖y‖²``; (ii) rotated representation ``V = e_1``, ``V' = ρe_1 + sqrt(1-ρ²)e_2``, ``u = x/r``,
``w_2 = z sqrt(u/r)``, ``Σ_{j>=3} w_j² = (u/r) s``; (iii) change of variables ``(x, z) → (T, W)``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from lowrankdp import wishart

r, d = sp.symbols("r d", positive=True)
u, up, ny2 = sp.symbols("u u_prime ny2", positive=True)
x, s, W = sp.symbols("x s W", positive=True)
z, T = sp.symbols("z T", real=True)
rho = sp.symbols("rho", positive=True)
R, Q, b, q = sp.symbols("R Q b q", positive=True)


def log_kernel(uu):
    # ln p(y) up to the constant: ((r-d-1)/2) ln u - r‖y‖²/(2u)   (test_wishart_density.py)
    return (r - d - 1) / 2 * sp.log(uu) - r * ny2 / (2 * uu)


def loss_formula(rr, qq):
    return (d + 1 - r) / 2 * sp.log(rr) + qq / 2 * (1 / rr - 1)


def test_loss_in_terms_of_r_and_q():
    loss = log_kernel(u) - log_kernel(up)  # the normalising constants cancel
    expr = loss_formula(up / u, r * ny2 / u)
    assert sp.simplify(sp.expand_log(loss - expr, force=True)) == 0


def test_rotated_representation_gives_r_and_q():
    uu = x / r
    w2 = z * sp.sqrt(uu / r)
    rest = uu / r * s  # Σ_{j>=3} w_j²
    u_prime = rho * uu + sp.sqrt(1 - rho**2) * w2
    norm2 = uu**2 + w2**2 + rest
    assert sp.simplify(u_prime / uu - (rho + sp.sqrt(1 - rho**2) * z / sp.sqrt(x))) == 0
    assert sp.simplify(r * norm2 / uu - (x + z**2 + s)) == 0
    # R in terms of T = z sqrt(r/x)
    t_expr = z * sp.sqrt(r / x)
    assert sp.simplify(rho + sp.sqrt((1 - rho**2) / r) * t_expr - (rho + sp.sqrt(1 - rho**2) * z / sp.sqrt(x))) == 0


def chi2_pdf(v, k):
    return v ** (k / 2 - 1) * sp.exp(-v / 2) / (2 ** (k / 2) * sp.gamma(k / 2))


def t_pdf(t, k):
    return sp.gamma((k + 1) / 2) / (sp.sqrt(k * sp.pi) * sp.gamma(k / 2)) * (1 + t**2 / k) ** (-(k + 1) / 2)


def test_t_independent_of_w():
    # inverse map: x = W r/(r+T²), z = T sqrt(W/(r+T²))   (T = z sqrt(r/x), W = x + z²)
    x_of = W * r / (r + T**2)
    z_of = T * sp.sqrt(W / (r + T**2))
    assert sp.simplify(z_of * sp.sqrt(r / x_of) - T) == 0
    assert sp.simplify(x_of + z_of**2 - W) == 0
    jac = sp.Matrix([[sp.diff(x_of, T), sp.diff(x_of, W)], [sp.diff(z_of, T), sp.diff(z_of, W)]]).det()
    joint_xz = chi2_pdf(x, r) * sp.exp(-(z**2) / 2) / sp.sqrt(2 * sp.pi)
    joint_tw = joint_xz.subs({x: x_of, z: z_of}) * sp.Abs(sp.simplify(jac))
    ratio = joint_tw / (t_pdf(T, r) * chi2_pdf(W, r + 1))
    ratio = sp.simplify(sp.gammasimp(sp.powsimp(sp.simplify(ratio), force=True)))
    assert sp.simplify(ratio - 1) == 0


def test_tilting_identity_for_the_inner_expectation():
    # e^{-b q} f_k(q) = (1+2b)^{-k/2} · (1+2b) f_k((1+2b) q): the tilted χ²_k is a scaled χ²_k
    k = sp.symbols("k", positive=True)
    lhs = sp.exp(-b * q) * chi2_pdf(q, k)
    rhs = (1 + 2 * b) ** (-k / 2) * (1 + 2 * b) * chi2_pdf((1 + 2 * b) * q, k)
    assert sp.simplify(sp.powsimp(sp.expand_power_base(lhs / rhs, force=True), force=True)) == 1
    # with b = (1/R - 1)/2: 1 + 2b = 1/R, and for k = d + r - 1, k/2 - (d+1-r)/2 = r - 1
    assert sp.simplify(1 + 2 * ((1 / R - 1) / 2) - 1 / R) == 0
    assert sp.simplify((d + r - 1) / 2 - (d + 1 - r) / 2 - (r - 1)) == 0


def test_bridge_sympy_loss_vs_shipped_functions():
    f_loss = sp.lambdify((R, Q, d, r), loss_formula(R, Q), "numpy")
    for dd, rr, rh in [(12, 4, 0.6), (400, 200, 0.5), (3, 1, 0.9)]:
        # (1) privacy_loss_samples uses the recipe with draws x, z, s in this order from the generator
        n = 2000
        g = np.random.default_rng(17)
        xs = g.chisquare(rr, size=n)
        zs = g.standard_normal(n)
        ss = g.chisquare(dd - 2, size=n) if dd > 2 else np.zeros(n)
        rvals = rh + np.sqrt(1 - rh**2) * zs / np.sqrt(xs)
        qvals = xs + zs**2 + ss
        expected = np.where(rvals > 0, f_loss(np.where(rvals > 0, rvals, 1.0), qvals, dd, rr), np.inf)
        got = wishart.privacy_loss_samples(d=dd, r=rr, rho=rh, n=n, rng=np.random.default_rng(17))
        assert np.array_equal(np.isinf(got), np.isinf(expected))
        fin = np.isfinite(got)
        assert np.allclose(got[fin], expected[fin], rtol=1e-10, atol=1e-9)
        # (2) privacy_loss on explicit outputs built from the rotated representation
        e1, e2 = np.eye(dd)[0], np.eye(dd)[1]
        vp = rh * e1 + np.sqrt(1 - rh**2) * e2
        y = np.zeros((n, dd))
        y[:, 0] = xs / rr
        y[:, 1] = zs * np.sqrt(xs) / rr
        if dd > 2:
            y[:, 2] = np.sqrt(ss * xs) / rr  # all of the remaining norm in one coordinate
        lp = wishart.privacy_loss(y, v=e1, v_prime=vp, r=rr)
        assert np.array_equal(np.isinf(lp), np.isinf(expected))
        assert np.allclose(lp[fin], expected[fin], rtol=1e-9, atol=1e-8)
