"""Dataset loading and tokenisation for the fine-tuning engine.

Uses ``lowrankdp.data.load_dataset`` and ``lowrankdp.data.masks.encode_with_mask`` (the Data contract).
While those modules are not importable, a minimal reader of the same on-disk format is used and the
fact is recorded in the run summary (``components["data"]``) — the format is the contract's, so the
numbers are the same; only input validation is weaker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

__all__ = ["EncodedSplit", "load_records", "encode_split", "sensitive_mask_from_offsets"]


@dataclass
class EncodedSplit:
    """Padded token tensors of one split (right padding)."""

    input_ids: torch.Tensor  # [n, L] long
    attention_mask: torch.Tensor  # [n, L] long (1 = real token)
    sensitive_mask: torch.Tensor  # [n, L] long (1 = token overlaps a personal-data span)
    ids: list[str]

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())


@dataclass
class _FallbackRecord:
    id: str
    text: str
    split: str
    spans: tuple | None
    canary: bool = False


@dataclass
class _FallbackSpan:
    start: int
    end: int
    type: str


class _FallbackDataset:
    def __init__(self, splits: dict[str, list], meta: dict[str, Any], path: Path):
        self.splits = splits
        self.meta = meta
        self.path = path

    @property
    def canary(self):
        return self.meta.get("canary")


def load_records(path: str | Path) -> tuple[Any, str]:
    """Return ``(dataset, source)`` where source names the loader that was used."""
    try:
        from lowrankdp.data import load_dataset  # type: ignore[attr-defined]
    except ImportError as exc:  # Data module not there yet: read the contract format directly
        return _fallback_load(Path(path)), f"fallback reader (lowrankdp.data not importable: {exc})"
    return load_dataset(path), "lowrankdp.data.load_dataset"


def _fallback_load(path: Path) -> _FallbackDataset:
    splits: dict[str, list] = {}
    for split in ("train", "valid", "test"):
        f = path / f"{split}.jsonl"
        if not f.is_file():
            continue
        rows = []
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                text = d["text"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{f}:{i}: {exc}") from None
            spans = d.get("spans")
            spans = None if spans is None else tuple(_FallbackSpan(int(s["start"]), int(s["end"]), str(s["type"]))
                                                     for s in spans)
            rows.append(_FallbackRecord(str(d.get("id", f"{split}-{i}")), text, split, spans,
                                        bool(d.get("canary", False))))
        splits[split] = rows
    meta_f = path / "meta.json"
    meta = json.loads(meta_f.read_text()) if meta_f.is_file() else {}
    return _FallbackDataset(splits, meta, path)


def sensitive_mask_from_offsets(offsets: Sequence[tuple[int, int]], spans) -> list[int]:
    """A token is sensitive if its character range overlaps a span (theory.md §6)."""
    out = []
    for a, b in offsets:
        out.append(int(any(a < s.end and s.start < b for s in (spans or ())) and b > a))
    return out


def encode_split(tokenizer, records: Sequence[Any], *, max_length: int) -> tuple[EncodedSplit, str]:
    """Tokenise records with sensitivity masks, right-padded to the longest sequence (≤ max_length)."""
    texts = [r.text for r in records]
    spans = [r.spans or () for r in records]
    source = "lowrankdp.data.masks.encode_with_mask"
    try:
        from lowrankdp.data.masks import encode_with_mask  # type: ignore[import-not-found]
    except ImportError as exc:
        encode_with_mask = None
        source = f"fallback encoder (lowrankdp.data.masks not importable: {exc})"
    if encode_with_mask is not None:
        enc = encode_with_mask(tokenizer, texts, spans, max_length=max_length)
        ids_l, att_l, sen_l = enc["input_ids"], enc["attention_mask"], enc["sensitive_mask"]
    else:
        enc = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True)
        ids_l, att_l = enc["input_ids"], enc["attention_mask"]
        sen_l = [sensitive_mask_from_offsets(off, sp) for off, sp in zip(enc["offset_mapping"], spans)]
    ids_l = [list(map(int, x)) for x in (ids_l.tolist() if hasattr(ids_l, "tolist") else ids_l)]
    att_l = [list(map(int, x)) for x in (att_l.tolist() if hasattr(att_l, "tolist") else att_l)]
    sen_l = [list(map(int, x)) for x in (sen_l.tolist() if hasattr(sen_l, "tolist") else sen_l)]
    # drop padding the encoder may have added, then pad ourselves (right padding, uniform format)
    lengths = [min(sum(a), max_length) for a in att_l]
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    L = max(lengths) if lengths else 1
    n = len(records)
    input_ids = torch.full((n, L), int(pad_id), dtype=torch.long)
    attention = torch.zeros((n, L), dtype=torch.long)
    sensitive = torch.zeros((n, L), dtype=torch.long)
    for i, (ids, att, sen) in enumerate(zip(ids_l, att_l, sen_l)):
        keep = [j for j, a in enumerate(att) if a][: lengths[i]]
        input_ids[i, : len(keep)] = torch.tensor([ids[j] for j in keep], dtype=torch.long)
        attention[i, : len(keep)] = 1
        sensitive[i, : len(keep)] = torch.tensor([sen[j] for j in keep], dtype=torch.long)
    return EncodedSplit(input_ids, attention, sensitive, [r.id for r in records]), source
