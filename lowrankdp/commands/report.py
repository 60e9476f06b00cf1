"""``lowrankdp report RUN_DIR``: HTML + Markdown report of a sweep, from stored results only."""

from __future__ import annotations

HELP = "write report.html (self-contained) and report.md for a sweep directory, from stored results"


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help=HELP, description=HELP)
    p.add_argument("run_dir", help="sweep directory (holds index.sqlite / sweep.json and runs/)")
    p.add_argument("--out", default=None, help="directory for report.html/report.md (default: RUN_DIR)")
    p.add_argument("--title", default=None, help="page title")
    p.add_argument("--json", action="store_true", help="print the output paths as JSON")
    p.set_defaults(func=_main)


def _main(args) -> int:
    from lowrankdp.cli import print_json
    from lowrankdp.sweep import write_report

    html, md = write_report(args.run_dir, out=args.out, title=args.title)
    if args.json:
        print_json({"html": str(html), "markdown": str(md)})
    else:
        print(f"wrote {html}\nwrote {md}")
    return 0
