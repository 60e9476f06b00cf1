"""The lowrankdp model cache: location, keys, and atomic builds under a file lock.

Layout: ``$LOWRANKDP_CACHE`` (default ``~/.cache/lowrankdp``) holds one directory per built
artifact, ``<kind>-<key>`` (e.g. ``tiny-3f2a…``), where ``key`` is a hash of everything that
determines its content. A build writes into a temporary sibling directory and renames it into
place (atomic on one filesystem) while holding ``<kind>-<key>.lock``; readers only ever see a
missing or a complete directory, so concurrent processes (tests, sweep workers) can call
:func:`cached_build` freely: one builds, the others wait for the lock and then reuse the result.

A build killed before its rename leaves its temporary directory ``.<kind>-<key>.tmp-<pid>-<random>``
behind; the next build in the same cache root removes every such directory whose process is gone
(:func:`remove_stale_builds`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable

from .._files import pid_alive

__all__ = ["cache_root", "recipe_key", "cached_build", "remove_stale_builds"]

_LOCK_TIMEOUT_S = 3600.0


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` if given, else ``$LOWRANKDP_CACHE``, else ``~/.cache/lowrankdp``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("LOWRANKDP_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "lowrankdp"


def recipe_key(recipe: dict[str, Any]) -> str:
    """First 16 hex digits of the SHA-256 of the canonical JSON of ``recipe``."""
    blob = json.dumps(recipe, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _lock(path: Path):
    try:
        from filelock import FileLock  # a dependency of transformers / huggingface_hub
    except ImportError:  # pragma: no cover - filelock ships with transformers
        return _FcntlLock(path)
    return FileLock(str(path), timeout=_LOCK_TIMEOUT_S)


class _FcntlLock:  # pragma: no cover - fallback only
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self):
        import fcntl

        self.f = open(self.path, "a+")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        import fcntl

        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def remove_stale_builds(root: Path) -> list[Path]:
    """Delete the temporary files and directories under ``root`` whose writing process no longer exists
    (``.<name>.tmp-<pid>[-<random>]``: model builds, the multiple-choice task file). Returns what was removed."""
    removed = []
    if not root.is_dir():
        return removed
    for tmp in root.glob(".*.tmp-*"):
        pid_text = tmp.name.rsplit(".tmp-", 1)[-1].split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pid_alive(pid):
            continue
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def cached_build(root: Path, name: str, build: Callable[[Path], None], *,
                 marker: str = "lowrankdp_model.json", rebuild: bool = False) -> Path:
    """Return ``root/name``, building it first with ``build(tmp_dir)`` if absent.

    ``build`` must write the whole artifact into ``tmp_dir``, ``marker`` last or at least
    included. The directory appears under its final name only after ``build`` returned; a build
    that raises leaves nothing behind. ``rebuild=True`` replaces an existing ``root/name``.
    """
    final = root / name
    if not rebuild and (final / marker).is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with _lock(root / f"{name}.lock"):
        remove_stale_builds(root)
        if not rebuild and (final / marker).is_file():  # built by another process while we waited
            return final
        if final.exists():  # rebuild, or a leftover without its marker: replace it
            shutil.rmtree(final)
        tmp = root / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            build(tmp)
            if not (tmp / marker).is_file():
                raise RuntimeError(f"build of {name} did not write {marker}")
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final
