"""The embedded default base model ("tiny"): a small GPT-NeoX pretrained here, deterministically.

Recipe (:class:`TinyRecipe`): the neutral corpus of :mod:`lowrankdp.models.corpus`, a byte-level
BPE tokenizer trained on its train split, and a 2-layer GPT-NeoX (the Pythia architecture:
rotary embeddings on 25 % of each head's dimensions, parallel attention/MLP residual, untied
input/output embeddings, MLP 4× hidden) trained with AdamW on random windows of the train split,
single-threaded on CPU with ``torch.use_deterministic_algorithms(True)``.

The result is cached under ``$LOWRANKDP_CACHE/tiny-<key>`` where ``key`` hashes the recipe, the build and
corpus-generator versions and the torch / transformers / tokenizers versions
(:func:`lowrankdp.models.recipe.cache_recipe`; finding a cached model never regenerates the corpus), in
``save_pretrained`` format
(``AutoModelForCausalLM.from_pretrained(path)`` and ``AutoTokenizer.from_pretrained(path)`` load
it), with ``lowrankdp_model.json`` (recipe, corpus description and hash, losses, unigram baseline,
build time, versions) and ``heldout.txt``.

Determinism: two builds with the same recipe and versions on the same machine give bit-identical
weights (tested). Across CPUs with different vector units, float results of the same torch version
can differ in the last bits; the cache key does not include the CPU, so a cache directory copied
between machines is reused as is.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .cache import cached_build
from .pretrain import train_causal_lm
from .recipe import (BUILD_VERSION, DEFAULT_RECIPE, METADATA_FILE, TinyRecipe, library_versions, tiny_corpus,
                     tiny_path)
from .retention import stream_loss, token_stream

__all__ = ["TinyRecipe", "DEFAULT_RECIPE", "METADATA_FILE", "tiny_corpus", "build_tiny", "tiny_path",
           "read_metadata", "check_cached_model"]



def read_metadata(path: str | Path) -> dict[str, Any] | None:
    """The ``lowrankdp_model.json`` of a model directory, or None (absent or unreadable)."""
    f = Path(path) / METADATA_FILE
    if not f.is_file():
        return None
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def check_cached_model(path: Path) -> None:
    """Raise a one-line ``ValueError`` naming ``path`` and how to rebuild when a cached tiny model is incomplete."""
    problems = []
    if read_metadata(path) is None:
        problems.append(f"{METADATA_FILE} missing or not valid JSON")
    for name in ("config.json", "tokenizer.json"):
        f = path / name
        try:
            json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            problems.append(f"{name} missing or not valid JSON")
    if not (path / "model.safetensors").is_file():
        problems.append("model.safetensors missing")
    if problems:
        raise ValueError(corrupt_message(path, "; ".join(problems)))


def corrupt_message(path: Path, reason: str) -> str:
    return (f"cached tiny model {str(path)!r} is corrupt ({reason}); delete that directory and rebuild it "
            f"with 'lowrankdp model build --rebuild'")


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
        stats = train_causal_lm(model, train_ids, steps=recipe.steps, batch_size=recipe.batch_size,
                                block_size=recipe.block_size, lr=recipe.lr, warmup_steps=recipe.warmup_steps,
                                min_lr_ratio=recipe.min_lr_ratio, weight_decay=recipe.weight_decay,
                                seed=recipe.seed, log=log)
        T = recipe.block_size
        heldout_loss = stream_loss(model, heldout_ids, block_size=T)
        model.eval()
    value, ema, t_train = stats["train_loss_final"], stats["train_loss_ema"], stats["seconds"]
    unigram = unigram_cross_entropy(train_ids, heldout_ids, len(tokenizer))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "heldout.txt").write_text("\n\n".join(corpus.heldout), encoding="utf-8")
    n_params = sum(p.numel() for p in model.parameters())
    meta = {
        "name": "tiny",
        "format": BUILD_VERSION,
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
        "versions": library_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    (out / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def build_tiny(recipe: TinyRecipe = DEFAULT_RECIPE, *, cache_dir=None, log=None, rebuild: bool = False) -> Path:
    """Build (once) and return the cache directory of the tiny model of ``recipe``.

    ``log``: optional callable receiving progress lines (e.g. ``print``). ``rebuild``: replace the cached
    model (e.g. a corrupt one). Finding a cached model costs a hash of the recipe: the corpus is generated
    only when the model is built.
    """
    path = tiny_path(recipe, cache_dir=cache_dir)
    return cached_build(path.parent, path.name, lambda tmp: _build(recipe, tmp, log, path.name),
                        marker=METADATA_FILE, rebuild=rebuild)
