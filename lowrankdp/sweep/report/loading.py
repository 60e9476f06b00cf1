"""Load a sweep directory for the report: the index, each run's ``result.json``, the sweep record.

Core layer (no torch). Every run listed by the index is kept, whatever state its result is in: a run whose
``result.json`` is missing, half-written or corrupt is *unreadable*, one whose record says ``running`` (the writer
died, or the sweep is still going) is *unfinished*. Only finished runs carry a final epoch
(:attr:`RunEntry.final`), so nothing unfinished is ever drawn or judged as final.

Damaged sweep-level files (a 0-byte or corrupt ``index.sqlite``, a corrupt ``sweep.json``) raise a one-line
``ValueError`` naming the file.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Mapping, Sequence

from ...methods import METHOD_NAMES, METHODS, MethodSpec
from ...results import EpochMetrics, Privacy, ResultError, RunRecord, RunStatus, get_path, read_record
from ..index import RunIndex

__all__ = ["RunState", "RunEntry", "SweepData", "load_sweep", "cell_key", "context_key", "group_by",
           "CELL_FIELDS"]

INDEX_FILE = "index.sqlite"
SWEEP_FILE = "sweep.json"

#: the settings a cell is described by; the cell itself (:func:`cell_key`) is the whole resolved config but the seed
CELL_FIELDS = ("dataset", "model", "epochs", "rank", "alpha", "privacy_level", "lr")


class RunState(str, Enum):
    OK = "ok"
    FAILED = "failed"
    UNFINISHED = "unfinished"  # record says running, or the index never saw the run end
    UNREADABLE = "unreadable"  # result.json missing, half-written or corrupt


@dataclass(frozen=True)
class RunEntry:
    """One run of the sweep as the report sees it."""

    name: str
    key: str
    run_dir: Path
    config: dict[str, Any]
    index_status: str
    reason: str | None = None
    wall_time_s: float | None = None
    record: RunRecord | None = None
    problem: str | None = None  # why the result could not be read
    audits: tuple[dict[str, Any], ...] = field(default=())

    @property
    def method(self) -> str:
        return str(self.config.get("method") or (self.record.method if self.record else "?"))

    @property
    def spec(self) -> MethodSpec | None:
        return METHODS.get(self.method)

    @property
    def label(self) -> str:
        return self.spec.label if self.spec else self.method

    @property
    def color(self) -> str:
        return self.spec.color if self.spec else "#7f7f7f"

    @property
    def private(self) -> bool:
        return bool(self.spec and self.spec.private)

    @property
    def state(self) -> RunState:
        if self.record is None:
            return RunState.UNREADABLE if self.problem else RunState.UNFINISHED
        if not self.record.finished:
            return RunState.UNFINISHED
        return RunState.OK if self.record.status == RunStatus.OK else RunState.FAILED

    @property
    def ok(self) -> bool:
        return self.state == RunState.OK

    @property
    def final(self) -> EpochMetrics | None:
        """The last evaluation of a run that finished ``ok``; None otherwise."""
        return self.record.final if self.ok and self.record is not None else None

    @property
    def epochs(self) -> tuple[EpochMetrics, ...]:
        """Evaluations of a finished ``ok`` run (empty for any other run: partial curves are never drawn)."""
        return self.record.epochs if self.ok and self.record is not None else ()

    @property
    def base(self) -> EpochMetrics | None:
        """The epoch-0 evaluation (the model before training) of an ``ok`` run, if stored."""
        e = self.epochs
        return e[0] if e and e[0].epoch == 0 else None

    @property
    def privacy(self) -> Privacy | None:
        f = self.final
        return f.privacy if f is not None else None

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    def value(self, path: str) -> float | None:
        """A finite number at ``path`` in the final measurements, or in the final costs for ``"costs.<key>"``
        (None if missing or not a finite number)."""
        f = self.final
        if f is None:
            return None
        if path.startswith("costs."):
            return _finite(get_path(f.costs, path[len("costs."):]))
        return _finite(f.metric(path))

    def series(self, path: str) -> tuple[list[int], list[float]]:
        return self.record.series(path) if self.ok and self.record is not None else ([], [])

    def field(self, name: str) -> Any:
        """A cell field of :data:`CELL_FIELDS` (``None`` where it does not apply to the method)."""
        c = self.config
        if name == "dataset":
            return get_path(c, "extra.dataset") or (Path(str(c.get("data"))).name if c.get("data") else None)
        if name in ("rank", "alpha"):
            spec = self.spec
            applies = spec is not None and (spec.uses_rank if name == "rank" else spec.uses_alpha)
            return c.get(name) if applies else None
        if name == "lr":
            return c.get("lr") if c.get("lr") is not None else c.get("effective_lr")
        if name == "privacy_level":
            if not self.private:
                return None
            t = c.get("target_epsilon")
            return ("ε", float(t)) if t is not None else ("σ", c.get("noise_multiplier"))
        return c.get(name)


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


#: config keys that do not make two runs different settings (the seed makes them replicates)
_NOT_A_SETTING = frozenset({"seed", "out_dir", "resume", "overwrite", "base_cache", "progress"})


def cell_key(run: RunEntry) -> tuple:
    """Equal for runs whose resolved configs differ only by seed (and where they run): the replicates of one
    cell. With a target ε, σ is the accountant's calibration and not a setting of its own."""
    c = {k: v for k, v in run.config.items() if k not in _NOT_A_SETTING}
    if c.get("target_epsilon") is not None:
        c.pop("noise_multiplier", None)
    return (run.method, json.dumps(c, sort_keys=True, default=str))


