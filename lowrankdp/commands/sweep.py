"""``lowrankdp sweep CONFIG --out DIR``: run any sweep config (preset name or TOML/YAML file)."""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "run a sweep from a preset or a TOML/YAML config file (grid of fine-tuning runs)"


def add_run_options(p: argparse.ArgumentParser, *, out_required: bool, out_help: str = "") -> None:
    p.add_argument("--out", default=None, required=out_required,
                   help="sweep directory (runs, SQLite index, report)" + out_help)
    p.add_argument("--override", "-o", action="append", default=[], metavar="FILE",
                   help="override file applied on top (TOML/YAML; repeatable, applied in order)")
    p.add_argument("--set", action="append", default=[], metavar="PATH=JSON", dest="set_values",
                   help='set one field, e.g. --set grid.epochs=[2] --set train.lr=1e-3')
    p.add_argument("--resume", action="store_true",
                   help="continue a sweep in --out: skip finished runs, redo interrupted ones")
    p.add_argument("--retry-failed", action="store_true", help="with --resume, also redo failed runs")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: child processes on this machine (default); ray: one Ray task per run")
    p.add_argument("--address", default=None, help="Ray cluster address (with --executor ray); default: start a local Ray")
    p.add_argument("--jobs", type=int, default=None, help="local executor: runs in parallel (default from config)")
    p.add_argument("--dry-run", action="store_true", help="validate and list the runs, train nothing")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--runner", default=None, help=argparse.SUPPRESS)  # a RUNNERS name ("synthetic": tests)


def parse_set(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        path, sep, raw = item.partition("=")
        if not sep or not path:
            raise ValueError(f"--set expects PATH=VALUE, got {item!r}")
        try:
            out[path] = json.loads(raw)
        except ValueError:
            out[path] = raw
    return out


def dry_run(cfg, out) -> dict[str, Any]:
    from pathlib import Path

    cfg.validate(check_data=True)
    runs = cfg.runs(Path(out).resolve())
    return {"config": cfg.name, "source": cfg.source, "runs": [{"name": r.name, "key": r.key[:10]} for r in runs],
            "n_runs": len(runs)}


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep", help=HELP, description=HELP)
    p.add_argument("config", help="preset name (smoke, paper) or path to a .toml/.yaml config")
    add_run_options(p, out_required=True)
    p.add_argument("--no-report", action="store_true", help="do not write report.html/report.md at the end")
    p.set_defaults(func=_main)


def _main(args) -> int:
    from lowrankdp.cli import print_json
    from lowrankdp.sweep import load_config, run_sweep

    cfg = load_config(args.config, overrides=args.override, set_values=parse_set(args.set_values))
    if args.dry_run:
        res = dry_run(cfg, args.out)
        if args.json:
            print_json(res)
        else:
            print(f"{res['n_runs']} runs in {cfg.name}:")
            for r in res["runs"]:
                print(f"  {r['name']}  ({r['key']})")
        return 0
    result = run_sweep(cfg, args.out, resume=args.resume, retry_failed=args.retry_failed,
                       executor=args.executor, address=args.address, runner=args.runner, jobs=args.jobs)
    out = result.to_dict()
    if not args.no_report:
        from lowrankdp.sweep import write_report

        html, md = write_report(result.out_dir)
        out["report_html"], out["report_md"] = str(html), str(md)
    if args.json:
        print_json(out)
    else:
        print(f"{result.counts.get('ok', 0)} ok, {result.counts.get('failed', 0)} failed of {result.total} runs "
              f"in {result.wall_time_s:.1f} s -> {result.out_dir}")
        for name, reason in result.failed.items():
            print(f"  failed: {name}: {reason}")
        if "report_html" in out:
            print(f"report: {out['report_html']}")
    return 0 if not result.failed else 1
