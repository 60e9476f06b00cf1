"""Dataset loading and tokenisation for the fine-tuning engine.

Thin adapter over ``lowrankdp.data.load_dataset`` and ``lowrankdp.data.masks.encode_with_mask`` (the Data
contract): one place defines the schema and the token-sensitivity rule, and the engine only re-packs the
encoding into right-padded tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..data import load_dataset
from ..data.masks import encode_with_mask

__all__ = ["EncodedSplit", "load_records", "encode_split"]


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


def load_records(path: str | Path) -> tuple[Any, str]:
    """Return ``(dataset, source)``; ``source`` names the loader recorded in the run summary."""
    return load_dataset(path), "lowrankdp.data.load_dataset"


def encode_split(tokenizer, records: Sequence[Any], *, max_length: int) -> tuple[EncodedSplit, str]:
    """Tokenise records with sensitivity masks, right-padded to the longest sequence (≤ max_length)."""
    texts = [r.text for r in records]
    spans = [r.spans or () for r in records]
    source = "lowrankdp.data.masks.encode_with_mask"
    enc = encode_with_mask(tokenizer, texts, spans, max_length=max_length)
    ids_l, att_l, sen_l = enc["input_ids"], enc["attention_mask"], enc["sensitive_mask"]
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
