"""Lemma (docs/theory.md §1, §4.2): for A ∈ R^{r×d} with i.i.d. N(0, 1/r) entries and any unit u,
‖P_A u‖² ~ Beta(r/2, (d−r)/2).

Proof sketch. The row space of A is a uniformly random r-dimensional subspace (the law of A is invariant
under A ↦ A Q for orthogonal Q), so ‖P_A u‖² has the law of ‖P_E v‖² for a fixed coordinate subspace E and
v uniform on the sphere, i.e. X/(X+Y) with X ~ χ²_r, Y ~ χ²_{d−r} independent, which is Beta(r/2, (d−r)/2).

Checks: SYMBOLIC (sympy) — the density of X/(X+Y) computed by the change of variables t = X+Y is the
Beta density, for symbolic shapes; NUMERIC (simulation) — the actual projector P_A built from Gaussian A
at d=37, r=5 against Beta(2.5, 16) by a Kolmogorov–Smirnov test (threshold 1e−3, fixed seed).
"""

import numpy as np
import sympy as sp
from scipy import stats


def test_ratio_of_chi_squares_is_beta_symbolic():
    a, c, t, s = sp.symbols("a c t s", positive=True)
    # Gamma(shape k, scale 2) densities of X (k = a) and Y (k = c)
    fx = lambda x: x ** (a - 1) * sp.exp(-x / 2) / (sp.gamma(a) * 2**a)  # noqa: E731
    fy = lambda y: y ** (c - 1) * sp.exp(-y / 2) / (sp.gamma(c) * 2**c)  # noqa: E731
    # S = X/(X+Y), T = X+Y: Jacobian t
    dens = sp.integrate(sp.expand_power_base(fx(s * t) * fy((1 - s) * t) * t, force=True), (t, 0, sp.oo),
                        conds="none")
    beta_pdf = s ** (a - 1) * (1 - s) ** (c - 1) * sp.gamma(a + c) / (sp.gamma(a) * sp.gamma(c))
    ratio = sp.simplify(sp.powsimp(sp.expand_power_base(dens / beta_pdf, force=True), force=True))
    assert ratio == 1


def test_projection_of_gaussian_matrix_is_beta_numeric():
    rng = np.random.default_rng(11)
    d, r, n = 37, 5, 3000
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    vals = np.empty(n)
    for i in range(n):
        A = rng.standard_normal((r, d)) / np.sqrt(r)
        q, _ = np.linalg.qr(A.T)  # orthonormal basis of the row space
        vals[i] = np.sum((q.T @ u) ** 2)
    assert stats.kstest(vals, stats.beta(r / 2, (d - r) / 2).cdf).pvalue > 1e-3
    # mean r/d within 4 standard errors
    se = stats.beta(r / 2, (d - r) / 2).std() / np.sqrt(n)
    assert abs(vals.mean() - r / d) < 4 * se
