"""Output files and directories that are never half-written (core layer: standard library only).

* :func:`check_output_file` — before any computation, make sure a result file can be written where the
  user asked (``ValueError`` naming the option and the path otherwise).
* :func:`check_output_dir` — the same for a directory that files will be written into.
* :func:`write_directory_atomically` — build a directory in a hidden sibling, then rename it into place:
  readers see the old directory or the complete new one, never a mix. Temporary siblings carry the
  writer's process id; ones whose process has died (a ``kill -9``, a power cut) are removed by the next
  writer to the same target, and a previous version set aside for the swap is put back if the swap was
  interrupted.

Errors while writing stay ``OSError`` with the path set, so the CLI prints one line naming it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["check_output_file", "check_output_dir", "write_directory_atomically", "TEMP_MARK"]

TEMP_MARK = ".lowrankdp-"  # every temporary sibling is named ".<target>.lowrankdp-<tmp|old>-<pid>-<random>"
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.lowrankdp-(?P<kind>tmp|old)-(?P<pid>\d+)-[^/]*$")


def check_output_file(path: str | os.PathLike, *, name: str) -> Path:
    """``path`` as a ``Path`` if a file can be created or replaced there; else ``ValueError`` naming ``name``.

    Checked: not an existing directory; the parent is (or can be created as) a directory in which a file
    can be created — a probe file is created and removed, so read-only places, ``/proc`` and full quotas
    fail here rather than after the computation. Parent directories created by the probe are kept.
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{name} must be a file path, got the directory {p}")
    if p.exists() and not p.is_file():
        raise ValueError(f"{name} must be a regular file path, got {p} (a device, FIFO or socket)")
    _probe(p.parent, f".{p.name}{TEMP_MARK}probe-", f"{name} {p}: cannot write a file there")
    return p


def check_output_dir(path: str | os.PathLike, *, name: str) -> Path:
    """``path`` as a ``Path`` if it is (or can be created as) a directory in which files can be created.

    ``ValueError`` naming ``name`` otherwise (an existing file, a read-only place, ``/proc``). The directory
    is created if missing; a probe file is created in it and removed.
    """
    p = Path(path)
    if os.path.lexists(p) and not p.is_dir():
        raise ValueError(f"{name} must be a directory, got {p}, which is not one")
    _probe(p, f"{TEMP_MARK}probe-", f"{name} {p}: cannot write there")
    return p


def _probe(directory: Path, prefix: str, message: str) -> None:
    """Create ``directory`` if needed and a probe file in it (removed again); ``ValueError(message)`` if not."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=prefix)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{message} ({exc.strerror or exc})") from None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (this one included; one owned by another user counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _recover(target: Path) -> None:
    """Remove temporary siblings of ``target`` left by dead writers; restore a set-aside old version."""
    parent = target.parent
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for e in entries:
        m = _TEMP_RE.match(e.name)
        if m is None or pid_alive(int(m["pid"])):
            continue
        root = m["name"]  # a writer whose target was itself a temporary sibling of `target` nests the marks
        while (inner := _TEMP_RE.match(root)) is not None:
            root = inner["name"]
        if root != target.name:
            continue
        path = Path(e.path)
        if m["kind"] == "old" and m["name"] == target.name and not os.path.lexists(target):
            os.replace(path, target)  # the swap was interrupted after moving the old version aside
        else:
            shutil.rmtree(path, ignore_errors=True)


def write_directory_atomically(target: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a fresh hidden sibling of ``target``, then swap it into place; return ``target``.

    ``target`` may be absent or a directory (it is replaced as a whole: the caller decides whether that is
    allowed). On any exception — including ``KeyboardInterrupt`` — the sibling is removed and ``target`` is
    left as it was.
    """
    target = Path(target)
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    pid = os.getpid()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{TEMP_MARK}tmp-{pid}-", dir=parent))
    old: Path | None = None
    try:
        write(tmp)
        if os.path.lexists(target):
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}{TEMP_MARK}old-{pid}-", dir=parent))
            os.replace(target, old)  # rename onto the empty placeholder
        os.replace(tmp, target)
    except BaseException:
        if old is not None and not os.path.lexists(target):
            os.replace(old, target)
            old = None
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target
