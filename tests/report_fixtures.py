"""Stored-result fixtures for the report tests: RunRecords built in code, written with ``write_record`` into a
sweep directory with a real ``RunIndex`` (the layout the sweep runner leaves)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from lowrankdp.methods import METHODS
from lowrankdp.results import EpochMetrics, Guarantee, Privacy, RunRecord, RunStatus, write_record
from lowrankdp.sweep.index import RunIndex

DELTA = 1e-5


def privacy(method: str, *, eps: float | None = None, sigma: float | None = 1.0, target: float | None = None,
            guarantee: str = "bound", assumption: str | None = None, steps: int = 10) -> Privacy:
    if not METHODS[method].private:
        return Privacy.none()
    return Privacy(accountant="rdp", epsilon=eps, delta=DELTA, noise_multiplier=sigma, sampling_rate=0.1,
                   steps=steps, guarantee=Guarantee(guarantee), assumption=assumption, target_epsilon=target,
                   projection="fresh" if METHODS[method].projection else "none")


def epoch(i: int, priv: Privacy, *, sens: float, util: float, base_sens: float | None = None,
          exposure: float | None = None, mia: dict | None = None, costs: dict | None = None,
          gap: float | None = None, retention: float | None = None, extra: dict | None = None) -> EpochMetrics:
    m: dict[str, Any] = {"sensitive_loss_token": sens, "utility_loss": util}
    if base_sens is not None:
        m["sensitive_loss_token_gain_vs_base"] = base_sens - sens
    if exposure is not None:
        m["exposure"] = {"value": exposure, "rank": 1.0, "method": "exact", "space_size": 10 ** 6}
    if mia is not None:
        m["mia"] = mia
    if gap is not None:
        m["memorization_gap_token"] = gap
    m.update(extra or {})
    return EpochMetrics(epoch=i, step=i * 10, privacy=priv, measurements=m, costs=costs or {},
                        retention_loss=retention)


def config(method: str, seed: int, **kw: Any) -> dict[str, Any]:
    spec = METHODS[method]
    c = {"method": method, "model": "tiny", "data": "/data/cs", "epochs": 2, "lr": spec.default_lr,
         "rank": 8 if spec.uses_rank else None, "alpha": 16 if spec.uses_alpha else None,
         "noise_multiplier": 1.0 if spec.private else None, "target_epsilon": None, "seed": seed,
         "delta": DELTA, "projection": "fresh" if spec.projection else "none", "extra": {"dataset": "cs"}}
    c.update(kw)
    return c


def record(method: str, seed: int, traj: Sequence[tuple[float, float]], *, status: str = "ok",
           eps: float | None = None, target: float | None = None, guarantee: str = "bound",
           assumption: str | None = None, exposure: Sequence[float] | None = None, mia: dict | None = None,
           costs: dict | None = None, audit: Any = None, cfg: dict | None = None, synthetic: bool = False,
           prov: dict | None = None) -> RunRecord:
    """A run whose epoch i has (sensitive loss, utility loss) = traj[i]; epoch 0 is the base model."""
    base = traj[0][0]
    epochs = []
    for i, (s, u) in enumerate(traj):
        priv = privacy(method, eps=0.0 if i == 0 else eps, target=target, guarantee=guarantee,
                       assumption=assumption)
        last = i == len(traj) - 1
        extra = {"audit": audit} if (audit is not None and last) else None
        epochs.append(epoch(i, priv, sens=s, util=u, base_sens=base,
                            exposure=exposure[i] if exposure is not None else None,
                            mia=mia if last else None, costs=costs if last else None, extra=extra))
    c = cfg if cfg is not None else config(method, seed, target_epsilon=target)
    return RunRecord(method=method, status=RunStatus(status), config=c, provenance=prov or {"date": "2026-12-02"},
                     epochs=tuple(epochs), wall_time_s=1.0, synthetic=synthetic)


def write_sweep(root: Path, runs: Sequence[tuple[str, RunRecord]], *, index_status: dict[str, str] | None = None,
                sweep: dict | None = None) -> Path:
    """Write each (name, record) to ``root/runs/<name>/result.json`` and register it in ``root/index.sqlite``."""
    root.mkdir(parents=True, exist_ok=True)
    idx = RunIndex(root / "index.sqlite")
    specs = [(f"key-{name}", name, rec.config, f"runs/{name}") for name, rec in runs]
    idx.add_runs(specs)
    for name, rec in runs:
        write_record(root / "runs" / name, rec)
        status = (index_status or {}).get(name, rec.status.value)
        if status in ("ok", "failed", "running"):
            attempt = idx.start(f"key-{name}")
            if status != "running":
                idx.finish(f"key-{name}", attempt, status=status, reason=rec.reason, wall_time_s=rec.wall_time_s)
    (root / "sweep.json").write_text(json.dumps(sweep or {"name": root.name, "provenance": {"date": "d"}}))
    return root


def jitter(seed: int, scale: float = 0.02) -> float:
    """A small deterministic seed-dependent offset (replicates that differ a little)."""
    return scale * ((seed * 7919) % 5 - 2) / 2


def mia_report(*, lb: float, n_in: int, n_out: int, delta: float = DELTA, auc: float = 0.5) -> dict:
    return {"auc": auc, "auc_ci": [auc - 0.05, auc + 0.05], "tpr_at_fpr": {"0.01": 0.01},
            "epsilon_lower_bound": lb, "n_in": n_in, "n_out": n_out, "confidence": 0.95, "delta": delta,
            "roc": {"fpr": [0.0, 0.01, 0.1, 1.0], "tpr": [0.0, 0.02, 0.12, 1.0]}}


INF = math.inf
