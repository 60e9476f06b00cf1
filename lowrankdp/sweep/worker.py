"""What runs inside each run's own process, and the process pool the sweep starts runs from.

Each run executes in its own process, so a crash, an out-of-memory kill or a hung library in one run cannot take
the sweep down. The processes are forked from a multiprocessing *fork server* that has imported the heavy
libraries (torch, transformers, peft, opacus and the engine) once, so a run does not pay the import again; the
sweep driver itself stays torch-free. Inside the child:

1. it ends itself when the sweep driver is gone (a watcher thread on the driver's pid; its parent, the fork
   server, also gets ``PR_SET_PDEATHSIG``), so a killed sweep leaves no orphan still writing into a run directory;
2. stdout and stderr go to ``RUN_DIR/log.txt``; the environment is the driver's at submission time;
3. the run function registered under the config's runner name (``lowrankdp.sweep.config.RUNNERS``) is called;
4. if it raised or returned without a finished ``result.json``, a failed record with the reason is written.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

from ..results import ResultError, RunRecord, RunStatus, read_record, write_record
from .config import RUNNERS

__all__ = ["child_main", "prepare_models", "resolve_runner", "process_context", "failed_record"]

# modules the fork server imports once, per runner
_PRELOAD = {
    "finetune": ["torch", "transformers", "peft", "opacus", "lowrankdp.finetune.engine", "lowrankdp.measure",
                 "lowrankdp.models"],
    "synthetic": ["lowrankdp.sweep.synthetic"],
}


def process_context(runner: str) -> multiprocessing.context.BaseContext:
    """The fork-server context, preloading what ``runner`` needs (fixed by the first call in a process)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD.get(runner, []))
    return ctx


def resolve_runner(name: str) -> Callable[..., Any]:
    """The run function registered as ``name``."""
    if name not in RUNNERS:
        raise ValueError(f"runner must be one of {', '.join(RUNNERS)}, got {name!r}")
    mod_name, _, fn_name = RUNNERS[name].partition(":")
    return getattr(importlib.import_module(mod_name), fn_name)


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # parent already gone before prctl took effect
            os._exit(137)
    except OSError:
        pass


def _watch_driver(pid: int) -> None:
    """End this process when the sweep driver is gone. The run's parent is the fork server, so the kernel's
    parent-death signal alone does not cover a killed driver: a daemon thread polls the driver's pid."""
    import threading
    import time

    def alive() -> bool:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
        except OSError:
            return False

    def loop() -> None:
        while alive():
            time.sleep(0.2)
        os._exit(137)

    threading.Thread(target=loop, name="lowrankdp-driver-watch", daemon=True).start()


def _redirect_output(log: Path) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def failed_record(run_dir: Path, config: dict[str, Any], reason: str, tb: str | None = None) -> RunRecord:
    """Mark a run failed in its result file, keeping the evaluations it had written."""
    from ..provenance import provenance

    try:
        old = read_record(run_dir)
    except ResultError:
        old = None
    if old is not None and old.finished:
        return old
    if old is None:
        rec = RunRecord(method=str(config.get("method")), status=RunStatus.FAILED, config=config,
                        provenance=provenance(), reason=reason, traceback=tb)
    else:
        import dataclasses

        rec = dataclasses.replace(old, status=RunStatus.FAILED, reason=reason, traceback=tb or old.traceback)
    write_record(run_dir, rec)
    return rec


def _call(runner: str, config: dict[str, Any], run_dir: Path) -> None:
    fn = resolve_runner(runner)
    if runner == "finetune":
        from lowrankdp.finetune.config import FinetuneConfig

        # the run directory is the sweep's own (emptied by the runner; it holds this process's log.txt)
        fn(FinetuneConfig.from_dict({**config, "out_dir": str(run_dir), "overwrite": True}), raise_invalid=False)
    else:
        fn({**config, "out_dir": str(run_dir)})


def child_main(payload: dict[str, Any]) -> None:
    """Entry point of one run's process (multiprocessing target)."""
    _die_with_parent()
    _watch_driver(payload["driver_pid"])
    os.environ.clear()
    os.environ.update(payload["env"])
    run_dir = Path(payload["run_dir"])
    _redirect_output(run_dir / "log.txt")
    if payload.get("threads"):
        import torch

        torch.set_num_threads(int(payload["threads"]))
    try:
        _call(payload["runner"], payload["config"], run_dir)
    except BaseException as exc:  # noqa: BLE001 - every failure must be recorded
        traceback.print_exc()
        failed_record(run_dir, payload["config"], f"{type(exc).__name__}: {exc}", traceback.format_exc())
        sys.stdout.flush()
        os._exit(1)
    try:
        rec = read_record(run_dir)
    except ResultError as exc:
        failed_record(run_dir, payload["config"], f"run function returned without a result: {exc}")
        os._exit(1)
    if not rec.finished:
        failed_record(run_dir, payload["config"], "run function returned with the run still marked running")
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if rec.status == RunStatus.OK else 1)


def prepare_models(models: list[str], queue) -> None:
    """Build/cache each base model once before the first run (in a child process: the driver stays torch-free).
    Puts ``(model, seconds or None, error or None)`` on ``queue`` per model."""
    import time

    for name in models:
        t0 = time.time()
        try:
            from lowrankdp.models import load_base

            load_base(name)
            queue.put((name, time.time() - t0, None))
        except Exception as exc:  # noqa: BLE001 - reported; the runs retry and record their own failure
            queue.put((name, None, f"{type(exc).__name__}: {exc}"))
