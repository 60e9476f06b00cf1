"""Character spans → per-token sensitivity masks through a fast tokenizer's offset mapping
(docs/theory.md §6: "a token is sensitive if it overlaps a span").

Rule (IMPORTANT, used everywhere):
    token ``[a, b)`` is sensitive iff some character ``p`` with ``a <= p < b`` lies inside a span **and
    is not whitespace** (when the text is known). Without the text, plain interval overlap is used.

Why whitespace does not count: byte-level BPE tokenizers (GPT-2/NeoX style) glue the preceding space
to a word (``"ĠSmith"``) and, depending on ``trim_offsets``, report offsets that include that space;
SentencePiece/Metaspace tokenizers do the same with ``"▁"``. A token must not become sensitive only
because its leading (or trailing) space touches a span, nor because a user span carries a stray space at
its edge. Tokens that consist only of whitespace are therefore never sensitive, even inside a span (a
space carries no personal value). A token that overlaps a span on real characters is sensitive even if
the span starts or ends in the middle of it (``"cJo"`` for a span starting at ``J``).

Special tokens (BOS/EOS/CLS/SEP, padding) have empty offsets ``(0, 0)`` or are flagged by the
tokenizer's special-tokens mask; they are never sensitive. No torch/transformers import at module level.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .records import Span

__all__ = ["token_sensitivity_mask", "token_span_types", "char_sensitivity", "encode_with_mask"]


_WS_MAX = 0x3000  # largest whitespace code point (IDEOGRAPHIC SPACE)
_WS_TABLE = np.array([chr(c).isspace() for c in range(_WS_MAX + 1)], dtype=bool)


def _span_tuple(s: Any) -> tuple[int, int, str | None]:
    if isinstance(s, Span):
        return s.start, s.end, s.type
    if isinstance(s, dict):
        return int(s["start"]), int(s["end"]), s.get("type")
    start, end, *rest = s
    return int(start), int(end), (rest[0] if rest else None)


def _char_span_index(text: str, spans: Sequence[Any]) -> tuple[np.ndarray, list[tuple[int, int, str | None]]]:
    """Per character: index (into the start-sorted spans) of the first span covering it, -1 if none or
    if the character is whitespace."""
    sp = sorted(_span_tuple(s) for s in spans)
    idx = np.full(len(text), -1, dtype=np.int64)
    for k in range(len(sp) - 1, -1, -1):  # reverse, so the earliest-starting span wins on overlaps
        a, b, _ = sp[k]
        idx[max(a, 0):max(min(b, len(text)), 0)] = k
    if len(text):
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        idx[(codes <= _WS_MAX) & _WS_TABLE[np.minimum(codes, _WS_MAX)]] = -1
    return idx, sp


def char_sensitivity(text: str, spans: Sequence[Any]) -> list[int]:
    """Per-character 0/1: inside a span and not whitespace."""
    idx, _ = _char_span_index(text, spans)
    return (idx >= 0).astype(int).tolist()


def _offsets_array(offsets: Sequence[Sequence[int]], n: int) -> tuple[np.ndarray, np.ndarray]:
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    return np.clip(off[:, 0], 0, n), np.clip(off[:, 1], 0, n)


def _first_sensitive(text: str, offsets: Sequence[Sequence[int]], spans: Sequence[Any]):
    """For each token, the span index of its first sensitive character (-1 if none), and the spans."""
    idx, sp = _char_span_index(text, spans)
    n = len(text)
    a, b = _offsets_array(offsets, n)
    # next_pos[p] = smallest q >= p with idx[q] >= 0 (n if none)
    pos = np.where(idx >= 0, np.arange(n), n)
    next_pos = np.minimum.accumulate(pos[::-1])[::-1] if n else pos
    next_pos = np.append(next_pos, n)
    first = next_pos[a]
    hit = (b > a) & (first < b)
    out = np.full(len(a), -1, dtype=np.int64)
    out[hit] = idx[first[hit]]
    return out, sp


def token_span_types(offsets: Sequence[Sequence[int]], spans: Sequence[Any], *,
                     text: str | None = None) -> list[str | None]:
    """Per token, the type of the span that holds its first sensitive character (with ``text``) or of
    the first span by start that it overlaps (without), else None. Untyped spans give "sensitive"."""
    if not spans or len(offsets) == 0:
        return [None] * len(offsets)
    if text is not None:
        first, sp = _first_sensitive(text, offsets, spans)
        return [None if k < 0 else (sp[k][2] if sp[k][2] is not None else "sensitive") for k in first]
    sp = sorted(_span_tuple(s) for s in spans)
    out: list[str | None] = []
    for off in offsets:
        a, b = int(off[0]), int(off[1])
        typ = None
        for s0, s1, t in sp:
            if max(a, s0) < min(b, s1):
                typ = t if t is not None else "sensitive"
                break
        out.append(typ)
    return out


def token_sensitivity_mask(offsets: Sequence[Sequence[int]], spans: Sequence[Any] | None, *,
                           text: str | None = None) -> list[int]:
    """0/1 per token: 1 iff the token's character range overlaps a span (on a non-whitespace
    character when ``text`` is given). ``offsets`` as returned by ``return_offsets_mapping``; tokens
    with empty ranges (special tokens, ``(0, 0)``) get 0. ``spans``: :class:`Span`, dicts or
    ``(start, end[, type])`` tuples; ``None`` or empty → all zeros.
    """
    if not spans or len(offsets) == 0:
        return [0] * len(offsets)
    if text is not None:
        first, _ = _first_sensitive(text, offsets, spans)
        return (first >= 0).astype(int).tolist()
    return [0 if t is None else 1 for t in token_span_types(offsets, spans)]


def encode_with_mask(tokenizer: Any, texts: Sequence[str], spans: Sequence[Sequence[Any] | None], *,
                     max_length: int, padding: bool = True, add_special_tokens: bool = True,
                     return_tensors: str | None = None) -> dict[str, Any]:
    """Tokenize ``texts`` with a Hugging Face *fast* tokenizer and project ``spans`` onto tokens.

    Returns a dict with ``input_ids``, ``attention_mask``, ``sensitive_mask`` (0/1 per token, 0 on
    special and padding tokens), ``sensitive_types`` (span type or None per token) and
    ``offset_mapping``. Sequences are truncated to ``max_length`` tokens. With ``padding`` they are
    padded to the longest one on the tokenizer's ``padding_side`` with ``pad_token_id`` (falling back
    to ``eos_token_id``, then 0; padding positions have attention 0). ``return_tensors``: None (Python
    lists), ``"np"`` or ``"pt"`` (types other than lists only for the integer fields).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("tokenizer must be a Hugging Face fast tokenizer (is_fast=True) to give offsets")
    if isinstance(texts, str):
        raise ValueError("texts must be a sequence of strings, got a single string")
    texts = list(texts)
    spans = list(spans)
    if len(spans) != len(texts):
        raise ValueError(f"spans must have one entry per text ({len(texts)}), got {len(spans)}")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be an integer >= 1, got {max_length!r}")
    if return_tensors not in (None, "np", "pt"):
        raise ValueError(f"return_tensors must be None, 'np' or 'pt', got {return_tensors!r}")
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding=False,
                    add_special_tokens=add_special_tokens, return_offsets_mapping=True,
                    return_special_tokens_mask=True)
    ids_all, att_all, sens_all, types_all, offs_all = [], [], [], [], []
    for i, text in enumerate(texts):
        ids = list(enc["input_ids"][i])
        offs = list(map(tuple, enc["offset_mapping"][i]))
        special = list(enc["special_tokens_mask"][i])
        sp = spans[i] or ()
        types = token_span_types(offs, sp, text=text)
        mask = [0 if t is None else 1 for t in types]
        for j, is_special in enumerate(special):
            if is_special:
                mask[j], types[j] = 0, None
        ids_all.append(ids)
        att_all.append([1] * len(ids))
        sens_all.append(mask)
        types_all.append(types)
        offs_all.append(offs)
    if padding and ids_all:
        pad_id = tokenizer.pad_token_id
        if pad_id is None:
            pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        left = getattr(tokenizer, "padding_side", "right") == "left"
        width = max(len(x) for x in ids_all)
        for lists in zip(ids_all, att_all, sens_all, types_all, offs_all):
            k = width - len(lists[0])
            for lst, val in zip(lists, (pad_id, 0, 0, None, (0, 0))):
                if left:
                    lst[:0] = [val] * k
                else:
                    lst.extend([val] * k)
    out: dict[str, Any] = {"input_ids": ids_all, "attention_mask": att_all, "sensitive_mask": sens_all,
                           "sensitive_types": types_all, "offset_mapping": offs_all}
    if return_tensors is not None:
        if not padding and len({len(x) for x in ids_all}) > 1:
            raise ValueError("return_tensors needs padding=True for sequences of different lengths")
        if return_tensors == "np":
            import numpy as np
            conv = lambda x: np.asarray(x, dtype=np.int64)  # noqa: E731
        else:
            import torch
            conv = lambda x: torch.tensor(x, dtype=torch.long)  # noqa: E731
        for k in ("input_ids", "attention_mask", "sensitive_mask", "offset_mapping"):
            out[k] = conv(out[k])
    return out
