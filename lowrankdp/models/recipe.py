"""The tiny model's recipe and cache key (torch-free: importing this module never imports torch).

The cache key of a tiny model is the hash of a constant description — the recipe (:class:`TinyRecipe`), the
build-code version (:data:`BUILD_VERSION`), the corpus generator's version
(:data:`lowrankdp.models.corpus.GENERATOR_VERSION`) and the installed torch / transformers / tokenizers versions
(read from package metadata, without importing them) — so finding a cached model needs neither the corpus nor
torch. The corpus is a pure function of ``(GENERATOR_VERSION, recipe)``; ``tests/test_models.py`` pins its hash
so that a change of the generator without a version bump fails.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from .cache import cache_root, recipe_key
from .corpus import GENERATOR_VERSION, Corpus, make_corpus

__all__ = ["TinyRecipe", "DEFAULT_RECIPE", "BUILD_VERSION", "METADATA_FILE", "tiny_corpus", "library_versions",
           "cache_recipe", "tiny_path"]

#: the metadata file of every model directory the toolkit writes (the tiny model, pretrained bases)
METADATA_FILE = "lowrankdp_model.json"

#: version of the build code (tokenizer training, model config, training loop); part of the cache key: bump
#: whenever the build code changes the weights.
BUILD_VERSION = 2


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
    steps: int = 340
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
    """The pretraining corpus of ``recipe`` (generated on each first call in a process: about 2 s)."""
    return make_corpus(seed=recipe.corpus_seed, n_train_docs=recipe.n_train_docs,
                       n_heldout_docs=recipe.n_heldout_docs)


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that determine the weights, from package metadata (no import)."""
    out = {}
    for dist in ("torch", "transformers", "tokenizers"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def cache_recipe(recipe: TinyRecipe = DEFAULT_RECIPE) -> dict[str, Any]:
    """The constant description whose hash is the cache key."""
    return {"format": BUILD_VERSION, "corpus_generator_version": GENERATOR_VERSION, "recipe": recipe.to_dict(),
            "versions": library_versions()}


def tiny_path(recipe: TinyRecipe = DEFAULT_RECIPE, *, cache_dir=None) -> Path:
    """Where the model of ``recipe`` lives (or will live) in the cache; never generates the corpus."""
    return cache_root(cache_dir) / f"tiny-{recipe_key(cache_recipe(recipe))}"
