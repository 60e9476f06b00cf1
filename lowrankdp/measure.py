"""Leakage and utility measurements of a causal LM on a lowrankdp dataset (torch layer).

What is measured (docs/theory.md §6, [RPUE]; canary exposure [CTW+19]; LM membership scores as in
:mod:`lowrankdp.attacks.lm`):

- **sensitive-token loss** on the *training* split: cross-entropy (nats) of the tokens that overlap a gold
  span (mask from :func:`lowrankdp.data.masks.encode_with_mask`), token-averaged, sequence-averaged, and
  low quantiles of the per-record average (a mean can be inflated by one confident miss); per span type.
  Higher = more private.
- **utility loss**: cross-entropy of the *non-sensitive* tokens of the *test* split. Lower = better.
- **memorisation gap**: the sensitive-token loss on the *test* split (values never trained on) minus the
  one on the training split, token-averaged. A lower train sensitive loss mixes memorising records with
  learning the format of sensitive values; only the former opens a gap (> 0 = better on trained values).
- both also for a base model and as ``gain_vs_base = L(base) − L(model)`` (positive = the model fits
  those tokens better than the base did: memorisation for sensitive tokens, learning for utility).
- **canary exposure** (:mod:`lowrankdp.attacks.exposure`): exact rank over the whole candidate space when
  it has at most ``exposure_max_candidates`` candidates, else the skew-normal estimate from a random sample.
- **membership inference**: LOSS, zlib, min-k %, reference (base model) scores of training records
  (members) vs test records (non-members) → :func:`lowrankdp.metrics.attack_report`.

IMPORTANT conventions:

- A causal LM predicts token ``t`` from tokens ``< t``; the first token of a sequence is never scored
  (no BOS is added beyond what the tokenizer itself adds). Sequences are truncated to ``max_length``
  tokens; sensitive tokens past that are not scored (``counts["truncated_records"]`` says how many
  records were cut).
- Canary records (``record.canary``) are excluded from the loss and membership measures; they are
  measured by exposure only (their repeated text would otherwise dominate both).
- Membership scores use *all* scored tokens of a record; higher score = member.
- Model state is restored afterwards: the model is put in ``eval()`` for the measurement and back in
  training mode if it was; if it is moved to another device it is moved back.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ._validate import check_int, check_probability
from .attacks import exposure as _exposure
from .attacks import lm as _lm

__all__ = [
    "DEFAULT_EXACT_MAX",
    "DEFAULT_EXPOSURE_SAMPLE",
    "resolve_device",
    "EncodedRecords",
    "encode_records",
    "record_logprobs",
    "candidate_strings",
    "candidate_logprobs",
    "canary_exposure",
    "loss_summary",
    "MeasureInputs",
    "prepare_inputs",
    "model_logprobs",
    "measure_all",
]

#: Candidate spaces up to this size are ranked exactly when ``exposure_max_candidates`` is None.
DEFAULT_EXACT_MAX = 1_000_000
#: Sample size of the fitted exposure estimate.
DEFAULT_EXPOSURE_SAMPLE = 10_000
# Budget of float32 logits per exposure forward (rows × vocabulary), ~256 MiB.
_LOGIT_BUDGET = 1 << 26
# Logits per cross-entropy chunk on CPU (2 MiB of float32: stays in cache).
_CE_CHUNK = 1 << 19


# --------------------------------------------------------------------------------------- plumbing

def resolve_device(model: torch.nn.Module, device: str | torch.device | None = None) -> torch.device:
    """``device`` if given; else the model's device if it is not the CPU; else CUDA when present."""
    if device is not None:
        return torch.device(device)
    try:
        current = next(model.parameters()).device
    except StopIteration:
        current = torch.device("cpu")
    if current.type != "cpu":
        return current
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


@contextmanager
def _eval_on(model: torch.nn.Module, device: torch.device) -> Iterator[torch.nn.Module]:
    """Put ``model`` in eval mode on ``device``; restore its mode and device afterwards."""
    was_training = model.training
    try:
        original = next(model.parameters()).device
    except StopIteration:
        original = device
    moved = original != device
    if moved:
        model.to(device)
    model.eval()
    try:
        with torch.inference_mode():
            yield model
    finally:
        if moved:
            model.to(original)
        model.train(was_training)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)


def _forward_logits(model, input_ids, attention_mask=None, *, last_only: bool = False):
    kwargs: dict[str, Any] = {"input_ids": input_ids, "use_cache": False}
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
    if last_only:
        try:
            return model(**kwargs, logits_to_keep=1).logits[:, -1]
        except TypeError:  # models without logits_to_keep
            pass
    out = model(**kwargs).logits
    return out[:, -1] if last_only else out


# --------------------------------------------------------------------------------------- encoding

