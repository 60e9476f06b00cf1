"""Loading a sweep for the report: unfinished and unreadable runs are listed and never drawn or judged as final;
a damaged index or sweep record is a one-line ValueError naming the file."""

from __future__ import annotations

import re

import pytest

from lowrankdp.sweep import write_report
from lowrankdp.sweep.report.loading import RunState, load_sweep

from report_fixtures import record, write_sweep

FFT = [(5.0, 7.0), (4.0, 5.0), (3.0, 3.0)]


def _sweep(tmp_path):
    items = [("fft-ok", record("fft", 0, FFT, exposure=[2.0, 8.0, 15.0])),
             ("lora-running", record("lora", 0, FFT[:2], status="running", exposure=[2.0, 9.0])),
             ("dp-sgd-broken", record("dp-sgd", 0, FFT, eps=4.0)),
             ("lora-fa-failed", record("lora-fa", 0, FFT[:1], status="failed"))]
    root = write_sweep(tmp_path / "sweep", items, index_status={"lora-running": "ok"})
    path = root / "runs" / "dp-sgd-broken" / "result.json"
    path.write_text(path.read_text()[:200])  # cut mid-file: a half-written result
    return root


def test_states(tmp_path):
    data = load_sweep(_sweep(tmp_path))
    by = {r.name: r for r in data.runs}
    assert by["fft-ok"].state == RunState.OK and by["fft-ok"].final is not None
    # the index says ok but the record says running: the record wins, no final epoch
    assert by["lora-running"].state == RunState.UNFINISHED and by["lora-running"].final is None
    assert by["lora-running"].series("exposure.value") == ([], [])
    assert by["dp-sgd-broken"].state == RunState.UNREADABLE
    assert "result.json" in by["dp-sgd-broken"].problem
    assert by["lora-fa-failed"].state == RunState.FAILED and by["lora-fa-failed"].final is None


def test_pending_run_without_a_result_is_unfinished_not_unreadable(tmp_path):
    root = write_sweep(tmp_path / "s", [("fft", record("fft", 0, FFT))])
    from lowrankdp.sweep.index import RunIndex

    RunIndex(root / "index.sqlite").add_runs([("key-x", "pending-run", {"method": "lora"}, "runs/pending-run")])
    r = next(r for r in load_sweep(root).runs if r.name == "pending-run")
    assert r.state == RunState.UNFINISHED and r.problem is None


def test_report_marks_unfinished_and_unreadable_runs_and_does_not_plot_them(tmp_path):
    html_path, md_path = write_report(_sweep(tmp_path), out=tmp_path / "rep")
    md = md_path.read_text()
    row = lambda name: next(line for line in md.splitlines() if line.startswith(f"| {name} |"))  # noqa: E731
    assert "| unfinished |" in row("lora-running") and "| unreadable |" in row("dp-sgd-broken")
    assert "no completion marker" in row("dp-sgd-broken") or "not valid JSON" in row("dp-sgd-broken")
    # exposure figure notes name them as not drawn; the run table has no final values for them
    assert re.search(r"Not drawn \(not finished ok[^\n]*lora-running \(unfinished\)", md)
    cells = [c.strip() for c in row("lora-running").strip("|").split("|")]
    assert cells[13] == "—"  # exposure column: no final value for an unfinished run
    assert "1 ok, 1 failed, 1 unfinished, 1 unreadable" in md


@pytest.mark.parametrize("content", [b"", b"this is not a database at all" * 100])
def test_damaged_index_is_a_one_line_error(tmp_path, content):
    root = write_sweep(tmp_path / "s", [("fft", record("fft", 0, FFT))])
    for p in root.glob("index.sqlite*"):
        p.unlink()
    (root / "index.sqlite").write_bytes(content)
    with pytest.raises(ValueError) as exc:
        write_report(root)
    msg = str(exc.value)
    assert "\n" not in msg and str(root / "index.sqlite") in msg
    assert ("0 bytes" in msg and "1 result file" in msg) if not content else "corrupt" in msg
    assert (root / "index.sqlite").read_bytes() == content  # the report never writes into a damaged index


def test_corrupt_sweep_record_is_a_one_line_error(tmp_path):
    root = write_sweep(tmp_path / "s", [("fft", record("fft", 0, FFT))])
    (root / "sweep.json").write_text('{"name": ')
    with pytest.raises(ValueError, match=r"sweep\.json: cannot read the sweep record") as exc:
        write_report(root)
    assert "\n" not in str(exc.value)


def test_run_directory_outside_the_sweep_is_not_read(tmp_path):
    root = write_sweep(tmp_path / "s", [("fft", record("fft", 0, FFT))])
    from lowrankdp.sweep.index import RunIndex

    RunIndex(root / "index.sqlite").add_runs([("key-evil", "evil", {"method": "fft"}, "../../elsewhere")])
    evil = next(r for r in load_sweep(root).runs if r.name == "evil")
    assert evil.state == RunState.UNREADABLE and "outside the sweep directory" in evil.problem


def test_not_a_sweep_directory(tmp_path):
    with pytest.raises(ValueError, match="not a sweep directory"):
        write_report(tmp_path)
