"""Fields shared by the JSON form of every attack result (matrix mechanism, LoRA-FA)."""

from __future__ import annotations

from typing import Any

REPORT_KEYS = ("auc", "auc_ci", "tpr_at_fpr", "tpr_ci", "tpr_reason", "epsilon_lower_bound", "epsilon_lower_bound_max",
               "n_in", "n_out", "confidence", "delta")


def attack_fields(attack: str, report: dict[str, Any], accountant: dict[str, Any]) -> dict[str, Any]:
    """The keys every attack's ``--json`` carries: the metrics of ``AttackReport.to_dict()`` and the
    accountant's ε for the same mechanism (``None`` where no accountant applies) with its name and note."""
    out: dict[str, Any] = {"attack": attack}
    out.update({k: report.get(k) for k in REPORT_KEYS})
    out["epsilon_accountant"] = accountant.get("epsilon")
    out["accountant"] = accountant.get("accountant")
    out["accountant_note"] = accountant.get("note")
    return out
