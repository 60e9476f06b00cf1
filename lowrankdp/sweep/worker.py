"""Child-process entry point for one run: ``python -m lowrankdp.sweep.worker SPEC.json``.

Each run executes in its own process, so a crash, an out-of-memory kill or a hung library in one
run cannot take the sweep down. The worker

1. asks the kernel to kill it if its parent dies (``PR_SET_PDEATHSIG``, Linux), so a killed sweep
   leaves no orphan still writing into a run directory;
2. imports the run function named in the spec (default ``lowrankdp.finetune.run``; the torch layer
   is imported here, never in the sweep driver);
3. calls it with the resolved config and the run directory;
4. writes ``summary.json`` itself if the run function raised before writing one (status "failed",
   reason = the exception), and ``worker.json`` (provenance seen from inside the run: GPU if any).

Other mode: ``--prepare FILE`` checks every resolved config with ``FinetuneConfig.validate()`` and then
builds/caches each base model once, before the first run.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

__all__ = ["main", "resolve_runner", "DEFAULT_RUNNER"]

DEFAULT_RUNNER = "lowrankdp.finetune:run"


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


def resolve_runner(ref: str | None) -> Callable[..., Any]:
    """Import ``module:function``."""
    ref = ref or DEFAULT_RUNNER
    mod_name, _, fn_name = ref.partition(":")
    if not mod_name or not fn_name:
        raise ValueError(f"runner must be 'module:function', got {ref!r}")
    module = importlib.import_module(mod_name)
    fn = getattr(module, fn_name, None)
    if fn is None or not callable(fn):
        raise ValueError(f"runner {ref!r}: {mod_name} has no callable {fn_name!r}")
    return fn


def _call_runner(ref: str | None, config: dict[str, Any], out_dir: str) -> Any:
    if ref is None or ref == DEFAULT_RUNNER:
        from lowrankdp.finetune import FinetuneConfig, run

        cfg = FinetuneConfig(**config, out_dir=out_dir)
        if hasattr(cfg, "validate"):
            cfg.validate()
        return run(cfg)
    fn = resolve_runner(ref)
    return fn({**config, "out_dir": out_dir})


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_default))
    os.replace(tmp, path)


def _default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def run_spec(spec_path: str | os.PathLike) -> int:
    spec = json.loads(Path(spec_path).read_text())
    run_dir = Path(spec["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    threads = spec.get("threads")
    t0 = time.time()
    status, reason = "ok", None
    try:
        if threads:
            try:
                import torch

                torch.set_num_threads(int(threads))
            except ImportError:
                pass
        _call_runner(spec.get("runner"), spec["config"], str(run_dir))
    except BaseException as exc:  # noqa: BLE001 - every failure must be recorded
        if isinstance(exc, KeyboardInterrupt):
            raise
        status, reason = "failed", f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    wall = time.time() - t0
    summary_path = run_dir / "summary.json"
    summary: dict[str, Any] = {}
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
        except ValueError:
            summary = {}
    if status == "failed" and summary.get("status") != "failed":
        summary.update({"status": "failed", "reason": reason})
        _write_json(summary_path, summary)
    elif status == "ok" and not summary_path.is_file():
        status, reason = "failed", "run function returned without writing summary.json"
        _write_json(summary_path, {"status": status, "reason": reason})
    from lowrankdp.provenance import provenance

    _write_json(run_dir / "worker.json", {"provenance": provenance(), "wall_time_s": wall, "status": status,
                                           "reason": reason, "pid": os.getpid()})
    sys.stdout.flush()
    return 0 if (summary.get("status", status) == "ok" and status == "ok") else 1


def prepare(path: str | os.PathLike) -> int:
    """Validate resolved configs with FinetuneConfig, then (if all pass) build/cache each base model.

    Prints JSON lines: ``{"errors": [...]}`` then one ``{"model", "prepared_in_s" | "error"}`` per model.
    """
    from lowrankdp.finetune import FinetuneConfig

    job = json.loads(Path(path).read_text())
    errors = []
    for item in job.get("configs", []):
        try:
            FinetuneConfig(**item["config"], out_dir=item["run_dir"]).validate()
        except (TypeError, ValueError) as exc:
            errors.append({"name": item["name"], "error": str(exc)})
    print(json.dumps({"errors": errors}), flush=True)
    if errors:
        return 0
    for name in job.get("models", []):
        t0 = time.time()
        try:
            from lowrankdp.models import load_base

            load_base(name)
            print(json.dumps({"model": name, "prepared_in_s": round(time.time() - t0, 2)}), flush=True)
        except Exception as exc:  # noqa: BLE001 - reported; the runs retry and record their own failure
            print(json.dumps({"model": name, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _die_with_parent()
    if len(argv) == 2 and argv[0] == "--prepare":
        return prepare(argv[1])
    if len(argv) != 1:
        print("usage: python -m lowrankdp.sweep.worker SPEC.json | --prepare FILE",
              file=sys.stderr)
        return 2
    return run_spec(argv[0])


if __name__ == "__main__":
    sys.exit(main())
