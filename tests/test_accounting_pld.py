"""PLD path (dp_accounting, pessimistic): plain agreement, fresh-projection mixture against quadrature."""

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from lowrankdp import accounting as A
from lowrankdp.accounting import (
    FreshProjectedGaussianEvent,
    GaussianEvent,
    PoissonSampledEvent,
    SelfComposedEvent,
)

dpa = pytest.importorskip("dp_accounting")
from dp_accounting.pld import pld_privacy_accountant  # noqa: E402

VDI = 1e-3


def test_plain_matches_dp_accounting_pld():
    ev = SelfComposedEvent(PoissonSampledEvent(0.02, GaussianEvent(1.1)), 200)
    ours = A.PldAccountant(value_discretization_interval=VDI).compose(ev).get_epsilon(1e-5)
    acc = pld_privacy_accountant.PLDAccountant(value_discretization_interval=VDI)
    acc.compose(dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(0.02, dpa.GaussianDpEvent(1.1)), 200))
    assert ours == pytest.approx(acc.get_epsilon(1e-5), rel=1e-9)
    # and PLD is tighter than RDP on the same mechanism
    assert ours < A.RdpAccountant().compose(ev).get_epsilon(1e-5)


def _exact_fresh_unsampled_eps(z, d, r, delta):
    """One unsampled fresh-projection step: δ(ε) = E_b[Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2)], μ = √b/z."""
    beta = stats.beta(r / 2, (d - r) / 2)

    def delta_of(eps):
        def f(b):
            mu = math.sqrt(b) / z
            return (stats.norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2)) * beta.pdf(b)
        return integrate.quad(f, 0, 1, points=[beta.mean()], limit=200, epsabs=1e-13)[0]

    return optimize.brentq(lambda e: delta_of(e) - delta, 1e-6, 50, xtol=1e-10)


def test_fresh_mixture_is_upper_bound_close_to_exact():
    z, d, r, delta = 0.6, 40, 4, 1e-3
    exact = _exact_fresh_unsampled_eps(z, d, r, delta)
    pld = A.PldAccountant(value_discretization_interval=VDI).compose(FreshProjectedGaussianEvent(z, d, r)).get_epsilon(delta)
    assert pld >= exact - 1e-9  # pessimistic: never below the exact value
    assert pld <= exact + 0.1 * exact + 5 * VDI  # and close (bins of b rounded up)


def test_fresh_pld_reduces_to_plain_and_is_below_plain():
    base = dict(noise_multiplier=0.9, sampling_rate=0.05, steps=50)
    ev_plain = A.dpsgd_event(**base)
    ev_rd = SelfComposedEvent(PoissonSampledEvent(0.05, FreshProjectedGaussianEvent(0.9, 64, 64)), 50)
    ev_fresh = A.dpsgd_event(**base, d=64, r=4, projection="fresh")
    e_plain = A.PldAccountant(value_discretization_interval=VDI).compose(ev_plain).get_epsilon(1e-5)
    e_rd = A.PldAccountant(value_discretization_interval=VDI).compose(ev_rd).get_epsilon(1e-5)
    e_fresh = A.PldAccountant(value_discretization_interval=VDI).compose(ev_fresh).get_epsilon(1e-5)
    assert e_rd == pytest.approx(e_plain, rel=1e-12)
    assert e_fresh < e_plain
    # PLD is tighter than the fresh RDP bound here as well
    assert e_fresh < A.RdpAccountant().compose(ev_fresh).get_epsilon(1e-5)


def test_pld_contract():
    assert A.PldAccountant().get_epsilon(1e-5) == 0.0
    with pytest.raises(A.UnsupportedEventError, match="replace_one"):
        A.PldAccountant(neighboring="replace_one").compose(FreshProjectedGaussianEvent(1.0, 64, 4))
    # replace-one plain is supported (dp_accounting's REPLACE adjacency) and costs more
    ev = PoissonSampledEvent(0.1, GaussianEvent(1.0))
    a = A.PldAccountant(value_discretization_interval=VDI).compose(ev, 20).get_epsilon(1e-5)
    b = A.PldAccountant("replace_one", value_discretization_interval=VDI).compose(ev, 20).get_epsilon(1e-5)
    assert b > a