def context_key(run: RunEntry) -> tuple:
    """What two methods must share to be compared at all: dataset, model, epochs."""
    return tuple(_hashable(run.field(f)) for f in ("dataset", "model", "epochs"))


def _hashable(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True, default=str)
    return v


@dataclass(frozen=True)
class SweepData:
    root: Path
    sweep: dict[str, Any]
    runs: tuple[RunEntry, ...]

    @property
    def ok_runs(self) -> tuple[RunEntry, ...]:
        return tuple(r for r in self.runs if r.ok)


# ------------------------------------------------------------------------------------------- reading

def load_sweep(sweep_dir: str | Path) -> SweepData:
    """The sweep record and every run of ``sweep_dir`` (ValueError naming the file for damaged sweep files)."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise ValueError(f"sweep_dir must be a sweep directory, got {str(root)!r} (not a directory)")
    sweep = _read_sweep_json(root / SWEEP_FILE)
    index = root / INDEX_FILE
    if index.exists():
        rows = _index_rows(index, root)
    elif (root / "runs").is_dir():
        rows = _scan_runs(root)
    else:
        raise ValueError(f"sweep_dir {str(root)!r} holds neither {INDEX_FILE} nor runs/: not a sweep directory")
    runs = [_entry(root, row) for row in rows]
    order = {m: i for i, m in enumerate(METHOD_NAMES)}
    runs.sort(key=lambda r: (order.get(r.method, len(order)), r.name))
    return SweepData(root=root, sweep=sweep, runs=tuple(runs))


def _read_sweep_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the sweep record ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the sweep record must be a JSON object, got {type(data).__name__}")
    return data


def _index_rows(path: Path, root: Path) -> list[dict[str, Any]]:
    """Rows of the run index; a damaged index is a one-line ValueError, never a traceback or a silent 0 runs."""
    if path.stat().st_size == 0:
        held = sum(1 for _ in (root / "runs").glob("*/result.json")) if (root / "runs").is_dir() else 0
        raise ValueError(f"{path}: the run index is empty (0 bytes)"
                         + (f" although runs/ holds {held} result file(s)" if held else "")
                         + "; it is damaged — restore it or rebuild the sweep, the report will not guess")
    try:
        return RunIndex(path).rows()
    except (sqlite3.DatabaseError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: the run index is corrupt ({type(exc).__name__}: {exc})") from None


def _scan_runs(root: Path) -> list[dict[str, Any]]:
    """Rows for a sweep directory without an index (e.g. copied runs): one per ``runs/*`` directory."""
    rows = []
    for rd in sorted(p for p in (root / "runs").iterdir() if p.is_dir()):
        rows.append({"run_key": "", "name": rd.name, "status": "unknown", "run_dir": f"runs/{rd.name}",
                     "config": {}, "reason": None, "wall_time_s": None})
    return rows


def _entry(root: Path, row: Mapping[str, Any]) -> RunEntry:
    name = str(row.get("name") or "?")
    run_dir = root / str(row.get("run_dir") or "")
    record, problem, audits = None, None, ()
    if not _inside(run_dir, root):
        problem = f"run directory {str(row.get('run_dir'))!r} lies outside the sweep directory; not read"
    else:
        try:
            record = read_record(run_dir)
            audits = _stored_audits(run_dir, record)
        except ResultError as exc:
            never_written = not (run_dir / "result.json").exists() and row.get("status") not in ("ok", "failed")
            problem = None if never_written else str(exc)  # a pending run has no result yet: unfinished
    config = dict(row.get("config") or (record.config if record is not None else {}))
    reason = row.get("reason") or (record.reason if record is not None else None)
    wall = row.get("wall_time_s")
    if wall is None and record is not None and record.finished:
        wall = record.wall_time_s
    return RunEntry(name=name, key=str(row.get("run_key") or ""), run_dir=run_dir, config=config,
                    index_status=str(row.get("status")), reason=reason, wall_time_s=_finite(wall),
                    record=record, problem=problem, audits=audits)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _stored_audits(run_dir: Path, record: RunRecord) -> tuple[dict[str, Any], ...]:
    """Privacy audits stored with a run: the final epoch's ``audits`` (the engine's canaries,
    ``lowrankdp.finetune.canaries``), ``measurements["audit"]`` of its final epoch, and a top-level ``"audit"``
    block of ``result.json``; each either one audit dict (``epsilon``, ``delta``, ``max_epsilon``, ``canaries``,
    ``method``; or a ``lowrankdp.audit.AuditResult`` dict, read as its SNJ and f-DP audits) or a dict/list of
    them."""
    found: list[dict[str, Any]] = []
    final = record.final
    if final is not None:
        for a in final.audits:
            found += _audit_dicts(a, str(a.get("name") or "audit"))
        found += _audit_dicts(final.metric("audit"))
    if record.finished:
        try:
            raw = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raw = {}
        found += _audit_dicts(raw.get("audit") if isinstance(raw, dict) else None)
    return tuple(found)


def _audit_dicts(block: Any, name: str | None = None) -> list[dict[str, Any]]:
    if isinstance(block, list):
        return [a for i, b in enumerate(block) for a in _audit_dicts(b, f"{name or 'audit'}[{i}]")]
    if not isinstance(block, Mapping):
        return []
    if "epsilon_snj" in block:  # lowrankdp.audit.AuditResult.to_dict(): one audit, two analyses
        common = {k: block.get(k) for k in ("canaries", "guesses", "correct", "delta", "confidence")}
        base = name or "audit"
        return [{"name": f"{base} (SNJ)", "method": "snj", "epsilon": block.get("epsilon_snj"),
                 "max_epsilon": block.get("max_epsilon_snj"), **common},
                {"name": f"{base} (f-DP)", "method": "fdp", "epsilon": block.get("epsilon_fdp_epsilon_delta"),
                 "max_epsilon": block.get("max_epsilon_fdp_epsilon_delta"), **common}]
    if any(k in block for k in ("epsilon", "epsilon_lower_bound", "epsilon_lb")):
        return [{"name": name or str(block.get("kind") or "audit"), **block}]
    return [a for k, v in block.items() for a in _audit_dicts(v, k if name is None else f"{name}.{k}")]


def group_by(runs: Sequence[RunEntry], key) -> dict[Any, list[RunEntry]]:
    out: dict[Any, list[RunEntry]] = {}
    for r in runs:
        out.setdefault(key(r), []).append(r)
    return out
