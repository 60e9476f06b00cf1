"""On-disk schema of lowrankdp datasets: records, gold spans, canary metadata, loader and writer.

A dataset is a directory holding ``train.jsonl``, ``valid.jsonl``, ``test.jsonl`` (any subset, at
least one) and ``meta.json`` (optional for user data). One JSON object per line::

    {"id": str, "text": str, "split": "train"|"valid"|"test",
     "spans": [{"start": int, "end": int, "type": str}] | null, "canary": bool}

Spans are half-open character ranges ``text[start:end]`` (Python ``str`` indices, i.e. Unicode code
points) with ``0 <= start < end <= len(text)``; spans of one record never overlap (touching is fine).
For user data only ``text`` is required: ``id`` defaults to ``"<file stem>-<line>"``, ``split`` to the
file's split, ``canary`` to false, and a missing/null ``spans`` means "not annotated" (``Record.spans is
None``; run :func:`lowrankdp.data.detect.detect_spans`, e.g. ``load_dataset(path, detect=True)``).
An empty list means "annotated, nothing sensitive".

Every violation raises ``ValueError("<file>:<line>: <reason>")``. Whitespace-only lines are skipped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

__all__ = [
    "SCHEMA_VERSION",
    "SPLITS",
    "SPAN_TYPES",
    "Span",
    "Record",
    "Canary",
    "Dataset",
    "load_dataset",
    "load_jsonl",
    "write_dataset",
    "record_to_json",
]

SCHEMA_VERSION = 1
SPLITS: tuple[str, ...] = ("train", "valid", "test")
# Types produced by the generators (user data may use any non-empty type string).
SPAN_TYPES: tuple[str, ...] = (
    "name", "order_number", "phone", "address", "tracking_number",
    "birth_date", "birthplace", "email", "employer", "ssn", "canary",
)
_RECORD_KEYS = ("id", "text", "split", "spans", "canary")


@dataclass(frozen=True, order=True)
class Span:
    """Half-open character range ``[start, end)`` of one personal value, with its type."""

    start: int
    end: int
    type: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "type": self.type}


@dataclass(frozen=True)
class Record:
    """One training/evaluation text. ``spans is None`` means "not annotated"."""

    id: str
    text: str
    split: str
    spans: tuple[Span, ...] | None
    canary: bool = False

    def values(self) -> list[tuple[str, str]]:
        """``(type, text[start:end])`` for every span (empty if not annotated)."""
        return [(s.type, self.text[s.start:s.end]) for s in (self.spans or ())]


@dataclass(frozen=True)
class Canary:
    """The inserted canary (Secret-Sharer style): ``template.format(secret=secret)``."""

    template: str
    prefix: str
    suffix: str
    secret: str
    alphabet: str
    length: int
    space_size: int
    repeats: int
    record_ids: tuple[str, ...]

    @classmethod
    def from_meta(cls, d: Mapping[str, Any]) -> "Canary":
        template = d["template"]
        prefix = d.get("prefix", template.split("{secret}")[0])
        suffix = d.get("suffix", template.split("{secret}")[-1])
        return cls(template=template, prefix=prefix, suffix=suffix, secret=str(d["secret"]),
                   alphabet=str(d["alphabet"]), length=int(d["length"]),
                   space_size=int(d["space_size"]), repeats=int(d["repeats"]),
                   record_ids=tuple(d["record_ids"]))

    def text(self, secret: str | None = None) -> str:
        """The canary sentence with ``secret`` (default: the inserted one)."""
        return self.template.format(secret=self.secret if secret is None else secret)

    def candidate(self, index: int) -> str:
        """Secret number ``index`` in ``[0, space_size)`` (base-``len(alphabet)`` digits, padded)."""
        if not 0 <= index < self.space_size:
            raise ValueError(f"index must be in [0, {self.space_size}), got {index}")
        b = len(self.alphabet)
        chars = []
        for _ in range(self.length):
            index, r = divmod(index, b)
            chars.append(self.alphabet[r])
        return "".join(reversed(chars))

    def candidates(self) -> Iterator[str]:
        """All ``space_size`` candidate secrets, in index order."""
        return (self.candidate(i) for i in range(self.space_size))

    def to_dict(self) -> dict[str, Any]:
        return {"template": self.template, "prefix": self.prefix, "suffix": self.suffix,
                "secret": self.secret, "alphabet": self.alphabet, "length": self.length,
                "space_size": self.space_size, "repeats": self.repeats,
                "record_ids": list(self.record_ids)}


@dataclass
class Dataset:
    """Splits of records plus ``meta.json`` content. ``canary`` is parsed from ``meta["canary"]``."""

    splits: dict[str, list[Record]]
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def canary(self) -> Canary | None:
        c = self.meta.get("canary")
        return None if c is None else Canary.from_meta(c)

    def __getitem__(self, split: str) -> list[Record]:
        return self.splits[split]

    def records(self, splits: Iterable[str] | None = None) -> Iterator[Record]:
        for s in (SPLITS if splits is None else splits):
            yield from self.splits.get(s, [])

    def sizes(self) -> dict[str, int]:
        return {s: len(self.splits[s]) for s in SPLITS if s in self.splits}

    def with_detected_spans(self, detector: Callable[[str], Sequence[Span]] | None = None,
                            *, overwrite: bool = False) -> "Dataset":
        """Copy in which records without spans (or all, if ``overwrite``) get detector spans."""
        if detector is None:
            from .detect import detect_spans as detector
        new = {}
        for s, recs in self.splits.items():
            new[s] = [
                Record(r.id, r.text, r.split, tuple(sorted(detector(r.text))), r.canary)
                if (overwrite or r.spans is None) else r
                for r in recs
            ]
        return Dataset(new, dict(self.meta), self.path)


# --------------------------------------------------------------------------------------- validation

def _fail(where: str, reason: str) -> None:
    raise ValueError(f"{where}: {reason}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _parse_spans(raw: Any, text: str, where: str) -> tuple[Span, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        _fail(where, f"'spans' must be a list or null, got {type(raw).__name__}")
    spans = []
    for i, s in enumerate(raw):
        if not isinstance(s, dict):
            _fail(where, f"spans[{i}] must be an object, got {type(s).__name__}")
        for k in ("start", "end", "type"):
            if k not in s:
                _fail(where, f"spans[{i}] is missing field '{k}'")
        start, end, typ = s["start"], s["end"], s["type"]
        if not _is_int(start) or not _is_int(end):
            _fail(where, f"spans[{i}] start/end must be integers, got {start!r}, {end!r}")
        if not isinstance(typ, str) or not typ:
            _fail(where, f"spans[{i}] type must be a non-empty string, got {typ!r}")
        if not 0 <= start < end <= len(text):
            _fail(where, f"spans[{i}] [{start}, {end}) is outside the text (length {len(text)}) "
                         f"or empty; need 0 <= start < end <= len(text)")
        spans.append(Span(start, end, typ))
    spans.sort()
    for a, b in zip(spans, spans[1:]):
        if b.start < a.end:
            _fail(where, f"spans overlap: [{a.start}, {a.end}) {a.type!r} and "
                         f"[{b.start}, {b.end}) {b.type!r}")
    return tuple(spans)


def _parse_record(obj: Any, where: str, default_id: str, default_split: str | None) -> Record:
    if not isinstance(obj, dict):
        _fail(where, f"a record must be a JSON object, got {type(obj).__name__}")
    if "text" not in obj:
        _fail(where, "missing field 'text'")
    text = obj["text"]
    if not isinstance(text, str):
        _fail(where, f"'text' must be a string, got {type(text).__name__}")
    rid = obj.get("id", default_id)
    if not isinstance(rid, str) or not rid:
        _fail(where, f"'id' must be a non-empty string, got {rid!r}")
    split = obj.get("split", default_split)
    if split is None:
        split = "train"
    if split not in SPLITS:
        _fail(where, f"'split' must be one of {', '.join(SPLITS)}, got {split!r}")
    if default_split is not None and split != default_split:
        _fail(where, f"record has split {split!r} but is in the {default_split!r} file")
    canary = obj.get("canary", False)
    if not isinstance(canary, bool):
        _fail(where, f"'canary' must be true or false, got {canary!r}")
    spans = _parse_spans(obj.get("spans"), text, where)
    return Record(rid, text, split, spans, canary)


def load_jsonl(path: str | os.PathLike, *, split: str | None = None,
               strict: bool = False) -> list[Record]:
    """Records of one JSONL file. ``strict`` requires every schema field (generated data)."""
    p = Path(path)
    out: list[Record] = []
    with open(p, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{p}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
            if strict and isinstance(obj, dict):
                for k in _RECORD_KEYS:
                    if k not in obj:
                        _fail(where, f"missing field '{k}'")
            out.append(_parse_record(obj, where, f"{p.stem}-{lineno}", split))
    return out


def load_dataset(path: str | os.PathLike, *, detect: bool = False) -> Dataset:
    """Load and validate a dataset directory (or one JSONL file).

    A directory is read as ``{train,valid,test}.jsonl`` + optional ``meta.json``. When ``meta.json`` has a
    ``schema_version`` (generated data), every record field is required and canary metadata is checked
    against the records. A single ``.jsonl`` file is split by its records' ``split`` field (default
    ``train``). ``detect=True`` fills records without spans with :func:`detect.detect_spans`.
    Raises ``ValueError`` naming file, line and reason.
    """
    p = Path(path)
    if not p.exists():
        raise ValueError(f"path does not exist: {p}")
    meta: dict[str, Any] = {}
    splits: dict[str, list[Record]] = {}
    if p.is_dir():
        meta_path = p / "meta.json"
        if meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{meta_path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
            if not isinstance(meta, dict):
                raise ValueError(f"{meta_path}:1: meta must be a JSON object")
        strict = "schema_version" in meta
        for s in SPLITS:
            f = p / f"{s}.jsonl"
            if f.exists():
                splits[s] = load_jsonl(f, split=s, strict=strict)
        if not splits:
            raise ValueError(f"{p}: no train.jsonl, valid.jsonl or test.jsonl found")
    else:
        for r in load_jsonl(p):
            splits.setdefault(r.split, []).append(r)
    # unique ids across the dataset
    seen: dict[str, str] = {}
    for s, recs in splits.items():
        for r in recs:
            if r.id in seen:
                raise ValueError(f"{p}: duplicate record id {r.id!r} (in {seen[r.id]} and {s})")
            seen[r.id] = s
    ds = Dataset(splits, meta, p)
    if meta:
        _check_meta(ds, p / "meta.json")
    return ds.with_detected_spans() if detect else ds


def _check_meta(ds: Dataset, where: Path) -> None:
    meta = ds.meta
    sv = meta.get("schema_version")
    if sv is not None and sv != SCHEMA_VERSION:
        raise ValueError(f"{where}: schema_version {sv!r} is not supported (expected {SCHEMA_VERSION})")
    sizes = meta.get("sizes")
    if isinstance(sizes, dict):
        for s, n in sizes.items():
            if s in ds.splits and len(ds.splits[s]) != n:
                raise ValueError(f"{where}: sizes[{s!r}] = {n} but {s}.jsonl has {len(ds.splits[s])} records")
    c = meta.get("canary")
    if c is None:
        if any(r.canary for r in ds.records()):
            raise ValueError(f"{where}: records are marked canary but meta has no canary")
        return
    try:
        canary = Canary.from_meta(c)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: malformed canary metadata ({exc!r})") from None
    marked = sorted(r.id for r in ds.records() if r.canary)
    if sorted(canary.record_ids) != marked:
        raise ValueError(f"{where}: canary.record_ids do not match the records marked canary "
                         f"({len(canary.record_ids)} listed, {len(marked)} marked)")
    by_id = {r.id: r for r in ds.records()}
    for rid in canary.record_ids:
        if canary.text() not in by_id[rid].text:
            raise ValueError(f"{where}: canary record {rid!r} does not contain the canary text")


# ------------------------------------------------------------------------------------------ writing

def record_to_json(r: Record) -> str:
    """One JSONL line (fixed key order, no trailing newline)."""
    obj = {"id": r.id, "text": r.text, "split": r.split,
           "spans": None if r.spans is None else [s.to_dict() for s in r.spans],
           "canary": r.canary}
    return json.dumps(obj, ensure_ascii=False)


def write_dataset(dataset: Dataset, out_dir: str | os.PathLike) -> Path:
    """Write ``{split}.jsonl`` for every split and ``meta.json``; byte-stable for equal input."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        if s not in dataset.splits:
            continue
        with open(out / f"{s}.jsonl", "w", encoding="utf-8", newline="\n") as fh:
            for r in dataset.splits[s]:
                fh.write(record_to_json(r))
                fh.write("\n")
    with open(out / "meta.json", "w", encoding="utf-8", newline="\n") as fh:
        json.dump(dataset.meta, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    return out
