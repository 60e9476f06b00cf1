"""Shared helpers for the attack experiment scripts (writing Markdown + JSON with provenance)."""

from __future__ import annotations

import os

# One BLAS thread: on a shared 2-core machine OpenBLAS threads thrash (a batched QR ran 20x slower).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json
import math
from pathlib import Path
from typing import Any, Sequence

from lowrankdp.results import to_jsonable as _to_jsonable
from lowrankdp.provenance import provenance

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if math.isinf(x):
            return "∞"
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e4):
            return f"{x:.{digits - 1}e}"
        return f"{x:.{digits}g}"
    return str(x)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def write(name: str, title: str, body: str, data: dict[str, Any], *, wall_s: float) -> Path:
    prov = provenance()
    RESULTS.mkdir(parents=True, exist_ok=True)
    md = RESULTS / f"{name}.md"
    md.write_text(
        f"# {title}\n\n{body}\n\n"
        f"_Produced by `experiments/{name}.py` in {wall_s:.0f} s on {prov['device']}, {prov['date']}; "
        f"git {prov['git_commit']} (dirty: {prov['git_dirty']}); numpy {prov['packages'].get('numpy')}, "
        f"torch {prov['packages'].get('torch')}, peft {prov['packages'].get('peft')}._\n"
    )
    (RESULTS / f"{name}.json").write_text(json.dumps(_to_jsonable({**data, "provenance": prov, "wall_s": wall_s}), indent=1))
    return md
