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
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from .._files import check_output_dir, write_directory_atomically
from .detect import detect_spans
from .records import Record, Span

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
    "check_dataset_output",
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


def _meta_int(name: str, value: Any, *, minimum: int) -> int:
    """An integer field of ``meta.json`` (JSON floats such as ``1e30`` and booleans rejected)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def _canary_template(template: Any) -> str:
    """A template with exactly one replacement field, ``{secret}`` (``{{``/``}}`` for literal braces)."""
    if not isinstance(template, str):
        raise ValueError(f"canary.template must be a string, got {template!r}")
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"canary.template is not a valid format string ({exc}), got {template!r}") from None
    if fields != [("secret", "", None)]:
        raise ValueError(f"canary.template must contain exactly one field, {{secret}} (literal braces as "
                         f"{{{{ and }}}}), got {template!r}")
    return template


def _canary_affixes(template: str) -> tuple[str, str]:
    """The rendered text before and after ``{secret}`` in a template checked by :func:`_canary_template`."""
    before: list[str] = []
    after: list[str] = []
    seen = False
    for literal, f, _spec, _conv in string.Formatter().parse(template):
        (after if seen else before).append(literal)
        seen = seen or f is not None
    return "".join(before), "".join(after)


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
        """Parse ``meta.json["canary"]``; ``ValueError("canary.<field> ...")`` names the first bad field."""
        if not isinstance(d, Mapping):
            raise ValueError(f"canary must be a JSON object or null, got {type(d).__name__}")
        for k in ("template", "secret", "alphabet", "length", "space_size", "repeats", "record_ids"):
            if k not in d:
                raise ValueError(f"canary is missing field '{k}'")
        template = _canary_template(d["template"])
        for k in ("secret", "alphabet"):
            if not isinstance(d[k], str) or not d[k]:
                raise ValueError(f"canary.{k} must be a non-empty string, got {d[k]!r}")
        secret, alphabet = d["secret"], d["alphabet"]
        if len(set(alphabet)) != len(alphabet):
            raise ValueError(f"canary.alphabet must not repeat a character, got {alphabet!r}")
        length = _meta_int("canary.length", d["length"], minimum=1)
        if len(secret) != length or any(ch not in alphabet for ch in secret):
            raise ValueError(f"canary.secret must be {length} characters of canary.alphabet, got {secret!r}")
        space = _meta_int("canary.space_size", d["space_size"], minimum=1)
        if space != len(alphabet) ** length:
            raise ValueError(f"canary.space_size must equal len(alphabet)**length = {len(alphabet)}**{length}, "
                             f"got {space}")
        ids = d["record_ids"]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError(f"canary.record_ids must be a list of record ids (strings), got {ids!r}"[:200])
        repeats = _meta_int("canary.repeats", d["repeats"], minimum=0)
        head, tail = _canary_affixes(template)
        prefix, suffix = d.get("prefix", head), d.get("suffix", tail)
        if (prefix, suffix) != (head, tail):
            raise ValueError(f"canary.prefix/suffix must be the template's text around {{secret}} "
                             f"({head!r} / {tail!r}), got {prefix!r} / {suffix!r}")
        return cls(template=template, prefix=prefix, suffix=suffix, secret=secret, alphabet=alphabet,
                   length=length, space_size=space, repeats=repeats, record_ids=tuple(ids))

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
            detector = detect_spans
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


def _regular_file(p: Path, what: str) -> None:
    """``ValueError`` naming ``p`` unless it is a regular file (a symlink to one is fine)."""
    if p.is_file():
        return
    if os.path.islink(p) and not p.exists():
        raise ValueError(f"{p}: {what} is a broken symbolic link (to {os.readlink(p)!r})")
    if not p.exists():
        raise ValueError(f"{p}: {what} does not exist")
    if p.is_dir():
        raise ValueError(f"{p}: {what} is a directory, expected a file")
    raise ValueError(f"{p}: {what} is not a regular file (a device, FIFO or socket)")


def _decode_line(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start + 1} of the line)") from None


def _parse_json(text: str, where: str) -> Any:
    """``json.loads`` with every failure as ``ValueError("<where>: <reason>")`` (deep nesting included)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise ValueError(f"{where}: JSON nested too deeply to parse (Python's recursion limit)") from None


