"""``lowrankdp data``: generate synthetic corpora, validate a dataset, score the PII detector.

    lowrankdp data generate customersim|synbio --out DIR [--seed S] [--train N --valid N --test N]
                            [--canary-repeats K] [--canary-digits D] [--json]
    lowrankdp data check DIR [--json]
    lowrankdp data detect-score DIR [--splits train,valid,test] [--max-records N] [--json]
"""

from __future__ import annotations

import argparse
import time
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("data", help="generate, validate and annotate sensitive-data corpora",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    g = sub.add_parser("generate", help="generate a seeded synthetic dataset with gold spans")
    g.add_argument("kind", choices=["customersim", "synbio"])
    g.add_argument("--out", required=True, help="output directory (created)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--train", type=int, default=None, help="regular training records (default per kind)")
    g.add_argument("--valid", type=int, default=None)
    g.add_argument("--test", type=int, default=None)
    g.add_argument("--canary-repeats", type=int, default=10, help="extra canary records in train (0: none)")
    g.add_argument("--canary-digits", type=int, default=6, help="secret length; candidate space 10**D")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    g.set_defaults(func=_generate)

    c = sub.add_parser("check", help="validate a dataset directory or JSONL file and print statistics")
    c.add_argument("path")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_check)

    d = sub.add_parser("detect-score", help="precision/recall/F1 of the regex detector against gold spans")
    d.add_argument("path")
    d.add_argument("--splits", default="train,valid,test", help="comma-separated splits to score")
    d.add_argument("--max-records", type=int, default=None)
    d.add_argument("--backend", choices=["regex", "presidio"], default="regex")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=_detect_score)


def _stats(ds) -> dict[str, Any]:
    from collections import Counter

    types: Counter[str] = Counter()
    n_chars = n_sens = n_unannotated = 0
    for r in ds.records():
        n_chars += len(r.text)
        if r.spans is None:
            n_unannotated += 1
            continue
        for s in r.spans:
            types[s.type] += 1
            n_sens += s.end - s.start
    canary = ds.canary
    return {
        "path": str(ds.path),
        "generator": ds.meta.get("generator"),
        "seed": ds.meta.get("seed"),
        "sizes": ds.sizes(),
        "records_without_spans": n_unannotated,
        "spans_per_type": dict(sorted(types.items())),
        "characters": n_chars,
        "sensitive_character_fraction": (n_sens / n_chars) if n_chars else None,
        "canary": None if canary is None else {
            "text": canary.text(), "secret": canary.secret, "space_size": canary.space_size,
            "repeats": canary.repeats, "record_ids": list(canary.record_ids)},
    }


def _print_stats(st: dict[str, Any]) -> None:
    print(f"dataset: {st['path']}" + (f" (generator {st['generator']}, seed {st['seed']})"
                                       if st["generator"] else ""))
    print("records: " + ", ".join(f"{k} {v}" for k, v in st["sizes"].items()))
    if st["records_without_spans"]:
        print(f"records without spans: {st['records_without_spans']}")
    print("spans:   " + ", ".join(f"{k} {v}" for k, v in st["spans_per_type"].items()))
    if st["sensitive_character_fraction"] is not None:
        print(f"sensitive characters: {100 * st['sensitive_character_fraction']:.1f}% of {st['characters']}")
    c = st["canary"]
    if c is None:
        print("canary:  none")
    else:
        print(f"canary:  {c['text']!r} x{c['repeats']} in train (candidate space {c['space_size']:,}); "
              f"records {c['record_ids'][0]} .. {c['record_ids'][-1]}")


def _generate(args: argparse.Namespace) -> int:
    from ..data import generate, load_dataset

    sizes = {k: v for k, v in (("train", args.train), ("valid", args.valid), ("test", args.test))
             if v is not None}
    t0 = time.perf_counter()
    path = generate(args.kind, out_dir=args.out, seed=args.seed, sizes=sizes or None,
                    canary_repeats=args.canary_repeats, canary_digits=args.canary_digits)
    st = _stats(load_dataset(path))
    st["seconds"] = round(time.perf_counter() - t0, 2)
    if args.json:
        from ..cli import print_json

        print_json(st)
    else:
        _print_stats(st)
        print(f"wrote {path}/{{train,valid,test}}.jsonl and meta.json in {st['seconds']:.1f} s")
    return 0


def _check(args: argparse.Namespace) -> int:
    from ..data import load_dataset

    st = _stats(load_dataset(args.path))
    if args.json:
        from ..cli import print_json

        print_json({"valid": True, **st})
    else:
        print("OK: schema valid")
        _print_stats(st)
    return 0


def _detect_score(args: argparse.Namespace) -> int:
    from functools import partial

    from ..data import load_dataset
    from ..data.detect import detect_spans, format_score_table, score_detector

    from .._validate import check_choice, check_int
    from ..data import SPLITS

    splits = [check_choice("--splits entry", s.strip(), SPLITS) for s in args.splits.split(",") if s.strip()]
    if not splits:
        raise ValueError(f"--splits must name at least one of {', '.join(SPLITS)}, got {args.splits!r}")
    if args.max_records is not None:
        check_int("--max-records", args.max_records, minimum=1)
    ds = load_dataset(args.path)
    if all(r.spans is None for r in ds.records(splits)):
        raise ValueError(f"{args.path}: no record has gold spans to score against")
    t0 = time.perf_counter()
    sc = score_detector(ds, splits=splits, detector=partial(detect_spans, backend=args.backend),
                        max_records=args.max_records)
    sc["seconds"] = round(time.perf_counter() - t0, 2)
    if args.json:
        from ..cli import print_json

        print_json(sc)
    else:
        print(format_score_table(sc))
        print(f"({sc['seconds']:.1f} s; {sc['definitions']})")
    return 0