class EncodedRecords:
    """Token ids of records plus, per token, whether it is sensitive and the span type.

    ``input_ids[i]`` (int64), ``sensitive[i]`` (bool), ``types[i]`` (object array of str/None) all have
    the record's token length; ``truncated`` counts records that hit ``max_length``.
    """

    def __init__(self, records: Sequence[Any], input_ids, sensitive, types, truncated: int, *,
                 max_length: int | None = None):
        self._max_length = max_length if max_length is not None else 1 << 62
        self.records = list(records)
        self.input_ids: list[np.ndarray] = input_ids
        self.sensitive: list[np.ndarray] = sensitive
        self.types: list[np.ndarray] = types
        self.truncated = truncated

    def __len__(self) -> int:
        return len(self.input_ids)

    def select(self, indices: Sequence[int]) -> "EncodedRecords":
        """The records at ``indices`` (no re-encoding)."""
        idx = list(indices)
        return EncodedRecords([self.records[i] for i in idx], [self.input_ids[i] for i in idx],
                              [self.sensitive[i] for i in idx], [self.types[i] for i in idx],
                              sum(1 for i in idx if self.input_ids[i].size >= self._max_length),
                              max_length=self._max_length)


def encode_records(tokenizer, records: Sequence[Any], *, max_length: int) -> EncodedRecords:
    """Tokenize records and project their gold spans with :func:`lowrankdp.data.masks.encode_with_mask`
    (a token is sensitive iff it overlaps a span on a non-whitespace character)."""
    from .data.masks import encode_with_mask

    records = list(records)
    if not records:
        return EncodedRecords([], [], [], [], 0, max_length=max_length)
    enc = encode_with_mask(tokenizer, [r.text for r in records], [r.spans or () for r in records],
                           max_length=max_length, padding=False)
    ids = [np.asarray(x, dtype=np.int64) for x in enc["input_ids"]]
    sens = [np.asarray(x, dtype=bool) for x in enc["sensitive_mask"]]
    types = [np.asarray(x, dtype=object) for x in enc["sensitive_types"]]
    truncated = sum(1 for x in ids if x.size >= max_length)
    return EncodedRecords(records, ids, sens, types, truncated, max_length=max_length)


# ------------------------------------------------------------------------------- token log-probs

