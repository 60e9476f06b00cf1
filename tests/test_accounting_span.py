"""Fixed projection with a k-dimensional span: a bound (never a Monte Carlo estimate passed off as ε), the
bound/estimate flag, and calibration of σ (≤ target, within 2 %)."""

import json
import math
import warnings

import pytest

from lowrankdp import accounting as A
from lowrankdp.cli import main

S = dict(sampling_rate=0.01, steps=1000, delta=1e-5, d=768, r=8)


def test_span_fixed_is_a_deterministic_bound_between_rank_one_and_plain():
    one = A.epsilon(noise_multiplier=1.0, projection="fixed", **S)
    k4 = [A.epsilon(noise_multiplier=1.0, projection="fixed", span_dim=4, **S) for _ in range(2)]
    plain = A.epsilon(noise_multiplier=1.0, **S)
    assert k4[0] == k4[1]  # no seed: not a Monte Carlo number
    assert one < k4[0] < plain
    res = A.epsilon_result(noise_multiplier=1.0, projection="fixed", span_dim=4, **S)
    assert res.kind == "bound" and res.details["fixed_law"] == "net"


def test_span_beyond_d_minus_r_gives_plain():
    kw = dict(noise_multiplier=1.0, sampling_rate=0.01, steps=1000, delta=1e-5, d=128, r=8)
    assert A.epsilon(projection="fixed", span_dim=121, **kw) == pytest.approx(A.epsilon(**kw), rel=1e-12)


def test_replace_one_fixed_uses_two_directions_bound():
    res = A.epsilon_result(noise_multiplier=0.8, projection="fixed", neighboring="replace_one", **S)
    assert res.kind == "bound" and res.details["fixed_law"] == "net"
    assert res.epsilon > A.epsilon(noise_multiplier=0.8, projection="fixed", **S)


def test_simulated_law_is_flagged_as_estimate_and_warns():
    ev = A.FixedProjectionEvent(A.dpsgd_event(noise_multiplier=1.0, sampling_rate=0.01, steps=1000), d=768, r=8,
                                span_dim=4)
    acc = A.RdpAccountant(lambda_law="simulated")
    with pytest.warns(A.EstimateWarning, match="ESTIMATE"):
        acc.compose(ev).get_epsilon(1e-5)
    assert acc.details["estimate"] is True
    with warnings.catch_warnings():
        warnings.simplefilter("error", A.EstimateWarning)
        A.RdpAccountant().compose(ev).get_epsilon(1e-5)  # the default (bound) never warns


def test_report_has_kind_and_source():
    rep = A.epsilon_report(noise_multiplier=0.8, **S)
    assert set(rep["kind"].values()) == {"bound"}
    assert set(rep["source"]) == set(A.PROJECTIONS)
    for p in A.PROJECTIONS:
        assert rep["epsilon"][p] <= rep["epsilon_rdp"][p]


@pytest.mark.parametrize("target", [1.0, 3.0, 8.0])
@pytest.mark.parametrize("proj,span", [("none", 1), ("fresh", 1), ("fixed", 1), ("fixed", 16)])
def test_calibrate_noise_meets_target_within_two_percent(target, proj, span):
    kw = dict(sampling_rate=0.0625, steps=64, delta=1e-5, d=256, r=8, projection=proj, span_dim=span)
    z = A.calibrate_noise(target_epsilon=target, **kw)
    e = A.epsilon(noise_multiplier=z, **kw)
    assert 0.98 * target <= e <= target
    assert A.epsilon(noise_multiplier=z * 0.99, **kw) > target * 0.98 or e >= 0.99 * target


def test_calibrate_unreachable_names_target_and_smallest_epsilon():
    with pytest.raises(ValueError, match=r"target_epsilon=0.1 cannot be met .* smallest epsilon reachable there is"):
        A.calibrate_noise(target_epsilon=0.1, sampling_rate=0.01, steps=1000, delta=1e-5, max_noise_multiplier=2.0)
    # without a cap every target > 0 is reachable (ε → 0 as z → ∞): tiny targets too
    z = A.calibrate_noise(target_epsilon=1e-3, sampling_rate=0.01, steps=1000, delta=1e-5)
    assert A.epsilon(noise_multiplier=z, sampling_rate=0.01, steps=1000, delta=1e-5) <= 1e-3


def test_cli_target_epsilon_json(capsys):
    args = ["account", "--target-epsilon", "2", "--sampling-rate", "0.01", "--steps", "500", "--delta", "1e-5",
            "--d", "256", "--r", "8", "--json"]
    assert main(args) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["target_epsilon"] == 2.0
    for p in A.PROJECTIONS:
        z, e = obj[p]["noise_multiplier"], obj[p]["epsilon"]
        assert 0.98 * 2 <= e <= 2
        assert e == A.epsilon(noise_multiplier=z, sampling_rate=0.01, steps=500, delta=1e-5, d=256, r=8,
                              projection=p)
        assert obj[p]["kind"] == "bound"


def test_cli_target_epsilon_text_and_errors(capsys):
    base = ["account", "--sampling-rate", "0.01", "--steps", "100", "--delta", "1e-5"]
    assert main(base + ["--target-epsilon", "1"]) == 0
    out = capsys.readouterr().out
    assert "noise mult." in out and "none" in out
    assert main(base + ["--target-epsilon", "0"]) == 2
    assert "target_epsilon must be in (0, inf), got 0.0" in capsys.readouterr().err
    assert main(base + ["--target-epsilon", "-1"]) == 2
    capsys.readouterr()
    assert main(base + ["--target-epsilon", "0.05", "--max-noise-multiplier", "1"]) == 2
    err = capsys.readouterr().err
    assert "target_epsilon=0.05 is unreachable" in err and "smallest epsilon reachable there is" in err
    assert err.count("\n") == 1  # one line
    with pytest.raises(SystemExit):
        main(base + ["--target-epsilon", "1", "--noise-multiplier", "1"])  # mutually exclusive


def test_cli_huge_noise_multiplier_no_overflow(capsys):
    assert main(["account", "--noise-multiplier", "1e155", "--sampling-rate", "0.1", "--steps", "10", "--delta",
                 "1e-5", "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["none"]["epsilon"] == 0.0 and obj["none"]["source"] == "gaussian_limit"
    assert math.isfinite(obj["none"]["epsilon"])


def test_cli_pld_small_noise_is_bounded(capsys):
    """Review: --accountant pld at z = 0.01, q = 0.5, 1000 steps ran > 300 s and took 3.2 GB."""
    assert main(["account", "--noise-multiplier", "0.01", "--sampling-rate", "0.5", "--steps", "1000", "--delta",
                 "1e-5", "--accountant", "pld", "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["none"]["epsilon"] > 1e5 and "coarsened" in obj["none"]["note"]
