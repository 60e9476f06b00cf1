"""Provenance recorded with every result: git commit, dirty flag, versions, machine, date."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["provenance", "git_state", "package_versions", "device_description"]

_PACKAGES = (
    "lowrankdp", "numpy", "scipy", "mpmath", "torch", "transformers", "peft", "opacus",
    "dp-accounting", "tokenizers", "faker", "ray", "matplotlib", "sympy",
)


def git_state(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Commit hash and dirty flag of the checkout containing ``path`` (None values outside git)."""
    cwd = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        ).stdout.strip() or None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True,
            text=True, timeout=10,
        )
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"git_commit": commit, "git_dirty": dirty}


def package_versions(names: tuple[str, ...] = _PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages that can change a result (None if absent)."""
    out: dict[str, str | None] = {}
    for n in names:
        try:
            out[n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            out[n] = None
    return out


def device_description() -> str:
    """CPU model and core count, plus the CUDA device if torch is already imported and sees one."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    desc = f"{cpu} ({os.cpu_count()} cores)"
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        desc += f"; GPU {torch.cuda.get_device_name(0)}"
    return desc


def provenance(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Everything a result file should carry about how and where it was produced."""
    return {
        **git_state(path),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device_description(),
        "packages": package_versions(),
    }
