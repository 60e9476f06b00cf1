"""Smoke test: the ε-vs-rank experiment stores JSON and draws its figure from the stored JSON only."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("wishart_epsilon_vs_rank", ROOT / "experiments" / "wishart_epsilon_vs_rank.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_compute_then_plot_from_json(tmp_path):
    pytest.importorskip("matplotlib")
    mod = _load()
    out = tmp_path / "res.json"
    res = mod.compute(d=20, delta=0.04, rhos=(0.9,), out=out)
    data = json.loads(out.read_text())
    rows = data["series"][0]["rows"]
    assert [row["r"] for row in rows] == mod.rank_grid(20)
    assert data["provenance"]["packages"]["numpy"]
    for row in rows:  # corrected bound >= exact wherever finite
        c = math.inf if row["theorem1_corrected"] == "inf" else row["theorem1_corrected"]
        e = math.inf if row["exact"] == "inf" else row["exact"]
        assert e <= c
    png = mod.plot(src=out, out=tmp_path / "fig.png")
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert res["config"]["d"] == 20