def record_logprobs(
    model: torch.nn.Module,
    input_ids: Sequence[np.ndarray],
    *,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    progress: bool = False,
    desc: str = "log-probs",
) -> list[np.ndarray]:
    """Per record, ``log p(x_t | x_<t)`` for ``t = 1 … n−1`` (float64 array of length ``n−1``).

    Batched and gradient-free; records are sorted by length so batches carry little padding, padded on
    the right (attention 0). The log-softmax is taken in float32 by a fused cross-entropy over cache-sized
    chunks of the logits (no second batch-sized vocabulary tensor is materialised).
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    dev = resolve_device(model, device)
    n = len(input_ids)
    out: list[np.ndarray | None] = [None] * n
    order = sorted(range(n), key=lambda i: -len(input_ids[i]))
    with _eval_on(model, dev), _progress(n, desc, progress) as bar:
        for b0 in range(0, n, batch_size):
            idx = order[b0:b0 + batch_size]
            lens = [len(input_ids[i]) for i in idx]
            width = max(lens)
            if width < 2:  # nothing to predict in this (and every later, shorter) batch
                for i in idx:
                    out[i] = np.zeros(0)
                bar.update(len(idx))
                continue
            ids = torch.zeros((len(idx), width), dtype=torch.long)
            att = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                ids[r, :lens[r]] = torch.as_tensor(input_ids[i])
                att[r, :lens[r]] = 1
            ids, att = ids.to(dev), att.to(dev)
            logits = _forward_logits(model, ids, att)
            # target of position t is token t+1; the last position gets a dummy target and is dropped.
            # Fused cross-entropy (= −log-softmax at the target) over chunks of ~2^19 logits: the chunk's
            # temporaries stay in cache, 1.5-2.6x faster on CPU than one call over the whole batch and
            # ~3x faster than logsumexp + gather on a sliced view (benchmarks/measure.py).
            vocab = logits.shape[-1]
            flat = logits.reshape(-1, vocab)
            tgt = torch.cat([ids[:, 1:], ids[:, :1]], dim=1).reshape(-1)
            step = max(1, _CE_CHUNK // vocab) if dev.type == "cpu" else max(1, _LOGIT_BUDGET // vocab)
            nll = torch.empty(tgt.shape, dtype=torch.float32, device=logits.device)
            for r0 in range(0, tgt.shape[0], step):
                chunk = flat[r0:r0 + step]
                if chunk.dtype != torch.float32:
                    chunk = chunk.float()
                nll[r0:r0 + step] = torch.nn.functional.cross_entropy(chunk, tgt[r0:r0 + step], reduction="none")
            lp = (-nll.view(ids.shape)[:, :-1]).double().cpu().numpy()
            for r, i in enumerate(idx):
                out[i] = lp[r, :max(lens[r] - 1, 0)]
            bar.update(len(idx))
    return out  # type: ignore[return-value]


# ------------------------------------------------------------------------------------- summaries

def _mean_or_none(x: np.ndarray) -> float | None:
    return float(x.mean()) if x.size else None


def _quantiles(x: np.ndarray) -> dict[str, float | None]:
    if x.size == 0:
        return {"min": None, "q05": None, "q25": None, "median": None}
    q = np.quantile(x, [0.05, 0.25, 0.5])
    return {"min": float(x.min()), "q05": float(q[0]), "q25": float(q[1]), "median": float(q[2])}


def loss_summary(logprobs: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> dict[str, Any]:
    """Cross-entropy (nats) over the tokens selected by ``masks``.

    ``logprobs[i]`` has the record's ``n−1`` target log-probs, ``masks[i]`` its ``n`` per-token flags
    (the first token, never predicted, is dropped). Returns ``loss_token`` (token-averaged),
    ``loss_seq_mean`` (mean over records with at least one selected token of their average),
    ``quantiles`` of those per-record averages, ``token_quantiles`` of the per-token losses,
    ``n_tokens``, ``n_records``; losses are None where nothing is selected.
    """
    if len(logprobs) != len(masks):
        raise ValueError(f"masks must have one entry per record ({len(logprobs)}), got {len(masks)}")
    tok, seq = [], []
    for i, (lp, m) in enumerate(zip(logprobs, masks)):
        m = np.asarray(m, dtype=bool)
        if m.size != lp.size + 1 and not (lp.size == 0 and m.size <= 1):
            raise ValueError(f"masks[{i}] must have one flag per token ({lp.size + 1}), got {m.size}")
        sel = -lp[m[1:]] if m.size > 1 else np.zeros(0)
        if sel.size:
            tok.append(sel)
            seq.append(sel.mean())
    tok_all = np.concatenate(tok) if tok else np.zeros(0)
    seq_all = np.asarray(seq, dtype=float)
    return {
        "loss_token": _mean_or_none(tok_all),
        "loss_seq_mean": _mean_or_none(seq_all),
        "quantiles": _quantiles(seq_all),
        "token_quantiles": _quantiles(tok_all),
        "n_tokens": int(tok_all.size),
        "n_records": int(seq_all.size),
    }


def _gain(base: float | None, model: float | None) -> float | None:
    return None if base is None or model is None else float(base - model)


# -------------------------------------------------------------------------------------- exposure

def candidate_strings(alphabet: str, length: int, indices: np.ndarray) -> list[str]:
    """Secrets number ``indices`` of the space ``alphabet^length`` — base-``len(alphabet)`` digits,
    most significant first, padded (the order of :meth:`lowrankdp.data.Canary.candidate`)."""
    if not isinstance(alphabet, str) or not alphabet:
        raise ValueError(f"alphabet must be a non-empty string, got {alphabet!r}")
    length = check_int("length", length, minimum=1)
    b = len(alphabet)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= b ** length):
        raise ValueError(f"indices must be in [0, {b ** length}), got range [{idx.min()}, {idx.max()}]")
    digits = (idx[:, None] // (b ** np.arange(length - 1, -1, -1, dtype=np.int64))[None, :]) % b
    codes = np.array([ord(ch) for ch in alphabet], dtype=np.uint32)[digits]  # (n, length) code points
    return np.ascontiguousarray(codes).view(f"<U{length}").reshape(-1).tolist()


class _CandidateTrie:
    """Tokenized candidates: shared token prefix, continuations and the distinct contexts per depth."""

    def __init__(self, tokenizer, prefix: str, secrets: Sequence[str]):
        t0 = time.perf_counter()
        n = len(secrets)
        blocks: list[np.ndarray] = []
        backend = getattr(tokenizer, "backend_tokenizer", None)  # the Rust tokenizer: ~4x faster
        for c0 in range(0, n, 100_000):  # chunks keep the Python token lists small
            chunk = [prefix + s for s in secrets[c0:c0 + 100_000]]
            if backend is not None:
                enc = getattr(backend, "encode_batch_fast", backend.encode_batch)
                rows = [e.ids for e in enc(chunk, add_special_tokens=True)]
            else:
                rows = list(tokenizer(chunk)["input_ids"])
            w = max(len(r) for r in rows)
            block = np.full((len(rows), w), -1, dtype=np.int64)
            for i, r in enumerate(rows):
                block[i, :len(r)] = r
            blocks.append(block)
        width = max(b.shape[1] for b in blocks)
        arr = np.concatenate([np.pad(b, ((0, 0), (0, width - b.shape[1])), constant_values=-1)
                              for b in blocks])
        del blocks
        lens = (arr >= 0).sum(axis=1)
        if n > 1:
            # longest token prefix shared by every candidate (its log-prob is the same for all: dropped)
            same = np.all(arr == arr[0], axis=0) & (np.arange(width) < lens.min())
            lcp = int(np.argmin(same)) if not same.all() else width
            if lcp == int(lens.min()):
                raise ValueError("one candidate's tokens are a prefix of another's; secrets must differ "
                                 "in their tokens (check the alphabet/template)")
        else:  # a single candidate: score the tokens after the prefix's own tokenization
            lcp = max(0, min(len(tokenizer(prefix)["input_ids"]), int(lens[0]) - 1))
        shared = arr[0, :lcp]
        if lcp == 0:
            bos = getattr(tokenizer, "bos_token_id", None)
            if bos is None:
                raise ValueError("the candidates share no token prefix and the tokenizer has no BOS token, "
                                 "so the first secret token cannot be scored; use a template with a prefix")
            shared = np.array([bos], dtype=np.int64)
        self.shared = shared
        self.cont = arr[:, lcp:]
        self.clen = lens - lcp
        self.levels = []
        for d in range(int(self.clen.max())):
            active = np.nonzero(self.clen > d)[0]
            if d == 0:
                uniq = np.zeros((1, 0), dtype=np.int64)
                inv = np.zeros(active.size, dtype=np.int64)
            else:
                uniq, inv = np.unique(self.cont[active, :d], axis=0, return_inverse=True)
                inv = inv.reshape(-1)
            order = np.argsort(inv, kind="stable")
            self.levels.append((active, uniq, inv, order, inv[order]))
        self.n_contexts = int(sum(lv[1].shape[0] for lv in self.levels))
        self.seconds = time.perf_counter() - t0


# One cached trie: tokenization does not depend on the model, so per-epoch measurements reuse it.
_TRIE_CACHE: dict[str, Any] = {}


def _candidate_trie(tokenizer, prefix: str, secrets: Sequence[str]) -> tuple[_CandidateTrie, bool]:
    import hashlib
    import weakref

    digest = hashlib.sha1("\x00".join(secrets).encode("utf-8")).hexdigest()
    key = (prefix, len(secrets), digest, len(tokenizer) if hasattr(tokenizer, "__len__") else None)
    ref = _TRIE_CACHE.get("tokenizer")
    if ref is not None and ref() is tokenizer and _TRIE_CACHE.get("key") == key:
        return _TRIE_CACHE["trie"], True
    trie = _CandidateTrie(tokenizer, prefix, secrets)
    try:
        _TRIE_CACHE.update(tokenizer=weakref.ref(tokenizer), key=key, trie=trie)
    except TypeError:  # not weak-referenceable: do not cache
        _TRIE_CACHE.clear()
    return trie, False


def candidate_logprobs(
    model: torch.nn.Module,
    tokenizer,
    *,
    prefix: str,
    secrets: Sequence[str],
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
    return_stats: bool = False,
    prefix_cache: bool = True,
):
    """``log p(secret | prefix)`` for every secret (natural log), each text ``prefix + secret``
    tokenized as a whole.

    The token sequences share their longest common token prefix ``P`` (the template prefix; a trailing
    space may merge into the secret's first token, which is why the whole text is tokenized); only the
    continuation after ``P`` is scored — the same constant is dropped for every candidate, so ranks are
    unchanged. Continuations form a trie: at depth ``d`` the distinct contexts ``P + c[:d]`` are run in
    batches of ``batch_size`` contexts (``logits_to_keep=1``: one vocabulary row per context; default
    batch: as many as fit 2²⁶ float32 logits, at most 8192) and each candidate takes the log-prob of its
    next token from its context's row. For 10⁶ six-digit secrets with one token per digit this evaluates
    111,111 contexts instead of 6·10⁶ token positions. With ``prefix_cache`` (default) the shared prefix
    is run once and its KV cache repeated over each batch, so a context of depth ``d`` costs ``d`` token
    positions (models without a ``DynamicCache``-style cache fall back to prepending the prefix tokens
    to every context). The tokenized trie is cached (one entry) for the
    same tokenizer, prefix and secrets, so repeated measurements (per epoch) tokenize once.
    With ``return_stats`` also returns a dict: n_candidates, n_contexts, shared_prefix_tokens,
    max_continuation_tokens, batch_size, prefix_cache (whether the KV cache was used), tokenize_seconds,
    trie_cached, forward_seconds, seconds.
    """
    dev = resolve_device(model, device)
    secrets = list(secrets)
    if not secrets:
        raise ValueError("secrets must be non-empty")
    if not isinstance(prefix, str):
        raise ValueError(f"prefix must be a str, got {type(prefix).__name__}")
    t0 = time.perf_counter()
    trie, cached = _candidate_trie(tokenizer, prefix, secrets)
    t_tok = time.perf_counter() - t0

    vocab = int(getattr(getattr(model, "config", None), "vocab_size", 0) or 0) or 50_000
    if batch_size is None:
        batch_size = max(1, min(8192, _LOGIT_BUDGET // vocab))
    batch_size = check_int("batch_size", batch_size, minimum=1)
    scores = np.zeros(len(secrets), dtype=np.float64)
    t1 = time.perf_counter()
    with _eval_on(model, dev), _progress(trie.n_contexts, "exposure contexts", progress) as bar:
        shared_t = torch.as_tensor(trie.shared, dtype=torch.long, device=dev)
        cache = root_logits = None
        if prefix_cache:
            try:  # the shared prefix's KV cache, computed once and repeated over each batch
                out = model(input_ids=shared_t[None], use_cache=True)
                cache, root_logits = out.past_key_values, out.logits[:, -1]
                if cache is None or not hasattr(cache, "batch_repeat_interleave"):
                    cache = None
            except (TypeError, ValueError, AttributeError):
                cache = None
        for d, (active, uniq, inv, order, inv_sorted) in enumerate(trie.levels):
            nxt = trie.cont[active, d]
            for u0 in range(0, uniq.shape[0], batch_size):
                u1 = min(u0 + batch_size, uniq.shape[0])
                ctx = torch.as_tensor(uniq[u0:u1], dtype=torch.long, device=dev)
                if cache is not None and d == 0:
                    logits = root_logits
                elif cache is not None:
                    c = copy.deepcopy(cache)
                    c.batch_repeat_interleave(u1 - u0)
                    logits = model(input_ids=ctx, past_key_values=c, use_cache=True, logits_to_keep=1).logits[:, -1]
                else:
                    ids = torch.cat([shared_t.expand(u1 - u0, -1), ctx], dim=1)
                    logits = _forward_logits(model, ids, last_only=True)
                logp = torch.log_softmax(logits.float(), dim=-1)
                s0, s1 = np.searchsorted(inv_sorted, [u0, u1])
                sel = order[s0:s1]
                rows_t = torch.as_tensor(inv[sel] - u0, device=dev)
                toks_t = torch.as_tensor(nxt[sel], device=dev)
                scores[active[sel]] += logp[rows_t, toks_t].double().cpu().numpy()
                bar.update(u1 - u0)
    if return_stats:
        return scores, {"n_candidates": len(secrets), "n_contexts": trie.n_contexts,
                        "shared_prefix_tokens": int(trie.shared.size),
                        "max_continuation_tokens": len(trie.levels), "batch_size": batch_size,
                        "prefix_cache": cache is not None,
                        "tokenize_seconds": t_tok, "trie_cached": cached,
                        "forward_seconds": time.perf_counter() - t1, "seconds": time.perf_counter() - t0}
    return scores


def canary_exposure(
    model: torch.nn.Module,
    tokenizer,
    canary,
    *,
    max_candidates: int | None = None,
    sample_size: int = DEFAULT_EXPOSURE_SAMPLE,
    seed: int = 0,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Exposure of ``canary`` (a :class:`lowrankdp.data.Canary`: ``prefix``, ``secret``, ``alphabet``,
    ``length``, ``space_size``) under ``model``.

    Exact rank over all ``space_size`` candidates when ``space_size ≤ max_candidates`` (default
    :data:`DEFAULT_EXACT_MAX`), else the skew-normal estimate from ``sample_size`` uniformly drawn
    candidates (without replacement, seeded). Only ``log p(secret | prefix)`` is scored; the template's
    suffix (e.g. the final ".") is the same text for every candidate and is not part of the secret.
    Returns :meth:`ExposureResult.to_dict` plus ``canary_logprob``, ``n_contexts`` and ``seconds``.
    """
    space = check_int("canary.space_size", canary.space_size, minimum=1)
    alphabet, length = canary.alphabet, int(canary.length)
    if len(alphabet) ** length != space:
        raise ValueError(f"canary.space_size = {space} does not equal len(alphabet)^length = "
                         f"{len(alphabet) ** length}")
    if len(canary.secret) != length or any(ch not in alphabet for ch in canary.secret):
        raise ValueError("canary.secret is not in the candidate space (length/alphabet mismatch)")
    limit = DEFAULT_EXACT_MAX if max_candidates is None else check_int("max_candidates", max_candidates,
                                                                          minimum=0)
    sample_size = check_int("sample_size", sample_size, minimum=10)
    t0 = time.perf_counter()
    if space <= limit:
        secrets = candidate_strings(alphabet, length, np.arange(space, dtype=np.int64))
        canary_idx = secrets.index(canary.secret)
        method = "exact"
    else:
        # uniform sample of the *other* candidates (without replacement), then the canary itself
        b = len(alphabet)
        c_index = 0
        for ch in canary.secret:
            c_index = c_index * b + alphabet.index(ch)
        rng = np.random.default_rng(seed)
        n = min(sample_size, space - 1)
        if space <= 50_000_000:
            idx = rng.choice(space - 1, size=n, replace=False)
        else:  # huge spaces: with replacement, duplicates dropped (negligible at these sizes)
            idx = np.unique(rng.integers(0, space - 1, size=n))
        idx[idx >= c_index] += 1
        secrets = candidate_strings(alphabet, length, idx) + [canary.secret]
        canary_idx = len(secrets) - 1
        method = "skewnorm"
    scores, st = candidate_logprobs(model, tokenizer, prefix=canary.prefix, secrets=secrets,
                                    batch_size=batch_size, device=device, progress=progress,
                                    return_stats=True)
    x = float(scores[canary_idx])
    if method == "exact":
        res = _exposure.exposure(canary_logprob=x, candidate_logprobs=scores, space_size=space,
                                 method="exact")
    else:
        others = np.delete(scores, canary_idx)
        res = _exposure.exposure(canary_logprob=x, candidate_logprobs=others, space_size=space,
                                 method="skewnorm")
    d = res.to_dict()
    d.update(canary_logprob=x, n_contexts=st["n_contexts"], seconds=time.perf_counter() - t0)
    return d


# ----------------------------------------------------------------------------------- measure_all

def _subsample(records: list, max_records: int | None, seed: int) -> list:
    if max_records is None or len(records) <= max_records:
        return records
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(records), size=max_records, replace=False))
    return [records[i] for i in keep]


