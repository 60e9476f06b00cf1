"""Fine-tuning engine (torch layer): every method of :mod:`lowrankdp.methods` on Hugging Face causal LMs.

    from lowrankdp.finetune import FinetuneConfig, run
    record = run(FinetuneConfig(method="dp-lora", data="data/cs", out_dir="runs/dplora", epochs=3))

One ``run(config)`` trains a causal LM with the chosen method (transformers + peft + opacus), evaluates it after
every epoch (``lowrankdp.measure.measure_all``, knowledge retention, ε from ``lowrankdp.accounting``, influence
decomposition, costs) and writes a run directory: ``result.json`` (a :class:`lowrankdp.results.RunRecord`),
``checkpoints/`` and ``model/`` (the final model as a plain Hugging Face causal LM that
``lowrankdp.models.load_base(RUN_DIR)`` loads). ``export_model(run_dir)`` writes that folder from a stored
checkpoint. See ``docs/finetune.md``.

``lowrankdp.finetune.config`` (``FinetuneConfig``) imports without torch, so sweeps validate configs in-process;
the torch-backed names below are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import FinetuneConfig

__all__ = ["FinetuneConfig", "run", "export_model", "StepRunner", "Diverged", "load_model", "resolve_device"]

_LAZY = {"run": ".engine", "StepRunner": ".engine", "Diverged": ".engine", "export_model": ".export",
         "load_model": ".loading", "resolve_device": ".loading"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
