"""SQLite index of the runs of a sweep (the embedded default store).

One row per run, keyed by the run key (SHA-256 of the resolved run configuration), plus one row
per attempt. The database is opened in WAL mode with ``synchronous=FULL`` and every change is a
single transaction, so a SIGKILL of the sweep at any point leaves either the old or the new state
of a row, never a half-written one, and never a duplicate (the key is the primary key).

Statuses: ``pending`` (known, not started), ``running`` (an attempt started and has not ended;
after a crash of the sweep this is what an interrupted run looks like), ``ok``, ``failed``
(recorded with its reason), ``interrupted`` (a ``running`` row found by a later ``--resume``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

__all__ = ["RunIndex", "STATUSES", "FINISHED"]

STATUSES = ("pending", "running", "ok", "failed", "interrupted")
FINISHED = frozenset({"ok", "failed"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_key     TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending','running','ok','failed','interrupted')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    config_json TEXT NOT NULL,
    run_dir     TEXT NOT NULL,
    reason      TEXT,
    wall_time_s REAL,
    created_at  REAL NOT NULL,
    started_at  REAL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS attempts (
    run_key     TEXT NOT NULL REFERENCES runs(run_key),
    attempt     INTEGER NOT NULL,
    pid         INTEGER,
    host        TEXT,
    started_at  REAL NOT NULL,
    finished_at REAL,
    status      TEXT NOT NULL,
    reason      TEXT,
    PRIMARY KEY (run_key, attempt)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class RunIndex:
    """The run index of one sweep directory (``<sweep>/index.sqlite``)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._connect() as con:
                con.executescript(_SCHEMA)
                con.execute("SELECT COUNT(*) FROM runs").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.path} is not a readable run index ({exc}); it is corrupt or not a lowrankdp "
                             "index: restore it or use another --out") from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise ValueError(f"{self.path}: cannot open the run index ({exc})") from None
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA foreign_keys=ON")
            yield con
        except sqlite3.OperationalError as exc:  # disk full, read-only, locked past the timeout: one line
            raise ValueError(f"{self.path}: run index error ({exc})") from None
        finally:
            con.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: all of it lands, or none of it."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # --------------------------------------------------------------------- writes
    def set_meta(self, key: str, value: Any) -> None:
        with self._tx() as con:
            con.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                        (key, json.dumps(value, default=str)))

    def add_runs(self, specs: list[tuple[str, str, dict, str]]) -> int:
        """Register (key, name, config, run_dir) rows not yet known; returns how many were new."""
        now = time.time()
        with self._tx() as con:
            before = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            con.executemany(
                "INSERT OR IGNORE INTO runs(run_key, name, status, attempts, config_json, run_dir, created_at) "
                "VALUES (?, ?, 'pending', 0, ?, ?, ?)",
                [(k, n, json.dumps(c, sort_keys=True), d, now) for k, n, c, d in specs],
            )
            after = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        return after - before

    def mark_interrupted(self) -> list[str]:
        """Turn ``running`` rows (left by a killed sweep) into ``interrupted``; returns their keys."""
        now = time.time()
        with self._tx() as con:
            keys = [r[0] for r in con.execute("SELECT run_key FROM runs WHERE status='running'")]
            con.execute("UPDATE runs SET status='interrupted', reason='sweep stopped during the run' "
                        "WHERE status='running'")
            con.execute("UPDATE attempts SET status='interrupted', finished_at=?, "
                        "reason='sweep stopped during the run' WHERE status='running'", (now,))
        return keys

    def start(self, key: str, *, pid: int | None = None, host: str | None = None) -> int:
        """Mark a run as running and open a new attempt; returns the attempt number (1-based)."""
        now = time.time()
        with self._tx() as con:
            row = con.execute("SELECT attempts FROM runs WHERE run_key=?", (key,)).fetchone()
            if row is None:
                raise KeyError(key)
            attempt = int(row[0]) + 1
            con.execute("UPDATE runs SET status='running', attempts=?, started_at=?, finished_at=NULL, "
                        "reason=NULL, wall_time_s=NULL WHERE run_key=?", (attempt, now, key))
            con.execute("INSERT INTO attempts(run_key, attempt, pid, host, started_at, status) "
                        "VALUES (?, ?, ?, ?, ?, 'running')", (key, attempt, pid, host, now))
        return attempt

    def set_pid(self, key: str, attempt: int, pid: int) -> None:
        with self._tx() as con:
            con.execute("UPDATE attempts SET pid=? WHERE run_key=? AND attempt=?", (pid, key, attempt))

    def finish(self, key: str, attempt: int, *, status: str, reason: str | None, wall_time_s: float | None) -> None:
        if status not in FINISHED:
            raise ValueError(f"status must be one of {sorted(FINISHED)}, got {status!r}")
        now = time.time()
        with self._tx() as con:
            con.execute("UPDATE runs SET status=?, reason=?, wall_time_s=?, finished_at=? WHERE run_key=?",
                        (status, reason, wall_time_s, now, key))
            con.execute("UPDATE attempts SET status=?, reason=?, finished_at=? WHERE run_key=? AND attempt=?",
                        (status, reason, now, key, attempt))

    # --------------------------------------------------------------------- reads
    def rows(self) -> list[dict[str, Any]]:
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            rows = [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY created_at, rowid")]
        for r in rows:
            r["config"] = json.loads(r.pop("config_json"))
        return rows

    def get(self, key: str) -> dict[str, Any] | None:
        for r in self.rows():
            if r["run_key"] == key:
                return r
        return None

    def attempts(self, key: str | None = None) -> list[dict[str, Any]]:
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            if key is None:
                cur = con.execute("SELECT * FROM attempts ORDER BY started_at")
            else:
                cur = con.execute("SELECT * FROM attempts WHERE run_key=? ORDER BY attempt", (key,))
            return [dict(r) for r in cur]

    def counts(self) -> dict[str, int]:
        with self._connect() as con:
            out = {s: 0 for s in STATUSES}
            for status, n in con.execute("SELECT status, COUNT(*) FROM runs GROUP BY status"):
                out[status] = n
        return out

    def meta(self) -> dict[str, Any]:
        with self._connect() as con:
            return {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")}
