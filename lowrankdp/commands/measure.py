"""``lowrankdp measure``: leakage and utility measurements of a causal LM on a dataset.

    lowrankdp measure --model PATH_OR_ID --data DIR [--base PATH_OR_ID] [--json]
                      [--batch-size N] [--max-length N] [--device DEV] [--max-records N]
                      [--exposure-max-candidates N] [--min-k K] [--bootstrap N] [--seed S]
                      [--out FILE] [--no-progress]

Sensitive-token loss (train split), utility loss (test split), per-type breakdown, canary exposure and
membership inference (LOSS, zlib, min-k %, reference = --base); see docs/measure.md for every key.
Models load through ``lowrankdp.models.load_base`` ("tiny", presets, local paths, hub ids).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("measure", help="sensitive-token loss, utility, exposure and MIA of a model",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model: 'tiny', a preset, a local directory or a hub id")
    p.add_argument("--data", required=True, help="dataset directory (train.jsonl, test.jsonl, meta.json)")
    p.add_argument("--base", default=None, help="base/reference model (same tokenizer): gains and reference MIA")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--device", default=None, help="e.g. cpu, cuda, cuda:1 (default: CUDA when present)")
    p.add_argument("--max-records", type=int, default=None, help="subsample each split to N records")
    p.add_argument("--exposure-max-candidates", type=int, default=None,
                   help="rank exactly up to N candidates, else fit (default 1000000; 0: always fit)")
    p.add_argument("--min-k", type=float, default=0.2, help="k of the min-k %% attack (default 0.2)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the JSON result to this file")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def _load(name: str, device):
    """"tiny", a preset, a fine-tuning run directory, a local checkpoint or a hub id (``load_base``)."""
    from ..models import load_base

    return load_base(name, device=device)


def _fmt(x: Any, nd: int = 4) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _summary(res: dict[str, Any], args) -> str:
    lines = [f"model {args.model} on {args.data}" + (f" (base {args.base})" if args.base else ""), ""]
    lines.append("| measure | value |")
    lines.append("|---|---|")
    keys = ["sensitive_loss_token", "sensitive_loss_seq_mean", "sensitive_loss_test_token",
            "memorization_gap_token", "utility_loss",
            "base_sensitive_loss_token", "base_utility_loss",
            "sensitive_loss_token_gain_vs_base", "utility_loss_gain_vs_base"]
    for k in keys:
        if k in res:
            lines.append(f"| {k} | {_fmt(res[k])} |")
    q = res["sensitive_loss_quantiles"]
    lines.append("| sensitive_loss_quantiles (min/q05/q25/median) | "
                 + " / ".join(_fmt(q[k]) for k in ("min", "q05", "q25", "median")) + " |")
    e = res["exposure"]
    if e is not None:
        lines.append(f"| exposure ({e['method']}, |R| = {e['space_size']}) | {e['value']:.2f} bits "
                     f"(max {e['max_value']:.2f}, rank {e['rank']:.6g}) |")
    lines += ["", "| type | sensitive loss | tokens |" + (" gain vs base |" if args.base else ""),
              "|---|---|---|" + ("---|" if args.base else "")]
    for t, v in res["per_type"].items():
        row = f"| {t} | {_fmt(v['sensitive_loss_token'])} | {v['n_tokens']} |"
        if args.base:
            row += f" {_fmt(v.get('gain_vs_base'))} |"
        lines.append(row)
    lines += ["", "| attack | AUC [95% CI] | TPR@0.1% FPR | TPR@1% FPR | ε lower bound |", "|---|---|---|---|---|"]
    for name, rep in res["mia"].items():
        if rep is None:
            lines.append(f"| {name} | — (needs --base) | | | |")
            continue
        tpr = rep["tpr_at_fpr"]
        lines.append(f"| {name} | {rep['auc']:.3f} [{rep['auc_ci'][0]:.3f}, {rep['auc_ci'][1]:.3f}] | "
                     f"{_fmt(tpr.get('0.001'), 3)} | {_fmt(tpr.get('0.01'), 3)} | "
                     f"{_fmt(rep['epsilon_lower_bound'], 3)} |")
    c = res["counts"]
    lines += ["", f"{c['n_members']} members (train) vs {c['n_nonmembers']} non-members (test); "
              f"{c['n_canary_records_excluded']} canary records excluded; device {res['settings']['device']}; "
              f"{res['seconds']['total']:.1f} s"]
    return "\n".join(lines)


def _check_device(spec: str):
    """``--device`` as a ``torch.device`` that exists on this machine, else ``ValueError``."""
    import torch

    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device must be a torch device such as cpu, cuda or cuda:1, got {spec!r}") from None
    if dev.type == "cpu":
        return dev
    try:
        torch.empty(1, device=dev)
    except (RuntimeError, AssertionError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"--device {spec!r} is not available on this machine ({reason})") from None
    return dev


def _run(args) -> int:
    from .._files import check_output_file
    from ..cli import print_json
    from ..data import load_dataset

    # everything that can be checked is checked before loading models and computing
    out = None if args.out is None else check_output_file(args.out, name="--out")
    dataset = load_dataset(args.data)
    import torch  # noqa: F401  (heavy imports only here)

    from ..results import atomic_write_json
    from ..measure import measure_all, resolve_device

    device = None if args.device is None else _check_device(args.device)
    model, tokenizer = _load(args.model, None)
    base = None
    if args.base is not None:
        base, _ = _load(args.base, None)
    device = resolve_device(model, device)
    res = measure_all(model, tokenizer, dataset, base_model=base, batch_size=args.batch_size,
                      max_length=args.max_length, device=device,
                      exposure_max_candidates=args.exposure_max_candidates, progress=not args.no_progress,
                      min_k=args.min_k, max_records=args.max_records, n_bootstrap=args.bootstrap,
                      seed=args.seed)
    res = {"model": str(args.model), "base": args.base, "data": str(args.data), **res}
    if out is not None:
        atomic_write_json(out, res)  # write-then-rename: never half a file
    if args.json:
        print_json(res)
    else:
        sys.stdout.write(_summary(res, args) + "\n")
    return 0
