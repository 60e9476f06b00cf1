"""Base models for lowrankdp (torch layer; docs/models.md, docs/architecture.md "Models").

- :func:`load_base` — ``"tiny"`` (embedded GPT-NeoX pretrained here on neutral generated text,
  cached under ``$LOWRANKDP_CACHE``), ``"pythia-70m-shape"`` … ``"pythia-1b-shape"`` (random
  weights at the public shapes), a fine-tuning run directory (its exported ``model/``), or any local
  path / hub id via ``AutoModelForCausalLM``.
- :func:`retention_loss` — held-out loss on the pretraining text (knowledge retention).
- :func:`multiple_choice_accuracy` — local multiple-choice benchmark; :func:`run_lm_eval` for
  lm-evaluation-harness tasks where installed.
"""

from __future__ import annotations

from .base import BUILTIN_NAMES, describe_base, load_base, load_tiny_tokenizer, resolve_run_dir
from .cache import cache_root
from .presets import PRESETS, parameter_count, preset_config
from .retention import (
    default_task_file,
    lm_eval_available,
    load_task,
    multiple_choice_accuracy,
    retention_loss,
    run_lm_eval,
    score_multiple_choice,
    stream_loss,
    token_stream,
)
from .tiny import DEFAULT_RECIPE, TinyRecipe, build_tiny, read_metadata, tiny_path

__all__ = [
    "load_base", "load_tiny_tokenizer", "describe_base", "resolve_run_dir", "BUILTIN_NAMES",
    "retention_loss", "stream_loss", "token_stream",
    "multiple_choice_accuracy", "score_multiple_choice", "default_task_file", "load_task",
    "run_lm_eval", "lm_eval_available",
    "PRESETS", "preset_config", "parameter_count",
    "TinyRecipe", "DEFAULT_RECIPE", "build_tiny", "tiny_path", "read_metadata", "cache_root",
]
