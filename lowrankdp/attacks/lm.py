"""Membership scores for language models from per-token log-probabilities (core: numpy only).

IMPORTANT: every score here follows the package convention — a **higher score means "more likely a
member"** (the record was in the fine-tuning set). Inputs are, for each record, the 1-D array of
per-token log-probabilities ``log p_θ(x_t | x_<t)`` (natural log, each ``≤ 0``) of the tokens that are
scored (all predicted tokens of the record, in order). Records may have different lengths, so every
function takes a *sequence* of 1-D arrays and returns one score per record.

Scores (the attacks benchmarked by MIMIR; [RPUE] asks for them, docs/theory.md §6):

- ``loss_score``: ``(1/n) Σ_t log p(x_t)``, the negated average cross-entropy (LOSS attack,
  Yeom et al. 2018).
- ``zlib_score``: ``(1/n) Σ_t log p(x_t) / Z(x)`` where ``Z(x) = len(zlib.compress(utf8(x)))`` is the
  zlib-compressed size of the text in bytes (Carlini et al. 2021, "Extracting Training Data from Large
  Language Models": log-perplexity over zlib entropy; same normalisation as MIMIR). Dividing by ``Z``
  calibrates for texts that are easy for any compressor.
- ``min_k_score``: the mean of the ``m = max(1, ⌊k·n⌋)`` lowest token log-probabilities (Min-k %
  Prob, Shi et al. 2024). Members tend to have fewer very surprising tokens.
- ``reference_score``: ``(1/n) Σ_t [log p_θ(x_t) − log p_ref(x_t)]``, the target's average
  log-likelihood minus a reference model's on the same tokens (Carlini et al. 2021; with the base model
  as reference this removes "this text is easy for any model").
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Sequence

import numpy as np

from .._validate import check_real

__all__ = [
    "ATTACKS",
    "loss_score",
    "zlib_score",
    "min_k_score",
    "reference_score",
    "zlib_size",
]

#: Names of the LM membership scores, in report order.
ATTACKS: tuple[str, ...] = ("loss", "zlib", "min_k", "reference")

# log-softmax in float32 can return values a hair above 0 for a certain token; tolerate that much.
_POSITIVE_SLACK = 1e-4


def _records(name: str, token_logprobs: Any) -> list[np.ndarray]:
    """Validate a sequence of per-record 1-D log-probability arrays."""
    if isinstance(token_logprobs, np.ndarray) and token_logprobs.ndim == 1 and token_logprobs.dtype != object:
        raise ValueError(
            f"{name} must be a sequence of 1-D arrays (one per record), got a single 1-D array; "
            f"wrap one record as [array]"
        )
    try:
        items = list(token_logprobs)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of 1-D arrays (one per record), got {token_logprobs!r}") from None
    if not items:
        raise ValueError(f"{name} must contain at least one record, got an empty sequence")
    out = []
    for i, item in enumerate(items):
        a = np.asarray(item, dtype=float)
        if a.ndim != 1:
            raise ValueError(f"{name}[{i}] must be a 1-D array of token log-probabilities, got shape {a.shape}")
        if a.size == 0:
            raise ValueError(f"{name}[{i}] has no tokens; every record needs at least one scored token")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}[{i}] must be finite (no NaN/inf), got {int(np.sum(~np.isfinite(a)))} "
                             f"non-finite values")
        if a.max() > _POSITIVE_SLACK:
            raise ValueError(f"{name}[{i}] must hold log-probabilities (<= 0), got a maximum of {a.max():g}")
        out.append(np.minimum(a, 0.0))
    return out


def loss_score(token_logprobs: Sequence[Any]) -> np.ndarray:
    """LOSS attack: mean token log-probability per record (= −cross-entropy); higher = member."""
    recs = _records("token_logprobs", token_logprobs)
    return np.array([a.mean() for a in recs])


def zlib_size(text: str) -> int:
    """zlib-compressed size in bytes of the UTF-8 text (``zlib.compress`` at its default level)."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    return len(zlib.compress(text.encode("utf-8")))


def zlib_score(token_logprobs: Sequence[Any], texts: Sequence[str]) -> np.ndarray:
    """zlib-normalised LOSS: mean token log-probability divided by the zlib size (bytes) of the text.

    The mean log-probability is negative, so dividing by a larger compressed size moves the score
    toward 0 (up): texts that a generic compressor finds hard but the model finds easy score high.
    """
    recs = _records("token_logprobs", token_logprobs)
    if isinstance(texts, str):
        raise ValueError("texts must be a sequence of strings (one per record), got a single str")
    texts = list(texts)
    if len(texts) != len(recs):
        raise ValueError(f"texts must have one entry per record ({len(recs)}), got {len(texts)}")
    sizes = np.array([zlib_size(t) for t in texts], dtype=float)
    return np.array([a.mean() for a in recs]) / sizes


def min_k_score(token_logprobs: Sequence[Any], *, k: float = 0.2) -> np.ndarray:
    """Min-k % Prob: mean of the ``max(1, ⌊k·n⌋)`` smallest token log-probabilities; ``k`` in (0, 1]."""
    k = check_real("k", k, lo=0.0, hi=1.0, lo_open=True)
    recs = _records("token_logprobs", token_logprobs)
    out = np.empty(len(recs))
    for i, a in enumerate(recs):
        m = max(1, int(math.floor(k * a.size + 1e-9)))
        out[i] = np.partition(a, m - 1)[:m].mean()
    return out


def reference_score(token_logprobs: Sequence[Any], reference_logprobs: Sequence[Any]) -> np.ndarray:
    """Reference-calibrated LOSS: mean of ``log p_target − log p_reference`` over the same tokens."""
    tgt = _records("token_logprobs", token_logprobs)
    ref = _records("reference_logprobs", reference_logprobs)
    if len(tgt) != len(ref):
        raise ValueError(f"reference_logprobs must have one entry per record ({len(tgt)}), got {len(ref)}")
    for i, (a, b) in enumerate(zip(tgt, ref)):
        if a.size != b.size:
            raise ValueError(f"reference_logprobs[{i}] must score the same tokens as token_logprobs[{i}] "
                             f"({a.size}), got {b.size}")
    return np.array([(a - b).mean() for a, b in zip(tgt, ref)])
