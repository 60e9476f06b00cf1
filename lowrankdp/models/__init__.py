"""Base models for lowrankdp (torch layer; docs/models.md, docs/architecture.md "Models").

- :func:`load_base` — ``"tiny"`` (embedded GPT-NeoX pretrained here on neutral generated text,
  cached under ``$LOWRANKDP_CACHE``), ``"pythia-70m-shape"`` … ``"pythia-1b-shape"`` (random
  weights at the public shapes), a fine-tuning run directory (its exported ``model/``), or any local
  path / hub id via ``AutoModelForCausalLM``.
- :func:`pretrain_base` — a base of a preset shape pretrained on the toolkit's corpus for a step or time budget.
- :func:`retention_loss` — held-out loss on the pretraining text (knowledge retention).
- :func:`multiple_choice_accuracy` — local multiple-choice benchmark; :func:`run_lm_eval` for
  lm-evaluation-harness tasks where installed.
- :func:`model_width` — hidden size of a model name without building it (torch-free).

The names are loaded on first use (PEP 562), so ``import lowrankdp.models.presets`` or ``.recipe`` — the
torch-free parts — does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_base": "base", "load_tiny_tokenizer": "base", "describe_base": "base", "resolve_run_dir": "base",
    "BUILTIN_NAMES": "base",
    "cache_root": "cache",
    "PRESETS": "presets", "preset_config": "presets", "parameter_count": "presets", "model_width": "presets",
    "pretrain_base": "pretrain",
    "TinyRecipe": "recipe", "DEFAULT_RECIPE": "recipe", "tiny_path": "recipe",
    "retention_loss": "retention", "stream_loss": "retention", "token_stream": "retention",
    "multiple_choice_accuracy": "retention", "score_multiple_choice": "retention",
    "default_task_file": "retention", "load_task": "retention", "run_lm_eval": "retention",
    "lm_eval_available": "retention",
    "build_tiny": "tiny", "read_metadata": "tiny",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lowrankdp.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
