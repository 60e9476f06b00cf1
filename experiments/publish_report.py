"""Publish a sweep's stored report into docs/results/ (Markdown, figures, and a screenshot).

    python experiments/publish_report.py runs/smoke --name smoke

Copies ``RUN_DIR/report.md`` to ``docs/results/<name>_report.md`` (figure links rewritten) and its
figures to ``docs/results/<name>_report_figures/``, then, if Chromium is installed, renders
``RUN_DIR/report.html`` headless to ``docs/results/<name>_report.png``. Nothing is recomputed: the
report was drawn from stored results by ``lowrankdp report``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
)


def publish(run_dir: Path, name: str, *, width: int = 1400, height: int = 4000) -> list[Path]:
    report_md, report_html = run_dir / "report.md", run_dir / "report.html"
    if not report_md.is_file():
        raise SystemExit(f"{report_md} not found: run `lowrankdp report {run_dir}` first")
    figures = RESULTS / f"{name}_report_figures"
    shutil.rmtree(figures, ignore_errors=True)
    shutil.copytree(run_dir / "report_figures", figures)
    md = report_md.read_text().replace("](report_figures/", f"]({figures.name}/")
    out_md = RESULTS / f"{name}_report.md"
    out_md.write_text(md)
    written = [out_md, figures]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium not found: no screenshot (apt-get install chromium)", file=sys.stderr)
        return written
    shot = RESULTS / f"{name}_report.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             f"--screenshot={shot}", report_html.resolve().as_uri()],
            check=True, capture_output=True, timeout=120,
        )
    written.append(shot)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--name", default="smoke")
    args = ap.parse_args()
    for p in publish(args.run_dir, args.name):
        print(p)


if __name__ == "__main__":
    main()
