"""``lowrankdp replicate --preset smoke``: the main job — data generation, the sweep, the report."""

from __future__ import annotations

import time

from .sweep import add_run_options, dry_run, parse_set

HELP = "run a full replication (data, sweep of all methods, report) from a preset"


def register(subparsers) -> None:
    p = subparsers.add_parser("replicate", help=HELP, description=HELP + ". See docs/sweep.md.")
    p.add_argument("--preset", default="smoke", help="smoke (CPU, minutes) or paper (GPU); default smoke")
    add_run_options(p, out_required=False, out_help="; default runs/PRESET")
    p.set_defaults(func=_main)


def _main(args) -> int:
    from lowrankdp.cli import print_json
    from lowrankdp.sweep import available_presets, load_config, run_sweep, write_report

    if args.preset not in available_presets():
        raise ValueError(f"preset must be one of {', '.join(available_presets())}, got {args.preset!r}")
    out = args.out or f"runs/{args.preset}"
    cfg = load_config(args.preset, overrides=args.override, set_values=parse_set(args.set_values))
    if args.dry_run:
        res = dry_run(cfg, out)
        print_json(res) if args.json else print("\n".join(r["name"] for r in res["runs"]))
        return 0
    t0 = time.time()
    result = run_sweep(cfg, out, resume=args.resume, retry_failed=args.retry_failed, executor=args.executor,
                       address=args.address, runner=args.runner, jobs=args.jobs)
    t1 = time.time()
    html, md = write_report(result.out_dir)
    t2 = time.time()
    summary = {**result.to_dict(), "report_html": str(html), "report_md": str(md),
               "sweep_s": round(t1 - t0, 1), "report_s": round(t2 - t1, 1), "total_s": round(t2 - t0, 1)}
    if args.json:
        print_json(summary)
    else:
        print(f"replicate --preset {args.preset}: {result.counts.get('ok', 0)} ok, "
              f"{result.counts.get('failed', 0)} failed of {result.total} runs; "
              f"sweep {t1 - t0:.0f} s, report {t2 - t1:.0f} s, total {t2 - t0:.0f} s")
        for name, reason in result.failed.items():
            print(f"  failed: {name}: {reason}")
        print(f"report: {html}\n        {md}")
    return 0 if not result.failed else 1
