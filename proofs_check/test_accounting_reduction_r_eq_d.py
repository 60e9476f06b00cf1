"""Lemma (docs/theory.md §4.3): at r = d the fresh-projection RDP is exactly the sampled Gaussian RDP.

Proof: ₁F₁(a; a; x) = Σ x^n/n! = eˣ, so each term C(α,k)(1−q)^{α−k}q^k ₁F₁(r/2; d/2; k(k−1)/(2z²)) equals the
[MTZ19] term C(α,k)(1−q)^{α−k}q^k e^{k(k−1)/(2z²)}.

Checks: SYMBOLIC (sympy) — ₁F₁(a; a; x) = eˣ by hyperexpand, and the two sums coincide for α = 2, 3, 4 with
symbolic q, z; NUMERIC — our implementation at r = d equals the SGM one bit for bit and matches
dp_accounting to 1e−12 at integer orders up to 256.
"""

import numpy as np
import pytest
import sympy as sp

from lowrankdp.accounting import fresh_projection_rdp, log_hyp1f1, sampled_gaussian_rdp


def test_kummer_diagonal_symbolic():
    a, x = sp.symbols("a x", positive=True)
    assert sp.simplify(sp.hyperexpand(sp.hyper([a], [a], x)) - sp.exp(x)) == 0


def test_sums_coincide_symbolic():
    q, z = sp.symbols("q z", positive=True)
    a = sp.Symbol("a", positive=True)
    for alpha in (2, 3, 4):
        fresh = sum(sp.binomial(alpha, k) * (1 - q) ** (alpha - k) * q**k
                    * sp.hyperexpand(sp.hyper([a], [a], k * (k - 1) / (2 * z**2))) for k in range(alpha + 1))
        sgm = sum(sp.binomial(alpha, k) * (1 - q) ** (alpha - k) * q**k * sp.exp(k * (k - 1) / (2 * z**2))
                  for k in range(alpha + 1))
        assert sp.simplify(fresh - sgm) == 0


def test_implementation_numeric():
    orders = [2, 3, 5, 17, 64, 256]
    a = fresh_projection_rdp(sampling_rate=0.031, noise_multiplier=1.13, d=77, r=77, orders=orders)
    b = sampled_gaussian_rdp(sampling_rate=0.031, noise_multiplier=1.13, orders=orders)
    np.testing.assert_array_equal(a, b)
    x = np.array([0.0, 0.37, 12.5, 3.1e5])
    np.testing.assert_array_equal(log_hyp1f1(38.5, 38.5, x), x)
    dpa = pytest.importorskip("dp_accounting.rdp.rdp_privacy_accountant")
    ref = dpa._compute_rdp_poisson_subsampled_gaussian(0.031, 1.13, orders)
    np.testing.assert_allclose(a, ref, rtol=1e-12)