@dataclass(frozen=True)
class MeasureInputs:
    """The encoded records a measurement scores: members (train split, canaries excluded) and non-members
    (test split), encoded once by :func:`prepare_inputs` and reused for every model measured on them.
    ``train_all`` is the whole train split (canaries included, in file order): the fine-tuning engine trains on
    it, so each split of a run is encoded once."""

    train_all: EncodedRecords
    train: EncodedRecords
    test: EncodedRecords
    canary: Any
    spans_source: str
    n_canary: int
    max_length: int
    max_records: int | None
    seed: int


def prepare_inputs(tokenizer, dataset, *, max_length: int = 256, max_records: int | None = None,
                   seed: int = 0) -> MeasureInputs:
    """Load (if a path), label (regex detector for records without spans) and encode the records that
    :func:`measure_all` scores. ``max_records`` subsamples each split (seeded)."""
    max_length = check_int("max_length", max_length, minimum=2)
    if max_records is not None:
        max_records = check_int("max_records", max_records, minimum=2)
    if isinstance(dataset, (str, bytes)) or hasattr(dataset, "__fspath__"):
        from .data import load_dataset
        dataset = load_dataset(dataset)
    splits = getattr(dataset, "splits", None)
    if not isinstance(splits, dict):
        raise ValueError(f"dataset must be a lowrankdp.data.Dataset (or a path), got {type(dataset).__name__}")
    for s in ("train", "test"):
        if not splits.get(s):
            raise ValueError(f"dataset needs a non-empty {s!r} split (members = train, non-members = test); "
                             f"it has {sorted(k for k, v in splits.items() if v)}")
    spans_source = "gold"
    if any(r.spans is None for s in ("train", "test") for r in splits[s]):
        dataset = dataset.with_detected_spans()
        splits = dataset.splits
        spans_source = "detector"
    train_all = encode_records(tokenizer, splits["train"], max_length=max_length)
    members = _subsample([i for i, r in enumerate(splits["train"]) if not r.canary], max_records, seed)
    test = _subsample([r for r in splits["test"] if not r.canary], max_records, seed + 1)
    return MeasureInputs(train_all=train_all, train=train_all.select(members),
                         test=encode_records(tokenizer, test, max_length=max_length),
                         canary=getattr(dataset, "canary", None), spans_source=spans_source,
                         n_canary=sum(1 for r in splits["train"] if r.canary), max_length=max_length,
                         max_records=max_records, seed=seed)


