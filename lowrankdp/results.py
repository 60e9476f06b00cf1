"""The one result format of a fine-tuning run (core layer, no torch).

A run directory holds exactly one result file, ``RUN_DIR/result.json`` (besides checkpoints and the exported
model). The engine writes it (after every evaluation while the run is going, status ``running``; once more at the
end, status ``ok`` or ``failed``), the sweep index points at it, and the report and the CLI read only it, through
:func:`read_record`.

IMPORTANT conventions:

- Every write is atomic (write a temporary file in the same directory, fsync, rename), so a reader sees the old
  record or the new one, never half of one. The last key of the file is ``"complete": true``; a file without it,
  or one that does not parse, is rejected by :func:`read_record` with a :class:`ResultError` naming the path.
- A run is *finished* only when its status is ``ok`` or ``failed``. A ``running`` record read after the writer
  died is an interrupted run: readers must not present its last epoch as final (:attr:`RunRecord.finished`).
- ε is ``math.inf`` for methods without noise and is stored as the string ``"inf"`` in JSON.
- Losses are in nats per token. Membership scores: higher = more likely a member.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, Mapping

__all__ = ["SCHEMA_VERSION", "RESULT_FILE", "RunStatus", "Guarantee", "Privacy", "EpochMetrics", "RunRecord",
           "ResultError", "write_record", "read_record", "to_jsonable", "atomic_write_text", "atomic_write_json",
           "get_path"]

SCHEMA_VERSION = 2
RESULT_FILE = "result.json"


class ResultError(ValueError):
    """A result file that is missing, half-written, corrupt or of another schema."""


class RunStatus(str, Enum):
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"


class Guarantee(str, Enum):
    """What an ε is: a proven upper bound, an estimate (e.g. Monte Carlo), or nothing (no noise)."""

    BOUND = "bound"
    ESTIMATE = "estimate"
    NONE = "none"


# ------------------------------------------------------------------------------------------- JSON helpers

def to_jsonable(obj: Any) -> Any:
    """JSON-safe copy: inf/nan -> "inf"/"-inf"/"nan", numpy scalars -> numbers, Enums -> values, tuples -> lists."""
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else ("-inf" if obj < 0 else "nan")
    return obj


def _num(x: Any) -> float | None:
    """A stored number back as float ("inf" -> inf); None stays None."""
    if x is None:
        return None
    if isinstance(x, str):
        return float(x)  # "inf", "-inf", "nan"
    return float(x)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write then rename: readers see the old file or the new one, never half a file. Nothing is left behind on
    failure (the temporary file is removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2) + "\n")


def get_path(tree: Mapping[str, Any] | None, path: str) -> Any:
    """``tree["a"]["b"]`` for ``path="a.b"``; None where any level is missing."""
    cur: Any = tree
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


# ------------------------------------------------------------------------------------------- records

@dataclass(frozen=True)
class Privacy:
    """The privacy block of one evaluation: the accountant, its inputs, ε, and what ε rests on.

    ``epsilon`` is ``inf`` for a method without noise, ``None`` only if the accountant failed (``source`` says
    why). ``target_epsilon`` is set when σ was calibrated to a target. ``assumption`` is the text of the
    assumption ε rests on beyond the mechanism itself (fixed projections), else None.
    """

    accountant: str  # "none" | "rdp" | "pld"
    epsilon: float | None
    delta: float | None = None
    noise_multiplier: float | None = None
    sampling_rate: float | None = None
    steps: int = 0
    max_grad_norm: float | None = None
    projection: str = "none"  # "none" | "fresh" | "fixed"
    d: tuple[int, ...] | None = None
    r: int | None = None
    span_dim: int | None = None
    guarantee: Guarantee = Guarantee.NONE
    assumption: str | None = None
    target_epsilon: float | None = None
    privacy_unit: str = "record"
    source: str = ""
    opacus_epsilon: float | None = None  # opacus's own accountant on the same steps (no projection credit)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Privacy":
        kw = _known(cls, d)
        kw["epsilon"] = _num(kw.get("epsilon"))
        kw["opacus_epsilon"] = _num(kw.get("opacus_epsilon"))
        if kw.get("d") is not None:
            kw["d"] = tuple(int(x) for x in kw["d"])
        kw["guarantee"] = Guarantee(kw.get("guarantee", "none"))
        kw["notes"] = tuple(kw.get("notes") or ())
        return cls(**kw)

    @classmethod
    def none(cls) -> "Privacy":
        """The block of a method without noise."""
        return cls(accountant="none", epsilon=math.inf, source="no noise: not differentially private")


@dataclass(frozen=True)
class EpochMetrics:
    """One evaluation (epoch 0 = the model before training).

    ``measurements`` is the dict of :func:`lowrankdp.measure.measure_all` (keys in docs/measure.md);
    ``costs`` the cumulative training costs up to this epoch (docs/finetune.md). ``shared_from`` names the file
    an epoch-0 measurement was taken from when it was computed once for several runs.
    """

    epoch: int
    step: int
    privacy: Privacy
    train_loss: float | None = None  # mean training loss over the epoch's steps (None at epoch 0)
    measurements: dict[str, Any] | None = None
    retention_loss: float | None = None
    benchmarks: dict[str, Any] | None = None
    influence: dict[str, Any] | None = None
    costs: dict[str, Any] = field(default_factory=dict)
    eval_seconds: float = 0.0
    elapsed_s: float = 0.0
    shared_from: str | None = None
    audits: tuple[dict[str, Any], ...] = ()  # one-run privacy audits (lowrankdp.finetune.canaries; docs/audit.md)

    def metric(self, path: str) -> Any:
        """A measurement by dotted path, e.g. ``"mia.loss.auc"`` or ``"exposure.value"``."""
        return get_path(self.measurements, path)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["privacy"] = self.privacy.to_dict()
        return to_jsonable(d)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EpochMetrics":
        kw = _known(cls, d)
        kw["privacy"] = Privacy.from_dict(kw.get("privacy") or {"accountant": "none", "epsilon": None})
        kw["audits"] = tuple(dict(a) for a in (kw.get("audits") or ()))
        return cls(**kw)


@dataclass(frozen=True)
class RunRecord:
    """Everything about one run: resolved config, provenance, status, per-epoch metrics."""

    method: str
    status: RunStatus
    config: dict[str, Any]
    provenance: dict[str, Any]
    epochs: tuple[EpochMetrics, ...] = ()
    reason: str | None = None
    wall_time_s: float = 0.0
    notes: tuple[str, ...] = ()
    components: dict[str, str] = field(default_factory=dict)
    model_dir: str | None = None
    traceback: str | None = None
    synthetic: bool = False
    schema_version: int = SCHEMA_VERSION

    @property
    def finished(self) -> bool:
        return self.status in (RunStatus.OK, RunStatus.FAILED)

    @property
    def final(self) -> EpochMetrics | None:
        """The last evaluation of a *finished* run (None for an unfinished or empty one)."""
        return self.epochs[-1] if self.finished and self.epochs else None

    @property
    def privacy(self) -> Privacy | None:
        f = self.final
        return f.privacy if f is not None else None

    def series(self, path: str) -> tuple[list[int], list[float]]:
        """(epochs, values) of a measurement across evaluations, skipping missing or non-numeric values."""
        xs, ys = [], []
        for e in self.epochs:
            v = e.metric(path)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                xs.append(e.epoch)
                ys.append(float(v))
        return xs, ys

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["epochs"] = [e.to_dict() for e in self.epochs]
        d = to_jsonable(d)
        d["complete"] = True  # last key: the completion marker read_record checks
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunRecord":
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ResultError(f"schema_version must be {SCHEMA_VERSION}, got {d.get('schema_version')!r}")
        kw = _known(cls, d)
        kw["status"] = RunStatus(kw["status"])
        kw["epochs"] = tuple(EpochMetrics.from_dict(e) for e in kw.get("epochs") or ())
        kw["notes"] = tuple(kw.get("notes") or ())
        return cls(**kw)


def _known(cls, d: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(d, Mapping):
        raise ResultError(f"{cls.__name__} must be a JSON object, got {type(d).__name__}")
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


# ------------------------------------------------------------------------------------------- files

def write_record(run_dir: str | os.PathLike, record: RunRecord) -> Path:
    """Write ``RUN_DIR/result.json`` atomically; returns its path."""
    path = Path(run_dir) / RESULT_FILE
    atomic_write_json(path, record.to_dict())
    return path


def read_record(run_dir: str | os.PathLike) -> RunRecord:
    """The record of a run directory; :class:`ResultError` (a ValueError naming the file) if it is missing,
    half-written, corrupt, or of another schema."""
    path = Path(run_dir) / RESULT_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultError(f"{path}: no result file (the run never started or its directory was moved)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultError(f"{path}: cannot read ({exc})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ResultError(f"{path}: not valid JSON ({exc}); the file is corrupt") from None
    if not isinstance(data, dict) or data.get("complete") is not True:
        raise ResultError(f"{path}: no completion marker; the file is half-written or not a lowrankdp result")
    try:
        return RunRecord.from_dict(data)
    except ResultError as exc:
        raise ResultError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultError(f"{path}: malformed record ({type(exc).__name__}: {exc})") from None
