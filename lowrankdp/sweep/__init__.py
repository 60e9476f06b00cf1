"""Sweeps and reports: the replication runner.

Core layer: imports without torch. Each run executes ``lowrankdp.finetune.run`` in its own child
process (``lowrankdp.sweep.worker``), so torch is only imported there.

    from lowrankdp.sweep import load_config, run_sweep, write_report
    cfg = load_config("smoke", overrides=["experiments/configs/lora_close_to_dpsgd.toml"])
    run_sweep(cfg, "runs/smoke", resume=True)      # SQLite index at runs/smoke/index.sqlite
    write_report("runs/smoke")                     # runs/smoke/report.html + report.md

See ``docs/sweep.md``.
"""

from __future__ import annotations

from .config import (
    RUNNERS, DatasetSpec, ExecutionSpec, GridSpec, ReportSpec, RunSpec, SweepConfig, available_presets,
    load_config, load_config_dict, merge_overrides, run_key,
)
from .index import RunIndex
from .runner import EXECUTORS, SweepResult, execute_one, prepare_data, run_sweep


def write_report(sweep_dir, *, out=None, title=None):
    """Write ``report.html`` and ``report.md`` for a sweep directory from its stored results
    (see :func:`lowrankdp.sweep.report.write_report`)."""
    from .report import write_report as _wr

    return _wr(sweep_dir, out=out, title=title)


__all__ = [
    "RUNNERS", "DatasetSpec", "ExecutionSpec", "GridSpec", "ReportSpec", "RunSpec", "SweepConfig",
    "available_presets", "load_config", "load_config_dict", "merge_overrides", "run_key",
    "RunIndex", "EXECUTORS", "SweepResult", "execute_one", "prepare_data", "run_sweep", "write_report",
]
