"""Stage "setup" of the GPU check: what this machine has, and the embedded tiny model built once.

    python -m lowrankdp.gpu_check.env --out ENV.json

Writes (and prints) one JSON object: torch and CUDA versions, the CUDA device (name, capability,
memory), package versions (``lowrankdp.provenance``), the packages installed from carried wheels
(``$LOWRANKDP_CARRIED_SITE``, set by ``scripts/gpu_check.sh``) and the seconds the tiny model took
(every later stage needs its tokenizer). Core layer at import: torch is imported in :func:`describe`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["describe", "carried_packages", "main"]


def carried_packages(site: str | os.PathLike | None) -> dict[str, str]:
    """``{name: version}`` of the ``*.dist-info`` folders in ``site`` (the carried wheels), or {}."""
    if not site or not Path(site).is_dir():
        return {}
    out = {}
    for d in sorted(Path(site).glob("*.dist-info")):
        name, _, version = d.name[: -len(".dist-info")].partition("-")
        out[name.lower().replace("_", "-")] = version
    return out


def describe(*, build_tiny: bool = True) -> dict[str, Any]:
    import torch

    from lowrankdp.provenance import provenance

    info: dict[str, Any] = {"torch": torch.__version__, "cuda_version": torch.version.cuda,
                            "cuda_available": bool(torch.cuda.is_available())}
    if info["cuda_available"]:
        p = torch.cuda.get_device_properties(0)
        info["cuda_device"] = {"name": p.name, "capability": f"{p.major}.{p.minor}",
                               "memory_gib": round(p.total_memory / 2**30, 1),
                               "multiprocessors": p.multi_processor_count, "count": torch.cuda.device_count()}
    info["provenance"] = provenance()
    info["carried_packages"] = carried_packages(os.environ.get("LOWRANKDP_CARRIED_SITE"))
    if build_tiny:
        from lowrankdp.models import build_tiny as _build

        t = time.perf_counter()
        info["tiny_model"] = str(_build())
        info["tiny_model_seconds"] = round(time.perf_counter() - t, 2)
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lowrankdp.gpu_check.env")
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-tiny", action="store_true", help="do not build the embedded tiny model")
    args = ap.parse_args(argv)
    info = describe(build_tiny=not args.no_tiny)
    Path(args.out).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
