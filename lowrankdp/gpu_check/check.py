"""The GPU check's driver: run every stage time-boxed, record each outcome, write the results.

Each stage is one child process in its own process group (``start_new_session``), its output in
``WORK/logs/<stage>.log``. On its time limit the whole group gets SIGTERM, then SIGKILL after 10 s, so
a stage that spawned workers (the sweep) leaves nothing running. A failed or cut stage is recorded
(``failed`` / ``timeout`` with the last line of its log) and the next stage runs; a stage whose input
is missing (no pretrained base for the sweep) is ``skipped`` with the reason.

Core layer: no torch (the children import it).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

from ..models.recipe import METADATA_FILE
from .plan import STAGES, CheckPlan, plan_for
from .summary import BENCH_PAGE, PAGE, REPLICATION_PAGE

__all__ = ["StageResult", "run_command", "run_check", "gpu_test_files", "REPO_ROOT", "RESULT_FILES"]

REPO_ROOT = Path(__file__).resolve().parents[2]
#: files (or folders) under the results directory that a check writes
#: what the check writes into docs/results (each page as .md and .json, plus the sweep report folder)
RESULT_FILES = tuple(f"{stem}.{ext}" for stem in (PAGE, BENCH_PAGE, REPLICATION_PAGE) for ext in ("md", "json")) + (
    "gpu_replication_report",)


@dataclass
class StageResult:
    name: str
    status: str  # ok | failed | timeout | skipped
    seconds: float = 0.0
    limit_s: float | None = None
    reason: str | None = None
    log: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tail(path: Path, n: int = 1) -> str:
    try:
        lines = [x for x in path.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])[:400]


def run_command(cmd: Sequence[str], *, timeout_s: float, log_path: Path, env: dict[str, str] | None = None,
                cwd: Path = REPO_ROOT) -> tuple[str, int | None, float]:
    """Run ``cmd`` in a new process group, output to ``log_path``; kill the group at ``timeout_s``.

    Returns ``(status, returncode, seconds)`` with status ``ok`` (exit 0), ``failed`` or ``timeout``.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)  # the group this call started (start_new_session)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
            log.write(f"\n[gpu-check] stopped after {timeout_s:.0f} s (time limit of this stage)\n")
            return "timeout", None, time.monotonic() - t0
    return ("ok" if rc == 0 else "failed"), rc, time.monotonic() - t0


def gpu_test_files(tests_dir: Path = REPO_ROOT / "tests") -> list[str]:
    """Test files that hold ``@pytest.mark.gpu`` tests (found by text, so nothing else is collected)."""
    pat = re.compile(r"pytest\.mark\.gpu\b")
    return [str(p.relative_to(REPO_ROOT)) for p in sorted(tests_dir.glob("test_*.py"))
            if pat.search(p.read_text(encoding="utf-8", errors="replace"))]


