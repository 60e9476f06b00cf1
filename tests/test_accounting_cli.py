"""`lowrankdp account` CLI."""

import json
import math

import pytest

from lowrankdp import accounting as A
from lowrankdp.cli import main

ARGS = ["account", "--noise-multiplier", "0.8", "--sampling-rate", "0.01", "--steps", "1000", "--delta", "1e-5"]


def test_table_side_by_side(capsys):
    assert main(ARGS + ["--d", "768", "--r", "8"]) == 0
    out = capsys.readouterr().out
    for p in A.PROJECTIONS:
        assert p in out
    assert "independent of A" in out  # fixed-projection assumption printed with the number


def test_json_keyed_by_projection(capsys):
    assert main(ARGS + ["--d", "768", "--r", "8", "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert set(A.PROJECTIONS) <= set(obj)
    want = A.epsilon(noise_multiplier=0.8, sampling_rate=0.01, steps=1000, delta=1e-5, d=768, r=8, projection="fresh")
    assert obj["fresh"]["epsilon"] == pytest.approx(want, rel=1e-12)
    assert obj["fixed"]["assumption"] == A.FIXED_PROJECTION_ASSUMPTION


def test_no_projection_and_bad_input(capsys):
    assert main(ARGS + ["--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert list(k for k in obj if k != "settings") == ["none"]
    assert main(["account", "--noise-multiplier", "0.8", "--sampling-rate", "1.5", "--steps", "10",
                 "--delta", "1e-5"]) == 2
    assert "sampling_rate must be in [0, 1], got 1.5" in capsys.readouterr().err
    assert main(ARGS + ["--d", "768"]) == 2


def test_zero_noise_prints_inf(capsys):
    assert main(["account", "--noise-multiplier", "0", "--sampling-rate", "0.1", "--steps", "10", "--delta", "1e-5",
                 "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["none"]["epsilon"] == "inf" and math.isinf(float(obj["none"]["epsilon"]))
