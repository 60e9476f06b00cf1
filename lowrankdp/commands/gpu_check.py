"""``lowrankdp gpu-check``: the GPU check in one call (docs/gpu.md); ``--dry-run`` rehearses it on the CPU."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "gpu-check", help="run the GPU test suite, the GPU benchmark rows and the GPU-scale comparison, time-boxed",
        description="Every stage in its own process with a time limit; a failed or cut stage is recorded and the "
                    "next one runs. Writes docs/results/gpu_*.md/.json (dry run: WORK/results) and prints a "
                    "one-screen summary. `make gpu-check` runs this after installing carried wheels.")
    p.add_argument("--dry-run", action="store_true", help="the CPU rehearsal: same stages at toy sizes")
    p.add_argument("--budget-s", type=float, default=None,
                   help="total time budget in seconds (default 540 on a GPU, 300 for --dry-run)")
    p.add_argument("--work-dir", default="runs/gpu_check", help="scratch folder (emptied first; default %(default)s)")
    p.add_argument("--results-dir", default=None,
                   help="where gpu_*.md/.json go (default docs/results; --dry-run: WORK/results)")
    p.add_argument("--copy-to", default=None,
                   help="also write gpu_check_results.tar.gz, gpu_check_summary.txt and the check's Markdown page here")
    p.add_argument("--json", action="store_true", help="print the result document as JSON instead of the summary")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from lowrankdp.cli import print_json
    from lowrankdp.gpu_check import run_check

    doc = run_check(mode="dry" if args.dry_run else "gpu", work_dir=args.work_dir, results_dir=args.results_dir,
                    budget_s=args.budget_s, copy_to=args.copy_to)
    if args.json:
        print_json(doc)
    else:
        print(doc["screen"])
    return 0 if all(s["status"] == "ok" for s in doc["stages"]) else 1
