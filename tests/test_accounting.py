"""Notebook API of lowrankdp.accounting: reference values, contracts shared by all mechanisms, bad input."""

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

from lowrankdp import accounting as A
from lowrankdp.accounting import (
    ComposedEvent,
    FixedProjectionEvent,
    FreshProjectedGaussianEvent,
    GaussianEvent,
    HighProbabilityProjectionEvent,
    PoissonSampledEvent,
    RdpAccountant,
    SelfComposedEvent,
    UnsupportedEventError,
)
from lowrankdp.accounting.rdp import rdp_to_epsilon

SETTING = dict(noise_multiplier=0.8, sampling_rate=0.01, steps=1000, delta=1e-5)
INT_ORDERS = list(range(2, 64))


def test_opacus_reference_value():
    # Opacus test-suite reference (docs/theory.md §9.2): z=1.5, q=0.04, 2,250 steps, delta=1e-5 -> RDP eps 7.3291,
    # with Opacus' default orders.
    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
    acc = RdpAccountant(orders=orders).compose(A.dpsgd_event(noise_multiplier=1.5, sampling_rate=0.04, steps=2250))
    eps, order = acc.get_epsilon_and_order(1e-5)
    assert eps == pytest.approx(7.3291, abs=5e-5)
    # default grid contains Opacus' grid, so it can only be as good or better
    assert A.epsilon(noise_multiplier=1.5, sampling_rate=0.04, steps=2250, delta=1e-5) <= eps + 1e-12


def test_theory_example_integer_orders():
    # docs/theory.md §4.3: best integer alpha in 2..63, d=768, r=8 -> ~0.26 vs 3.73 plain (the untruncated ₁F₁
    # curve, get_rdp()); the accountant's ε also tries the truncated moment of §4.8, which can only lower it.
    res, full = {}, {}
    for proj in ("none", "fresh"):
        acc = RdpAccountant(orders=INT_ORDERS).compose(
            A.dpsgd_event(noise_multiplier=0.8, sampling_rate=0.01, steps=1000, d=768, r=8, projection=proj))
        res[proj] = rdp_to_epsilon(INT_ORDERS, acc.get_rdp(), 1e-5, warn=False)[0]
        full[proj] = acc.get_epsilon(1e-5)
    assert res["none"] == pytest.approx(3.73, abs=0.005)
    assert res["fresh"] == pytest.approx(0.26, abs=0.005)
    assert full["none"] == res["none"]
    assert full["fresh"] < 0.7 * res["fresh"]


def test_projection_ordering_in_example():
    e = {p: A.epsilon(**SETTING, d=768, r=8, projection=p) for p in A.PROJECTIONS}
    # every projected bound credits amplification; the high-probability baseline is looser than fresh (§4.5)
    assert e["fresh"] < e["none"] and e["fixed"] < e["none"] and e["high_probability"] < e["none"]
    assert e["high_probability"] > e["fresh"]


@pytest.mark.parametrize("projection", A.PROJECTIONS)
def test_no_release_is_zero_and_no_noise_is_infinite(projection):
    kw = dict(d=768, r=8, projection=projection)
    assert A.epsilon(noise_multiplier=0.8, sampling_rate=0.01, steps=0, delta=1e-5, **kw) == 0.0
    assert A.epsilon(noise_multiplier=0.8, sampling_rate=0.0, steps=10, delta=1e-5, **kw) == 0.0
    assert A.epsilon(noise_multiplier=0.0, sampling_rate=0.01, steps=10, delta=1e-5, **kw) == math.inf


@pytest.mark.parametrize(
    "event",
    [
        GaussianEvent(1.0),
        PoissonSampledEvent(0.1, GaussianEvent(1.0)),
        PoissonSampledEvent(0.1, FreshProjectedGaussianEvent(1.0, 64, 4)),
        FixedProjectionEvent(SelfComposedEvent(PoissonSampledEvent(0.1, GaussianEvent(1.0)), 5), 64, 4),
        HighProbabilityProjectionEvent(SelfComposedEvent(PoissonSampledEvent(0.1, GaussianEvent(1.0)), 5), 64, 4),
    ],
    ids=lambda e: type(e).__name__,
)
def test_contract_every_mechanism(event):
    acc_ = lambda: RdpAccountant(orders=INT_ORDERS)  # noqa: E731
    # no events -> 0
    assert acc_().get_epsilon(1e-5) == 0.0
    # count 0 -> 0
    assert acc_().compose(event, count=0).get_epsilon(1e-5) == 0.0
    acc = acc_().compose(event)
    e1 = acc.get_epsilon(1e-5)
    assert 0 < e1 < math.inf
    # composing twice costs more; RDP is additive
    acc2 = acc_().compose(event, count=2)
    assert acc2.get_epsilon(1e-5) > e1
    if not isinstance(event, HighProbabilityProjectionEvent):
        np.testing.assert_allclose(acc2.get_rdp(), 2 * acc_().compose(event).get_rdp(), rtol=1e-12)
    # events are immutable
    with pytest.raises(Exception):
        event.r = 3  # type: ignore[misc]


