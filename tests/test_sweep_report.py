"""Report generation from stored results: self-contained HTML with the figures, Markdown, notes for
missing measurements, and no retraining (the run function is never called by the report)."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pytest

from lowrankdp.sweep import write_report
from lowrankdp.sweep._testing import synthetic_run
from lowrankdp.sweep.config import SweepConfig


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A sweep directory of stored (synthetic) results for all six methods, written in-process in the
    layout the runner leaves (sweep.json, runs/<run>/{run.json, config.json, metrics.jsonl, summary.json})."""
    tmp = tmp_path_factory.mktemp("report")
    data = tmp / "data"
    data.mkdir()
    cfg = SweepConfig.from_dict({
        "name": "fixture",
        "grid": {"methods": ["fft", "lora", "lora-fa", "dp-sgd", "dp-lora", "compressed-dp-sgd"],
                 "models": ["m"], "datasets": ["x"], "epochs": [2], "noise_multipliers": [0.5]},
        "datasets": {"x": {"path": str(data)}},
        "report": {"projection_ranks": [2, 16]},
    })
    root = tmp / "sweep"
    for spec in cfg.runs(root):
        rd = root / "runs" / f"{spec.name}-{spec.key[:10]}"
        synthetic_run({**spec.config, "out_dir": str(rd)})
        (rd / "run.json").write_text(json.dumps({"run_key": spec.key, "name": spec.name, "status": "ok",
                                                 "reason": None, "config": spec.config, "wall_time_s": 1.0}))
    (root / "sweep.json").write_text(json.dumps({"name": "fixture", "config": cfg.to_dict(), "provenance": {}}))
    return root


def _pngs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)]


def test_report_html_is_self_contained_with_figures(stored, tmp_path, monkeypatch):
    monkeypatch.setenv("LOWRANKDP_SYNTH_CALL_LOG", str(tmp_path / "calls.log"))
    html_path, md_path = write_report(stored, out=tmp_path / "rep")
    assert not (tmp_path / "calls.log").exists()  # nothing retrained
    html = html_path.read_text()
    pngs = _pngs(html)
    assert len(pngs) == 5  # privacy/utility, exposure, costs, ROC, ε vs rank
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") and len(p) > 5000 for p in pngs)
    assert not re.search(r"<(script|link)\b", html)  # no external assets
    assert not re.search(r"src=['\"](?!data:)", html)
    for title in ("Privacy and utility over epochs", "Canary exposure", "Cost per method",
                  "Membership attack ROC", "ε vs projection rank", "Every run", "Expected outcomes"):
        assert title in html
    assert "synthetic test run function" in html  # synthetic results are labelled as such
    for name in ("fft_m_x_e2_seed0", "compressed-dp-sgd_m_x_r8_s0.5_e2_seed0"):
        assert name in html
    md = md_path.read_text()
    assert "| run | method |" in md and "report_figures/roc.png" in md
    # the per-run table has a memorisation-gap column; the synthetic results do not store the key, so
    # every cell is empty and the §6 table says it was not measured
    header = next(line for line in md.splitlines() if line.startswith("| run | method |"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert "memorisation gap" in cols and "<th>memorisation gap</th>" in html
    gap_col = cols.index("memorisation gap")
    fft_row = next(line for line in md.splitlines() if line.startswith("| fft_m_x_e2_seed0"))
    assert [c.strip() for c in fft_row.strip("|").split("|")][gap_col] == "—"
    gap_line = next(line for line in md.splitlines() if line.startswith("| Memorisation gap"))
    assert "not measured" in gap_line and "`memorization_gap_token`" in gap_line
    assert (tmp_path / "rep" / "report_figures" / "roc.png").is_file()


def test_report_says_what_is_missing(stored, tmp_path):
    d = tmp_path / "sweep"
    shutil.copytree(stored, d)
    # drop exposure from one run, all costs from every run, and break one run's metrics entirely
    runs = sorted((d / "runs").iterdir())
    lora = next(p for p in runs if p.name.startswith("lora_"))
    lines = [json.loads(x) for x in (lora / "metrics.jsonl").read_text().splitlines()]
    for x in lines:
        x["measurements"].pop("exposure")
    (lora / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    for p in runs:
        ls = [json.loads(x) for x in (p / "metrics.jsonl").read_text().splitlines()]
        for x in ls:
            x.pop("costs", None)
        (p / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in ls) + "\n")
    fft = next(p for p in runs if p.name.startswith("fft_"))
    (fft / "metrics.jsonl").unlink()
    html_path, md_path = write_report(d)
    html = html_path.read_text()
    assert re.search(r"Not measured for 2 run\(s\) \(no `exposure.value` in metrics.jsonl\): [^<]*fft_m_x_e2_seed0",
                     html)
    assert "lora_m_x_r8_a8_e2_seed0" in html
    assert "Not measured: no stored run has `costs.analytic_flops_per_token`" in html
    assert "Not measured" in md_path.read_text()
    assert len(_pngs(html)) >= 3  # the figures that still have data are drawn


def test_report_memorisation_gap_where_stored(stored, tmp_path):
    """Gap stored by two runs (FFT at both epochs, LoRA-FA at epoch 0 only): the run table shows the last
    epoch's value, the §6 line gives it per method and names the runs that do not store it."""
    d = tmp_path / "sweep"
    shutil.copytree(stored, d)
    runs = sorted((d / "runs").iterdir())
    fft = next(p for p in runs if p.name.startswith("fft_"))
    lfa = next(p for p in runs if p.name.startswith("lora-fa_"))
    for rd, values in ((fft, {0: 0.011, 1: 0.8, 2: 1.75}), (lfa, {0: 0.02})):
        lines = [json.loads(x) for x in (rd / "metrics.jsonl").read_text().splitlines()]
        for x in lines:
            if x["epoch"] in values:
                x["measurements"]["memorization_gap_token"] = values[x["epoch"]]
        (rd / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    _, md_path = write_report(d)
    md = md_path.read_text().splitlines()
    header = next(line for line in md if line.startswith("| run | method |"))
    gap_col = [c.strip() for c in header.strip("|").split("|")].index("memorisation gap")
    cell = lambda prefix: [c.strip() for c in next(x for x in md if x.startswith(prefix)).strip("|").split("|")][gap_col]  # noqa: E731
    assert cell("| fft_m_x_e2_seed0") == "1.75"
    assert cell("| lora-fa_") == "0.02"
    assert cell("| lora_m_x") == "—"
    gap_line = next(line for line in md if line.startswith("| Memorisation gap"))
    assert "see numbers" in gap_line
    assert "FFT 1.750" in gap_line and "LoRA-FA 0.020" in gap_line
    assert "not stored" in gap_line and "lora_m_x_r8_a8_e2_seed0" in gap_line
    assert "fft_m_x_e2_seed0" not in gap_line.split("not stored")[1]


def test_report_rejects_a_non_sweep_directory(tmp_path):
    with pytest.raises(ValueError, match="not a sweep directory"):
        write_report(tmp_path)
