"""CLI: ``lowrankdp attack lora-fa`` (torch; tiny)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from lowrankdp.cli import main  # noqa: E402


def test_lora_fa_json(capsys):
    import torch

    torch.set_num_threads(1)
    assert main(["attack", "lora-fa", "--rank", "4", "--sigma", "0", "--trials", "6", "--bootstrap", "0",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"auc", "tpr_at_fpr", "epsilon_lower_bound", "epsilon_accountant", "test_accuracy"} <= out.keys()
    assert out["auc"] == 1.0 and out["epsilon_accountant"] is None


def test_lora_fa_bad_rank(capsys):
    assert main(["attack", "lora-fa", "--rank", "100", "--trials", "4"]) == 2
    assert "rank must be" in capsys.readouterr().err
