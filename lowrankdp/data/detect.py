"""PII detector for data without gold spans, and its scoring against gold spans.

Backends
    ``"regex"`` (default, no dependencies): one regular-expression recogniser per type —
    ``email``, ``order_number`` (``ddd-ddddd-dddd``), ``ssn`` (``ddd-dd-dddd``), ``phone`` (US 10-digit
    with ``-``, ``.``, space or no separator, or ``(ddd) ddd-dddd``), ``tracking_number`` (10 upper-case
    letters/digits mixing both), ``address`` (``<number> <Capitalised words>[ Apt./Suite n], <City>, <ST>
    <ZIP>``), ``birth_date`` (*every* date in the text: "March 3, 1985", "3 March 1985",
    "03/03/1985", "1985-03-03"), ``birthplace`` ("<Capitalised words>, <full US state name>"),
    ``employer`` (company suffixes such as Inc/LLC/Ltd/PLC/Group/and Sons, "A, B and C", "A-B", or a
    capitalised phrase after "works at", "employed by", "joined", …) and ``name``. Names are the hard
    case: (1) one or two capitalised words after cue phrases ("my name is", "I'm", "this is", "Thanks,",
    "under", "Mr.", …), (2) a capitalised word pair that is not made of common sentence words, not part of
    a place, and (3) later mentions of the first or last word of a name already found in the same text.
    Overlaps are resolved by priority — the fixed-format types in the order above, then cue-introduced
    names, then the weak "A-B" employer pattern (also a hyphenated surname), then bare capitalised
    pairs, then coreferent mentions — and then by length.
    The cues are ordinary English, but the author also wrote the generators' templates, so the scores in
    ``docs/results/detector_quality.md`` are optimistic for real data.
``"presidio"``: Microsoft Presidio's ``AnalyzerEngine`` when ``presidio_analyzer`` is importable (an
    optional extra; not installed or tested in CI). Its entity types are mapped onto ours
    (``PERSON``→name, ``PHONE_NUMBER``→phone, ``EMAIL_ADDRESS``→email, ``US_SSN``→ssn,
    ``DATE_TIME``→birth_date, ``LOCATION``→address); other entities are dropped.

The canary sentence is not a detector target (its template is known from ``meta.json``).

Scoring (:func:`score_detector`), per type and micro-averaged over types:
    * exact — a predicted span is a true positive iff a gold span has the same start, end and type;
      precision = TP / predicted, recall = TP / gold.
    * overlap — a predicted span counts as correct iff it shares at least one character with a gold span
      of the same type; a gold span counts as found iff a predicted span of the same type shares a
      character with it; precision = correct predicted / predicted, recall = found gold / gold.
    * characters (type-agnostic) — over non-whitespace characters: sensitive by prediction vs by gold,
      which is what the token mask (:mod:`.masks`) consumes.
    F1 = 2PR / (P + R). A ratio with an empty denominator is reported as ``None``.
"""

from __future__ import annotations

import bisect
import itertools
import re
from typing import Any, Callable, Iterable, Sequence

from .records import Record, Span

__all__ = ["detect_spans", "score_detector", "DETECTOR_TYPES", "format_score_table"]

DETECTOR_TYPES: tuple[str, ...] = (
    "email", "order_number", "ssn", "phone", "tracking_number", "address", "birth_date",
    "birthplace", "employer", "name",
)
_PRIORITY = {t: i for i, t in enumerate(DETECTOR_TYPES)}

_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|December")
_STATES = ("Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|"
           "Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|"
           "Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|"
           "New Mexico|New York|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|"
           "Rhode Island|South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|"
           "West Virginia|Wisconsin|Wyoming|District of Columbia")
