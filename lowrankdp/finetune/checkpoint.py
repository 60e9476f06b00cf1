"""Atomic file writes and checkpoint discovery for run directories."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["atomic_write_text", "atomic_write_json", "atomic_torch_save", "latest_checkpoint", "CKPT_DIR"]

CKPT_DIR = "checkpoints"
_CKPT_RE = re.compile(r"^epoch_(\d{4,})\.pt$")


def _tmp_in(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write then ``os.replace``: readers see the old file or the new one, never half a file."""
    path = Path(path)
    fd, tmp = _tmp_in(path)
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
    from lowrankdp.cli import _to_jsonable

    atomic_write_text(path, json.dumps(_to_jsonable(obj), indent=2) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    path = Path(path)
    fd, tmp = _tmp_in(path)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def latest_checkpoint(run_dir: str | os.PathLike) -> tuple[int, Path] | None:
    """``(epoch, path)`` of the highest-epoch complete checkpoint, or None."""
    d = Path(run_dir) / CKPT_DIR
    if not d.is_dir():
        return None
    found = []
    for p in d.iterdir():
        m = _CKPT_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return max(found) if found else None
