"""CLI: ``lowrankdp audit epsilon`` (numpy only)."""

import json

import pytest

from lowrankdp.cli import main


def test_perfect_attack_json(capsys):
    assert main(["audit", "epsilon", "--canaries", "1000", "--perfect", "--delta", "1e-5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["epsilon_snj"] == pytest.approx(5.78, abs=0.01) == out["max_epsilon_snj"]
    assert out["epsilon_fdp_epsilon_delta"] >= out["epsilon_snj"] - 1e-3


@pytest.mark.parametrize("eps,verdict", [(2.0, "violated"), (8.0, "not testable")])
def test_verdicts(capsys, eps, verdict):
    assert main(["audit", "epsilon", "--canaries", "1000", "--guesses", "200", "--correct", "200", "--delta",
                 "1e-5", "--accountant-epsilon", str(eps)]) == 0
    assert f"verdict                  {verdict}" in capsys.readouterr().out


@pytest.mark.parametrize("argv,msg", [
    (["--canaries", "10", "--guesses", "11", "--correct", "3", "--delta", "1e-5"], "guesses must be an integer in [0, 10]"),
    (["--canaries", "10", "--delta", "1e-5"], "--guesses and --correct are required"),
    (["--canaries", "10", "--perfect", "--guesses", "3", "--delta", "1e-5"], "--perfect sets"),
    (["--canaries", "10", "--perfect", "--delta", "2"], "delta must be in"),
])
def test_bad_input_one_line_exit_2(capsys, argv, msg):
    assert main(["audit", "epsilon", *argv]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1