def test_unsupported_events_are_named():
    class Weird(A.DpEvent):
        pass

    acc = RdpAccountant()
    with pytest.raises(UnsupportedEventError, match="Weird"):
        acc.compose(ComposedEvent((GaussianEvent(1.0), Weird())))
    assert acc._events == []  # validated before changing state
    with pytest.raises(UnsupportedEventError, match="FixedProjectionEvent"):
        acc.compose(PoissonSampledEvent(0.1, FixedProjectionEvent(GaussianEvent(1.0), 64, 4)))
    with pytest.raises(UnsupportedEventError, match="FreshProjectedGaussianEvent"):
        acc.compose(FixedProjectionEvent(FreshProjectedGaussianEvent(1.0, 64, 4), 64, 4))
    from lowrankdp.accounting import PldAccountant

    for proj, name in (("fixed", "FixedProjectionEvent"), ("high_probability", "HighProbabilityProjectionEvent")):
        ev = A.dpsgd_event(noise_multiplier=0.8, sampling_rate=0.01, steps=10, d=768, r=8, projection=proj)
        with pytest.raises(ValueError, match=f"PldAccountant does not support {name}"):
            PldAccountant().compose(ev)
        if proj == "fixed":  # epsilon(accountant="pld") uses the b-mixture PLD instead, both relations
            for nb in ("add_remove", "replace_one"):
                res = A.epsilon_result(**SETTING, d=768, r=8, projection=proj, accountant="pld", neighboring=nb)
                assert "pld" in res.candidates and res.epsilon <= res.candidates["rdp"]
            continue
        # the high-probability baseline: epsilon(accountant="pld") falls back to the RDP value and says why
        res = A.epsilon_result(**SETTING, d=768, r=8, projection=proj, accountant="pld")
        assert res.source == "rdp" and "pld" not in res.candidates
        assert any(f"PldAccountant does not support {name}" in n for n in res.notes)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(noise_multiplier=-1.0), "noise_multiplier"),
        (dict(sampling_rate=1.5), r"sampling_rate must be in \[0, 1\], got 1.5"),
        (dict(steps=-3), "steps"),
        (dict(steps=2.5), "steps must be an integer"),
        (dict(delta=0.0), "delta"),
        (dict(delta=1.0), "delta"),
        (dict(projection="sideways"), "projection must be one of"),
        (dict(accountant="prv"), "accountant must be one of"),
        (dict(neighboring="swap"), "neighboring must be one of"),
        (dict(projection="fresh"), "needs both d and r"),
        (dict(projection="fresh", d=768, r=1000), r"r must be an integer in \[1, min\(d\)\]"),
        (dict(projection="fresh", d=[768, 0], r=8), "d must be an integer"),
        (dict(projection="fixed", d=768, r=0), "r must be an integer"),
        (dict(noise_multiplier=float("nan")), "noise_multiplier"),
    ],
)
def test_bad_input(kwargs, match):
    args = dict(SETTING)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        A.epsilon(**args)


def test_bad_calibration_input():
    with pytest.raises(ValueError, match="target_epsilon"):
        A.calibrate_noise(target_epsilon=0.0, sampling_rate=0.01, steps=100, delta=1e-5)
    with pytest.raises(ValueError, match="target_epsilon"):
        A.calibrate_noise(target_epsilon=-1.0, sampling_rate=0.01, steps=100, delta=1e-5)


def test_calibration_meets_target_and_is_tight():
    for proj in ("none", "fresh"):
        kw = dict(sampling_rate=0.01, steps=1000, delta=1e-5, d=768, r=8, projection=proj)
        z = A.calibrate_noise(target_epsilon=1.0, **kw)
        assert A.epsilon(noise_multiplier=z, **kw) <= 1.0
        # tight: 0.1 % less noise already overshoots
        assert A.epsilon(noise_multiplier=z * 0.999, **kw) > 1.0
    assert A.calibrate_noise(target_epsilon=1.0, sampling_rate=0.01, steps=0, delta=1e-5) == 0.0