def model_logprobs(model, inputs: MeasureInputs, *, batch_size: int = 16, device=None, progress: bool = False,
                   who: str = "model") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-token log-probs of the member and non-member records of ``inputs`` under ``model``."""
    dev = resolve_device(model, device)
    lp_tr = record_logprobs(model, inputs.train.input_ids, batch_size=batch_size, device=dev, progress=progress,
                            desc=f"{who}: train")
    lp_te = record_logprobs(model, inputs.test.input_ids, batch_size=batch_size, device=dev, progress=progress,
                            desc=f"{who}: test")
    return lp_tr, lp_te


def _loss_block(inputs: MeasureInputs, lp_tr, lp_te) -> dict[str, Any]:
    sens = loss_summary(lp_tr, inputs.train.sensitive)
    util = loss_summary(lp_te, [~m for m in inputs.test.sensitive])
    # sensitive tokens of the *test* split (values never trained on), from the same test pass
    sens_te = loss_summary(lp_te, inputs.test.sensitive)
    return {
        "sensitive_loss_token": sens["loss_token"], "sensitive_loss_seq_mean": sens["loss_seq_mean"],
        "sensitive_loss_quantiles": sens["quantiles"], "sensitive_loss_token_quantiles": sens["token_quantiles"],
        "utility_loss": util["loss_token"], "utility_loss_seq_mean": util["loss_seq_mean"],
        "sensitive_loss_test_token": sens_te["loss_token"], "sensitive_loss_test_seq_mean": sens_te["loss_seq_mean"],
        # > 0: the model predicts the personal values it was trained on better than unseen ones
        "memorization_gap_token": _gain(sens_te["loss_token"], sens["loss_token"]),
        "_n": {"sens_tokens": sens["n_tokens"], "sens_records": sens["n_records"], "util_tokens": util["n_tokens"]},
    }


def _base_block(inputs: MeasureInputs, out: dict[str, Any], base_tr, base_te) -> dict[str, Any]:
    b = _loss_block(inputs, base_tr, base_te)
    res = {"base_sensitive_loss_token": b["sensitive_loss_token"],
           "base_sensitive_loss_seq_mean": b["sensitive_loss_seq_mean"], "base_utility_loss": b["utility_loss"],
           "sensitive_loss_token_gain_vs_base": _gain(b["sensitive_loss_token"], out["sensitive_loss_token"]),
           "sensitive_loss_seq_mean_gain_vs_base": _gain(b["sensitive_loss_seq_mean"],
                                                         out["sensitive_loss_seq_mean"]),
           "utility_loss_gain_vs_base": _gain(b["utility_loss"], out["utility_loss"]),
           "base_sensitive_loss_test_token": b["sensitive_loss_test_token"]}
    # the model's gap minus the base's (the base saw neither split, so its gap is the difficulty difference of
    # the two splits' values) = train-split gain vs base - test-split gain vs base
    base_gap = b["memorization_gap_token"]
    res["memorization_gap_token_gain_vs_base"] = (
        None if base_gap is None or out["memorization_gap_token"] is None
        else float(out["memorization_gap_token"] - base_gap))
    return res


def _per_type(inputs: MeasureInputs, lp_tr, base_tr) -> dict[str, Any]:
    per_type: dict[str, Any] = {}
    types = inputs.train.types
    for typ in sorted({t for ty in types for t in ty if t is not None}):
        masks = [ty == typ for ty in types]
        s = loss_summary(lp_tr, masks)
        entry = {"sensitive_loss_token": s["loss_token"], "sensitive_loss_seq_mean": s["loss_seq_mean"],
                 "n_tokens": s["n_tokens"], "n_records": s["n_records"]}
        if base_tr is not None:
            b = loss_summary(base_tr, masks)
            entry["base_sensitive_loss_token"] = b["loss_token"]
            entry["gain_vs_base"] = _gain(b["loss_token"], s["loss_token"])
        per_type[typ] = entry
    return per_type


def _mia_block(inputs: MeasureInputs, lp_tr, lp_te, base_tr, base_te, *, min_k: float, n_bootstrap: int,
               seed: int, delta: float) -> tuple[dict[str, Any], int, int]:
    """Membership scores: members = train records, non-members = test records (all scored tokens)."""
    from .metrics import attack_report

    keep_tr = [i for i, a in enumerate(lp_tr) if a.size > 0]
    keep_te = [i for i, a in enumerate(lp_te) if a.size > 0]
    if not keep_tr or not keep_te:
        raise ValueError("membership inference needs at least one train and one test record with >= 2 tokens")
    m_in = [lp_tr[i] for i in keep_tr]
    m_out = [lp_te[i] for i in keep_te]
    tr_txt = [inputs.train.records[i].text for i in keep_tr]
    te_txt = [inputs.test.records[i].text for i in keep_te]

    def report(a, b):
        return attack_report(a, b, n_bootstrap=n_bootstrap, seed=seed, delta=delta).to_dict()

    mia: dict[str, Any] = {
        "loss": report(_lm.loss_score(m_in), _lm.loss_score(m_out)),
        "zlib": report(_lm.zlib_score(m_in, tr_txt), _lm.zlib_score(m_out, te_txt)),
        "min_k": report(_lm.min_k_score(m_in, k=min_k), _lm.min_k_score(m_out, k=min_k)),
        "reference": None,
    }
    if base_tr is not None:
        mia["reference"] = report(_lm.reference_score(m_in, [base_tr[i] for i in keep_tr]),
                                  _lm.reference_score(m_out, [base_te[i] for i in keep_te]))
    mia.update(_sensitive_attacks(inputs, lp_tr, lp_te, base_tr, base_te, report))
    return mia, len(keep_tr), len(keep_te)


def _sensitive_only(logprobs, masks, idx):
    return [logprobs[i][np.asarray(masks[i], dtype=bool)[1:]] for i in idx]


def _sensitive_attacks(inputs: MeasureInputs, lp_tr, lp_te, base_tr, base_te, report) -> dict[str, Any]:
    """Membership scored on the sensitive tokens alone (records with at least one scored sensitive token): the
    LOSS attack there (``sensitive``) and, with a base, its reference-calibrated form (``sensitive_reference``).
    This is the attack that measures memorisation of the personal values rather than of the whole record."""
    sens_tr, sens_te = inputs.train.sensitive, inputs.test.sensitive
    idx_tr = [i for i, a in enumerate(lp_tr) if np.asarray(sens_tr[i], dtype=bool)[1:].any()]
    idx_te = [i for i, a in enumerate(lp_te) if np.asarray(sens_te[i], dtype=bool)[1:].any()]
    if not idx_tr or not idx_te:
        return {"sensitive": None, "sensitive_reference": None}
    s_in, s_out = _sensitive_only(lp_tr, sens_tr, idx_tr), _sensitive_only(lp_te, sens_te, idx_te)
    out: dict[str, Any] = {"sensitive": report(_lm.loss_score(s_in), _lm.loss_score(s_out)),
                           "sensitive_reference": None}
    if base_tr is not None:
        out["sensitive_reference"] = report(
            _lm.reference_score(s_in, _sensitive_only(base_tr, sens_tr, idx_tr)),
            _lm.reference_score(s_out, _sensitive_only(base_te, sens_te, idx_te)))
    return out


def _base_logprobs(model, inputs, base_model, base_logprobs, model_lp, *, batch_size, device, progress, seconds):
    """The base model's per-token log-probs on ``inputs``: scored here from ``base_model``, or given."""
    if base_model is not None and base_logprobs is not None:
        raise ValueError("base_model and base_logprobs are alternatives; pass one of them")
    if base_model is not None:
        if getattr(base_model.config, "vocab_size", None) != getattr(model.config, "vocab_size", None):
            raise ValueError("base_model must share the tokenizer (vocabulary sizes differ: "
                             f"{base_model.config.vocab_size} vs {model.config.vocab_size})")
        t = time.perf_counter()
        lp = model_logprobs(base_model, inputs, batch_size=batch_size, device=device, progress=progress, who="base")
        seconds["base_pass"] = time.perf_counter() - t
        return lp
    if base_logprobs is not None:
        if len(base_logprobs[0]) != len(model_lp[0]) or len(base_logprobs[1]) != len(model_lp[1]):
            raise ValueError("base_logprobs must come from model_logprobs on the same inputs (record counts differ)")
        return base_logprobs
    return None, None


