"""Checkpoints of a run directory: safe (weights-only) save and load, and discovery of the latest one."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "CKPT_DIR"]

CKPT_DIR = "checkpoints"
_CKPT_RE = re.compile(r"^epoch_(\d{4,})\.pt$")


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Atomically save a checkpoint made only of tensors and plain Python values, so that
    :func:`load_checkpoint` can read it with ``weights_only=True`` (no code runs while loading). The numpy RNG
    state, the one non-plain value a run keeps, is stored as a tensor."""
    state = dict(state)
    rng = dict(state.get("rng") or {})
    if rng.get("numpy") is not None:
        name, keys, pos, has_gauss, cached = rng["numpy"]
        rng["numpy"] = [str(name), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                        float(cached)]
        state["rng"] = rng
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``: a file holding anything but tensors and plain
    values (e.g. a pickled callable) is refused with a ValueError naming the file; nothing in it is executed."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - UnpicklingError, RuntimeError, EOFError...: all mean "not ours"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"checkpoint {path} cannot be loaded safely (weights_only=True refused it or it is "
                         f"corrupt: {first[:200]})") from None
    if not isinstance(state, dict) or "params" not in state:
        raise ValueError(f"checkpoint {path} is not a lowrankdp checkpoint (no 'params')")
    rng = state.get("rng") or {}
    if rng.get("numpy") is not None:
        name, keys, pos, has_gauss, cached = rng["numpy"]
        rng["numpy"] = (name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached))
    return state


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