def test_replace_one_doubles_sensitivity_unsampled():
    # q = 1: replace-one is the Gaussian with twice the sensitivity, i.e. half the noise multiplier.
    a = A.epsilon(noise_multiplier=2.0, sampling_rate=1.0, steps=10, delta=1e-5, neighboring="replace_one")
    b = A.epsilon(noise_multiplier=1.0, sampling_rate=1.0, steps=10, delta=1e-5)
    assert a == pytest.approx(b, rel=1e-12)
    # and it always costs more than add/remove
    for proj in ("none", "fresh", "high_probability"):
        kw = dict(SETTING, d=768, r=8, projection=proj)
        assert A.epsilon(**kw, neighboring="replace_one") > A.epsilon(**kw)
    # fixed projection: two records span two directions (lambda_max of a 2-span, simulated)
    ev = A.dpsgd_event(noise_multiplier=0.8, sampling_rate=0.01, steps=1000, d=768, r=8, projection="fixed")
    e_rep = RdpAccountant(orders=INT_ORDERS, neighboring="replace_one", n_lambda_samples=2000).compose(ev)
    e_add = RdpAccountant(orders=INT_ORDERS).compose(ev)
    assert e_rep.get_epsilon(1e-5) > e_add.get_epsilon(1e-5)


def test_report_contains_assumptions_and_orders():
    rep = A.epsilon_report(**SETTING, d=768, r=8)
    assert set(rep["epsilon"]) == set(A.PROJECTIONS)
    assert rep["assumptions"]["fixed"] == A.FIXED_PROJECTION_ASSUMPTION
    assert "independent of A" in A.FIXED_PROJECTION_ASSUMPTION and "rank one" in A.FIXED_PROJECTION_ASSUMPTION
    assert rep["best_order"]["none"] > 1
    assert rep["epsilon"]["fresh"] == pytest.approx(A.epsilon(**SETTING, d=768, r=8, projection="fresh"))
    assert 0 < rep["details"]["high_probability"]["delta_M"] < 1e-5
    assert rep["epsilon"]["none"] == pytest.approx(A.epsilon(**SETTING))


def test_grid_edge_warning():
    # one order only -> it is both edges; a tiny grid whose best order is its largest must warn
    acc = RdpAccountant(orders=[2, 3]).compose(A.dpsgd_event(noise_multiplier=3.0, sampling_rate=0.01, steps=100))
    with pytest.warns(A.OrderGridWarning, match="largest"):
        acc.get_epsilon(1e-5)
    acc = RdpAccountant(orders=[40, 50]).compose(A.dpsgd_event(noise_multiplier=0.5, sampling_rate=0.5, steps=100))
    with pytest.warns(A.OrderGridWarning, match="smallest"):
        acc.get_epsilon(1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", A.OrderGridWarning)
        A.epsilon(**SETTING)


def test_layer_list_uses_worst_case():
    # fresh, ₁F₁ curve: the smallest d is the worst case (convex order), so the list's curve is the d = 768 one
    z, q, t = (SETTING[k] for k in ("noise_multiplier", "sampling_rate", "steps"))
    curves = [RdpAccountant().compose(A.dpsgd_event(noise_multiplier=z, sampling_rate=q, steps=t, d=d, r=8,
                                                    projection="fresh")).get_rdp() for d in ([2048, 768, 1024], 768)]
    np.testing.assert_allclose(curves[0], curves[1], rtol=1e-12)
    # fresh, truncated moment (§4.8): b ≤ the max of the layers' independent Betas (stochastic domination), so a
    # list costs more than its smallest layer alone, and never more than the ₁F₁ bound of that layer
    e_list = A.epsilon(**SETTING, d=[2048, 768, 1024], r=8, projection="fresh")
    e_one = A.epsilon(**SETTING, d=768, r=8, projection="fresh")
    assert e_one < e_list < rdp_to_epsilon(RdpAccountant().orders, curves[1], SETTING["delta"], warn=False)[0]
    # fixed: the shared variable is the max over layers, so a list costs more than its smallest layer
    f_list = A.epsilon(**SETTING, d=[768, 768], r=8, projection="fixed")
    assert f_list > A.epsilon(**SETTING, d=768, r=8, projection="fixed")


def test_unprojected_parameters_remove_amplification():
    plain = RdpAccountant().compose(A.dpsgd_event(**{k: SETTING[k] for k in ("noise_multiplier", "sampling_rate",
                                                                               "steps")})).get_rdp()
    ev = SelfComposedEvent(PoissonSampledEvent(0.01, FreshProjectedGaussianEvent(0.8, 768, 8, unprojected=True)), 1000)
    np.testing.assert_allclose(RdpAccountant().compose(ev).get_rdp(), plain, rtol=1e-12)
    fx = FixedProjectionEvent(SelfComposedEvent(PoissonSampledEvent(0.01, GaussianEvent(0.8)), 1000), 768, 8,
                              unprojected=True)
    np.testing.assert_allclose(RdpAccountant().compose(fx).get_rdp(), plain, rtol=1e-12)


def test_import_does_not_load_dp_accounting_or_torch():
    code = ("import sys, lowrankdp.accounting as a; a.epsilon(noise_multiplier=1.0, sampling_rate=0.01, steps=10,"
            " delta=1e-5); print(any(m.split('.')[0] in ('dp_accounting', 'torch') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
