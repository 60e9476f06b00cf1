"""Lemma ([LRP] Thm 1 condition; docs/theory.md §2): for ``t >= 0``, ``r > 0`` and ``ρ ∈ (-1, 1)``,

    ρ > K := sqrt((1-ρ²)/r) · t     ⇔     ρ > t / sqrt(r + t²).

Proof. If ``ρ <= 0`` both fail (``K >= 0`` and ``t/sqrt(r+t²) >= 0``). If ``ρ > 0`` both sides of each
inequality are non-negative, so each is equivalent to the inequality of squares, and
``ρ² - (1-ρ²)t²/r = ((r+t²)/r) · (ρ² - t²/(r+t²))`` with ``(r+t²)/r > 0``: the two differences have the same
sign. Checked symbolically below (identity, and the solution sets for sample ``r, t``), and bridged to
``lowrankdp.wishart.theorem1_epsilon``, which must be finite exactly when the condition holds.
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
from scipy import optimize, stats

from lowrankdp import wishart

rho, t, r = sp.symbols("rho t r", real=True)


def k_cap(rho_, t_, r_):
    return sp.sqrt((1 - rho_**2) / r_) * t_


def threshold(t_, r_):
    return t_ / sp.sqrt(r_ + t_**2)


def test_factorisation_identity():
    lhs = rho**2 - (1 - rho**2) * t**2 / r
    rhs = (r + t**2) / r * (rho**2 - t**2 / (r + t**2))
    assert sp.simplify(lhs - rhs) == 0


def test_solution_sets_agree():
    interval = sp.Interval.open(-1, 1)
    for r_val, t_val in [(5, 2), (1, sp.Rational(1, 3)), (50, sp.Rational(27, 10)), (3, 0), (200, 9)]:
        set_k = sp.solveset(rho - k_cap(rho, t_val, r_val) > 0, rho, domain=interval)
        set_th = sp.solveset(rho - threshold(t_val, r_val) > 0, rho, domain=interval)
        assert sp.simplify(set_k.symmetric_difference(set_th)) == sp.EmptySet
        assert set_th == sp.Interval.open(threshold(t_val, r_val), 1)


def test_boundary_point_is_common():
    # at ρ = t/sqrt(r+t²), ρ = K exactly (t > 0, r > 0)
    tp, rp = sp.symbols("t r", positive=True)
    rho_star = threshold(tp, rp)
    assert sp.simplify(k_cap(rho_star, tp, rp) - rho_star) == 0


def test_bridge_theorem1_finite_iff_condition():
    f_th = sp.lambdify((t, r), threshold(t, r), "math")
    for d_, r_, delta in [(100, 5, 0.05), (400, 50, 0.01), (60, 1, 0.3), (30, 30, 1e-6)]:
        def gap(rh: float) -> float:
            # t depends on ρ through δ' = (δ - δ_supp(ρ))/3
            dp = (delta - wishart.support_delta(rho=rh, r=r_)) / 3
            if dp <= 0:
                return -1.0
            return rh - f_th(float(stats.t.isf(dp, r_)), r_)

        grid = np.linspace(0.01, 0.999, 200)
        vals = np.array([gap(g) for g in grid])
        idx = np.flatnonzero(np.diff(np.sign(vals)) > 0)
        assert idx.size == 1, (d_, r_, delta)  # one crossing: finite for ρ above it
        rho_star = optimize.brentq(gap, grid[idx[0]], grid[idx[0] + 1], xtol=1e-14)
        for rh, finite in [(rho_star - 1e-7, False), (rho_star + 1e-7, True), (rho_star / 2, False),
                           (0.5 * (rho_star + 1), True)]:
            eps = wishart.theorem1_epsilon(d=d_, r=r_, rho=rh, delta=delta)
            assert math.isfinite(eps) == finite, (d_, r_, delta, rh, eps)