def measure_all(
    model: torch.nn.Module,
    tokenizer,
    dataset=None,
    *,
    inputs: MeasureInputs | None = None,
    base_model: torch.nn.Module | None = None,
    base_logprobs: tuple[list[np.ndarray], list[np.ndarray]] | None = None,
    batch_size: int = 16,
    max_length: int = 256,
    device: str | torch.device | None = None,
    exposure_max_candidates: int | None = None,
    progress: bool = True,
    min_k: float = 0.2,
    max_records: int | None = None,
    exposure_sample_size: int = DEFAULT_EXPOSURE_SAMPLE,
    n_bootstrap: int = 1000,
    seed: int = 0,
    delta: float = 0.0,
) -> dict[str, Any]:
    """Every leakage/utility measure of ``model``; a JSON-able dict (see module doc and ``docs/measure.md`` for
    each key). The one scorer of the toolkit: every loss the fine-tuning engine logs comes from here.

    Records come from ``inputs`` (:func:`prepare_inputs`, encoded once and reused) or else from ``dataset`` (a
    :class:`lowrankdp.data.Dataset` or a path; needs ``train`` and ``test`` splits), encoded here with
    ``max_length``, ``max_records`` and ``seed``. The base model (same tokenizer) gives the ``*_gain_vs_base``
    keys and the reference attack: pass ``base_model``, or its per-token log-probs on the same ``inputs``
    (``base_logprobs``, from :func:`model_logprobs`) to avoid re-scoring it. ``exposure_max_candidates``: rank
    exactly up to this many candidates (None → :data:`DEFAULT_EXACT_MAX`; 0 → always the fitted estimate).
    ``min_k``: the k of min-k %. ``delta``: the δ at which the membership attacks' ε lower bounds are certified (a
    run passes its accountant's δ, so the two are comparable). Keys: ``sensitive_loss_token``, ``sensitive_loss_seq_mean``,
    ``sensitive_loss_quantiles``, ``sensitive_loss_token_quantiles``, ``utility_loss``, ``utility_loss_seq_mean``,
    ``sensitive_loss_test_token``, ``sensitive_loss_test_seq_mean``, ``memorization_gap_token``; with a base
    also ``base_*``, ``*_gain_vs_base``, ``memorization_gap_token_gain_vs_base``; ``per_type``, ``exposure``
    (None without a canary), ``mia`` {loss, zlib, min_k, reference, sensitive, sensitive_reference}, ``counts``,
    ``settings``, ``seconds``.
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    min_k = check_probability("min_k", min_k, open_right=False)
    if exposure_max_candidates is not None:
        exposure_max_candidates = check_int("exposure_max_candidates", exposure_max_candidates, minimum=0)
    n_bootstrap = check_int("n_bootstrap", n_bootstrap, minimum=1)
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}
    if inputs is None:
        if dataset is None:
            raise ValueError("dataset must be given when inputs is None")
        inputs = prepare_inputs(tokenizer, dataset, max_length=max_length, max_records=max_records, seed=seed)
        seconds["encode"] = time.perf_counter() - t_start
    elif not isinstance(inputs, MeasureInputs):
        raise ValueError(f"inputs must be a MeasureInputs from prepare_inputs, got {type(inputs).__name__}")
    dev = resolve_device(model, device)
    t = time.perf_counter()
    lp_tr, lp_te = model_logprobs(model, inputs, batch_size=batch_size, device=dev, progress=progress)
    seconds["model_pass"] = time.perf_counter() - t
    base_tr, base_te = _base_logprobs(model, inputs, base_model, base_logprobs, (lp_tr, lp_te), batch_size=batch_size,
                                      device=dev, progress=progress, seconds=seconds)
    out = _loss_block(inputs, lp_tr, lp_te)
    n = out.pop("_n")
    if base_tr is not None:
        out.update(_base_block(inputs, out, base_tr, base_te))
    out["per_type"] = _per_type(inputs, lp_tr, base_tr)
    out["exposure"] = None
    if inputs.canary is not None:
        t = time.perf_counter()
        out["exposure"] = canary_exposure(model, tokenizer, inputs.canary, max_candidates=exposure_max_candidates,
                                          sample_size=exposure_sample_size, seed=seed, device=dev,
                                          progress=progress)
        seconds["exposure"] = time.perf_counter() - t
    t = time.perf_counter()
    out["mia"], n_in, n_out = _mia_block(inputs, lp_tr, lp_te, base_tr, base_te, min_k=min_k,
                                         n_bootstrap=n_bootstrap, seed=seed, delta=delta)
    seconds["mia"] = time.perf_counter() - t
    out["counts"] = {
        "n_train": len(inputs.train), "n_test": len(inputs.test), "n_canary_records_excluded": inputs.n_canary,
        "n_sensitive_tokens": n["sens_tokens"], "n_sensitive_records": n["sens_records"],
        "n_utility_tokens": n["util_tokens"], "truncated_records": inputs.train.truncated + inputs.test.truncated,
        "n_members": n_in, "n_nonmembers": n_out,
    }
    out["settings"] = {"batch_size": batch_size, "max_length": inputs.max_length, "device": str(dev),
                       "min_k": min_k, "max_records": inputs.max_records, "spans": inputs.spans_source,
                       "exposure_max_candidates": DEFAULT_EXACT_MAX if exposure_max_candidates is None
                       else exposure_max_candidates, "seed": seed}
    seconds["total"] = time.perf_counter() - t_start
    out["seconds"] = seconds
    return out
