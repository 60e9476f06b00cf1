"""Sweep report: a self-contained HTML page and a Markdown file, drawn only from the stored results of a sweep
directory (each run's ``result.json`` through :func:`lowrankdp.results.read_record`) — nothing is retrained.

- :mod:`.loading`: the index and every run's record; unfinished and unreadable runs are listed, never drawn or
  judged as final; a damaged index is a one-line ValueError naming the file.
- :mod:`.claims`: one function per claim, each returning a frozen :class:`~.claims.ClaimResult` (holds / does
  not hold / inconclusive / not testable, with its numbers), comparing like with like over seeds.
- :mod:`.figures`: the figures (matplotlib, imported lazily).
- :mod:`.render`: HTML and Markdown, every value escaped.

Core layer: no torch. See docs/sweep.md, "Report".
"""

from __future__ import annotations

import os
from pathlib import Path

from ...results import atomic_write_text
from .claims import ClaimResult, Verdict, judge_all, sweep_limitations
from .figures import draw_all
from .loading import RunEntry, RunState, SweepData, load_sweep
from .render import build_blocks, to_html, to_markdown

__all__ = ["write_report", "load_sweep", "judge_all", "sweep_limitations", "ClaimResult", "Verdict", "RunEntry",
           "RunState", "SweepData"]

FIGURE_DIR = "report_figures"


def write_report(sweep_dir: str | os.PathLike, *, out: str | os.PathLike | None = None,
                 title: str | None = None) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` (+ ``report_figures/*.png``) for a sweep directory; returns
    (html path, markdown path). ValueError (one line, naming the file) for a damaged sweep directory."""
    data = load_sweep(sweep_dir)
    out_dir = Path(out) if out is not None else Path(sweep_dir)
    cfg = data.sweep.get("config") if isinstance(data.sweep.get("config"), dict) else {}
    report_cfg = cfg.get("report") if isinstance(cfg.get("report"), dict) else {}
    attack = str(report_cfg.get("attack") or "loss")
    name = data.sweep.get("name") or Path(sweep_dir).name
    title = title or f"lowrankdp report — {name}"
    claims = judge_all(data.runs)
    figures = draw_all(data.runs, attack=attack)
    blocks = build_blocks(data, title, claims, figures, sweep_limitations(data.runs), attack)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig_dir = out_dir / FIGURE_DIR
    fig_dir.mkdir(exist_ok=True)
    for f in figures:
        if f.png is not None:
            (fig_dir / f"{f.key}.png").write_bytes(f.png)
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    atomic_write_text(html_path, to_html(blocks, title))
    atomic_write_text(md_path, to_markdown(blocks))
    return html_path, md_path
