"""CLI: ``lowrankdp attack matrix`` (numpy only)."""

from __future__ import annotations

import json

import pytest

from lowrankdp.cli import main

KEYS = {"auc", "tpr_at_fpr", "epsilon_lower_bound", "epsilon_accountant"}


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_matrix_noise_free_json(capsys):
    out = _json(capsys, ["attack", "matrix", "--d", "16", "--r", "4", "--columns", "4", "--sigma", "0",
                         "--trials", "300", "--bootstrap", "0", "--json"])
    assert KEYS <= out.keys()
    assert out["auc"] == 1.0 and out["epsilon_accountant"] is None
    assert set(out["tpr_at_fpr"]) == {"0.001", "0.01"}
    assert out["config"]["distinguisher"] == "symmetry"


def test_matrix_noisy_json_and_plot(capsys, tmp_path):
    png = tmp_path / "roc.png"
    out = _json(capsys, ["attack", "matrix", "--d", "16", "--r", "4", "--columns", "2", "--sigma", "1",
                         "--trials", "400", "--bootstrap", "0", "--json", "--plot", str(png)])
    assert out["config"]["mechanism"] == "m2" and out["config"]["distinguisher"] == "likelihood_ratio"
    assert isinstance(out["epsilon_accountant"], float) and out["epsilon_accountant"] > 0
    assert out["epsilon_lower_bound"] <= out["epsilon_accountant"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_matrix_text_output(capsys):
    assert main(["attack", "matrix", "--d", "8", "--r", "2", "--columns", "3", "--trials", "50",
                 "--bootstrap", "0"]) == 0
    text = capsys.readouterr().out
    assert "AUC" in text and "TPR @ FPR 0.001" in text and "eps accountant   n/a" in text


@pytest.mark.parametrize("argv,msg", [
    (["--r", "20"], "r must be"),
    (["--columns", "1", "--distinguisher", "symmetry"], "columns must be >= 2"),
    (["--sigma", "1", "--knows-projection", "no", "--distinguisher", "likelihood_ratio"], "knows_projection=True"),
    (["--sigma", "1e-300"], "sigma must be in [1e-06, 1e+06]"),
    (["--sigma", "1e300"], "sigma must be in [1e-06, 1e+06]"),
    (["--plot", "/proc/roc.png"], "--plot: cannot create a file in '/proc'"),
    (["--plot", "/no/such/dir/roc.png"], "--plot directory '/no/such/dir' does not exist"),
    (["--plot", "roc.txt"], "--plot must end in an image suffix"),
])
def test_matrix_bad_input_is_one_line_exit_2(capsys, argv, msg):
    assert main(["attack", "matrix", "--d", "16", "--trials", "10", *argv]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_plot_path_checked_before_the_computation(capsys, monkeypatch):
    import lowrankdp.attacks.matrix as mx

    def boom(*a, **k):
        raise AssertionError("the attack ran before the --plot path was checked")

    monkeypatch.setattr(mx, "run_matrix_attack", boom)
    assert main(["attack", "matrix", "--trials", "10", "--plot", "/proc/roc.png"]) == 2


def test_text_output_says_why_tpr_is_not_reported(capsys):
    assert main(["attack", "matrix", "--d", "8", "--r", "2", "--columns", "3", "--trials", "50"]) == 0
    text = capsys.readouterr().out
    assert "needs at least 10/FPR = 10000 non-members, got 50" in text
    assert "a perfect attack at these sizes certifies" in text
