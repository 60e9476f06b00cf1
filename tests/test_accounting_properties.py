"""Hypothesis properties: ε monotone in z, q, T and r; calibration never overshoots."""

import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lowrankdp import accounting as A

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
z_s = st.floats(0.5, 3.0)
q_s = st.floats(0.001, 0.2)
t_s = st.integers(1, 3000)


def eps(**kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return A.epsilon(delta=1e-5, **kw)


@SETTINGS
@given(z=z_s, q=q_s, t=t_s, proj=st.sampled_from(["none", "fresh", "fixed", "high_probability"]))
def test_decreasing_in_noise(z, q, t, proj):
    kw = dict(sampling_rate=q, steps=t, d=256, r=8, projection=proj)
    assert eps(noise_multiplier=z * 1.1, **kw) <= eps(noise_multiplier=z, **kw) + 1e-9


@SETTINGS
@given(z=z_s, q=q_s, t=t_s, proj=st.sampled_from(["none", "fresh"]))
def test_increasing_in_sampling_rate_and_steps(z, q, t, proj):
    kw = dict(noise_multiplier=z, d=256, r=8, projection=proj)
    base = eps(sampling_rate=q, steps=t, **kw)
    assert eps(sampling_rate=min(1.0, q * 1.2), steps=t, **kw) >= base - 1e-9
    assert eps(sampling_rate=q, steps=t + 50, **kw) >= base - 1e-9


@SETTINGS
@given(z=z_s, q=q_s, t=t_s, r=st.integers(1, 120), proj=st.sampled_from(["fresh", "fixed"]))
def test_increasing_in_rank(z, q, t, r, proj):
    kw = dict(noise_multiplier=z, sampling_rate=q, steps=t, d=128, projection=proj)
    lo, hi = eps(r=r, **kw), eps(r=r + 8, **kw)
    assert lo <= hi * (1 + 1e-9) + 1e-12
    assert hi <= eps(projection="none", **{k: v for k, v in kw.items() if k not in ("d", "projection")}) + 1e-9


@settings(max_examples=6, deadline=None)
@given(target=st.floats(0.3, 8.0), q=st.floats(0.002, 0.1), t=st.integers(10, 2000),
       proj=st.sampled_from(["none", "fresh"]))
def test_calibration_never_overshoots(target, q, t, proj):
    kw = dict(sampling_rate=q, steps=t, delta=1e-5, d=256, r=8, projection=proj)
    z = A.calibrate_noise(target_epsilon=target, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert A.epsilon(noise_multiplier=z, **kw) <= target
