"""Knowledge-retention measures: held-out pretraining loss and multiple-choice accuracy.

- :func:`retention_loss` — mean next-token loss (nats per predicted token) on the held-out split
  of the embedded pretraining text (:mod:`lowrankdp.models.corpus`). For the tiny model this is
  its pretraining held-out loss; after fine-tuning, the increase over the base model is the
  offline knowledge-retention measure. Values depend on the tokenizer, so compare checkpoints of
  one base model, not different model families.
- :func:`multiple_choice_accuracy` / :func:`score_multiple_choice` — benchmark-style
  multiple-choice evaluation on a local JSONL task file (``question``, ``choices``, ``answer``),
  each choice scored by its length-normalised log-likelihood after ``"Question: …\\nAnswer:"``
  (as lm-evaluation-harness's ``acc_norm``, which divides by the continuation's length in
  characters). A generated task over the pretraining facts ships via :func:`default_task_file`.
- :func:`run_lm_eval` — named benchmark tasks (MMLU, HellaSwag, SciQ, …) through
  lm-evaluation-harness when it is installed (it is not in this workplace: untested here).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from .._validate import check_choice, check_int

__all__ = [
    "token_stream",
    "stream_loss",
    "retention_loss",
    "heldout_documents",
    "default_task_file",
    "load_task",
    "score_multiple_choice",
    "multiple_choice_accuracy",
    "lm_eval_available",
    "run_lm_eval",
]

DEFAULT_BLOCK_SIZE = 256


def token_stream(tokenizer, docs: Iterable[str]) -> list[int]:
    """Documents encoded without special tokens and joined, each followed by the eos token.

    This is the pretraining layout of the tiny model. A tokenizer without an eos token joins the
    documents with a blank line instead.
    """
    docs = list(docs)
    eos = tokenizer.eos_token_id
    if eos is None:
        return list(tokenizer("\n\n".join(docs), add_special_tokens=False)["input_ids"])
    ids: list[int] = []
    for enc in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        ids.append(eos)
    return ids


def _device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover
        return torch.device("cpu")


@torch.no_grad()
def stream_loss(model, ids: Sequence[int], *, block_size: int = DEFAULT_BLOCK_SIZE, batch_size: int = 8) -> float:
    """Token-weighted mean next-token loss of ``ids`` cut into consecutive blocks.

    Blocks are ``ids[0:B], ids[B:2B], …`` (the last may be shorter); inside each block every
    token but the first is predicted from the tokens before it in that block. Returns
    ``sum(-log p) / number of predicted tokens`` in nats. The model's train/eval mode is restored.
    """
    block_size = check_int("block_size", block_size, minimum=2)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if len(ids) < 2:
        raise ValueError(f"need at least 2 tokens to score, got {len(ids)}")
    device = _device(model)
    blocks = [list(ids[s:s + block_size]) for s in range(0, len(ids), block_size)]
    blocks = [b for b in blocks if len(b) >= 2]
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        full = [b for b in blocks if len(b) == block_size]
        rest = [b for b in blocks if len(b) != block_size]
        groups = [full[i:i + batch_size] for i in range(0, len(full), batch_size)] + [[b] for b in rest]
        for group in groups:
            x = torch.tensor(group, dtype=torch.long, device=device)
            logits = model(input_ids=x).logits.float()
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum")
            total += float(nll)
            count += x.shape[0] * (x.shape[1] - 1)
    finally:
        model.train(was_training)
    return total / count


def heldout_documents() -> tuple[str, ...]:
    """The held-out documents of the embedded pretraining text (default tiny recipe)."""
    from .recipe import DEFAULT_RECIPE, tiny_corpus

    return tiny_corpus(DEFAULT_RECIPE).heldout


def _max_positions(model) -> int | None:
    cfg = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "max_seq_len"):
        v = getattr(cfg, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def retention_loss(model, tokenizer, *, max_tokens: int | None = None, block_size: int | None = None,
                   batch_size: int = 8) -> float:
    """Held-out loss (nats/token) of ``model`` on the embedded pretraining text.

    The held-out documents are tokenised with ``tokenizer`` into one stream (each document
    followed by eos, :func:`token_stream`), truncated to the first ``max_tokens`` tokens if given,
    and scored by :func:`stream_loss` in blocks of ``block_size`` tokens (default 256, capped at
    the model's maximum positions). For the tiny base model this reproduces ``heldout_loss`` of
    its metadata. Lower is better; fine-tuning that forgets raises it.
    """
    ids = token_stream(tokenizer, heldout_documents())
    if max_tokens is not None:
        max_tokens = check_int("max_tokens", max_tokens, minimum=2)
        ids = ids[:max_tokens]
    if block_size is None:
        cap = _max_positions(model)
        block_size = DEFAULT_BLOCK_SIZE if cap is None else min(DEFAULT_BLOCK_SIZE, cap)
    return stream_loss(model, ids, block_size=block_size, batch_size=batch_size)


# ---------------------------------------------------------------------------------------------
# Multiple choice
# ---------------------------------------------------------------------------------------------

def default_task_file(cache_dir=None) -> Path:
    """The generated multiple-choice task over the pretraining facts (written once to the cache).

    61 questions (colours, animal sounds, opposites, counts, a fictional geography, shipping
    times), 4 choices each, from :func:`lowrankdp.models.corpus.multiple_choice_items`.
    """
    from .cache import cache_root
    from .corpus import GENERATOR_VERSION, multiple_choice_items

    root = cache_root(cache_dir)
    path = root / f"mc-facts-v{GENERATOR_VERSION}.jsonl"
    text = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in multiple_choice_items())
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{path.name}.tmp-{os.getpid()}"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # atomic: concurrent writers write identical content
    return path


def load_task(task_file: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a JSONL task file: one ``{"question": str, "choices": [str, ...], "answer": int}`` a line."""
    path = Path(task_file)
    if not path.is_file():
        raise ValueError(f"task_file {str(path)!r} does not exist")
    items = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            q, ch, ans = item.get("question"), item.get("choices"), item.get("answer")
            if not isinstance(q, str) or not isinstance(ch, list) or len(ch) < 2 \
                    or not all(isinstance(c, str) and c for c in ch):
                raise ValueError(f"{path}:{lineno}: need 'question' (str) and 'choices' (>= 2 non-empty str)")
            if isinstance(ans, bool) or not isinstance(ans, int) or not 0 <= ans < len(ch):
                raise ValueError(f"{path}:{lineno}: 'answer' must be an index in [0, {len(ch) - 1}], got {ans!r}")
            items.append(item)
    if not items:
        raise ValueError(f"task_file {str(path)!r} has no items")
    return items


def _prefix_ids(tokenizer) -> list[int]:
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return [tid]
    return []


@torch.no_grad()
def score_multiple_choice(model, tokenizer, task_file: str | os.PathLike | None = None, *,
                          normalize: str = "chars", max_items: int | None = None,
                          prompt: str = "Question: {question}\nAnswer:") -> dict[str, Any]:
    """Score every choice of every item; return accuracy and per-item details.

    The context is ``[bos or eos] + prompt``; each choice is the continuation ``" " + choice``
    (encoded separately and appended). Its score is the sum of the log-probabilities of its
    tokens divided by: its length in characters (``normalize="chars"``, lm-eval's ``acc_norm``),
    its number of tokens (``"tokens"``), or nothing (``"none"``, lm-eval's ``acc``). The
    prediction is the highest score (first on ties).
    """
    normalize = check_choice("normalize", normalize, ("chars", "tokens", "none"))
    items = load_task(default_task_file() if task_file is None else task_file)
    if max_items is not None:
        items = items[:check_int("max_items", max_items, minimum=1)]
    device = _device(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was_training = model.training
    model.eval()
    per_item, correct = [], 0
    try:
        for item in items:
            ctx = _prefix_ids(tokenizer) + tokenizer(prompt.format(question=item["question"]),
                                                     add_special_tokens=False)["input_ids"]
            conts = [tokenizer(" " + c, add_special_tokens=False)["input_ids"] for c in item["choices"]]
            seqs = [ctx + c for c in conts]
            width = max(map(len, seqs))
            x = torch.full((len(seqs), width), pad, dtype=torch.long, device=device)
            mask = torch.zeros_like(x)
            for i, s in enumerate(seqs):
                x[i, :len(s)] = torch.tensor(s, device=device)
                mask[i, :len(s)] = 1
            logp = torch.log_softmax(model(input_ids=x, attention_mask=mask).logits.float(), dim=-1)
            scores = []
            for i, c in enumerate(conts):
                pos = torch.arange(len(ctx) - 1, len(ctx) - 1 + len(c), device=device)
                ll = float(logp[i, pos, torch.tensor(c, device=device)].sum())
                denom = {"chars": len(" " + item["choices"][i]), "tokens": len(c), "none": 1}[normalize]
                scores.append(ll / denom)
            pred = max(range(len(scores)), key=lambda j: (scores[j], -j))
            correct += pred == item["answer"]
            per_item.append({"id": item.get("id"), "scores": scores, "prediction": pred,
                             "answer": item["answer"], "correct": pred == item["answer"]})
    finally:
        model.train(was_training)
    return {"accuracy": correct / len(items), "n": len(items), "normalize": normalize,
            "chance": sum(1 / len(it["choices"]) for it in items) / len(items), "items": per_item}


def multiple_choice_accuracy(model, tokenizer, task_file: str | os.PathLike | None = None, *,
                             normalize: str = "chars") -> float:
    """Fraction of items of ``task_file`` (default: :func:`default_task_file`) answered correctly."""
    return score_multiple_choice(model, tokenizer, task_file, normalize=normalize)["accuracy"]


# ---------------------------------------------------------------------------------------------
# lm-evaluation-harness (optional; not installed in this workplace, so untested here)
# ---------------------------------------------------------------------------------------------

def lm_eval_available() -> bool:
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        return False
    return True


def run_lm_eval(model, tokenizer, tasks: Sequence[str] = ("mmlu", "hellaswag", "sciq"), *,
                num_fewshot: int | None = None, limit: int | float | None = None,
                batch_size: int = 8) -> dict[str, dict[str, Any]]:
    """Run named lm-evaluation-harness tasks on an in-memory model; ``{task: metrics}``.

    Needs ``pip install 'lm-eval[hf]'`` (recent releases split out the HF backend) and the task
    data (downloaded from the hub on first use).
    UNTESTED in this workplace (lm-eval is not installed and there is no network); the call
    follows lm-eval's documented ``HFLM(pretrained=model, tokenizer=...)`` + ``simple_evaluate``.
    """
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        raise ImportError("run_lm_eval needs lm-evaluation-harness: pip install 'lm-eval[hf]'") from None
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    out = lm_eval.simple_evaluate(model=lm, tasks=list(tasks), num_fewshot=num_fewshot, limit=limit)
    return {name: dict(metrics) for name, metrics in out["results"].items()}