def _junit_counts(path: Path) -> dict[str, Any]:
    """passed / failed / errors / skipped and the failing tests' names and first message lines."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        return {"error": f"no JUnit report ({type(exc).__name__})"}
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    c = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failed = []
    for tc in root.iter("testcase"):
        bad = tc.find("failure") if tc.find("failure") is not None else tc.find("error")
        if bad is not None:
            msg = (bad.get("message") or "").strip().splitlines()[:1]
            failed.append(f"{tc.get('name')}: {msg[0][:200] if msg else ''}")
    c["passed"] = c["tests"] - c["failures"] - c["errors"] - c["skipped"]
    c["failed_tests"] = failed
    return c


class _Check:
    def __init__(self, plan: CheckPlan, *, work_dir: Path, results_dir: Path, stream: TextIO | None,
                 python: str):
        self.plan = plan
        self.work = work_dir
        self.results = results_dir
        self.stream = stream
        self.python = python
        self.t0 = time.monotonic()
        self.deadline = self.t0 + plan.budget_s
        self.stages: list[StageResult] = []
        self.env_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ helpers
    def log(self, msg: str) -> None:
        if self.stream is not None:
            print(f"[gpu-check] {msg}", file=self.stream, flush=True)

    def child_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        pp = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + pp if pp else "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        env.setdefault("MPLBACKEND", "Agg")
        env.update(extra or {})
        return env

    def limit(self, name: str) -> float:
        later = STAGES[STAGES.index(name) + 1:]
        left = self.deadline - time.monotonic() - sum(self.plan.floors.get(s, 0.0) for s in later)
        return min(float(self.plan.caps[name]), left)

    def stage(self, name: str, cmd: list[str] | None, *, env: dict[str, str] | None = None,
              skip_reason: str | None = None, after: Callable[[StageResult], None] | None = None) -> StageResult:
        limit = self.limit(name)
        if skip_reason is None and limit < 5:
            skip_reason = f"no time left in the {self.plan.budget_s:.0f} s budget"
        if skip_reason is not None:
            res = StageResult(name, "skipped", limit_s=max(0.0, limit), reason=skip_reason)
        else:
            self.log(f"{name}: started (limit {limit:.0f} s)")
            log_path = self.work / "logs" / f"{name}.log"
            status, rc, secs = run_command(cmd, timeout_s=limit, log_path=log_path, env=self.child_env(env))
            reason = None
            if status == "failed":
                reason = f"exit status {rc}: {_tail(log_path)}"
            elif status == "timeout":
                reason = f"cut at its limit of {limit:.0f} s"
            res = StageResult(name, status, seconds=round(secs, 1), limit_s=round(limit, 1), reason=reason,
                              log=str(log_path.relative_to(self.work)))
        if after is not None:
            try:
                after(res)
            except Exception as exc:  # noqa: BLE001 - reading a stage's output must not stop the check
                res.detail["read_error"] = f"{type(exc).__name__}: {exc}"
        self.log(f"{name}: {res.status}" + (f" ({res.seconds:.0f} s)" if res.seconds else "")
                 + (f" — {res.reason}" if res.reason else ""))
        self.stages.append(res)
        return res

    # ------------------------------------------------------------------ stages
    def run(self) -> dict[str, Any]:
        py = self.python
        plan = self.plan
        env_json = self.work / "env.json"

        def read_env(res):
            if env_json.is_file():
                self.env_info = json.loads(env_json.read_text(encoding="utf-8"))
                res.detail.update({k: self.env_info.get(k) for k in
                                   ("torch", "cuda_version", "cuda_available", "cuda_device", "tiny_model_seconds",
                                    "carried_packages")})

        setup = self.stage("setup", [py, "-m", "lowrankdp.gpu_check.env", "--out", str(env_json)], after=read_env)
        if plan.device == "cuda" and setup.status == "ok" and not self.env_info.get("cuda_available"):
            raise ValueError("no CUDA device is visible (torch.cuda.is_available() is False in this Python); "
                             "run `lowrankdp gpu-check --dry-run` for the CPU rehearsal")

        junit = self.work / "tests.xml"
        files = list(plan.test_files) if plan.test_files is not None else gpu_test_files()
        self.stage("tests", [py, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "-rfEs",
                             "--junitxml", str(junit), *plan.test_args, *files],
                   env=plan.test_env, skip_reason=None if files else "no test file has @pytest.mark.gpu",
                   after=lambda r: r.detail.update(_junit_counts(junit), files=files))

        bench_out = self.results / "gpu_finetune_benchmark"

        def read_bench(res):
            f = bench_out.with_suffix(".json")
            if f.is_file():
                d = json.loads(f.read_text(encoding="utf-8"))
                res.detail["settings"] = [_bench_digest(s) for s in d.get("settings", [])]

        self.stage("benchmark", [py, str(REPO_ROOT / "benchmarks" / "finetune.py"), *plan.benchmark_args,
                                 "--out", str(bench_out)], after=read_bench)

        base_dir = self.work / "base"

        def read_base(res):
            f = base_dir / METADATA_FILE
            if f.is_file():
                m = json.loads(f.read_text(encoding="utf-8"))
                tr = m.get("training") or {}
                res.detail.update({"architecture": m.get("architecture"), "heldout_loss": m.get("heldout_loss"),
                                   "train_loss_final": m.get("train_loss_final"), "seconds": m.get("build_seconds"),
                                   **{k: tr.get(k) for k in ("steps", "tokens_seen", "tokens_per_s", "precision",
                                                             "step_ms_calibrated", "stopped")}})

        self.stage("pretrain", [py, "-m", "lowrankdp", "model", "pretrain", "--out", str(base_dir), "--device",
                                plan.device, *plan.pretrain_args],
                   env=plan.stage_env, after=read_base)
        have_base = (base_dir / "config.json").is_file()
        plan_json = self.work / "plan.json"
        plan_json.write_text(json.dumps(plan.to_dict(), indent=2), encoding="utf-8")
        sweep_dir = self.work / "sweep"
        self.stage("sweep", [py, "-m", "lowrankdp.gpu_check.replication", "sweep", "--plan", str(plan_json),
                             "--base", str(base_dir), "--sweep-dir", str(sweep_dir)],
                   env=plan.stage_env, skip_reason=None if have_base else "no pretrained base (stage pretrain)")

        def read_rep(res):
            f = self.results / "gpu_replication.json"
            if f.is_file():
                d = json.loads(f.read_text(encoding="utf-8"))
                res.detail["runs"] = d.get("runs", [])
                res.detail["findings"] = d.get("findings", [])
                res.detail["report_error"] = d.get("report_error")

        meta = self.meta()
        meta["sweep_set"] = plan.sweep_set
        self.stage("replication-report",
                   [py, "-m", "lowrankdp.gpu_check.replication", "report", "--sweep-dir", str(sweep_dir),
                    "--base", str(base_dir), "--results-dir", str(self.results), "--meta", json.dumps(meta)],
                   skip_reason=None if (sweep_dir / "index.sqlite").is_file() else "no sweep was started",
                   after=read_rep)
        return self.finish()

    def meta(self) -> dict[str, Any]:
        prov = self.env_info.get("provenance") or {}
        dev = self.env_info.get("cuda_device") or {}
        git = _source_commit(prov)
        return {"mode": self.plan.mode, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "device": dev.get("name") or prov.get("device"), "torch": self.env_info.get("torch"),
                "git_commit": git.get("git_commit"), "git_dirty": git.get("git_dirty"),
                "git_source": git.get("source")}

    def finish(self) -> dict[str, Any]:
        from .summary import render_markdown, render_screen

        total = time.monotonic() - self.t0
        doc = {"meta": self.meta(), "budget_s": self.plan.budget_s, "total_s": round(total, 1),
               "plan": self.plan.to_dict(), "environment": self.env_info,
               "stages": [s.to_dict() for s in self.stages]}
        self.results.mkdir(parents=True, exist_ok=True)
        (self.results / "gpu_check.json").write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
        (self.results / f"{PAGE}.md").write_text(render_markdown(doc), encoding="utf-8")
        doc["screen"] = render_screen(doc, results_dir=self.results)
        return doc


def _source_commit(prov: dict[str, Any]) -> dict[str, Any]:
    """The commit the check ran from: git where the checkout has it, else ``.whl/SOURCE.json`` (written by
    ``scripts/prepare_device_wheels.sh`` on the machine that prepared the copy)."""
    if prov.get("git_commit"):
        return {"git_commit": prov["git_commit"], "git_dirty": prov.get("git_dirty"), "source": "git"}
    f = REPO_ROOT / ".whl" / "SOURCE.json"
    if f.is_file():
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
            return {"git_commit": d.get("git_commit"), "git_dirty": d.get("git_dirty"),
                    "source": ".whl/SOURCE.json (the prepared copy)"}
        except ValueError:
            pass
    return {"git_commit": None, "git_dirty": None, "source": "unknown (no git, no .whl/SOURCE.json)"}


def _bench_digest(s: dict[str, Any]) -> dict[str, Any]:
    rows = s.get("rows") or []
    return {"model": (s.get("setting") or {}).get("model"), "device": s.get("device"),
            "rows_ok": sum("error" not in r for r in rows), "rows": len(rows),
            "errors": {r["label"]: r["error"] for r in rows if "error" in r},
            "ms_per_step": {r["label"]: r["step_s_median"] * 1e3 for r in rows if "error" not in r},
            "targets": s.get("targets")}


def _pack(doc: dict[str, Any], *, results_dir: Path, work_dir: Path, copy_to: Path) -> list[Path]:
    """``gpu_check_results.tar.gz`` (results/… and logs/…) and the summary as text, into ``copy_to``."""
    copy_to.mkdir(parents=True, exist_ok=True)
    tar_path = copy_to / "gpu_check_results.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for name in RESULT_FILES:
            p = results_dir / name
            if p.exists():
                tar.add(p, arcname=f"results/{name}")
        for p in sorted((work_dir / "logs").glob("*.log")):
            tar.add(p, arcname=f"logs/{p.name}")
        for p in (work_dir / "env.json", work_dir / "tests.xml", work_dir / "base" / METADATA_FILE):
            if p.is_file():
                tar.add(p, arcname=f"logs/{p.name}")
    txt = copy_to / "gpu_check_summary.txt"
    txt.write_text(doc["screen"] + "\n", encoding="utf-8")
    md = copy_to / f"{PAGE}.md"
    shutil.copyfile(results_dir / f"{PAGE}.md", md)
    return [tar_path, txt, md]


def run_check(*, mode: str = "gpu", work_dir: str | os.PathLike = "runs/gpu_check",
              results_dir: str | os.PathLike | None = None, budget_s: float | None = None,
              copy_to: str | os.PathLike | None = None, stream: TextIO | None = sys.stderr,
              python: str | None = None) -> dict[str, Any]:
    """Run the GPU check (``mode="gpu"``) or its CPU rehearsal (``mode="dry"``); returns the result document.

    ``work_dir`` is emptied first (base model, sweep, logs). ``results_dir`` (default ``docs/results`` for
    ``gpu``, ``WORK/results`` for ``dry``) receives ``gpu_*.md/.json``. ``copy_to`` also receives
    ``gpu_check_results.tar.gz``, ``gpu_check_summary.txt`` and the check's Markdown page. Raises ``ValueError`` for a
    bad argument, or when ``mode="gpu"`` finds no CUDA device (after the setup stage).
    """
    plan = plan_for(mode, budget_s=budget_s)
    work = Path(work_dir).resolve()
    marker = ".lowrankdp-gpu-check"  # written into every work dir this function creates
    if work.exists():
        if not work.is_dir():
            raise ValueError(f"work_dir must be a directory, got {os.fspath(work_dir)!r} (a file)")
        if any(work.iterdir()) and not (work / marker).is_file():
            raise ValueError(f"work_dir {os.fspath(work_dir)!r} is not empty and is not an earlier gpu-check's "
                             "work dir; choose another --work-dir")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / marker).write_text("scratch folder of lowrankdp gpu-check: emptied by the next check\n")
    if results_dir is None:
        results_dir = REPO_ROOT / "docs" / "results" if plan.mode == "gpu" else work / "results"
    results = Path(results_dir).resolve()
    check = _Check(plan, work_dir=work, results_dir=results, stream=stream, python=python or sys.executable)
    doc = check.run()
    if copy_to is not None:
        doc["copied"] = [str(p) for p in _pack(doc, results_dir=results, work_dir=work, copy_to=Path(copy_to))]
    return doc
