"""Detector quality: precision/recall/F1 per type of the regex PII detector against gold spans.

Scores ``lowrankdp.data.detect.detect_spans`` on
  1. generated CustomerSim (default sizes 10,000/1,000/1,000 + 10 canaries, seed 0) and SynBio
     (4,000/500/500, seed 0), all splits, canary records excluded;
  2. a small hand-written probe set (below) whose phrasings and formats were written to differ from
     the generators' templates (lower-case names, no cue words, spelled dates, international phones,
     addresses without ZIP, employers without a company suffix). It shows how optimistic (1) is.

Writes docs/results/detector_quality.md and .json with provenance. Run:
    .venv/bin/python experiments/detector_quality.py [--small]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lowrankdp.data import Record, Span, generate, load_dataset  # noqa: E402
from lowrankdp.data.detect import detect_spans, format_score_table, score_detector  # noqa: E402
from lowrankdp.provenance import provenance  # noqa: E402

# (text, [(type, value), ...]); each value's first occurrence at or after the previous one is labelled.
PROBES: list[tuple[str, list[tuple[str, str]]]] = [
    ("hey its maria gonzalez, my parcel never came", [("name", "maria gonzalez")]),
    ("Package for Dmitri Ivanov arrived damaged.", [("name", "Dmitri Ivanov")]),
    ("Olu Adeyemi called twice about the refund.", [("name", "Olu Adeyemi")]),
    ("Please ask for Jean-Luc Picard at the front desk.", [("name", "Jean-Luc Picard")]),
    ("The account holder, Wei Zhang, confirmed by text.", [("name", "Wei Zhang")]),
    ("You can text me on +1 415 555 0134 after six.", [("phone", "+1 415 555 0134")]),
    ("My mobile is 07700 900123 (UK).", [("phone", "07700 900123")]),
    ("Phone: 415-555-0199 ext. 12", [("phone", "415-555-0199")]),
    ("Reference order 123 45678 9012 please.", [("order_number", "123 45678 9012")]),
    ("order no. 555-12345-6789 was split in two", [("order_number", "555-12345-6789")]),
    ("tracking: 1z999aa10123456784", [("tracking_number", "1z999aa10123456784")]),
    ("The waybill number is AB12CD34EF.", [("tracking_number", "AB12CD34EF")]),
    ("She was born on the 3rd of May 1990.", [("birth_date", "3rd of May 1990")]),
    ("DOB 12.07.1984, verified.", [("birth_date", "12.07.1984")]),
    ("He was born March 9th, 1961 in Tulsa.", [("birth_date", "March 9th, 1961"), ("birthplace", "Tulsa")]),
    ("Born 1975-11-30 in Flagstaff, Arizona.", [("birth_date", "1975-11-30"), ("birthplace", "Flagstaff, Arizona")]),
    ("originally from Lyon, France", [("birthplace", "Lyon, France")]),
    ("Deliver to 221B Baker Street, London.", [("address", "221B Baker Street, London")]),
    ("Ship it to 48 Elm St, Apt 3, Springfield IL 62704", [("address", "48 Elm St, Apt 3, Springfield IL 62704")]),
    ("Address: 1600 Pennsylvania Avenue NW, Washington, DC 20500.",
     [("address", "1600 Pennsylvania Avenue NW, Washington, DC 20500")]),
    ("Contact: J.Smith@Example.COM or jsmith at example dot com", [("email", "J.Smith@Example.COM")]),
    ("mail her at priya_k@uni.ac.in", [("email", "priya_k@uni.ac.in")]),
    ("He works for Google as a data scientist.", [("employer", "Google")]),
    ("She left Acme Widgets Inc. in 2019.", [("employer", "Acme Widgets Inc")]),
    ("employed by St. Mary's Hospital since 2010", [("employer", "St. Mary's Hospital")]),
    ("SSN 078051120 on file", [("ssn", "078051120")]),
    ("social security no. 219-09-9999.", [("ssn", "219-09-9999")]),
    ("Nothing personal here: version 2.10.3, build 4455, room 101.", []),
    ("The meeting is on Tuesday at 10:30 in Building 7.", []),
    ("New York Times reported on Social Security reform.", []),
    ("Call center hours: 9-5, Monday to Friday.", []),
    ("Thanks, Sam. Your case number is 88213.", [("name", "Sam")]),
]


def probe_records() -> list[Record]:
    out = []
    for i, (text, vals) in enumerate(PROBES):
        spans, pos = [], 0
        for typ, v in vals:
            k = text.index(v, pos)
            spans.append(Span(k, k + len(v), typ))
            pos = k + len(v)
        out.append(Record(f"probe-{i:02d}", text, "test", tuple(spans), False))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="1,000 training records per corpus (quick check)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "detector_quality"))
    args = ap.parse_args()
    results: dict = {"provenance": provenance(ROOT), "corpora": {}}
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("customersim", "synbio"):
            sizes = {"train": 1000, "valid": 100, "test": 100} if args.small else None
            t0 = time.perf_counter()
            path = generate(kind, out_dir=Path(tmp) / kind, seed=0, sizes=sizes)
            ds = load_dataset(path)
            t_gen = time.perf_counter() - t0
            t0 = time.perf_counter()
            sc = score_detector(ds)
            t_det = time.perf_counter() - t0
            sc["generation_seconds"], sc["detection_seconds"] = round(t_gen, 2), round(t_det, 2)
            sc["sizes"], sc["seed"] = ds.sizes(), 0
            results["corpora"][kind] = sc
            tables.append((f"{kind} (seed 0, sizes {ds.sizes()}; all splits, canary records excluded)", sc))
            print(f"{kind}: generated+loaded in {t_gen:.1f} s, scored {sc['n_records']} records in {t_det:.1f} s")
            print(format_score_table(sc))
    probes = probe_records()
    sc = score_detector(probes)
    results["corpora"]["probe"] = sc
    misses = []
    for r in probes:
        pred = detect_spans(r.text)
        gold = set(r.spans)
        for s in pred:
            if s not in gold:
                misses.append(f"| {r.text!r} | predicted {s.type} {r.text[s.start:s.end]!r} |")
        for s in r.spans:
            if s not in set(pred):
                misses.append(f"| {r.text!r} | missed {s.type} {r.text[s.start:s.end]!r} |")
    results["probe_errors"] = misses
    tables.append((f"hand-written probe set ({len(probes)} sentences, formats unlike the templates)", sc))
    print(format_score_table(sc))

    prov = results["provenance"]
    lines = [
        "# Detector quality (regex PII detector vs gold spans)",
        "",
        "Produced by `experiments/detector_quality.py`"
        + (" --small" if args.small else "") + "; data from `lowrankdp data generate` (seed 0).",
        "",
        "Definitions: **exact** — same start, end and type; **overlap** — a predicted span is correct if",
        "it shares at least one character with a gold span of the same type (precision over predicted",
        "spans), a gold span is found if a predicted span of the same type shares a character with it",
        "(recall over gold spans); **character level** — non-whitespace characters marked sensitive by",
        "the detector vs by gold, ignoring type (what the token mask uses). Canary records are excluded.",
        "",
        "**Read with care.** The generated corpora use clean Faker values and the detector's cue words are",
        "ordinary English that the same author also used in the templates, so the generated-data numbers",
        "are an optimistic upper bound. The probe set (sentences written unlike the templates) shows what",
        "happens off-distribution; it is tiny (a few dozen spans), so its numbers are rough.",
        "",
    ]
    for title, sc in tables:
        lines += [f"## {title}", "", format_score_table(sc), ""]
    lines += ["### Probe-set errors", "", "| text | error |", "|---|---|", *misses, ""]
    lines += ["## Provenance", "", "```json", json.dumps(prov, indent=2), "```", ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines), encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out.with_suffix('.md')} and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