def load_jsonl(path: str | os.PathLike, *, split: str | None = None,
               strict: bool = False) -> list[Record]:
    """Records of one JSONL file (UTF-8). ``strict`` requires every schema field (generated data)."""
    p = Path(path)
    _regular_file(p, "the JSONL file")
    out: list[Record] = []
    with open(p, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            where = f"{p}:{lineno}"
            line = _decode_line(raw, where)
            if not line.strip():
                continue
            obj = _parse_json(line, where)
            if strict and isinstance(obj, dict):
                for k in _RECORD_KEYS:
                    if k not in obj:
                        _fail(where, f"missing field '{k}'")
            out.append(_parse_record(obj, where, f"{p.stem}-{lineno}", split))
    return out


def _read_meta(meta_path: Path) -> dict[str, Any]:
    _regular_file(meta_path, "meta.json")
    where = f"{meta_path}:1"
    meta = _parse_json(_decode_line(meta_path.read_bytes(), where), str(meta_path))
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: meta must be a JSON object")
    return meta


def load_dataset(path: str | os.PathLike, *, detect: bool = False) -> Dataset:
    """Load and validate a dataset directory (or one JSONL file).

    A directory is read as ``{train,valid,test}.jsonl`` + optional ``meta.json``. When ``meta.json`` has a
    ``schema_version`` (generated data), every record field is required and canary metadata is checked
    against the records. A single ``.jsonl`` file is split by its records' ``split`` field (default
    ``train``). A split file without records is an error unless ``meta.json`` gives its size as 0; so is a
    dataset without records, a split file that is a directory, a broken link or not a regular file, and a
    line that is not UTF-8. ``detect=True`` fills records without spans with :func:`detect.detect_spans`.
    Raises ``ValueError`` naming file, line and reason.
    """
    p = Path(path)
    if not p.exists():
        if os.path.islink(p):
            raise ValueError(f"path is a broken symbolic link: {p} (to {os.readlink(p)!r})")
        raise ValueError(f"path does not exist: {p}")
    meta: dict[str, Any] = {}
    splits: dict[str, list[Record]] = {}
    if p.is_dir():
        meta_path = p / "meta.json"
        if os.path.lexists(meta_path):
            meta = _read_meta(meta_path)
        strict = "schema_version" in meta
        sizes = meta.get("sizes") if isinstance(meta.get("sizes"), dict) else {}
        for s in SPLITS:
            f = p / f"{s}.jsonl"
            if os.path.lexists(f):
                splits[s] = load_jsonl(f, split=s, strict=strict)
                if not splits[s] and sizes.get(s) != 0:
                    raise ValueError(f"{f}: no records (the file is empty; meta.json does not give its size as 0)")
        if not splits:
            raise ValueError(f"{p}: no train.jsonl, valid.jsonl or test.jsonl found")
    else:
        _regular_file(p, "the dataset path")
        for r in load_jsonl(p):
            splits.setdefault(r.split, []).append(r)
    if not any(splits.values()):
        raise ValueError(f"{p}: the dataset has no records")
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
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    marked = sorted(r.id for r in ds.records() if r.canary)
    if sorted(canary.record_ids) != marked:
        raise ValueError(f"{where}: canary.record_ids do not match the records marked canary "
                         f"({len(canary.record_ids)} listed, {len(marked)} marked)")
    if canary.repeats != len(canary.record_ids):
        raise ValueError(f"{where}: canary.repeats must equal the number of record_ids "
                         f"({len(canary.record_ids)}), got {canary.repeats}")
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


_DATASET_FILES = frozenset([f"{s}.jsonl" for s in SPLITS] + ["meta.json"])


def check_dataset_output(out_dir: str | os.PathLike) -> Path:
    """``out_dir`` as a ``Path`` if :func:`write_dataset` may write there (see its rules), else ``ValueError``."""
    out = Path(out_dir)
    check_output_dir(out.parent, name=f"output directory {out}: its parent")
    if not os.path.lexists(out):
        return out
    if not out.is_dir() or out.is_symlink():
        raise ValueError(f"output directory {out} exists and is not a directory")
    others = sorted(e.name for e in os.scandir(out) if e.name not in _DATASET_FILES)
    if others:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise ValueError(f"output directory {out} holds files that are not part of a dataset ({shown}); "
                         "refusing to replace it: choose an empty or new directory")
    return out


def write_dataset(dataset: Dataset, out_dir: str | os.PathLike) -> Path:
    """Write ``{split}.jsonl`` for every split and ``meta.json``; byte-stable for equal input.

    Atomic: the files are written to a hidden sibling directory which then replaces ``out_dir``, so a
    failure (disk full, kill) leaves the previous contents or nothing, never a half-written file.
    ``out_dir`` must be absent, empty, or hold only dataset files (``{train,valid,test}.jsonl``,
    ``meta.json``), which are replaced together; anything else is refused with ``ValueError``.
    Write errors are ``OSError`` naming the file in ``out_dir``.
    """
    out = check_dataset_output(out_dir)

    def write(tmp: Path) -> None:
        for s in SPLITS:
            if s in dataset.splits:
                _write_file(tmp / f"{s}.jsonl", out / f"{s}.jsonl",
                            "".join(record_to_json(r) + "\n" for r in dataset.splits[s]))
        _write_file(tmp / "meta.json", out / "meta.json",
                    json.dumps(dataset.meta, indent=2, ensure_ascii=False) + "\n")

    return write_directory_atomically(out, write)


def _write_file(path: Path, shown: Path, text: str) -> None:
    """Write ``text`` to ``path``; an ``OSError`` names ``shown`` (the file the user will look for)."""
    try:
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(shown)) from None
