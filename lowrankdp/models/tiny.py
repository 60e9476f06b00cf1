"""The embedded default base model ("tiny"): a small GPT-NeoX pretrained here, deterministically.

Recipe (:class:`TinyRecipe`): the neutral corpus of :mod:`lowrankdp.models.corpus`, a byte-level
BPE tokenizer trained on its train split, and a 2-layer GPT-NeoX (the Pythia architecture:
rotary embeddings on 25 % of each head's dimensions, parallel attention/MLP residual, untied
input/output embeddings, MLP 4× hidden) trained with AdamW on random windows of the train split,
single-threaded on CPU with ``torch.use_deterministic_algorithms(True)``.

The result is cached under ``$LOWRANKDP_CACHE/tiny-<key>`` where ``key`` hashes the recipe, the
corpus SHA-256 and the torch / transformers / tokenizers versions, in ``save_pretrained`` format
(``AutoModelForCausalLM.from_pretrained(path)`` and ``AutoTokenizer.from_pretrained(path)`` load
it), with ``lowrankdp_model.json`` (recipe, corpus description and hash, losses, unigram baseline,
build time, versions) and ``heldout.txt``.

Determinism: two builds with the same recipe and versions on the same machine give bit-identical
weights (tested). Across CPUs with different vector units, float results of the same torch version
can differ in the last bits; the cache key does not include the CPU, so a cache directory copied
between machines is reused as is.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .cache import cache_root, cached_build, recipe_key
from .corpus import Corpus, make_corpus
from .retention import stream_loss, token_stream

__all__ = ["TinyRecipe", "DEFAULT_RECIPE", "METADATA_FILE", "tiny_corpus", "build_tiny", "tiny_path",
           "read_metadata"]

METADATA_FILE = "lowrankdp_model.json"
_FORMAT_VERSION = 1  # bump whenever the build code changes the weights (it is part of the cache key)


@dataclass(frozen=True)
class TinyRecipe:
    """Everything that determines the tiny model (besides library versions)."""

    corpus_seed: int = 0
    n_train_docs: int = 6000
    n_heldout_docs: int = 300
    vocab_size: int = 1792  # BPE target; the trainer may stop earlier when merges run out
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    rotary_pct: float = 0.25
    max_position_embeddings: int = 512
    block_size: int = 256
    batch_size: int = 8
    steps: int = 260
    lr: float = 1e-2
    warmup_steps: int = 16
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


DEFAULT_RECIPE = TinyRecipe()


@lru_cache(maxsize=4)
def tiny_corpus(recipe: TinyRecipe = DEFAULT_RECIPE) -> Corpus:
    return make_corpus(seed=recipe.corpus_seed, n_train_docs=recipe.n_train_docs,
                       n_heldout_docs=recipe.n_heldout_docs)


def _versions() -> dict[str, str]:
    import tokenizers
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__}


def _full_recipe(recipe: TinyRecipe) -> dict[str, Any]:
    return {"format": _FORMAT_VERSION, "recipe": recipe.to_dict(),
            "corpus_sha256": tiny_corpus(recipe).sha256, "versions": _versions()}


def tiny_path(recipe: TinyRecipe = DEFAULT_RECIPE, *, cache_dir=None) -> Path:
    """Where the model of ``recipe`` lives (or will live) in the cache."""
    return cache_root(cache_dir) / f"tiny-{recipe_key(_full_recipe(recipe))}"


def read_metadata(path: str | Path) -> dict[str, Any] | None:
    """The ``lowrankdp_model.json`` of a model directory, or None."""
    f = Path(path) / METADATA_FILE
    return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None


@contextmanager
def _deterministic_torch():
    """Single thread, deterministic algorithms; restores the previous settings."""
    import torch

    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(det, warn_only=warn_only)
        torch.set_num_threads(threads)


def unigram_cross_entropy(train_ids: list[int], test_ids: list[int], vocab_size: int) -> float:
    """Cross-entropy (nats/token) of ``test_ids`` under the add-one unigram model of ``train_ids``.

    Scored on the predicted positions only (all but the first token), like the LM loss.
    """
    counts = Counter(train_ids)
    total = len(train_ids) + vocab_size
    targets = test_ids[1:]
    return -sum(math.log((counts.get(t, 0) + 1) / total) for t in targets) / len(targets)


def _model_config(recipe: TinyRecipe, tokenizer):
    from transformers import GPTNeoXConfig

    vocab = -(-len(tokenizer) // 128) * 128  # rounded up to a multiple of 128
    return GPTNeoXConfig(
        vocab_size=vocab,
        hidden_size=recipe.hidden_size,
        num_hidden_layers=recipe.num_layers,
        num_attention_heads=recipe.num_heads,
        intermediate_size=4 * recipe.hidden_size,
        hidden_act="gelu",
        rotary_pct=recipe.rotary_pct,
        rotary_emb_base=10000,
        max_position_embeddings=recipe.max_position_embeddings,
        use_parallel_residual=True,
        tie_word_embeddings=False,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _lr_at(step: int, recipe: TinyRecipe) -> float:
    if step < recipe.warmup_steps:
        return recipe.lr * (step + 1) / recipe.warmup_steps
    frac = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
    return recipe.lr * (recipe.min_lr_ratio + (1 - recipe.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def _build(recipe: TinyRecipe, out: Path, log, key: str) -> None:
    import torch
    from transformers import GPTNeoXForCausalLM

    from .tokenizer import train_tokenizer

    t0, c0 = time.perf_counter(), time.process_time()
    corpus = tiny_corpus(recipe)
    tokenizer = train_tokenizer(corpus.train, vocab_size=recipe.vocab_size,
                                model_max_length=recipe.max_position_embeddings)
    t_tok = time.perf_counter() - t0
    train_ids = token_stream(tokenizer, corpus.train)
    heldout_ids = token_stream(tokenizer, corpus.heldout)
    config = _model_config(recipe, tokenizer)
    with _deterministic_torch():
        torch.manual_seed(recipe.seed)
        model = GPTNeoXForCausalLM(config)
        model.train()
        data = torch.tensor(train_ids, dtype=torch.long)
        gen = torch.Generator().manual_seed(recipe.seed)
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=recipe.lr, betas=(0.9, 0.95), foreach=False)
        T = recipe.block_size
        n_windows = len(train_ids) - T
        ema = None
        t1 = time.perf_counter()
        for step in range(recipe.steps):
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, recipe)
            starts = torch.randint(0, n_windows, (recipe.batch_size,), generator=gen)
            batch = torch.stack([data[s:s + T] for s in starts.tolist()])
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            value = loss.item()
            ema = value if ema is None else 0.9 * ema + 0.1 * value
            if log is not None and (step % 20 == 0 or step == recipe.steps - 1):
                log(f"step {step:4d}/{recipe.steps}  loss {value:.3f}  ({time.perf_counter() - t1:.1f} s)")
        t_train = time.perf_counter() - t1
        heldout_loss = stream_loss(model, heldout_ids, block_size=T)
        model.eval()
    unigram = unigram_cross_entropy(train_ids, heldout_ids, len(tokenizer))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "heldout.txt").write_text("\n\n".join(corpus.heldout), encoding="utf-8")
    n_params = sum(p.numel() for p in model.parameters())
    meta = {
        "name": "tiny",
        "format": _FORMAT_VERSION,
        "cache_key": key,
        "recipe": recipe.to_dict(),
        "corpus": {**corpus.describe(), "train_tokens": len(train_ids), "heldout_tokens": len(heldout_ids)},
        "tokenizer": {"kind": "byte-level BPE", "vocab_size": len(tokenizer),
                      "eos_token": tokenizer.eos_token, "pad_token": tokenizer.pad_token},
        "architecture": {"model_type": "gpt_neox", "parameters": n_params, "vocab_size": config.vocab_size,
                         "hidden_size": config.hidden_size, "num_layers": config.num_hidden_layers,
                         "num_heads": config.num_attention_heads, "rotary_pct": recipe.rotary_pct,
                         "use_parallel_residual": True},
        "train_loss_final": value,
        "train_loss_ema": ema,
        "heldout_loss": heldout_loss,
        "unigram_heldout_loss": unigram,
        "tokens_seen": recipe.steps * recipe.batch_size * T,
        "build_seconds": {"tokenizer": round(t_tok, 2), "train": round(t_train, 2),
                          "total": round(time.perf_counter() - t0, 2),
                          "total_cpu": round(time.process_time() - c0, 2)},
        "threads": 1,
        "versions": _versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    (out / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def build_tiny(recipe: TinyRecipe = DEFAULT_RECIPE, *, cache_dir=None, log=None) -> Path:
    """Build (once) and return the cache directory of the tiny model of ``recipe``.

    ``log``: optional callable receiving progress lines (e.g. ``print``).
    """
    path = tiny_path(recipe, cache_dir=cache_dir)
    return cached_build(path.parent, path.name, lambda tmp: _build(recipe, tmp, log, path.name),
                        marker=METADATA_FILE)
