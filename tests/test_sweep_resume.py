"""Resumability: SIGKILL the sweep in the middle of a run, rerun with --resume.

Finished runs must not be repeated, the interrupted run must be redone from scratch, and the SQLite
index must have exactly one row per run (no duplicates, none lost). Uses the synthetic test run
function (no training), slowed down per epoch so the kill lands inside a run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lowrankdp.results import ResultError, read_record
from lowrankdp.sweep import RunIndex

SYNTH = "synthetic"
ROOT = Path(__file__).resolve().parents[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _epochs(run_dir: Path) -> list[int]:
    try:
        return [e.epoch for e in read_record(run_dir).epochs]
    except ResultError:
        return []


def test_sigkill_mid_run_then_resume(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for s in ("train", "test"):
        (data / f"{s}.jsonl").write_text("{}\n")
    cfg_path = tmp_path / "sweep.toml"
    cfg_path.write_text(
        'name = "resume"\n[grid]\nmethods = ["fft", "lora", "dp-sgd", "dp-lora"]\nmodels = ["m"]\n'
        'datasets = ["x"]\nepochs = [3]\n[datasets.x]\npath = "data"\n'
    )
    out = tmp_path / "out"
    calls = tmp_path / "calls.log"
    env = {**os.environ, "LOWRANKDP_SYNTH_EPOCH_S": "1.5", "LOWRANKDP_SYNTH_CALL_LOG": str(calls)}
    cmd = [sys.executable, "-m", "lowrankdp.cli", "sweep", str(cfg_path), "--out", str(out), "--runner", SYNTH,
           "--no-report"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    idx_path = out / "index.sqlite"
    victim = None
    deadline = time.time() + 150
    try:
        # wait until two runs are finished and the third is running with at least one trained epoch stored
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
            if not idx_path.exists():
                continue
            try:
                rows = RunIndex(idx_path).rows()
            except Exception:  # noqa: BLE001 - index being created
                continue
            ok = [r for r in rows if r["status"] == "ok"]
            running = [r for r in rows if r["status"] == "running"]
            if len(ok) == 2 and running:
                if len(_epochs(out / running[0]["run_dir"])) >= 2:
                    victim = running[0]
                    break
        assert victim is not None, f"sweep never reached the third run: {proc.stderr.read() if proc.poll() is not None else ''}"
        attempt = RunIndex(idx_path).attempts(victim["run_key"])[-1]
        worker_pid = attempt["pid"]
        os.kill(proc.pid, signal.SIGKILL)  # only the driver: its worker must die with it
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    # the worker child dies with its parent (PR_SET_PDEATHSIG), so nothing keeps writing
    t = time.time()
    while worker_pid and _pid_alive(worker_pid) and time.time() - t < 10:
        time.sleep(0.1)
    assert not (worker_pid and _pid_alive(worker_pid)), "worker outlived the killed sweep"

    before = {r["run_key"]: r for r in RunIndex(idx_path).rows()}
    assert len(before) == 4
    assert before[victim["run_key"]]["status"] == "running"
    victim_rec = read_record(out / victim["run_dir"])
    assert not victim_rec.finished and victim_rec.final is None  # unfinished: no epoch is presented as final
    assert 2 <= len(victim_rec.epochs) < 4  # really interrupted in the middle (epochs 0..3 would be 4)
    finished = {k for k, r in before.items() if r["status"] == "ok"}
    assert len(finished) == 2
    mtimes = {k: (out / before[k]["run_dir"] / "result.json").stat().st_mtime_ns for k in finished}
    n_calls_before = len(calls.read_text().splitlines())
    assert n_calls_before == 3

    res = subprocess.run(cmd + ["--resume", "--json"], cwd=ROOT, env={**env, "LOWRANKDP_SYNTH_EPOCH_S": "0"},
                         capture_output=True, text=True, timeout=150)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["interrupted_before"] == [victim["name"]]
    assert len(summary["skipped"]) == 2 and len(summary["ran"]) == 2

    idx = RunIndex(idx_path)
    rows = idx.rows()
    keys = [r["run_key"] for r in rows]
    assert len(keys) == len(set(keys)) == 4  # no duplicates, none lost
    assert set(keys) == set(before)
    assert all(r["status"] == "ok" for r in rows)
    by_key = {r["run_key"]: r for r in rows}
    for k in finished:  # not repeated
        assert by_key[k]["attempts"] == 1
        assert (out / by_key[k]["run_dir"] / "result.json").stat().st_mtime_ns == mtimes[k]
    v = by_key[victim["run_key"]]
    assert v["attempts"] == 2
    hist = idx.attempts(victim["run_key"])
    assert [a["status"] for a in hist] == ["interrupted", "ok"]
    # redone from scratch: a full set of epochs, no stale lines from the killed attempt
    assert _epochs(out / v["run_dir"]) == [0, 1, 2, 3] and read_record(out / v["run_dir"]).finished
    # the run function was called once per finished run, twice for the interrupted one, once for the untouched one
    called = [ln.split()[3] for ln in calls.read_text().splitlines()]
    assert len(called) == 5
    assert called.count(Path(v["run_dir"]).name) == 2
    for k in finished:
        assert called.count(Path(by_key[k]["run_dir"]).name) == 1
