"""``lowrankdp account``: ε of DP-SGD with none / fresh / fixed / high-probability projections, side by side."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "account",
        help="privacy accounting (epsilon) for DP-SGD with optional random projections",
        description=(
            "Print epsilon for plain DP-SGD and for projected variants (fresh projection each step, one fixed "
            "projection, high-probability baseline; docs/theory.md §4). The fixed projection and the "
            "high-probability baseline rely on stated assumptions, printed with the numbers."
        ),
    )
    p.add_argument("--noise-multiplier", type=float, required=True, help="z = sigma / C")
    p.add_argument("--sampling-rate", type=float, required=True, help="Poisson sampling rate q")
    p.add_argument("--steps", type=int, required=True, help="number of steps T")
    p.add_argument("--delta", type=float, required=True, help="target delta")
    p.add_argument("--d", type=int, nargs="+", default=None,
                   help="dimension(s) the projection acts on (several: one per projected layer)")
    p.add_argument("--r", type=int, default=None, help="projection rank")
    p.add_argument("--accountant", choices=("rdp", "pld"), default="rdp",
                   help="rdp (default) or pld (dp_accounting, pessimistic; none/fresh only, RDP shown as well)")
    p.add_argument("--neighboring", choices=("add_remove", "replace_one"), default="add_remove")
    p.add_argument("--json", action="store_true", help="print one JSON object keyed by projection")
    p.set_defaults(func=_run)


def _fmt(x) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and x == float("inf"):
        return "inf"
    return f"{x:.4f}"


def _run(args: argparse.Namespace) -> int:
    from lowrankdp.accounting import epsilon_report
    from lowrankdp.cli import print_json

    if (args.d is None) != (args.r is None):
        raise ValueError("--d and --r must be given together")
    d = None if args.d is None else (args.d[0] if len(args.d) == 1 else list(args.d))
    rep = epsilon_report(noise_multiplier=args.noise_multiplier, sampling_rate=args.sampling_rate,
                         steps=args.steps, delta=args.delta, d=d, r=args.r, accountant=args.accountant,
                         neighboring=args.neighboring)
    projections = list(rep["epsilon"])
    if args.json:
        obj = {}
        for p in projections:
            obj[p] = {
                "epsilon": rep["epsilon"][p],
                "epsilon_rdp": rep["epsilon_rdp"][p],
                "best_order": rep["best_order"][p],
                "assumption": rep["assumptions"][p],
            }
            if "epsilon_pld" in rep:
                obj[p]["epsilon_pld"] = rep["epsilon_pld"][p]
            if p in rep["notes"]:
                obj[p]["note"] = rep["notes"][p]
        obj["settings"] = rep["settings"]
        print_json(obj)
        return 0
    s = rep["settings"]
    print(f"DP-SGD: z={s['noise_multiplier']:g}, q={s['sampling_rate']:g}, T={s['steps']}, delta={s['delta']:g}, "
          f"neighboring={s['neighboring']}" + (f", d={s['d']}, r={s['r']}" if s["d"] is not None else ""))
    header = f"{'projection':<18}{'eps (RDP)':>12}{'best order':>12}"
    if "epsilon_pld" in rep:
        header += f"{'eps (PLD)':>12}"
    print(header)
    for p in projections:
        order = rep["best_order"][p]
        line = f"{p:<18}{_fmt(rep['epsilon_rdp'][p]):>12}{('-' if order is None else f'{order:g}'):>12}"
        if "epsilon_pld" in rep:
            line += f"{_fmt(rep['epsilon_pld'][p]):>12}"
        print(line)
    for p in projections:
        if rep["assumptions"][p]:
            print(f"\n[{p}] {rep['assumptions'][p]}")
        if p in rep["notes"]:
            print(f"[{p}] note: {rep['notes'][p]}")
    return 0
