"""``lowrankdp account``: ε of DP-SGD with none / fresh / fixed / high-probability projections, side by side;
or, with ``--target-epsilon``, the noise multiplier that meets a target ε for each projection kind."""

from __future__ import annotations

import argparse
import math


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "account",
        help="privacy accounting (epsilon) for DP-SGD with optional random projections; or calibrate the noise",
        description=(
            "Print epsilon for plain DP-SGD and for projected variants (fresh projection each step, one fixed "
            "projection, high-probability baseline; docs/theory.md §4). With --target-epsilon, print instead the "
            "smallest noise multiplier that meets the target for each projection kind, and the epsilon it achieves. "
            "The fixed projection and the high-probability baseline rely on stated assumptions, printed with the "
            "numbers."
        ),
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--noise-multiplier", type=float, help="z = sigma / C")
    what.add_argument("--target-epsilon", type=float,
                      help="calibrate z per projection kind so that epsilon <= this target (within 2 %%)")
    p.add_argument("--sampling-rate", type=float, required=True, help="Poisson sampling rate q")
    p.add_argument("--steps", type=int, required=True, help="number of steps T")
    p.add_argument("--delta", type=float, required=True, help="target delta")
    p.add_argument("--d", type=int, nargs="+", default=None,
                   help="dimension(s) the projection acts on (several: one per projected layer)")
    p.add_argument("--r", type=int, default=None, help="projection rank")
    p.add_argument("--span-dim", type=int, default=1,
                   help="directions spanned by one example's projected side (e.g. tokens per record); used by "
                        "the fixed projection, and by the fresh projection's truncated moment and PLD; default 1 "
                        "(rank one)")
    p.add_argument("--accountant", choices=("rdp", "pld"), default="rdp",
                   help="rdp (default) or pld (dp_accounting, pessimistic; none, fresh and fixed; RDP "
                        "shown as well)")
    p.add_argument("--neighboring", choices=("add_remove", "replace_one"), default="add_remove")
    p.add_argument("--max-noise-multiplier", type=float, default=None,
                   help="with --target-epsilon: refuse (before any calibration) a target that needs more noise")
    p.add_argument("--json", action="store_true", help="print one JSON object keyed by projection")
    p.set_defaults(func=_run)


def _fmt(x) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and x == float("inf"):
        return "inf"
    return f"{x:.4f}"


def _d_arg(args):
    if (args.d is None) != (args.r is None):
        raise ValueError("--d and --r must be given together")
    return None if args.d is None else (args.d[0] if len(args.d) == 1 else list(args.d))


def _run(args: argparse.Namespace) -> int:
    if args.target_epsilon is not None:
        return _run_calibrate(args)
    from lowrankdp.accounting import epsilon_report
    from lowrankdp.cli import print_json

    d = _d_arg(args)
    rep = epsilon_report(noise_multiplier=args.noise_multiplier, sampling_rate=args.sampling_rate,
                         steps=args.steps, delta=args.delta, d=d, r=args.r, accountant=args.accountant,
                         neighboring=args.neighboring, span_dim=args.span_dim)
    projections = list(rep["epsilon"])
    if args.json:
        obj = {}
        for p in projections:
            obj[p] = {
                "epsilon": rep["epsilon"][p],
                "source": rep["source"][p],
                "kind": rep["kind"][p],
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
          f"neighboring={s['neighboring']}" + (f", d={s['d']}, r={s['r']}" if s["d"] is not None else "")
          + (f", span_dim={s['span_dim']}" if s["span_dim"] != 1 else ""))
    header = f"{'projection':<18}{'eps (RDP)':>12}{'best order':>12}"
    if "epsilon_pld" in rep:
        header += f"{'eps (PLD)':>12}"
    header += f"{'epsilon':>12}  source (kind)"
    print(header)
    for p in projections:
        order = rep["best_order"][p]
        line = f"{p:<18}{_fmt(rep['epsilon_rdp'][p]):>12}{('-' if order is None else f'{order:g}'):>12}"
        if "epsilon_pld" in rep:
            line += f"{_fmt(rep['epsilon_pld'][p]):>12}"
        line += f"{_fmt(rep['epsilon'][p]):>12}  {rep['source'][p]} ({rep['kind'][p]})"
        print(line)
    for p in projections:
        if rep["assumptions"][p]:
            print(f"\n[{p}] {rep['assumptions'][p]}")
        if p in rep["notes"]:
            print(f"[{p}] note: {rep['notes'][p]}")
    return 0


def _run_calibrate(args: argparse.Namespace) -> int:
    from lowrankdp import accounting as A
    from lowrankdp._validate import check_int, check_probability, check_real
    from lowrankdp.cli import print_json

    # every argument is checked before any calibration starts
    target = check_real("target_epsilon", args.target_epsilon, lo=0.0, lo_open=True)
    check_probability("sampling_rate", args.sampling_rate, open_left=False, open_right=False)
    check_int("steps", args.steps, minimum=0)
    check_real("delta", args.delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    if args.max_noise_multiplier is not None:
        check_real("max_noise_multiplier", args.max_noise_multiplier, lo=0.0, lo_open=True)
    d = _d_arg(args)
    projections = A.PROJECTIONS if d is not None else ("none",)
    common = dict(sampling_rate=args.sampling_rate, steps=args.steps, delta=args.delta, d=d, r=args.r,
                  accountant=args.accountant, neighboring=args.neighboring, span_dim=args.span_dim)
    if args.max_noise_multiplier is not None:
        for p in projections:
            e_max = A.epsilon(noise_multiplier=args.max_noise_multiplier, projection=p, **common)
            if e_max > target:
                raise ValueError(
                    f"target_epsilon={target:g} is unreachable for projection={p} with noise_multiplier <= "
                    f"{args.max_noise_multiplier:g} and steps={args.steps}: the smallest epsilon reachable there is "
                    f"{e_max:.6g}")
    rows = {}
    for p in projections:
        z = A.calibrate_noise(target_epsilon=target, projection=p, max_noise_multiplier=args.max_noise_multiplier,
                              **common)
        res = A.epsilon_result(noise_multiplier=z, projection=p, **common)
        rows[p] = {"noise_multiplier": z, "epsilon": res.epsilon, "source": res.source, "kind": res.kind,
                   "assumption": A.api.ASSUMPTIONS[p]}
    if args.json:
        print_json({"target_epsilon": target, **rows,
                    "settings": {k: v for k, v in common.items()} | {"target_epsilon": target}})
        return 0
    print(f"Calibrated DP-SGD noise for target epsilon={target:g}: q={args.sampling_rate:g}, T={args.steps}, "
          f"delta={args.delta:g}, neighboring={args.neighboring}"
          + (f", d={d}, r={args.r}" if d is not None else "")
          + (f", span_dim={args.span_dim}" if args.span_dim != 1 else ""))
    print(f"{'projection':<18}{'noise mult.':>14}{'epsilon':>12}  source (kind)")
    for p, row in rows.items():
        z = row["noise_multiplier"]
        print(f"{p:<18}{(f'{z:.6g}' if math.isfinite(z) else 'inf'):>14}{_fmt(row['epsilon']):>12}  "
              f"{row['source']} ({row['kind']})")
    for p, row in rows.items():
        if row["assumption"]:
            print(f"\n[{p}] {row['assumption']}")
    return 0