_CAP = r"[A-Z][a-z]+(?:-[A-Z]?[a-z]+|'[A-Z][a-z]+)?"  # a capitalised word: Smith, O'Neil, Smith-Jones
_CAPS = rf"{_CAP}(?: {_CAP})*"
# At most _MAX_PHRASE words where a phrase is followed by a fixed ending (", <State>", " Inc"): an unbounded
# run would make every capitalised word of a long run restart the scan to its end (quadratic time).
_MAX_PHRASE = 6
_CAPS_BOUNDED = rf"{_CAP}(?: {_CAP}){{0,{_MAX_PHRASE - 1}}}"

_WEAK_EMPLOYER = rf"\b{_CAP}-{_CAP}\b"  # "Moore-Cardenas": also a hyphenated surname, so weak
_SIMPLE: dict[str, list[re.Pattern[str]]] = {
    "email": [re.compile(r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")],
    "order_number": [re.compile(r"(?<![\w-])\d{3}-\d{5}-\d{4}(?![\w-])")],
    "ssn": [re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")],
    "phone": [re.compile(r"(?<![\w(-])(?:\(\d{3}\) ?\d{3}[-. ]\d{4}|\d{3}([-. ]?)\d{3}\1\d{4})(?![\w-])")],
    "tracking_number": [re.compile(r"\b(?=[A-Z0-9]*\d)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{10}\b")],
    "address": [re.compile(rf"\b\d{{1,6}}(?: [A-Z][A-Za-z'.-]*)+(?: (?:Apt\.|Suite|Unit) \d+)?, "
                           rf"[A-Z][A-Za-z'.-]*(?: [A-Z][A-Za-z'.-]*)*, [A-Z]{{2}} \d{{5}}(?:-\d{{4}})?\b")],
    "birth_date": [re.compile(rf"\b(?:(?:{_MONTHS}) \d{{1,2}}, \d{{4}}|\d{{1,2}} (?:{_MONTHS}) \d{{4}}|"
                              r"\d{1,2}/\d{1,2}/\d{4}|\d{4}-\d{2}-\d{2})\b")],
    "birthplace": [re.compile(rf"\b{_CAPS_BOUNDED}, (?:{_STATES})\b")],
    "employer": [
        re.compile(rf"\b{_CAP}(?:-{_CAP})?(?:,? {_CAP}){{0,{_MAX_PHRASE - 1}}} (?:Inc|LLC|Ltd|PLC|Group|Corp|Corporation|"
                   r"Company|and Sons)\b"),
        re.compile(rf"\b{_CAP}, {_CAP},? and {_CAP}\b"),
        re.compile(_WEAK_EMPLOYER),
        re.compile(rf"(?:works (?:at|for)|employed by|joined|hired by|employer is|working at) ({_CAPS})"),
    ],
}

_NAME_CUES = re.compile(
    rf"(?:\b[Mm]y name is|\bname is|\bI'm|\bI am|\b[Tt]his is|\b[Ii]t's|\bThanks,|\bThank you,|\bunder|"
    rf"\bnamed|\bMr\.|\bMs\.|\bMrs\.|\bDr\.|\bDear|\b[Pp]leasure,|\bGreat,|\bHi,|\bHello,|\bSure,) "
    rf"({_CAP}(?: {_CAP})?)(?![\w-])")
_NAME_PAIR = re.compile(rf"(?<![\w.-])({_CAP} {_CAP})(?![\w-])")
# Capitalised words that start sentences or name institutions, not people (general English).
_NOT_NAMES = frozenset("""
A An The This That These Those There Here It Its I My Mine Me We Our You Your He She His Her Him They Their
Them Who What When Where Why How Which Please Thanks Thank Hello Hi Hey Dear Good Great Sure Okay Ok Yes No
Not Perfect Glad Happy Sorry Let Can Could May Might Must Would Will Shall Should Do Does Did Is Are Was Were
Be Been Have Has Had Got Get Give In On At To For From By Of With Without After Before During Since Until
About Born Mail Tax Friends Family Home Work Social Security Administration Number Street Avenue Road
Monday Tuesday Wednesday Thursday Friday Saturday Sunday Order Phone Email Address Tracking Customer
Support Service Help Desk Package Parcel Delivery Actually Also And But Or So If Then Now Today Tomorrow
Yesterday One Moment ID SSN Inc LLC Ltd PLC Group Corp Company Sons Later Next Last First Soon Once Still
However Meanwhile Finally Recently Eventually Afterwards Later Every Each All Some Many Most Both Neither
""".split())


# Candidate priorities (lower wins an overlap): the fixed-format types, then names introduced by a cue
# phrase, then the weak employer pattern "A-B", then bare capitalised pairs, then coreferent mentions.
_P_CUE_NAME, _P_WEAK_EMPLOYER, _P_PAIR_NAME, _P_COREF = 20, 21, 22, 23


def _regex_spans(text: str) -> list[Span]:
    cands: list[tuple[int, Span]] = []
    for typ, pats in _SIMPLE.items():
        for pat in pats:
            weak = typ == "employer" and pat.pattern == _WEAK_EMPLOYER
            prio = _P_WEAK_EMPLOYER if weak else _PRIORITY[typ]
            for m in pat.finditer(text):
                g = 1 if (pat.groups and typ == "employer") else 0
                if m.start(g) < m.end(g):
                    cands.append((prio, Span(m.start(g), m.end(g), typ)))
    for m in _NAME_CUES.finditer(text):
        words = m.group(1).split(" ")
        # keep the leading words that are not common sentence words
        keep: list[str] = []
        at_clause_end = _CLAUSE_END.match(text, m.end(1)) is not None
        for j, w in enumerate(words):
            # a common word ends the name, unless it is a surname closing the clause ("Beth May.")
            if w in _NOT_NAMES and not (j > 0 and j == len(words) - 1 and at_clause_end):
                break
            keep.append(w)
        if keep:
            v = " ".join(keep)
            cands.append((_P_CUE_NAME, Span(m.start(1), m.start(1) + len(v), "name")))
    for m in _NAME_PAIR.finditer(text):
        a, b = m.group(1).split(" ")
        if a in _NOT_NAMES or b in _NOT_NAMES:
            continue
        cands.append((_P_PAIR_NAME, Span(m.start(1), m.end(1), "name")))
    chosen = _resolve(cands)
    # coreference: later single-word mentions of a detected two-word name
    words = set()
    for s in chosen:
        if s.type == "name":
            words.update(w for w in text[s.start:s.end].split(" ") if w not in _NOT_NAMES)
    if words:
        extra = [(_P_COREF, s) for s in _mentions(text, words)]
        chosen = _resolve([(0, s) for s in chosen] + extra)
    return chosen


_CLAUSE_END = re.compile(r"\s*(?:[.,;!?]|$)")
# A mention of a known name word w: not preceded by [\w@.-], not followed by [\w@-] or ".<word char>".
# Every w has the shape of _CAP: "Xxx", "Xxx-xxx", "Xxx-Xxx" or "Xxx'Xxx". So a mention starting at p ends
# either after the lowercase run of "Xxx" or after one more segment; any other end is followed by a letter.
# Looking up those (at most two) candidates in a set is linear in the text, where one regular expression
# alternating over all words costs (length of text) × (number of words).
_MENTION_START = re.compile(r"(?<![\w@.-])[A-Z][a-z]+")
_MENTION_SEGMENT = re.compile(r"-[A-Z]?[a-z]+|'[A-Z][a-z]+")
_MENTION_STOP = re.compile(r"[\w@-]|\.\w")


def _mentions(text: str, words: set[str]) -> list[Span]:
    """Non-overlapping mentions of ``words``, leftmost first, the shorter candidate first at each start."""
    out: list[Span] = []
    pos = 0
    while (m := _MENTION_START.search(text, pos)) is not None:
        start, end = m.start(), m.end()
        pos = end
        if text[start:end] in words and _MENTION_STOP.match(text, end) is None:
            out.append(Span(start, end, "name"))
            continue
        seg = _MENTION_SEGMENT.match(text, end)
        if seg is not None and text[start:seg.end()] in words and _MENTION_STOP.match(text, seg.end()) is None:
            out.append(Span(start, seg.end(), "name"))
            pos = seg.end()
    return out


def _resolve(cands: Iterable[tuple[int, Span]]) -> list[Span]:
    """Greedy non-overlapping selection: lower priority number first, then longer, then earlier.

    Occupied characters are marked in a byte array, so the cost is the total length of the candidates
    (each pattern's matches are disjoint: at most a few times the text length) plus the sort.
    """
    order = sorted(set(cands), key=lambda c: (c[0], -(c[1].end - c[1].start), c[1].start, c[1].type))
    if not order:
        return []
    used = bytearray(max(s.end for _, s in order))
    taken: list[Span] = []
    for _, s in order:
        if used.find(1, s.start, s.end) < 0:
            used[s.start:s.end] = b"\x01" * (s.end - s.start)
            taken.append(s)
    return sorted(taken)


_PRESIDIO_MAP = {"PERSON": "name", "PHONE_NUMBER": "phone", "EMAIL_ADDRESS": "email", "US_SSN": "ssn",
                 "DATE_TIME": "birth_date", "LOCATION": "address"}
_presidio_engine: Any = None


def _presidio_spans(text: str) -> list[Span]:  # pragma: no cover - optional dependency, not installed
    global _presidio_engine
    if _presidio_engine is None:
        try:
            from presidio_analyzer import AnalyzerEngine
        except ImportError as exc:
            raise ValueError("backend 'presidio' needs the optional package presidio_analyzer "
                             "(pip install presidio-analyzer) and a spaCy English model") from exc
        _presidio_engine = AnalyzerEngine()
    res = _presidio_engine.analyze(text=text, language="en")
    return _resolve((-r.score, Span(r.start, r.end, _PRESIDIO_MAP[r.entity_type])) for r in res
                    if r.entity_type in _PRESIDIO_MAP)


def presidio_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("presidio_analyzer") is not None


def detect_spans(text: str, *, backend: str = "regex") -> list[Span]:
    """Sorted, non-overlapping spans of personal values found in ``text`` (see module docstring)."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    if backend == "regex":
        return _regex_spans(text)
    if backend == "presidio":
        return _presidio_spans(text)
    raise ValueError(f"backend must be one of 'regex', 'presidio', got {backend!r}")


# ------------------------------------------------------------------------------------------ scoring

def _ratio(a: int, b: int) -> float | None:
    return None if b == 0 else a / b


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _prf(correct_pred: int, n_pred: int, found_gold: int, n_gold: int) -> dict[str, Any]:
    p, r = _ratio(correct_pred, n_pred), _ratio(found_gold, n_gold)
    return {"precision": p, "recall": r, "f1": _f1(p, r)}


class _IntervalIndex:
    """Spans grouped by type, for "does any span of this type share a character with s?" in O(log n)."""

    def __init__(self, spans: Iterable[Span]) -> None:
        by_type: dict[str, list[Span]] = {}
        for sp in spans:
            by_type.setdefault(sp.type, []).append(sp)
        self._starts: dict[str, list[int]] = {}
        self._max_end: dict[str, list[int]] = {}  # running maximum of the ends, in start order
        for t, group in by_type.items():
            group.sort()
            self._starts[t] = [sp.start for sp in group]
            self._max_end[t] = list(itertools.accumulate((sp.end for sp in group), max))

    def overlaps(self, s: Span) -> bool:
        starts = self._starts.get(s.type)
        if not starts:
            return False
        k = bisect.bisect_left(starts, s.end)  # spans starting before s ends
        return k > 0 and self._max_end[s.type][k - 1] > s.start


def score_detector(dataset: Any, *, splits: Sequence[str] | None = None,
                   detector: Callable[[str], Sequence[Span]] | None = None,
                   max_records: int | None = None) -> dict[str, Any]:
    """Precision/recall/F1 of ``detector`` (default :func:`detect_spans`) against gold spans.

    ``dataset``: a :class:`~.schema.Dataset` or an iterable of records. Records without gold spans and
    canary records are skipped; gold spans of type ``canary`` are ignored. Returns ``{"n_records",
    "types": {type: {"n_gold", "n_pred", "exact": {precision, recall, f1}, "overlap": {...}}},
    "micro": {...same...}, "characters": {precision, recall, f1}, "definitions": str}``.
    """
    from .._validate import check_int

    if max_records is not None:
        max_records = check_int("max_records", max_records, minimum=1)
    det = detector or detect_spans
    records: Iterable[Record] = dataset.records(splits) if hasattr(dataset, "records") else dataset
    counts: dict[str, dict[str, int]] = {}

    def c(t: str) -> dict[str, int]:
        return counts.setdefault(t, {"n_gold": 0, "n_pred": 0, "exact_tp": 0, "ov_pred": 0, "ov_gold": 0})

    ch = {"tp": 0, "pred": 0, "gold": 0}
    n = 0
    for r in records:
        if r.spans is None or r.canary:
            continue
        if max_records is not None and n >= max_records:
            break
        n += 1
        gold = [s for s in r.spans if s.type != "canary"]
        pred = list(det(r.text))
        gset = set(gold)
        pred_index, gold_index = _IntervalIndex(pred), _IntervalIndex(gold)
        for s in gold:
            c(s.type)["n_gold"] += 1
            c(s.type)["ov_gold"] += pred_index.overlaps(s)
        for p in pred:
            k = c(p.type)
            k["n_pred"] += 1
            k["exact_tp"] += p in gset
            k["ov_pred"] += gold_index.overlaps(p)
        gch = set()
        for s in gold:
            gch.update(i for i in range(s.start, s.end) if not r.text[i].isspace())
        pch = set()
        for s in pred:
            pch.update(i for i in range(s.start, s.end) if not r.text[i].isspace())
        ch["tp"] += len(gch & pch)
        ch["pred"] += len(pch)
        ch["gold"] += len(gch)

    def block(k: dict[str, int]) -> dict[str, Any]:
        return {"n_gold": k["n_gold"], "n_pred": k["n_pred"],
                "exact": _prf(k["exact_tp"], k["n_pred"], k["exact_tp"], k["n_gold"]),
                "overlap": _prf(k["ov_pred"], k["n_pred"], k["ov_gold"], k["n_gold"])}

    total = {key: sum(k[key] for k in counts.values()) for key in
             ("n_gold", "n_pred", "exact_tp", "ov_pred", "ov_gold")}
    return {
        "n_records": n,
        "types": {t: block(counts[t]) for t in sorted(counts)},
        "micro": block(total),
        "characters": _prf(ch["tp"], ch["pred"], ch["tp"], ch["gold"]),
        "definitions": ("exact: same start, end and type; overlap: shares >= 1 character with a span of "
                        "the same type (precision over predicted spans, recall over gold spans); "
                        "characters: non-whitespace characters, type-agnostic"),
    }


def format_score_table(score: dict[str, Any]) -> str:
    """Markdown table of a :func:`score_detector` result."""
    def f(x: float | None) -> str:
        return "—" if x is None else f"{x:.3f}"

    rows = ["| type | gold | predicted | P exact | R exact | F1 exact | P overlap | R overlap | F1 overlap |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    items = list(score["types"].items()) + [("**micro (all types)**", score["micro"])]
    for t, b in items:
        e, o = b["exact"], b["overlap"]
        rows.append(f"| {t} | {b['n_gold']} | {b['n_pred']} | {f(e['precision'])} | {f(e['recall'])} | "
                    f"{f(e['f1'])} | {f(o['precision'])} | {f(o['recall'])} | {f(o['f1'])} |")
    chs = score["characters"]
    rows.append(f"\nCharacter level (type-agnostic, non-whitespace): P = {f(chs['precision'])}, "
                f"R = {f(chs['recall'])}, F1 = {f(chs['f1'])} over {score['n_records']} records.")
    return "\n".join(rows)
