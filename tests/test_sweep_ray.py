"""The Ray executor runs a two-run sweep on a local Ray instance (one Ray task per run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lowrankdp.results import read_record
from lowrankdp.sweep import RunIndex, run_sweep
from lowrankdp.sweep.config import SweepConfig

ray = pytest.importorskip("ray")

SYNTH = "synthetic"


def test_ray_two_run_sweep(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for s in ("train", "test"):
        (data / f"{s}.jsonl").write_text("{}\n")
    cfg = SweepConfig.from_dict({
        "name": "ray2",
        "grid": {"methods": ["fft", "dp-sgd"], "models": ["m"], "datasets": ["x"], "epochs": [1]},
        "datasets": {"x": {"path": str(data)}},
        "execution": {"cpus_per_run": 1, "gpus_per_run": 0},
    })
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        res = run_sweep(cfg, tmp_path / "out", executor="ray", runner=SYNTH, stream=None)
    finally:
        ray.shutdown()
    assert sorted(res.ran) == ["dp-sgd_m_x_s1_e1_seed0", "fft_m_x_e1_seed0"] and not res.failed
    rows = RunIndex(tmp_path / "out" / "index.sqlite").rows()
    assert len(rows) == 2 and all(r["status"] == "ok" and r["attempts"] == 1 for r in rows)
    for r in rows:
        rec = read_record(tmp_path / "out" / r["run_dir"])
        assert rec.status.value == "ok" and [e.epoch for e in rec.epochs] == [0, 1]
    attempts = RunIndex(tmp_path / "out" / "index.sqlite").attempts()
    assert all(a["host"].startswith("ray:") for a in attempts)
