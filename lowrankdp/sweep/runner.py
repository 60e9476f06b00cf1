"""Sweep runner: expands a :class:`SweepConfig`, keeps the SQLite run index, executes each run in
its own child process (locally or as Ray tasks) and records every outcome.

Layout of a sweep directory::

    OUT/sweep.json          resolved sweep config, run list, provenance of the driver
    OUT/index.sqlite        run index (WAL; one row per run key, one row per attempt)
    OUT/data/<dataset>/     generated datasets
    OUT/base/               the base model's epoch-0 measurement, computed once and shared by the runs
    OUT/runs/<name>-<key10>/  one run: result.json (lowrankdp.results.RunRecord), log.txt, checkpoints/
    OUT/report.html, report.md

Resume semantics: a run is finished only if its index row says ``ok``/``failed`` AND its result.json reads as a
finished record; finished runs are skipped (``retry_failed=True`` redoes failed ones); ``running`` rows left by a
killed sweep become ``interrupted`` and are redone from scratch, as are ``pending`` ones and any run whose result
file is missing, half-written or unfinished. A lock file stops two sweeps from writing one directory; an index
that lost its rows while ``runs/`` holds results is refused rather than overwritten.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

from ..results import ResultError, RunStatus, atomic_write_json, read_record
from .config import RUNNERS, RunSpec, SweepConfig
from .index import FINISHED, RunIndex

__all__ = ["run_sweep", "SweepResult", "execute_one", "prepare_data", "EXECUTORS"]

EXECUTORS = ("local", "ray")


@dataclass
class SweepResult:
    out_dir: Path
    total: int
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    interrupted_before: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "total": self.total, "ran": self.ran, "skipped": self.skipped,
                "failed": self.failed, "interrupted_before": self.interrupted_before,
                "wall_time_s": round(self.wall_time_s, 2), "counts": self.counts}


# ----------------------------------------------------------------------------- one run


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _log_tail(path: Path, n: int = 6) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def _exit_reason(rc: int | None, timeout: float | None, run_dir: Path) -> str:
    if rc is None:
        return f"timed out after {timeout:g} s (execution.timeout_s)"
    if rc < 0:
        reason = f"worker killed by {_signal_name(rc)}" + (" (out of memory?)" if rc == -signal.SIGKILL else "")
    else:
        reason = f"worker exited with code {rc}"
    tail = _log_tail(run_dir / "log.txt")
    return reason + (f"; log: {tail}" if tail else "")


def execute_one(payload: dict[str, Any]) -> dict[str, Any]:
    """Run one spec in its own process (forked from the fork server) and return its outcome (status, reason,
    wall time). Used by every executor (locally in a thread, on a Ray worker inside a task). The run directory is
    emptied first (it is the sweep's own), so an interrupted attempt never leaves stale epochs behind."""
    from .worker import child_main, failed_record, process_context

    run_dir = Path(payload["run_dir"])
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    ctx = process_context(payload["runner"])
    child = {k: payload[k] for k in ("config", "runner", "run_dir", "threads")}
    child["driver_pid"] = os.getpid()
    child["env"] = dict(os.environ, TOKENIZERS_PARALLELISM=os.environ.get("TOKENIZERS_PARALLELISM", "false"))
    t0 = time.time()
    proc = ctx.Process(target=child_main, args=(child,), name=f"lowrankdp-run-{payload['name']}")
    proc.start()
    if payload.get("on_start") is not None:
        payload["on_start"](proc.pid)
    proc.join(payload.get("timeout_s"))
    if proc.is_alive():
        proc.kill()
        proc.join()
        rc = None
    else:
        rc = proc.exitcode
    wall = time.time() - t0
    try:
        rec = read_record(run_dir)
    except ResultError:
        rec = None
    if rc == 0 and rec is not None and rec.status == RunStatus.OK:
        status, reason = "ok", None
    else:
        status = "failed"
        reason = rec.reason if (rec is not None and rec.finished and rec.reason) else _exit_reason(
            rc, payload.get("timeout_s"), run_dir)
        failed_record(run_dir, payload["config"], reason)
    return {"run_key": payload["run_key"], "name": payload["name"], "status": status, "reason": reason,
            "wall_time_s": wall, "returncode": rc}


# ----------------------------------------------------------------------------- data


_DATA_STAMP = ".lowrankdp-dataset.json"  # the recipe a generated dataset was made from


def prepare_data(config: SweepConfig, out_dir: Path, *, log: Callable[[str], None] = lambda s: None) -> dict[str, float]:
    """Generate the datasets the grid uses (skipping ones already complete); returns seconds per dataset."""
    times: dict[str, float] = {}
    for name in config.grid.datasets:
        spec = config.datasets[name]
        if spec.generate is None:
            continue
        target = spec.directory(out_dir)
        stamp = target / _DATA_STAMP
        if target.exists():
            try:
                made_from = json.loads(stamp.read_text())
            except (OSError, ValueError):
                made_from = None
            if made_from != spec.identity():
                raise ValueError(
                    f"datasets.{name}: {target} holds data generated from {made_from or 'an unknown recipe'}, the "
                    f"config now says {spec.identity()}; a sweep never reuses other data: use another --out"
                )
            log(f"data {name}: already generated in {target}")
            continue
        from .. import data as lrd_data
        from .._files import write_directory_atomically

        def write(tmp: Path, spec=spec) -> None:
            lrd_data.generate(spec.generate, out_dir=tmp, seed=spec.seed, sizes=spec.sizes,
                              canary_repeats=spec.canary_repeats)
            (tmp / _DATA_STAMP).write_text(json.dumps(spec.identity(), sort_keys=True))

        t0 = time.time()
        # a hidden sibling swapped into place: a kill leaves no half-written dataset, and the next writer removes
        # a dead writer's temporary directory
        write_directory_atomically(target, write)
        times[name] = time.time() - t0
        log(f"data {name}: generated {spec.generate} in {times[name]:.1f} s -> {target}")
    return times


# ----------------------------------------------------------------------------- driver


class _Lock:
    def __init__(self, path: Path):
        self.path = path
        self.fh = None

    def __enter__(self):
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.close()
            raise ValueError(f"another sweep is running in {self.path.parent} (lock {self.path.name} is held)") from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def _run_dir(out_dir: Path, spec: RunSpec) -> Path:
    path = (out_dir / "runs" / f"{spec.name}-{spec.key[:10]}").resolve()
    if not path.is_relative_to(out_dir / "runs"):  # names are checked by the config; this is the last guard
        raise ValueError(f"run name {spec.name!r} would write outside {out_dir / 'runs'}")
    return path


def _result_finished(out: Path, row: dict[str, Any]) -> bool:
    """The run's result file is complete and says the run finished (a torn or unfinished file means: redo)."""
    try:
        return read_record(out / row["run_dir"]).finished
    except ResultError:
        return False


def _fmt_s(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _prepare_models(models: list[str], runner: str, log: Callable[[str], None]) -> dict[str, float]:
    """Build/cache each base model once, in a child process, before the first run. Returns seconds per model."""
    if runner != "finetune" or not models:
        return {}
    from .worker import prepare_models, process_context

    log(f"preparing model(s) {', '.join(models)} (the embedded tiny model is pretrained and cached on first use)")
    ctx = process_context(runner)
    queue = ctx.Queue()
    proc = ctx.Process(target=prepare_models, args=(models, queue))
    proc.start()
    times = {}
    for _ in models:
        try:
            name, seconds, error = queue.get(timeout=3600)
        except Exception:  # noqa: BLE001 - queue.Empty or a dead child: the runs retry and record it
            log("model preparation did not answer; runs will retry")
            break
        if error:
            log(f"model {name}: preparation failed ({error}); runs will retry")
        else:
            times[name] = seconds
            log(f"model {name}: ready in {seconds:.1f} s")
    proc.join()
    queue.close()
    queue.join_thread()
    return times


def run_sweep(
    config: SweepConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    retry_failed: bool = False,
    executor: str = "local",
    address: str | None = None,
    runner: str | None = None,
    jobs: int | None = None,
    stream: TextIO | None = sys.stderr,
    only: Iterable[str] | None = None,
) -> SweepResult:
    """Run every run of ``config`` under ``out_dir``; returns what ran, what was skipped, what failed.

    ``runner`` (a name in ``RUNNERS``; default the config's ``execution.runner``, i.e. ``"finetune"``) is the
    function each run's process calls with the resolved config; ``"synthetic"`` is the test-only fake.
    """
    from .._validate import check_choice, check_int

    executor = check_choice("executor", executor, EXECUTORS)
    runner = check_choice("runner", runner if runner is not None else config.execution.runner, tuple(RUNNERS))
    jobs = check_int("jobs", jobs if jobs is not None else config.execution.jobs, minimum=1, maximum=256)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    def log(msg: str) -> None:
        if stream is not None:
            print(f"[sweep] {msg}", file=stream, flush=True)

    config.validate(check_data=True, sweep_dir=out)
    with _Lock(out / ".sweep.lock"):
        index = RunIndex(out / "index.sqlite")
        _check_index(index, out, resume)
        specs = config.runs(out)
        if only is not None:
            specs = [s for s in specs if s.name in set(only) or s.key in set(only)]
        sweep_record = _sweep_record(config, specs, out, executor, runner)
        atomic_write_json(out / "sweep.json", sweep_record)
        index.set_meta("sweep", {"name": config.name, "source": config.source})
        interrupted = index.mark_interrupted()
        if interrupted:
            log(f"{len(interrupted)} run(s) interrupted by an earlier stop will be redone")
        timings: dict[str, Any] = {"data": prepare_data(config, out, log=log)}
        skip_status = {"ok"} if retry_failed else set(FINISHED)
        before = {r["run_key"]: r["status"] for r in index.rows()}
        any_todo = any(before.get(s.key) not in skip_status for s in specs)
        timings["models"] = _prepare_models(list(config.grid.models) if any_todo else [], runner, log)
        index.add_runs([(s.key, s.name, s.config, str(_run_dir(out, s).relative_to(out))) for s in specs])
        rows = {r["run_key"]: r for r in index.rows()}
        done = {s.key for s in specs if rows[s.key]["status"] in skip_status and _result_finished(out, rows[s.key])}
        todo = [s for s in specs if s.key not in done]
        result = SweepResult(out_dir=out, total=len(specs), skipped=[s.name for s in specs if s.key in done],
                             interrupted_before=[rows[k]["name"] for k in interrupted if k in rows])
        if result.skipped:
            log(f"resume: skipping {len(result.skipped)} finished run(s)")
        log(f"{len(todo)} run(s) to do of {len(specs)} ({executor} executor, runner {runner})")
        payloads = [{"run_key": s.key, "name": s.name, "config": s.config, "runner": runner,
                     "run_dir": str(_run_dir(out, s)), "threads": config.execution.threads_per_run,
                     "timeout_s": config.execution.timeout_s, "gpus": s.gpus, "cpus": s.cpus} for s in todo]
        on_done = _progress(result, len(payloads), jobs if executor == "local" else 1, log)
        if executor == "local":
            _execute_local(payloads, index, jobs, on_done, log)
        else:
            _execute_ray(payloads, index, address, on_done, log)
        result.counts = index.counts()
        result.wall_time_s = time.time() - t_start
        timings["sweep_s"] = result.wall_time_s
        atomic_write_json(out / "sweep.json", {**sweep_record, "timings": timings, "result": result.to_dict()})
        log(f"done in {_fmt_s(result.wall_time_s)}: {result.counts['ok']} ok, {result.counts['failed']} failed "
            f"({len(result.ran)} ran now, {len(result.skipped)} skipped)")
    return result


def _check_index(index: RunIndex, out: Path, resume: bool) -> None:
    """A directory holding a sweep is continued only with --resume; an index that lost its rows while runs/ holds
    results is refused (a resume would otherwise redo, and so delete, finished runs)."""
    existing = index.rows()
    if existing and not resume:
        raise ValueError(f"--out {out} already holds a sweep ({len(existing)} runs indexed); pass --resume to "
                         "continue it or choose another --out")
    stored = sorted((out / "runs").glob("*/result.json")) if (out / "runs").is_dir() else []
    if not existing and stored:
        raise ValueError(f"{out / 'index.sqlite'} lists no run but {out / 'runs'} holds {len(stored)} run "
                         "result(s): the index was lost or replaced; refusing to overwrite those runs "
                         "(restore the index or move runs/ away)")


def _sweep_record(config: SweepConfig, specs: list[RunSpec], out: Path, executor: str, runner: str) -> dict[str, Any]:
    from ..provenance import provenance

    return {"name": config.name, "source": config.source, "config": config.to_dict(),
            "runs": [{"key": s.key, "name": s.name, "run_dir": str(_run_dir(out, s).relative_to(out))} for s in specs],
            "executor": executor, "runner": runner, "provenance": provenance()}


def _progress(result: SweepResult, total: int, parallel: int, log: Callable[[str], None]):
    """The callback that records each finished run and prints progress with an ETA."""
    done_times: list[float] = []

    def on_done(i_done: int, rec: dict[str, Any]) -> None:
        done_times.append(rec["wall_time_s"])
        if rec["status"] == "ok":
            result.ran.append(rec["name"])
        else:
            result.failed[rec["name"]] = rec["reason"] or "?"
        left = total - i_done
        eta = (sum(done_times) / len(done_times)) * left / max(1, parallel)
        tail = f", ~{_fmt_s(eta)} left" if left else ""
        what = "ok" if rec["status"] == "ok" else f"FAILED: {rec['reason']}"
        log(f"[{i_done}/{total}] {rec['name']} {what} ({_fmt_s(rec['wall_time_s'])}{tail})")

    return on_done


def _execute_local(payloads, index: RunIndex, jobs: int, on_done, log) -> None:
    host = socket.gethostname()
    n_done = 0

    def task(p):
        p = dict(p)
        p["attempt"] = index.start(p["run_key"], host=host)
        p["on_start"] = lambda pid, k=p["run_key"], a=p["attempt"]: index.set_pid(k, a, pid)
        try:
            rec = execute_one(p)
        except Exception as exc:  # noqa: BLE001 - the sweep goes on
            rec = {"run_key": p["run_key"], "name": p["name"], "status": "failed",
                   "reason": f"runner error: {type(exc).__name__}: {exc}", "wall_time_s": 0.0}
        index.finish(p["run_key"], p["attempt"], status=rec["status"], reason=rec["reason"],
                     wall_time_s=rec["wall_time_s"])
        return rec

    if jobs <= 1:
        for i, p in enumerate(payloads, 1):
            log(f"[{i}/{len(payloads)}] {p['name']} started")
            on_done(i, task(p))
        return
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(task, p) for p in payloads}
        while futures:
            finished, futures = wait(futures, return_when=FIRST_COMPLETED)
            for f in finished:
                n_done += 1
                on_done(n_done, f.result())


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast (one line naming --address) when a Ray head at host:port does not answer, instead of Ray's
    minutes of retries. Other address forms ("auto", "ray://…") are left to Ray."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "/" in host:
        return
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ValueError(f"address {address!r}: no Ray head answers there ({exc}); start one with "
                         "'ray start --head' or check the address") from None


def _ray_task(payload: dict[str, Any]) -> dict[str, Any]:
    return execute_one(payload)


def _execute_ray(payloads, index: RunIndex, address: str | None, on_done, log) -> None:
    try:
        import ray
    except ImportError:
        raise ValueError("executor 'ray' needs ray (pip install 'lowrankdp[cluster]')") from None
    started_here = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            _check_reachable(address)
            kwargs["address"] = address
        ray.init(**kwargs)
        started_here = True
    try:
        remote = ray.remote(_ray_task)
        pending = {}
        for p in payloads:
            p = dict(p)
            p["attempt"] = index.start(p["run_key"], host=f"ray:{address or 'local'}")
            ref = remote.options(num_cpus=p["cpus"], num_gpus=p["gpus"], max_retries=0).remote(p)
            pending[ref] = p
        log(f"submitted {len(pending)} Ray task(s) (address {address or 'local'}); resources "
            f"{ray.cluster_resources()}")
        n_done = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                p = pending.pop(ref)
                try:
                    rec = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - task/actor died: record, go on
                    rec = {"run_key": p["run_key"], "name": p["name"], "status": "failed",
                           "reason": f"Ray task failed: {type(exc).__name__}: {str(exc)[:300]}", "wall_time_s": 0.0}
                index.finish(p["run_key"], p["attempt"], status=rec["status"], reason=rec["reason"],
                             wall_time_s=rec["wall_time_s"])
                n_done += 1
                on_done(n_done, rec)
    finally:
        if started_here:
            ray.shutdown()
